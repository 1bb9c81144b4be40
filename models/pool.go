package models

import (
	"fmt"
	"strings"

	"gorgonia.org/tensor"

	"mqa/layers"
)

// PoolingMean names the conversion PoolKVHeads does, for provenance records.
const PoolingMean = "mean"

// PoolKVHeads converts a model to kvHeads key/value heads by mean-pooling the key and value
// projections of each group of heads into one (Ainslie et al. 2023, "GQA"): a model with
// h query heads and g K/V heads becomes one with kvHeads K/V heads, each the mean of the
// g/kvHeads consecutive old heads whose query heads it now serves. kvHeads must divide g.
// Projection weights are [Dim, KVHeads·HeadDim] with each head's columns contiguous, so a
// new head's column c is the mean of column c of its group's heads; biases are pooled the
// same way. RoPE rotates every key head alike after the projection, so pooling the weights
// pools the rotated keys too. Every other parameter is copied, and the feed-forward width
// stays the source's: the converted model has fewer parameters than a parameter-matched one
// (Config.ParamCount tells how many). Self- and cross-attention are pooled alike.
func PoolKVHeads(cfg Config, params *layers.Params, kvHeads int) (Config, *layers.Params, error) {
	if kvHeads < 1 || kvHeads > cfg.KVHeads || cfg.KVHeads%kvHeads != 0 {
		return Config{}, nil, fmt.Errorf("pool K/V heads: %d K/V heads cannot be pooled into %d (it must divide %d)", cfg.KVHeads, kvHeads, cfg.KVHeads)
	}
	out := cfg
	out.KVHeads = kvHeads
	want, err := InitParams(out, 0)
	if err != nil {
		return Config{}, nil, fmt.Errorf("pool K/V heads: %w", err)
	}
	if len(params.Names()) != len(want.Names()) {
		return Config{}, nil, fmt.Errorf("pool K/V heads: the model has %d parameters, its config needs %d", len(params.Names()), len(want.Names()))
	}
	pooled := layers.NewParams(params.Dtype(), 0)
	for _, name := range want.Names() {
		src := params.Get(name)
		if src == nil {
			return Config{}, nil, fmt.Errorf("pool K/V heads: the model has no parameter %s", name)
		}
		var t *tensor.Dense
		if isKVProjection(name) {
			t, err = poolHeads(src, cfg.KVHeads/kvHeads, kvHeads*cfg.HeadDim, cfg.HeadDim)
		} else {
			t, err = src.Clone().(*tensor.Dense), nil
		}
		if err != nil {
			return Config{}, nil, fmt.Errorf("pool K/V heads: %s: %w", name, err)
		}
		if !t.Shape().Eq(want.Get(name).Shape()) {
			return Config{}, nil, fmt.Errorf("pool K/V heads: %s has shape %v, the converted model needs %v", name, t.Shape(), want.Get(name).Shape())
		}
		if err := pooled.Set(name, t); err != nil {
			return Config{}, nil, fmt.Errorf("pool K/V heads: %w", err)
		}
	}
	return out, pooled, nil
}

// isKVProjection tells whether a parameter is a key or value projection of an attention layer.
func isKVProjection(name string) bool {
	for _, suffix := range []string{"_attn.k.weight", "_attn.v.weight", "_attn.k.bias", "_attn.v.bias"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// poolHeads averages groups of r consecutive heads of width headDim along the last axis of
// t (a [In, Heads·headDim] weight or a [Heads·headDim] bias), giving width outWidth. Sums
// are taken in float64, so a group of one head is copied exactly.
func poolHeads(t *tensor.Dense, r, outWidth, headDim int) (*tensor.Dense, error) {
	xs, ok := t.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("dtype %v (only float32 is pooled)", t.Dtype())
	}
	shape := t.Shape()
	inWidth := shape[len(shape)-1]
	if inWidth != r*outWidth {
		return nil, fmt.Errorf("last axis %d is not %d groups of %d heads of width %d", inWidth, outWidth/headDim, r, headDim)
	}
	rows := len(xs) / inWidth
	ys := make([]float32, rows*outWidth)
	for row := 0; row < rows; row++ {
		in, out := xs[row*inWidth:(row+1)*inWidth], ys[row*outWidth:(row+1)*outWidth]
		for g := 0; g < outWidth/headDim; g++ {
			for c := 0; c < headDim; c++ {
				var sum float64
				for j := 0; j < r; j++ {
					sum += float64(in[(g*r+j)*headDim+c])
				}
				out[g*headDim+c] = float32(sum / float64(r))
			}
		}
	}
	newShape := append(tensor.Shape(nil), shape...)
	newShape[len(newShape)-1] = outWidth
	return tensor.New(tensor.WithShape(newShape...), tensor.WithBacking(ys)), nil
}

package train

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"

	"mqa/models"
)

// DefaultBucketBytes is the size a gradient bucket is filled to (PyTorch DDP's default).
const DefaultBucketBytes = 25 << 20

// Bucket is a group of parameters whose gradients are all-reduced together, as one buffer.
type Bucket struct {
	Params []int // indices into ParamNames, in the order their gradients become ready
	Values int   // float32 values in the bucket
}

// PlanBuckets groups parameters into buckets of about capBytes of float32 gradient each.
// ready lists the parameter indices in the order the backward pass finishes their gradients
// (GradientReadyOrder), so that a bucket can be all-reduced as soon as its last gradient is
// done while the backward pass goes on with the next. A parameter larger than capBytes gets a
// bucket of its own; a bucket never splits a parameter.
func PlanBuckets(ready, sizes []int, capBytes int) ([]Bucket, error) {
	if capBytes < 4 {
		return nil, fmt.Errorf("buckets: capacity %d bytes holds no float32", capBytes)
	}
	if len(ready) != len(sizes) {
		return nil, fmt.Errorf("buckets: order of %d parameters for %d sizes", len(ready), len(sizes))
	}
	seen := make([]bool, len(sizes))
	var out []Bucket
	var cur Bucket
	for _, p := range ready {
		if p < 0 || p >= len(sizes) || seen[p] {
			return nil, fmt.Errorf("buckets: order %v is not a permutation of the %d parameters", ready, len(sizes))
		}
		seen[p] = true
		if len(cur.Params) > 0 && 4*(cur.Values+sizes[p]) > capBytes {
			out = append(out, cur)
			cur = Bucket{}
		}
		cur.Params = append(cur.Params, p)
		cur.Values += sizes[p]
	}
	if len(cur.Params) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// GradientReadyOrder lists the parameters (indices into grads, which are in ParamNames order)
// in the order a run of the training graph g computes their gradients: the reverse of the
// order the forward pass first needs them, except that a parameter used in several places
// (a tied embedding) is ready only after its last use's contribution.
func GradientReadyOrder(g *models.Graph, grads []*G.Node) ([]int, error) {
	sorted, err := G.Sort(g.G)
	if err != nil {
		return nil, fmt.Errorf("ordering the training graph: %w", err)
	}
	// G.Sort puts the loss first; a run goes the other way.
	pos := make(map[*G.Node]int, len(sorted))
	for i, n := range sorted {
		pos[n] = len(sorted) - 1 - i
	}
	at := make([]int, len(grads))
	out := make([]int, len(grads))
	for i, gn := range grads {
		p, ok := pos[gn]
		if !ok {
			return nil, fmt.Errorf("gradient %d (%s) is not in the training graph", i, gn.Name())
		}
		at[i], out[i] = p, i
	}
	slices.SortFunc(out, func(a, b int) int { return at[a] - at[b] })
	return out, nil
}

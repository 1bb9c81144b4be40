package train

import (
	"fmt"

	"mqa/models"
)

// Shard is one rank's part of a global batch: a batch and the weight of its gradient in the
// sum that the ranks' all-reduce forms.
type Shard struct {
	Batch  Batch
	Weight float64
}

// SplitGlobalBatch splits the micro-batches of one update (the global batch) among ranks so
// that the weighted sum of the shards' mean-loss gradients, over all ranks, equals the sum
// of the micro-batches' mean-loss gradients on one rank. The update on N ranks is then that
// on one rank, up to the order of floating-point sums.
//
// When the micro-batches divide evenly among the ranks, each rank takes whole micro-batches
// (rank r: micro-batches r, r+N, ...) with weight 1: the same shapes, and the same dropout
// masks, as on one rank. Otherwise every micro-batch is cut by rows into N contiguous slices
// as even as possible; a slice's loss is the mean over its own target tokens, so its weight
// is its share of the micro-batch's target tokens (with no target tokens at all, its share of
// the rows). Slices with weight 0 (no target tokens, or no rows) are left out, so a rank may
// get no shard: it then contributes a zero gradient.
func SplitGlobalBatch(micro []Batch, ranks int) ([][]Shard, error) {
	if ranks < 1 {
		return nil, fmt.Errorf("split: %d ranks", ranks)
	}
	out := make([][]Shard, ranks)
	if len(micro)%ranks == 0 {
		for k, b := range micro {
			out[k%ranks] = append(out[k%ranks], Shard{Batch: b, Weight: 1})
		}
		return out, nil
	}
	for _, b := range micro {
		if err := checkRows(b); err != nil {
			return nil, err
		}
		total := b.TargetTokens()
		for r := range ranks {
			lo, hi := rowRange(b.Shape.Batch, r, ranks)
			if lo == hi {
				continue
			}
			s := sliceRows(b, lo, hi)
			w := float64(hi-lo) / float64(b.Shape.Batch)
			if total > 0 {
				w = float64(s.TargetTokens()) / float64(total)
			}
			if w > 0 {
				out[r] = append(out[r], Shard{Batch: s, Weight: w})
			}
		}
	}
	return out, nil
}

// RankShapes lists the batch shapes the ranks run when the micro-batches of one update
// (accum of them, of the given shapes) are split among ranks by SplitGlobalBatch.
func RankShapes(shapes []models.Shape, accum, ranks int) []models.Shape {
	if ranks <= 1 || accum%ranks == 0 {
		return shapes
	}
	seen := map[models.Shape]bool{}
	var out []models.Shape
	for _, s := range shapes {
		for r := range ranks {
			lo, hi := rowRange(s.Batch, r, ranks)
			part := s
			part.Batch = hi - lo
			if part.Batch > 0 && !seen[part] {
				seen[part] = true
				out = append(out, part)
			}
		}
	}
	return out
}

// rowRange is rank r's rows [lo, hi) of a batch of n rows cut into ranks slices.
func rowRange(n, r, ranks int) (lo, hi int) { return r * n / ranks, (r + 1) * n / ranks }

// checkRows checks that a batch's slices agree with its shape.
func checkRows(b Batch) error {
	s := b.Shape
	if len(b.Tokens) != s.Batch*s.TgtLen || len(b.Targets) != s.Batch*s.TgtLen ||
		len(b.Src) != s.Batch*s.SrcLen || (len(b.SrcLens) != 0 && len(b.SrcLens) != s.Batch) {
		return fmt.Errorf("split: batch of shape %+v has %d tokens, %d targets, %d source tokens and %d source lengths",
			s, len(b.Tokens), len(b.Targets), len(b.Src), len(b.SrcLens))
	}
	return nil
}

// sliceRows is rows [lo, hi) of b (sharing its memory).
func sliceRows(b Batch, lo, hi int) Batch {
	s := b.Shape
	out := Batch{Shape: models.Shape{Batch: hi - lo, SrcLen: s.SrcLen, TgtLen: s.TgtLen},
		Tokens: b.Tokens[lo*s.TgtLen : hi*s.TgtLen], Targets: b.Targets[lo*s.TgtLen : hi*s.TgtLen]}
	if s.SrcLen > 0 {
		out.Src = b.Src[lo*s.SrcLen : hi*s.SrcLen]
	}
	if len(b.SrcLens) > 0 {
		out.SrcLens = b.SrcLens[lo:hi]
	}
	return out
}

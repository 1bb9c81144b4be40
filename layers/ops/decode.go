package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// DecodeAttention is the attention of one incremental decoding step: each of B sequences
// has one query row and attends over its cached keys and values (and, for self-attention,
// the step's own new key and value). It is forward-only.
//
// Inputs:
//   - q [B, Heads·HeadDim]: the query heads in grouped order, head h = kv·group + r, where
//     group = Heads/KVHeads query heads share K/V head kv;
//   - k, v [B, KVHeads, MaxLen, HeadDim]: the cached keys and values;
//   - with HasNew, newK and newV [B, KVHeads·HeadDim]: the step's key and value rows (the
//     query's own position, appended after the cache);
//   - lengths [B] ints: the number of valid cached rows of each sequence (for
//     self-attention the query's position; for cross-attention the source length). A
//     negative length marks a finished sequence: its output row is zero and no K/V row of
//     it is read.
//
// With Window W > 0 (self-attention only) the query at position p sees the keys at
// positions p−W+1 … p.
//
// The output is [B, Heads·HeadDim] in the same head order. The CPU kernel loops over the
// K/V heads outside and over the query heads that share one inside, so each cached K and V
// row is read once for all of its query heads: this is the memory traffic that MQA (one
// K/V head) cuts by the factor Heads.
type DecodeAttention struct {
	base
	Heads, KVHeads, HeadDim int
	Scale                   float64
	Window                  int
	HasNew                  bool
}

// NewDecodeAttention builds the node; newK and newV must both be nil exactly when
// op.HasNew is false.
func NewDecodeAttention(op DecodeAttention, q, k, v, newK, newV, lengths *G.Node) (*G.Node, error) {
	if err := op.validate(); err != nil {
		return nil, err
	}
	if op.HasNew != (newK != nil) || op.HasNew != (newV != nil) {
		return nil, fmt.Errorf("%v: new key/value inputs given=%v/%v", op, newK != nil, newV != nil)
	}
	if op.HasNew {
		return G.ApplyOp(op, q, k, v, newK, newV, lengths)
	}
	return G.ApplyOp(op, q, k, v, lengths)
}

func (op DecodeAttention) validate() error {
	switch {
	case op.Heads < 1 || op.KVHeads < 1 || op.HeadDim < 1 || op.Heads%op.KVHeads != 0:
		return fmt.Errorf("%v: heads must be a positive multiple of the positive kv heads, head width positive", op)
	case op.Window < 0 || (op.Window > 0 && !op.HasNew):
		return fmt.Errorf("%v: a window needs self-attention and must not be negative", op)
	}
	return nil
}

// Arity is 6 with new rows, else 4.
func (op DecodeAttention) Arity() int {
	if op.HasNew {
		return 6
	}
	return 4
}

// Type is (q, k, v[, newK, newV], lengths) → out.
func (op DecodeAttention) Type() hm.Type {
	q, kv := tensorOf(2), tensorOf(4)
	if op.HasNew {
		return hm.NewFnType(q, kv, kv, q, q, intTensor(1), q)
	}
	return hm.NewFnType(q, kv, kv, intTensor(1), q)
}

func (op DecodeAttention) String() string {
	return fmt.Sprintf("DecodeAttention{h=%d kv=%d dk=%d scale=%g window=%d new=%v}",
		op.Heads, op.KVHeads, op.HeadDim, op.Scale, op.Window, op.HasNew)
}
func (op DecodeAttention) Hashcode() uint32       { return hashOf(op) }
func (op DecodeAttention) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is q's shape, after checking the others against it.
func (op DecodeAttention) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	shapes := make([]tensor.Shape, len(ds))
	for i := range ds {
		s, err := shapeOf(op, ds, i)
		if err != nil {
			return nil, err
		}
		shapes[i] = s
	}
	if err := op.checkShapes(shapes); err != nil {
		return nil, err
	}
	return shapes[0].Clone(), nil
}

func (op DecodeAttention) checkShapes(s []tensor.Shape) error {
	if len(s) != op.Arity() {
		return fmt.Errorf("%v: %d inputs, want %d", op, len(s), op.Arity())
	}
	q, k, v := s[0], s[1], s[2]
	if len(q) != 2 || q[1] != op.Heads*op.HeadDim {
		return fmt.Errorf("%v: queries %v, want [B %d]", op, q, op.Heads*op.HeadDim)
	}
	b := q[0]
	if len(k) != 4 || k[0] != b || k[1] != op.KVHeads || k[3] != op.HeadDim || !k.Eq(v) {
		return fmt.Errorf("%v: keys %v and values %v, want [%d %d L %d]", op, k, v, b, op.KVHeads, op.HeadDim)
	}
	if op.HasNew {
		for _, n := range s[3:5] {
			if len(n) != 2 || n[0] != b || n[1] != op.KVHeads*op.HeadDim {
				return fmt.Errorf("%v: new rows %v, want [%d %d]", op, n, b, op.KVHeads*op.HeadDim)
			}
		}
	}
	if l := s[len(s)-1]; len(l) != 1 || l[0] != b {
		return fmt.Errorf("%v: lengths %v, want [%d]", op, l, b)
	}
	return nil
}

// Do runs the attention on the CPU.
func (op DecodeAttention) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer): a decode step's program
// keeps its attention outputs between steps.
func (op DecodeAttention) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	ts, err := denses(op, vals[:len(vals)-1])
	if err != nil {
		return nil, err
	}
	shapes := make([]tensor.Shape, len(vals))
	for i, t := range ts {
		shapes[i] = t.Shape()
	}
	lengths, err := ints(op, vals[len(vals)-1])
	if err != nil {
		return nil, err
	}
	shapes[len(vals)-1] = tensor.Shape{len(lengths)}
	if err := op.checkShapes(shapes); err != nil {
		return nil, err
	}
	maxLen := ts[1].Shape()[2]
	for i, l := range lengths {
		if l > maxLen {
			return nil, fmt.Errorf("%v: sequence %d has %d cached rows, the cache holds %d", op, i, l, maxLen)
		}
	}
	res := output(out, ts[0].Dtype(), true, ts[0].Shape()...) // rows of finished sequences stay zero
	err = floats(op,
		func() error {
			decodeAttention(op, datas[float32](ts), data[float32](res), lengths, maxLen)
			return nil
		},
		func() error {
			decodeAttention(op, datas[float64](ts), data[float64](res), lengths, maxLen)
			return nil
		},
		ts...)
	return res, err
}

// decodeAttention is the CPU kernel; in holds q, k, v and, with HasNew, newK and newV.
func decodeAttention[T float](op DecodeAttention, in [][]T, out []T, lengths []int, maxLen int) {
	q, k, v := in[0], in[1], in[2]
	dk, kvh := op.HeadDim, op.KVHeads
	group := op.Heads / kvh
	width := op.Heads * dk
	// The (sequence, K/V head) pairs are independent: they are shared among the cores, each
	// computed exactly as in one serial pass.
	parallelRows(len(lengths)*kvh, 2*group*maxLen*dk, func(first, last int) {
		scores := make([]float64, group*(maxLen+1)) // scores[r*(maxLen+1)+j]
		acc := make([]float64, group*dk)
		for pair := first; pair < last; pair++ {
			b, g := pair/kvh, pair%kvh
			n := lengths[b]
			if n < 0 {
				continue // finished: the output row stays zero
			}
			lo := WindowStart(n, op.Window)
			keys := n - lo // cached keys visible
			total := keys
			if op.HasNew {
				total++
			}
			if total == 0 {
				continue
			}
			base := (b*kvh + g) * maxLen * dk
			qs := q[b*width+g*group*dk : b*width+(g+1)*group*dk] // the group's query heads
			// Scores: each key row is read once for all query heads of the group.
			for j := 0; j < keys; j++ {
				krow := k[base+(lo+j)*dk : base+(lo+j+1)*dk]
				for r := 0; r < group; r++ {
					scores[r*(maxLen+1)+j] = dot(qs[r*dk:(r+1)*dk], krow) * op.Scale
				}
			}
			var newK, newV []T
			if op.HasNew {
				off := b*kvh*dk + g*dk
				newK, newV = in[3][off:off+dk], in[4][off:off+dk]
				for r := 0; r < group; r++ {
					scores[r*(maxLen+1)+keys] = dot(qs[r*dk:(r+1)*dk], newK) * op.Scale
				}
			}
			// Softmax per query head.
			for r := 0; r < group; r++ {
				row := scores[r*(maxLen+1) : r*(maxLen+1)+total]
				softmaxRow(row, row, 1)
			}
			// Weighted values: each value row is read once for all query heads.
			clear(acc)
			for j := 0; j < keys; j++ {
				vrow := v[base+(lo+j)*dk : base+(lo+j+1)*dk]
				for r := 0; r < group; r++ {
					axpy(scores[r*(maxLen+1)+j], vrow, acc[r*dk:(r+1)*dk])
				}
			}
			if op.HasNew {
				for r := 0; r < group; r++ {
					axpy(scores[r*(maxLen+1)+keys], newV, acc[r*dk:(r+1)*dk])
				}
			}
			o := out[b*width+g*group*dk : b*width+(g+1)*group*dk]
			for i, a := range acc {
				o[i] = T(a)
			}
		}
	})
}

func dot[T float](a, b []T) float64 {
	var s float64
	b = b[:len(a)]
	for i, x := range a {
		s += float64(x) * float64(b[i])
	}
	return s
}

func axpy[T float](alpha float64, x []T, y []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * float64(v)
	}
}

package ops_test

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/ops"
)

// TestDoIntoReusesOnlyWhatFits runs DoInto into a kept tensor filled with garbage: one of the
// result's dtype and shape is written in place and the result equals Do's (the masked
// softmax leaves zeros that the garbage must not survive in); any other is left alone.
func TestDoIntoReusesOnlyWhatFits(t *testing.T) {
	x := tensor.New(tensor.WithShape(1, 2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	lens := tensor.New(tensor.WithShape(1), tensor.WithBacking([]int{2}))
	op := ops.Softmax{Scale: 1, Groups: 1, QueryLen: 2, HasLengths: true}
	want, err := op.Do(x, lens)
	if err != nil {
		t.Fatal(err)
	}
	garbage := func(shape ...int) *tensor.Dense {
		d := make([]float32, tensor.Shape(shape).TotalSize())
		for i := range d {
			d[i] = float32(math.NaN())
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
	}
	cases := []struct {
		name  string
		out   G.Value
		reuse bool
	}{
		{"fits", garbage(1, 2, 3), true},
		{"other shape", garbage(1, 3, 2), false},
		{"float64", tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(1, 2, 3)), false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		got, err := op.DoInto(c.out, x, lens)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if reused := got == c.out; reused != c.reuse {
			t.Errorf("%s: reused = %v, want %v", c.name, reused, c.reuse)
		}
		w, g := want.Data().([]float32), got.Data().([]float32)
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Fatalf("%s: element %d = %v, want %v", c.name, i, g[i], w[i])
			}
		}
	}
}

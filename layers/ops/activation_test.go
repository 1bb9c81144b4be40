package ops_test

import (
	"math"
	"testing"

	"gorgonia.org/tensor"

	"mqa/layers/ops"
)

// TestReLUSpecialValues checks the float32 ReLU and its gradient, which use the bits of x, on
// the values where a bit trick could go wrong: both zeros, both infinities, NaNs of either
// sign, subnormals and the extremes. Each must give exactly what x > 0 ? v : 0 gives.
func TestReLUSpecialValues(t *testing.T) {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 3.5, -2.25,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7FC00000), math.Float32frombits(0xFFC00000),
		math.Float32frombits(0x7F800001), math.Float32frombits(0xFFFFFFFF), math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32}
	gs := make([]float32, len(xs))
	for i := range gs {
		gs[i] = float32(i) + 0.5
	}
	x := tensor.New(tensor.WithShape(2, len(xs)/2), tensor.WithBacking(xs))
	g := tensor.New(tensor.WithShape(2, len(xs)/2), tensor.WithBacking(gs))
	y, err := ops.Activation{Kind: ops.ReLU}.Do(x)
	if err != nil {
		t.Fatal(err)
	}
	dx, err := ops.ActivationGrad{Kind: ops.ReLU}.Do(x, g)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range xs {
		wantY, wantDX := float32(0), float32(0)
		if v > 0 {
			wantY, wantDX = v, gs[i]
		}
		if got := y.Data().([]float32)[i]; math.Float32bits(got) != math.Float32bits(wantY) {
			t.Errorf("relu(%v [%#x]) = %v, want %v", v, math.Float32bits(v), got, wantY)
		}
		if got := dx.Data().([]float32)[i]; math.Float32bits(got) != math.Float32bits(wantDX) {
			t.Errorf("relu'(%v [%#x]) · %v = %v, want %v", v, math.Float32bits(v), gs[i], got, wantDX)
		}
	}
}

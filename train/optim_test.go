package train

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// TestAdamWParallelMatchesSerial updates parameters large enough to be split over goroutines,
// with GOMAXPROCS 4 and 1, and requires the same bits; one value is checked by hand.
func TestAdamWParallelMatchesSerial(t *testing.T) {
	sizes := []int{3, 40000, 7, 50000, 1}
	decay := []bool{false, true, false, true, true}
	run := func(procs int) [][]float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		r := rand.New(rand.NewPCG(3, 4))
		o := NewAdamW(sizes, decay, 0.9, 0.98, 1e-8, 0.01)
		var params, grads [][]float32
		for _, n := range sizes {
			p, g := make([]float32, n), make([]float32, n)
			for j := range p {
				p[j], g[j] = float32(r.NormFloat64()), float32(r.NormFloat64())
			}
			params, grads = append(params, p), append(grads, g)
		}
		for range 2 {
			if err := o.Update(params, grads, 1e-3, 0.5); err != nil {
				t.Fatal(err)
			}
		}
		return params
	}
	serial, par := run(1), run(4)
	for i := range serial {
		if !slices.Equal(serial[i], par[i]) {
			t.Errorf("parameter %d: parallel update differs from the serial one", i)
		}
	}
	// The last value by hand: the same gradient twice, so m and v after two steps are
	// (1−β)(1+β)·g and (1−β₂)(1+β₂)·g², and the bias-corrected step is lr·m̂/(√v̂ + ε).
	r := rand.New(rand.NewPCG(3, 4))
	var p0, g0 float64
	for _, n := range sizes {
		for range n {
			p0, g0 = float64(float32(r.NormFloat64())), float64(float32(r.NormFloat64()))
		}
	}
	g := g0 * 0.5
	want := p0
	m, v := 0.0, 0.0
	for s := 1; s <= 2; s++ {
		m, v = 0.9*m+0.1*g, 0.98*v+0.02*g*g
		want = want*(1-1e-3*0.01) - 1e-3*(m/(1-math.Pow(0.9, float64(s))))/(math.Sqrt(v/(1-math.Pow(0.98, float64(s))))+1e-8)
	}
	last := serial[len(serial)-1][0]
	if math.Abs(float64(last)-want) > 1e-6 {
		t.Errorf("last parameter after two steps: %g, want %g", last, want)
	}
}

package program

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestBatchedProductMatchesGorgonia runs Gorgonia's batched products (each transpose, a batch
// large enough to be shared among the cores) and the program's kernel on the same inputs, the
// kernel writing into a kept tensor full of garbage, and wants the same numbers bit for bit.
func TestBatchedProductMatchesGorgonia(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(shape ...int) *tensor.Dense {
		d := make([]float32, tensor.Shape(shape).TotalSize())
		for i := range d {
			d[i] = rng.Float32()*2 - 1
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
	}
	const batch, m, n, k = 24, 33, 40, 48
	for _, tr := range []struct{ a, b bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
		as, bs := []int{batch, m, k}, []int{batch, k, n}
		if tr.a {
			as = []int{batch, k, m}
		}
		if tr.b {
			bs = []int{batch, n, k}
		}
		g := G.NewGraph()
		a := G.NewTensor(g, tensor.Float32, 3, G.WithShape(as...), G.WithName("a"))
		b := G.NewTensor(g, tensor.Float32, 3, G.WithShape(bs...), G.WithName("b"))
		c, err := G.BatchedMatMul(a, b, tr.a, tr.b)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := batchedProductOf(c.Op())
		if !ok || p.transA != tr.a || p.transB != tr.b {
			t.Fatalf("%v: recognised as %+v, %v", c.Op(), p, ok)
		}
		av, bv := random(as...), random(bs...)
		want, err := c.Op().Do(av, bv)
		if err != nil {
			t.Fatal(err)
		}
		kept := random(batch, m, n)
		got, ok := p.run(kept, []G.Value{av, bv})
		if !ok || got != G.Value(kept) {
			t.Fatalf("%v: ran %v, wrote into the kept tensor %v", c.Op(), ok, got == G.Value(kept))
		}
		w, gd := want.Data().([]float32), got.Data().([]float32)
		for i := range w {
			if math.Float32bits(gd[i]) != math.Float32bits(w[i]) {
				t.Fatalf("%v: element %d = %v, Gorgonia %v", c.Op(), i, gd[i], w[i])
			}
		}
	}
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("x"))
	y := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 2), G.WithName("y"))
	xy, err := G.Mul(x, y)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := batchedProductOf(xy.Op()); ok {
		t.Errorf("the 2-D product %v recognised as batched", xy.Op())
	}
}

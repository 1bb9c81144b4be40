package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Gather looks rows up in a table: inputs table [V, d] and ids [N] (ints) give
// [N, d] = Scale · table[ids]. It is the embedding lookup and the positional-table lookup.
type Gather struct {
	base
	Scale float64
}

// NewGather builds the lookup node.
func NewGather(table, ids *G.Node, scale float64) (*G.Node, error) {
	return G.ApplyOp(Gather{Scale: scale}, table, ids)
}

func (op Gather) Arity() int             { return 2 }
func (op Gather) Type() hm.Type          { t := tensorOf(2); return hm.NewFnType(t, intTensor(1), t) }
func (op Gather) String() string         { return fmt.Sprintf("Gather{scale=%g}", op.Scale) }
func (op Gather) Hashcode() uint32       { return hashOf(op) }
func (op Gather) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is [len(ids), d].
func (op Gather) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	t, err := shapeOf(op, ds, 0)
	if err != nil {
		return nil, err
	}
	ids, err := shapeOf(op, ds, 1)
	if err != nil {
		return nil, err
	}
	if len(t) != 2 || len(ids) != 1 {
		return nil, fmt.Errorf("%v: table %v and ids %v must be 2-D and 1-D", op, t, ids)
	}
	return tensor.Shape{ids[0], t[1]}, nil
}

// Do runs the lookup on the CPU; an id outside the table is an error.
func (op Gather) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op Gather) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	table, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	ids, err := ints(op, vals[1])
	if err != nil {
		return nil, err
	}
	rows, d := table.Shape()[0], table.Shape()[1]
	for i, id := range ids {
		if id < 0 || id >= rows {
			return nil, fmt.Errorf("gather: id %d at position %d is outside the table of %d rows", id, i, rows)
		}
	}
	res := output(out, table.Dtype(), false, len(ids), d)
	err = floats(op,
		func() error { gather(data[float32](table), data[float32](res), ids, d, op.Scale); return nil },
		func() error { gather(data[float64](table), data[float64](res), ids, d, op.Scale); return nil },
		table)
	return res, err
}

func gather[T float](table, out []T, ids []int, d int, scale float64) {
	for i, id := range ids {
		row := table[id*d : (id+1)*d]
		for j, v := range row {
			out[i*d+j] = T(float64(v) * scale)
		}
	}
}

// DiffWRT: the table is differentiable, the ids are not.
func (op Gather) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff scatters the gradient back into the table's rows.
func (op Gather) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dt, err := G.ApplyOp(ScatterAdd{Rows: inputs[0].Shape()[0], Scale: op.Scale}, inputs[1], grad)
	return G.Nodes{dt, nil}, err
}

// ScatterAdd is Gather's gradient: inputs ids [N] and grad [N, d] give [Rows, d], where row
// r is Scale times the sum of the gradient rows whose id is r.
type ScatterAdd struct {
	base
	Rows  int
	Scale float64
}

func (op ScatterAdd) Arity() int    { return 2 }
func (op ScatterAdd) Type() hm.Type { t := tensorOf(2); return hm.NewFnType(intTensor(1), t, t) }
func (op ScatterAdd) String() string {
	return fmt.Sprintf("ScatterAdd{rows=%d scale=%g}", op.Rows, op.Scale)
}
func (op ScatterAdd) Hashcode() uint32       { return hashOf(op) }
func (op ScatterAdd) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is [Rows, d].
func (op ScatterAdd) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	g, err := shapeOf(op, ds, 1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{op.Rows, g[1]}, nil
}

// Do runs the scatter on the CPU.
func (op ScatterAdd) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op ScatterAdd) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	ids, err := ints(op, vals[0])
	if err != nil {
		return nil, err
	}
	g, err := dense(op, vals[1])
	if err != nil {
		return nil, err
	}
	d := g.Shape()[1]
	res := output(out, g.Dtype(), true, op.Rows, d)
	for i, id := range ids {
		if id < 0 || id >= op.Rows {
			return nil, fmt.Errorf("scatter: id %d at position %d is outside %d rows", id, i, op.Rows)
		}
	}
	err = floats(op,
		func() error { scatterAdd(data[float32](g), data[float32](res), ids, d, op.Scale); return nil },
		func() error { scatterAdd(data[float64](g), data[float64](res), ids, d, op.Scale); return nil },
		g)
	return res, err
}

func scatterAdd[T float](g, out []T, ids []int, d int, scale float64) {
	for i, id := range ids {
		row := out[id*d : (id+1)*d]
		for j, v := range g[i*d : (i+1)*d] {
			row[j] += T(float64(v) * scale)
		}
	}
}

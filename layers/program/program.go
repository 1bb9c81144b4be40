// Package program runs a Gorgonia graph on the CPU many times over: a Program computes the
// nodes in topological order, as Gorgonia's TapeMachine does, but each node keeps its value
// from one run to the next and the next run writes into it. Training (package train) and
// decoding (package infer) run their CPU graphs with it.
package program

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/ops"
)

// Program runs a graph on the CPU, as Gorgonia's TapeMachine does, but keeps every node's
// value from one run to the next and writes the next run's value into it: Gorgonia's
// TapeMachine drops all values when it is reset, so each of its runs allocates every
// activation and gradient again (and fresh memory costs page faults as well as the garbage
// collector's time). Each node owns its value (no two nodes share memory unless one is a view
// of the other, like a reshape), so after a run every value can be read — the loss, the
// gradients, the logits — until the next run overwrites it.
//
// The ops compute exactly what they compute under the TapeMachine: the same Do, or the
// same kernel writing into the kept tensor (ops.IntoDoer, Gorgonia's UsePreallocDoer).
type Program struct {
	steps []step
	vals  []G.Value // by node, in topological order
	index map[*G.Node]int
	args  []G.Value // one step's inputs
}

// step is one node of the program.
type step struct {
	node    *G.Node
	in      []int // the inputs' positions in vals
	reuse   bool  // whether the node writes into its previous value
	batched bool  // a batched matrix product, run by product.run
	product product
	exps    *ops.Exps // shared by a cross-entropy loss and its gradient (pairCrossEntropy)
}

// New sorts the graph's nodes into a program. The graph's inputs (nodes without an op) are
// read from the nodes at every run, so G.Let binds the next run's inputs.
func New(g *G.ExprGraph) (*Program, error) {
	sorted, err := G.Sort(g)
	if err != nil {
		return nil, fmt.Errorf("program: sorting the graph: %w", err)
	}
	p := &Program{index: make(map[*G.Node]int, len(sorted)), vals: make([]G.Value, len(sorted))}
	for i := len(sorted) - 1; i >= 0; i-- {
		n := sorted[i]
		s := step{node: n}
		s.product, s.batched = batchedProductOf(n.Op())
		for it := g.From(n.ID()); it.Next(); {
			j, ok := p.index[it.Node().(*G.Node)]
			if !ok {
				return nil, fmt.Errorf("program: an input of %s is not computed before it", n.Name())
			}
			s.in = append(s.in, j)
		}
		p.index[n] = len(p.steps)
		p.steps = append(p.steps, s)
	}
	p.pairCrossEntropy()
	return p, nil
}

// maxKeptExps bounds the exponentials a cross-entropy keeps for its gradient (float64s: 256 MB).
const maxKeptExps = 1 << 25

// pairCrossEntropy gives a cross-entropy loss and a gradient of it that runs after it, on the
// same logits and targets, one ops.Exps: the gradient then takes the loss's exponentials
// instead of computing the same numbers again (about a third of a tiny step's time is these
// exponentials).
func (p *Program) pairCrossEntropy() {
	for i := range p.steps {
		loss, ok := p.steps[i].node.Op().(ops.CrossEntropy)
		if !ok {
			continue
		}
		in := p.steps[i].in
		if logits := p.steps[in[0]].node.Shape(); len(logits) != 2 || logits.TotalSize() > maxKeptExps {
			continue
		}
		for j := i + 1; j < len(p.steps); j++ {
			grad, ok := p.steps[j].node.Op().(ops.CrossEntropyGrad)
			if ok && grad.Smoothing == loss.Smoothing && grad.Ignore == loss.Ignore &&
				p.steps[j].in[0] == in[0] && p.steps[j].in[1] == in[1] {
				exps := &ops.Exps{}
				p.steps[i].exps, p.steps[j].exps = exps, exps
				break
			}
		}
	}
}

// Run computes every node from the inputs' current values.
func (p *Program) Run() error {
	for i := range p.steps {
		s := &p.steps[i]
		op := s.node.Op()
		if op == nil {
			p.vals[i] = s.node.Value()
			if p.vals[i] == nil {
				return fmt.Errorf("program: input %s has no value", s.node.Name())
			}
			continue
		}
		p.args = p.args[:0]
		for _, j := range s.in {
			p.args = append(p.args, p.vals[j])
		}
		prev := p.vals[i]
		v, err := p.exec(s, op, prev)
		if err != nil {
			return fmt.Errorf("program: %s (%v): %w", s.node.Name(), op, err)
		}
		p.vals[i] = v
		if v != prev {
			s.reuse = owns(v, p.args)
		}
	}
	return nil
}

// exec runs one op, into its previous value when the node owns it.
func (p *Program) exec(s *step, op G.Op, prev G.Value) (G.Value, error) {
	if !s.reuse {
		prev = nil
	}
	if s.exps != nil {
		switch o := op.(type) {
		case ops.CrossEntropy:
			return o.DoKeeping(s.exps, p.args...)
		case ops.CrossEntropyGrad:
			return o.DoIntoFrom(prev, s.exps, p.args...)
		}
	}
	if s.batched {
		if v, ok := s.product.run(prev, p.args); ok {
			return v, nil
		}
	}
	if prev != nil {
		switch o := op.(type) {
		case ops.IntoDoer:
			return o.DoInto(prev, p.args...)
		case G.UsePreallocDoer:
			return o.UsePreallocDo(prev, p.args...)
		}
	}
	return op.Do(p.args...)
}

// Value returns a node's value after the last run. It is the program's own memory, which the
// next run overwrites: copy what must outlive it.
func (p *Program) Value(n *G.Node) (G.Value, error) {
	i, ok := p.index[n]
	if !ok || p.vals[i] == nil {
		return nil, fmt.Errorf("program: node %s has no value", n.Name())
	}
	return p.vals[i], nil
}

// Bytes is the memory the program keeps from one run to the next: the values its nodes own.
func (p *Program) Bytes() int64 {
	var n int64
	for i := range p.steps {
		if t, ok := p.vals[i].(*tensor.Dense); ok && p.steps[i].reuse {
			n += int64(t.MemSize())
		}
	}
	return n
}

// owns reports whether v is a dense tensor of its own memory, which overlaps none of the
// inputs it was computed from: only such a value may be overwritten by the next run (a
// view, such as a reshape's output, shares its input's memory).
func owns(v G.Value, inputs []G.Value) bool {
	t, ok := v.(*tensor.Dense)
	if !ok || t.IsView() || t.MemSize() == 0 {
		return false
	}
	lo, hi := t.Uintptr(), t.Uintptr()+t.MemSize()
	for _, in := range inputs {
		d, ok := in.(tensor.Memory)
		if !ok {
			continue
		}
		if inLo, inHi := d.Uintptr(), d.Uintptr()+d.MemSize(); inLo < hi && lo < inHi {
			return false
		}
	}
	return true
}

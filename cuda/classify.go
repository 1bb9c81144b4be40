package cuda

// The adapter from graph nodes to kinds: graph inputs by what they hold, the ops of
// layers/ops by their type (kindSpec.op), and Gorgonia's own ops, whose types are unexported,
// by type name and String text. Pure Go (no build tag).

import (
	"fmt"
	"reflect"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/ops"
)

// classify sets the kind of n's plan node pn (and what the kind needs: a parameter index, a
// fed input's name, transposes, an alias). An op the executor cannot run is an error that
// names it.
func classify(pn *PlanNode, n *G.Node, paramIdx map[string]int, fed map[*G.Node]string, p *Plan) error {
	op := n.Op()
	if op == nil {
		return classifyInput(pn, n, paramIdx, fed)
	}
	if n.Dtype() != tensor.Float32 {
		return fmt.Errorf("cuda plan: op %v (%T) on dtype %v (float32 only)", op, op, n.Dtype())
	}
	k, ok := opKinds[reflect.TypeOf(op)]
	if !ok {
		return classifyBuiltin(pn, n, p)
	}
	pn.Kind = k
	if refine := kindSpecs[k].refine; refine != nil {
		return refine(pn, p)
	}
	return nil
}

// classifyInput classifies a graph input: an int fed per batch or fixed when the graph is
// built, or a parameter.
func classifyInput(pn *PlanNode, n *G.Node, paramIdx map[string]int, fed map[*G.Node]string) error {
	if n.Dtype() == tensor.Int {
		pn.Int = true
		if name, ok := fed[n]; ok {
			pn.Kind, pn.Fed = KIntFed, name
			return nil
		}
		if n.Value() == nil {
			return fmt.Errorf("cuda plan: int input %s has no value and is not a batch input", n.Name())
		}
		pn.Kind = KIntConst
		return nil
	}
	i, ok := paramIdx[n.Name()]
	if !ok {
		return fmt.Errorf("cuda plan: input %s is neither a parameter nor a batch input", n.Name())
	}
	if n.Dtype() != tensor.Float32 {
		return fmt.Errorf("cuda plan: parameter %s has dtype %v (float32 only)", n.Name(), n.Dtype())
	}
	pn.Kind, pn.Param = KParam, i
	return nil
}

// classifyBuiltin recognises Gorgonia's built-in ops, which are unexported types: by type
// name and String text.
func classifyBuiltin(pn *PlanNode, n *G.Node, p *Plan) error {
	op := n.Op()
	tn := reflect.TypeOf(op).String()
	s := op.(fmt.Stringer).String()
	inShape := func(i int) tensor.Shape { return p.Nodes[pn.In[i]].Node.Shape() }
	switch {
	case tn == "gorgonia.constantScalar" || tn == "gorgonia.constantTensor":
		if n.Value() == nil {
			return fmt.Errorf("cuda plan: constant %v has no value", op)
		}
		pn.Kind = KConst
	case tn == "gorgonia.reshapeOp":
		pn.Kind = KReshape
		if len(pn.In) != 1 || p.Nodes[pn.In[0]].Size != pn.Size {
			return fmt.Errorf("cuda plan: %v changes the size", op)
		}
		pn.Alias = p.Nodes[pn.In[0]].Alias
		pn.Int = p.Nodes[pn.In[0]].Int
	case tn == "gorgonia.linAlgBinOp" && (strings.Contains(s, " × B") || strings.Contains(s, " ××× B")):
		pn.TransA = strings.HasPrefix(s, "Aᵀ")
		pn.TransB = strings.HasSuffix(s, "Bᵀ")
		a, b := inShape(0), inShape(1)
		if strings.Contains(s, "×××") {
			pn.Kind = KBatchedMatMul
			if len(a) != 3 || len(b) != 3 || a[0] != b[0] {
				return fmt.Errorf("cuda plan: %v on shapes %v, %v (3-D with equal batch only)", op, a, b)
			}
		} else {
			pn.Kind = KMatMul
			if len(a) != 2 || len(b) != 2 {
				return fmt.Errorf("cuda plan: %v on shapes %v, %v (2-D only)", op, a, b)
			}
		}
	case tn == "gorgonia.elemBinOp" && strings.HasPrefix(s, "+ "):
		if !inShape(0).Eq(inShape(1)) || !inShape(0).Eq(n.Shape()) {
			return fmt.Errorf("cuda plan: %v with broadcasting (%v + %v) is not supported", op, inShape(0), inShape(1))
		}
		pn.Kind = KAdd
	default:
		return fmt.Errorf("cuda: op %q (%s) of node %s is not supported by the GPU executor", s, tn, n.Name())
	}
	return nil
}

// refinePermute checks a permute's rank and makes it an alias of its input where only axes
// of length 1 move (a decode step's [B, 1, kv, r, dk] → [B, kv, r, 1, dk]): the same memory.
func refinePermute(pn *PlanNode, p *Plan) error {
	o := pn.Node.Op().(ops.Permute)
	if len(o.Axes) > 6 {
		return fmt.Errorf("cuda plan: %v has more than 6 axes", o)
	}
	if _, strides := permuteAxes(p.Nodes[pn.In[0]].Node.Shape(), o.Axes); len(strides) == 1 && strides[0] == 1 {
		pn.Kind, pn.Alias = KReshape, p.Nodes[pn.In[0]].Alias
	}
	return nil
}

// refineDecodeAttention starts a decode attention unsplit (the decoder plans its splits).
func refineDecodeAttention(pn *PlanNode, _ *Plan) error {
	pn.Splits = 1
	return nil
}

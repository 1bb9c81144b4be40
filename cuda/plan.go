package cuda

// The plan: a training or evaluation graph (forward + gorgonia.Grad's backward) in
// execution order, each node classified into a kind the GPU runs, with its inputs, its size
// and where its value lives. Pure Go (no build tag), so CI checks that every op of every
// model variant is known to the executor even without a GPU.

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/models"
)

// PlanNode is one node of a plan.
type PlanNode struct {
	Node           *G.Node
	Kind           Kind
	In             []int // plan indices of the inputs
	Shape          []int // the value's shape ([] for a scalar)
	Size           int   // elements
	Int            bool  // int32 on the device
	TransA, TransB bool  // matrix products
	Param          int   // KParam: index in the trainer's parameter order
	Fed            string
	Alias          int // KReshape: the plan index whose buffer this node shares; else itself
	Splits         int // KDecodeAttention: key-range splits per (sequence, K/V head), set by the decoder
}

// Plan is a graph in execution order.
type Plan struct {
	Nodes  []PlanNode
	Index  map[*G.Node]int
	Loss   int   // −1 for a plan without a loss (decode steps, encoders)
	Grads  []int // per parameter (trainer order); nil for an evaluation plan
	Keep   []int // further outputs read after the run (decode: logits; encoder: the cross-attention memory)
	Counts map[Kind]int
	// AddNorm maps a KNorm whose input is a residual sum to that KAdd: the norm's kernel
	// computes the sum as well (k_add_norm), and the KAdd itself launches nothing.
	AddNorm map[int]int
	// GEMMGroups maps the first of each group of 2-D products of one input by same-shaped
	// parameters (the Q, K and V projections of MHA, the K and V ones of MQA and GQA; in a
	// translation encoder, the cross-attention K and V projections of every decoder layer, which
	// all read the encoder's output) to the whole group in order: the executor runs a group as one
	// batched GEMM at its first node (the others launch nothing and their values are placed from
	// there on).
	GEMMGroups map[int][]int
}

// NewPlan classifies every node of g (and the gradient nodes grads, one per parameter of
// names, which G.Grad added to g's ExprGraph). An op the executor cannot run is an error
// that names it.
func NewPlan(g *models.Graph, names []string, grads []*G.Node) (*Plan, error) {
	fed := map[*G.Node]string{g.Tokens: "tokens", g.Targets: "targets"}
	if g.Src != nil {
		fed[g.Src], fed[g.SrcLens] = "src", "src_lens"
	}
	p, err := newPlan(g.G, names, fed, nil)
	if err != nil {
		return nil, err
	}
	loss, ok := p.Index[g.Loss]
	if !ok {
		return nil, fmt.Errorf("cuda plan: loss node missing")
	}
	p.Loss = loss
	if grads != nil {
		p.Grads = make([]int, len(grads))
		for i, gn := range grads {
			j, ok := p.Index[gn]
			if !ok {
				return nil, fmt.Errorf("cuda plan: gradient of %s missing", names[i])
			}
			p.Grads[i] = j
		}
	}
	return p, nil
}

// newPlan sorts and classifies every node of eg. fed names the int inputs fed per run,
// floatFed the float inputs bound to caller-owned buffers (by name); any other input must be
// a parameter of names or an int with a value.
func newPlan(eg *G.ExprGraph, names []string, fed, floatFed map[*G.Node]string) (*Plan, error) {
	sorted, err := G.Sort(eg)
	if err != nil {
		return nil, err
	}
	p := &Plan{Index: map[*G.Node]int{}, Counts: map[Kind]int{}, Loss: -1}
	paramIdx := map[string]int{}
	for i, n := range names {
		paramIdx[n] = i
	}
	for i := len(sorted) - 1; i >= 0; i-- {
		n := sorted[i]
		pn := PlanNode{Node: n, Shape: []int(n.Shape().Clone()), Size: max(n.Shape().TotalSize(), 1), Alias: len(p.Nodes)}
		if n.Shape().IsScalar() {
			pn.Shape = nil
		}
		for it := eg.From(n.ID()); it.Next(); {
			c := it.Node().(*G.Node)
			j, ok := p.Index[c]
			if !ok {
				return nil, fmt.Errorf("cuda plan: input %v of %v not computed before it", c.Name(), n.Name())
			}
			pn.In = append(pn.In, j)
		}
		if name, ok := floatFed[n]; ok && n.Op() == nil {
			if n.Dtype() != tensor.Float32 {
				return nil, fmt.Errorf("cuda plan: input %s has dtype %v (float32 only)", n.Name(), n.Dtype())
			}
			pn.Kind, pn.Fed = KFloatFed, name
		} else if err := classify(&pn, n, paramIdx, fed, p); err != nil {
			return nil, err
		}
		// Kernels take element counts as 32-bit ints. A caller's float buffer (the K/V cache, the
		// cross-attention memory) is only read by the decode kernels, which index it in 64 bits.
		if int64(pn.Size) > math.MaxInt32 && pn.Kind != KFloatFed {
			return nil, fmt.Errorf("cuda plan: %v has %d elements (at most 2^31-1 supported)", n.Name(), pn.Size)
		}
		p.Index[n] = len(p.Nodes)
		p.Nodes = append(p.Nodes, pn)
		p.Counts[pn.Kind]++
	}
	p.fuseAddNorm()
	p.groupGEMMs()
	return p, nil
}

// groupGEMMs fills GEMMGroups: KMatMul nodes with the same first input, the same transposes
// and the same shapes, whose second input is a parameter (so it is there at the first node).
func (p *Plan) groupGEMMs() {
	type key struct {
		a              int // the shared input, which also fixes m and k
		transA, transB bool
		n              int
	}
	first := map[key]int{}
	p.GEMMGroups = map[int][]int{}
	for i, pn := range p.Nodes {
		if pn.Kind != KMatMul || p.Nodes[p.Nodes[pn.In[1]].Alias].Kind != KParam {
			continue
		}
		k := key{pn.In[0], pn.TransA, pn.TransB, pn.Shape[1]}
		if f, ok := first[k]; ok {
			p.GEMMGroups[f] = append(p.GEMMGroups[f], i)
			continue
		}
		first[k] = i
		p.GEMMGroups[i] = []int{i}
	}
	for f, g := range p.GEMMGroups {
		if len(g) == 1 {
			delete(p.GEMMGroups, f)
		}
	}
}

// fuseAddNorm finds each KNorm over a 2-D KAdd that no computed node between the two reads,
// and records the pair in AddNorm. The executor keeps the sum's inputs alive until the norm.
func (p *Plan) fuseAddNorm() {
	p.AddNorm = map[int]int{}
	for i, pn := range p.Nodes {
		if pn.Kind != KNorm || len(pn.Shape) != 2 {
			continue
		}
		a := pn.In[0]
		if p.Nodes[a].Kind != KAdd || p.Nodes[a].Alias != a || len(p.Nodes[a].Shape) != 2 {
			continue
		}
		readBetween := false
		for k := a + 1; k < i && !readBetween; k++ {
			for _, j := range p.Nodes[k].In {
				readBetween = readBetween || p.Nodes[j].Alias == a
			}
		}
		if !readBetween {
			p.AddNorm[i] = a
		}
	}
}

// permuteAxes turns a permutation of a row-major tensor of shape src into the fewest output
// axes for the permute kernel: for each, its length and the input stride (in elements) of a
// step along it. Axes of length 1 are dropped and neighbours that step through the input as
// one axis are merged (attention's [B, T, kv, r, dk] → [B, kv, r, T, dk] becomes
// [B, kv·r, T, dk]); the output is still read in row-major order over the returned lengths.
func permuteAxes(src, axes []int) (lens, strides []int) {
	in := make([]int, len(src))
	s := 1
	for k := len(src) - 1; k >= 0; k-- {
		in[k] = s
		s *= src[k]
	}
	for _, ax := range axes {
		if src[ax] == 1 {
			continue
		}
		if n := len(lens); n > 0 && strides[n-1] == src[ax]*in[ax] {
			lens[n-1] *= src[ax]
			strides[n-1] = in[ax]
			continue
		}
		lens, strides = append(lens, src[ax]), append(strides, in[ax])
	}
	if len(lens) == 0 {
		return []int{1}, []int{1}
	}
	return lens, strides
}

//go:build mqacuda

package cuda

// Programs: a plan compiled for the GPU, with the device memory of its values (layout here)
// and its launches (build, lower.go).

import (
	"fmt"
	"unsafe"

	"mqa/layers/ops"
	"mqa/models"
)

// program is a compiled plan: device memory and the launches of one graph.
type program struct {
	g          *models.Graph
	plan       *Plan
	addr       []dptr // per plan node
	arena      dptr
	consts     dptr
	fed        []int32 // host staging of the fed int inputs, in fedNames order
	fedDev     dptr
	fedOff     map[string]int
	steps      []func() error
	graph      *cudaGraph
	runs       int
	training   bool
	auxOffsets []int64
	ownArena   bool   // arena is the program's own, not an executor's shared one
	mirror     []dptr // BF16 GEMMs: the bf16 copy of each computed node that a GEMM reads (0: none)
	counters   dptr   // split decode attention: finished splits per item (int32, kept zero between launches)
	groupPtrs  dptr   // the A, B and C addresses of the GEMM groups
	// decoding: float inputs bound to caller-owned buffers (by name), those holding bf16,
	// and a description for error messages
	extern     map[string]dptr
	externBF16 map[string]bool
	desc       string
}

func (p *program) free(d *driver) {
	if p.graph != nil {
		p.graph.destroy()
	}
	for _, x := range []dptr{p.consts, p.fedDev, p.counters, p.groupPtrs} {
		if x != 0 {
			d.free(x)
		}
	}
	if p.ownArena && p.arena != 0 {
		d.free(p.arena)
	}
}

// layout places every node's value: parameters in the state, constants and int inputs in
// their own buffers, everything else in activation memory (see planActivations): in shared, an
// arena the caller's programs share (grown to fit, which drops the programs laid out in it
// before), or, with shared nil, in memory of the program's own.
func (rt *gpuRuntime) layout(p *program, reuse bool, shared *arena) error {
	nodes := p.plan.Nodes
	p.addr = make([]dptr, len(nodes))
	// constants and int inputs
	var constBytes int64
	constOff := make([]int64, len(nodes))
	p.fedOff = map[string]int{}
	fedN := 0
	for i, pn := range nodes {
		switch pn.Kind {
		case KConst, KIntConst:
			constOff[i] = constBytes
			constBytes += align(int64(4 * pn.Size))
		case KIntFed:
			p.fedOff[pn.Fed] = fedN
			fedN += (pn.Size + 63) &^ 63
		}
	}
	var err error
	if p.consts, err = rt.d.alloc(constBytes, "graph constants"); err != nil {
		return err
	}
	p.fed = make([]int32, max(fedN, 1))
	if p.fedDev, err = rt.d.alloc(int64(4*len(p.fed)), "batch inputs"); err != nil {
		return err
	}
	mirrorLast, err := rt.mirrorUses(p.plan)
	if err != nil {
		return err
	}
	lay := planActivations(p.plan, rt.gemmGroups(p), mirrorLast, reuse)
	desc := p.desc
	if p.g != nil {
		desc = fmt.Sprintf("a %+v batch", p.g.Shape)
	}
	what := fmt.Sprintf("activations of %s (%d graph nodes)", desc, len(nodes))
	if shared != nil {
		shared.what = what
		if err := shared.reserve(lay.top); err != nil {
			return err
		}
		p.arena = shared.base
	} else {
		if p.arena, err = rt.d.alloc(lay.top, what); err != nil {
			return err
		}
		p.ownArena = true
	}
	for i, pn := range nodes {
		switch {
		case pn.Kind == KParam:
			p.addr[i] = rt.params[pn.Param]
		case pn.Kind == KConst || pn.Kind == KIntConst:
			p.addr[i] = p.consts.add(int(constOff[i]))
			if err := rt.uploadConst(p.addr[i], pn); err != nil {
				return err
			}
		case pn.Kind == KIntFed:
			p.addr[i] = p.fedDev.add(4 * p.fedOff[pn.Fed])
		case pn.Kind == KFloatFed:
			a, ok := p.extern[pn.Fed]
			if !ok {
				return fmt.Errorf("cuda: no buffer bound to input %s", pn.Fed)
			}
			p.addr[i] = a
		case pn.Alias != i:
			p.addr[i] = p.addr[pn.Alias]
		default:
			p.addr[i] = p.arena.add(int(lay.value[i]))
		}
	}
	p.mirror = make([]dptr, len(nodes))
	for i := range mirrorLast {
		p.mirror[i] = p.arena.add(int(lay.mirror[i]))
	}
	p.auxOffsets = lay.aux
	if err := rt.allocCounters(p); err != nil {
		return err
	}
	return rt.d.sync()
}

// allocCounters gives a program with split decode attention its zeroed counters of finished
// splits, one per (row, K/V head) of the largest such node: the nodes run one after another and
// each leaves them zero, so they share one array.
func (rt *gpuRuntime) allocCounters(p *program) error {
	n := 0
	for _, pn := range p.plan.Nodes {
		if pn.Kind == KDecodeAttention && pn.Splits > 1 {
			n = max(n, pn.Shape[0]*pn.Node.Op().(ops.DecodeAttention).KVHeads)
		}
	}
	if n == 0 {
		return nil
	}
	var err error
	if p.counters, err = rt.d.alloc(int64(4*n), "decode-attention split counters"); err != nil {
		return err
	}
	return rt.d.zero(p.counters, 4*n)
}

// mirrorUses is bf16MirrorUses of the plan with BF16 GEMMs, else empty.
func (rt *gpuRuntime) mirrorUses(plan *Plan) (map[int]int, error) {
	if !rt.bf16 {
		return map[int]int{}, nil
	}
	return bf16MirrorUses(plan)
}

// halfOf is the bf16 copy of node j's value (BF16 GEMMs).
func (rt *gpuRuntime) halfOf(p *program, j int) dptr {
	r := p.plan.Nodes[j].Alias
	if pn := p.plan.Nodes[r]; pn.Kind == KParam {
		return rt.half[pn.Param]
	}
	return p.mirror[r]
}

// gemmGroups is the plan's GEMM groups where the runtime batches them: with TF32 or BF16
// GEMMs. In strict FP32 cuBLAS runs a pointer-array batch with a slow kernel (an H200,
// device call 11: MQA's K and V projections at batch 64 took 21 µs batched against 17 µs
// as two GEMMs), so there each product runs on its own.
func (rt *gpuRuntime) gemmGroups(p *program) map[int][]int {
	if rt.compute == computeStrict && !rt.bf16 { // computeBF16 is the same compute type
		return nil
	}
	return p.plan.GEMMGroups
}

func (rt *gpuRuntime) uploadConst(dst dptr, pn PlanNode) error {
	v := pn.Node.Value()
	if pn.Kind == KIntConst {
		xs, ok := v.Data().([]int)
		if !ok {
			return fmt.Errorf("cuda: int constant %s holds %T", pn.Node.Name(), v.Data())
		}
		ys := make([]int32, len(xs))
		for i, x := range xs {
			ys[i] = int32(x)
		}
		err := rt.d.upload(dst, unsafe.Pointer(&ys[0]), 4*len(ys))
		if err == nil {
			err = rt.d.sync()
		}
		return err
	}
	var ys []float32
	switch x := v.Data().(type) {
	case float32:
		ys = []float32{x}
	case float64:
		ys = []float32{float32(x)}
	case []float32:
		ys = x
	case []float64:
		ys = make([]float32, len(x))
		for i, f := range x {
			ys[i] = float32(f)
		}
	default:
		return fmt.Errorf("cuda: constant %s holds %T", pn.Node.Name(), v.Data())
	}
	if len(ys) != pn.Size {
		return fmt.Errorf("cuda: constant %s has %d values for shape %v", pn.Node.Name(), len(ys), pn.Shape)
	}
	err := rt.d.upload(dst, unsafe.Pointer(&ys[0]), 4*len(ys))
	if err == nil {
		err = rt.d.sync()
	}
	return err
}

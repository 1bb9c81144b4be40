//go:build mqacuda

package cuda

// Lowering: each computed node of a plan becomes a launch closure with fixed device addresses.
// A kind's lowering record is its kindSpec (kinds.go: name, op type, scratch) and its lowering
// here (kernels, bf16 copy, launch), kept with its family in lower_*.go: lower_gemm.go,
// lower_norm.go, lower_elementwise.go, lower_gather.go, lower_attention.go and lower_loss.go.

import (
	"fmt"
	"slices"
	"unsafe"
)

// lowering is the GPU half of a kind's lowering record.
type lowering struct {
	kernels []string // the kernels its launches use (loaded with the module)
	// ownCopy says that the kind's kernel writes the bf16 copy of its output (program.mirror)
	// itself, so that no k_to_bf16 follows it.
	ownCopy bool
	// launch makes the node's launch closure; nil (and no error) for a node that launches
	// nothing because a later node's kernel computes it (the sum of a fused add+norm).
	launch func(s *site) (func() error, error)
}

// lowerings is every kind's lowering, by family.
var lowerings = joinLowerings(gemmLowerings, normLowerings, elementwiseLowerings, gatherLowerings,
	attentionLowerings, lossLowerings)

func joinLowerings(families ...map[Kind]lowering) map[Kind]lowering {
	all := map[Kind]lowering{}
	for _, f := range families {
		for k, l := range f {
			all[k] = l
		}
	}
	return all
}

// runtimeKernels are the kernels the executor launches outside any node: bf16 copies of
// values and parameters, gradient accumulation and norm, and AdamW.
var runtimeKernels = []string{"k_to_bf16", "k_accum", "k_sumsq", "k_adamw"}

// moduleKernels names every kernel of the module (kernels.cu and decode.cu) that Go launches.
func moduleKernels() []string {
	names := append(append([]string{}, runtimeKernels...), decoderKernels...)
	for _, l := range lowerings {
		names = append(names, l.kernels...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// lowerer is what the lowering of one program's nodes shares.
type lowerer struct {
	rt      *gpuRuntime
	d       *driver
	p       *program
	nodes   []PlanNode
	groups  map[int][]int // the GEMM groups the runtime batches (gemmGroups)
	inGroup map[int]bool  // nodes computed by their GEMM group's first node
	fused   map[int]bool  // sums computed by the norm that reads them (Plan.AddNorm)
	// groupPtrs holds each GEMM group's A, B and C addresses (driver.gemmGroup), uploaded to
	// program.groupPtrs once every node is lowered
	groupPtrs []uint64
}

func newLowerer(rt *gpuRuntime, p *program) *lowerer {
	l := &lowerer{rt: rt, d: rt.d, p: p, nodes: p.plan.Nodes, groups: rt.gemmGroups(p), inGroup: map[int]bool{}, fused: map[int]bool{}}
	for _, a := range p.plan.AddNorm {
		l.fused[a] = true
	}
	for f, g := range l.groups {
		for _, j := range g {
			l.inGroup[j] = j != f
		}
	}
	return l
}

// site is one node being lowered: its plan entry and the device addresses of its value, its
// inputs and its scratch.
type site struct {
	*lowerer
	i   int
	pn  *PlanNode
	out dptr
	in  []dptr
	aux dptr
}

func (l *lowerer) site(i int) *site {
	pn := &l.nodes[i]
	s := &site{lowerer: l, i: i, pn: pn, out: l.p.addr[i], in: make([]dptr, len(pn.In)), aux: l.p.arena.add(int(l.p.auxOffsets[i]))}
	for k, j := range pn.In {
		s.in[k] = l.p.addr[j]
	}
	return s
}

// shapeIn is the shape of the node's input k.
func (s *site) shapeIn(k int) []int { return s.nodes[s.pn.In[k]].Shape }

// build turns every computed node into its launch closure (its kind's lowering), each
// followed by the bf16 copies that BF16 GEMMs read.
func (rt *gpuRuntime) build(p *program) error {
	l := newLowerer(rt, p)
	for i := range l.nodes {
		pn := &l.nodes[i]
		if !isComputed(pn.Kind) || l.inGroup[i] {
			continue
		}
		low, ok := lowerings[pn.Kind]
		if !ok {
			return fmt.Errorf("cuda: no GPU implementation of %v (%s)", pn.Node.Op(), pn.Kind)
		}
		step, err := low.launch(l.site(i))
		if err != nil {
			return err
		}
		if step == nil {
			continue
		}
		p.steps = append(p.steps, step)
		// BF16 GEMMs read bf16 copies: made here unless the node's kernel wrote one (the
		// sum of a fused add+norm is computed by the norm, so its copy follows the norm)
		if !low.ownCopy {
			p.steps = rt.appendCopy(p, p.steps, i)
		}
		if a, ok := p.plan.AddNorm[i]; ok {
			p.steps = rt.appendCopy(p, p.steps, a)
		}
		for _, j := range l.groups[i] {
			if j != i {
				p.steps = rt.appendCopy(p, p.steps, j)
			}
		}
	}
	return l.uploadGroupPtrs()
}

// uploadGroupPtrs gives the program its GEMM groups' addresses on the device.
func (l *lowerer) uploadGroupPtrs() error {
	if len(l.groupPtrs) == 0 {
		return nil
	}
	var err error
	if l.p.groupPtrs, err = l.d.alloc(int64(8*len(l.groupPtrs)), "GEMM group addresses"); err != nil {
		return err
	}
	if err := l.d.upload(l.p.groupPtrs, unsafe.Pointer(&l.groupPtrs[0]), 8*len(l.groupPtrs)); err != nil {
		return err
	}
	return l.d.sync()
}

// appendCopy appends the launch that writes node j's bf16 copy, if a BF16 GEMM reads it.
func (rt *gpuRuntime) appendCopy(p *program, steps []func() error, j int) []func() error {
	h := p.mirror[j]
	if h == 0 {
		return steps
	}
	d, src, n := rt.d, p.addr[j], int32(p.plan.Nodes[j].Size)
	return append(steps, func() error { return d.launch("k_to_bf16", grid1(int(n), 256), blk256, 0, h, src, n) })
}

func grid1(n, block int) [3]int { return [3]int{(n + block - 1) / block, 1, 1} }

var blk256 = [3]int{256, 1, 1}

func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

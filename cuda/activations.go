package cuda

// Where a program's computed values live in its activation memory. Pure Go (no build tag), so
// CI checks the planner on real model graphs without a GPU.

import (
	"fmt"
	"slices"
)

// activationLayout places a program's computed values, their bf16 copies and each node's
// scratch in one block of activation memory of top bytes: offsets per plan node (zero where a
// node has none).
type activationLayout struct {
	value, mirror, aux []int64
	top                int64
}

// planActivations lays out a plan's activations. A root value is placed when the node that
// computes it runs (a GEMM group's values all at the group's first node, which computes them)
// and freed after its last reader; values read after the run (loss and its per-row scratch,
// kept outputs, gradients) live to the end. mirrorLast gives, for BF16 GEMMs, the last reader of each computed value's
// bf16 copy (see bf16MirrorUses). With reuse the memory of dead values is reused (first fit);
// without it every value has its own memory.
func planActivations(plan *Plan, groups map[int][]int, mirrorLast map[int]int, reuse bool) activationLayout {
	nodes := plan.Nodes
	last := make([]int, len(nodes))
	for i := range nodes {
		last[i] = i
	}
	for i, pn := range nodes {
		in := pn.In
		if a, ok := plan.AddNorm[i]; ok { // the norm's kernel also reads the sum's inputs
			in = append(slices.Clip(in), nodes[a].In...)
		}
		for _, j := range in {
			r := nodes[j].Alias
			last[r] = max(last[r], i)
		}
	}
	end := len(nodes)
	if plan.Loss >= 0 {
		last[nodes[plan.Loss].Alias] = end
	}
	for _, ki := range plan.Keep {
		last[nodes[ki].Alias] = end
	}
	for _, gi := range plan.Grads {
		last[nodes[gi].Alias] = end
	}
	placed := make([][]int, len(nodes))
	grouped := map[int]bool{}
	for f, g := range groups {
		placed[f] = g
		for _, j := range g {
			grouped[j] = true
		}
	}
	for i := range nodes {
		if !grouped[i] {
			placed[i] = []int{i}
		}
	}
	lay := activationLayout{value: make([]int64, len(nodes)), mirror: make([]int64, len(nodes)), aux: make([]int64, len(nodes))}
	dying := make([][]int, len(nodes)+1)
	dyingMirrors := make([][]int, len(nodes)+1)
	mem := firstFit{reuse: reuse}
	for i := range nodes {
		for _, j := range placed[i] {
			if pn := nodes[j]; pn.Alias == j && isComputed(pn.Kind) {
				lay.value[j] = mem.alloc(int64(4 * pn.Size))
				dying[last[j]] = append(dying[last[j]], j)
				if l, ok := mirrorLast[j]; ok {
					lay.mirror[j] = mem.alloc(int64(2 * pn.Size))
					dyingMirrors[l] = append(dyingMirrors[l], j)
				}
			}
		}
		if a := auxBytes(&nodes[i], nodes); a > 0 {
			lay.aux[i] = mem.alloc(a)
			if i != plan.Loss { // the loss's per-row values are read after the run
				mem.release(lay.aux[i], a)
			}
		}
		for _, j := range dying[i] {
			mem.release(lay.value[j], int64(4*nodes[j].Size))
		}
		for _, j := range dyingMirrors[i] {
			mem.release(lay.mirror[j], int64(2*nodes[j].Size))
		}
	}
	lay.top = mem.top
	return lay
}

// bf16MirrorUses finds, for BF16 GEMMs, the computed nodes whose values a GEMM reads, and the
// last GEMM that reads each (their bf16 copies live until then). Parameters have their own
// copies; any other input (a constant, a caller's buffer) is an error that names it.
func bf16MirrorUses(plan *Plan) (map[int]int, error) {
	uses := map[int]int{}
	nodes := plan.Nodes
	for i, pn := range nodes {
		if pn.Kind != KMatMul && pn.Kind != KBatchedMatMul {
			continue
		}
		for _, j := range pn.In {
			r := nodes[j].Alias
			switch {
			case nodes[r].Kind == KParam:
			case isComputed(nodes[r].Kind):
				uses[r] = max(uses[r], i)
			default:
				return nil, fmt.Errorf("cuda: a bf16 matrix product reads %v (%s), which has no bf16 copy", nodes[r].Node.Name(), nodes[r].Kind)
			}
		}
	}
	return uses, nil
}

// isComputed says whether a node of kind k computes a value of its own (in activation memory).
func isComputed(k Kind) bool {
	switch k {
	case KParam, KConst, KIntConst, KIntFed, KReshape, KFloatFed:
		return false
	}
	return true
}

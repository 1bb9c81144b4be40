//go:build mqacuda

package cuda

// Lowering of attention: the softmax over scores and its gradient (training and encoders), and
// the fused decode attention of a decode step.

import (
	"fmt"

	"mqa/layers/ops"
)

var attentionLowerings = map[Kind]lowering{
	KSoftmax:     {kernels: []string{"k_softmax"}, launch: lowerSoftmax},
	KSoftmaxGrad: {kernels: []string{"k_softmax_grad"}, launch: lowerSoftmaxGrad},
	KDecodeAttention: {kernels: []string{
		"k_decode_attn_f32", "k_decode_attn_f32_r1", "k_decode_attn_f32_r2", "k_decode_attn_f32_r4",
		"k_decode_attn_bf16", "k_decode_attn_bf16_r1", "k_decode_attn_bf16_r2", "k_decode_attn_bf16_r4",
		"k_decode_mma_f32_d16", "k_decode_mma_f32_d32", "k_decode_mma_f32_d64", "k_decode_mma_f32_d128",
		"k_decode_mma_bf16_d16", "k_decode_mma_bf16_d32", "k_decode_mma_bf16_d64", "k_decode_mma_bf16_d128",
		"k_decode_attn_ref_f32", "k_decode_attn_ref_bf16"}, ownCopy: true, launch: lowerDecodeAttention},
}

// lowerSoftmax launches the scaled, masked softmax (ops.Softmax) over the last axis of
// [B·Groups, Rows, Keys] attention logits, a row per warp.
func lowerSoftmax(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.Softmax)
	d, in, out := s.d, s.in, s.out
	var lengths dptr
	if op.HasLengths {
		lengths = in[1]
	}
	sh := s.pn.Shape
	rows := sh[0] * sh[1]
	return func() error {
		return d.launch("k_softmax", grid1(rows, 8), blk256, 0, out, in[0], lengths, int32(sh[0]), int32(sh[1]), int32(sh[2]),
			int32(op.Groups), int32(op.QueryLen), int32(op.KeyOffset), b2i(op.Causal), int32(op.Window), float32(op.Scale))
	}, nil
}

func lowerSoftmaxGrad(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.SoftmaxGrad)
	d, in, out := s.d, s.in, s.out
	keys := s.pn.Shape[len(s.pn.Shape)-1]
	rows := s.pn.Size / keys
	return func() error {
		return d.launch("k_softmax_grad", grid1(rows, 8), blk256, 0, out, in[0], in[1], int32(rows), int32(keys), float32(op.Scale))
	}, nil
}

// lowerDecodeAttention launches one DecodeAttention node (see kernels/decode.cu) as
// planDecodeLaunch plans it, writing its own bf16 copy.
func lowerDecodeAttention(s *site) (func() error, error) {
	rt, p, pn, d, in, out, aux := s.rt, s.p, s.pn, s.d, s.in, s.out, s.aux
	half := p.mirror[s.i] // written by the kernel itself (ownCopy)
	op := pn.Node.Op().(ops.DecodeAttention)
	rows := pn.Shape[0]
	kn := p.plan.Nodes[pn.In[1]]
	maxLen := kn.Shape[2]
	keysCap := maxLen
	if op.HasNew {
		keysCap++
	}
	bf16 := kn.Kind == KFloatFed && p.externBF16[kn.Fed]
	l, err := rt.planDecode(op, rows, keysCap, bf16)
	if err != nil {
		return nil, err
	}
	if err := d.fillGPU(&l, bf16, op.HeadDim); err != nil {
		return nil, err
	}
	if l.Splits != max(pn.Splits, 1) {
		return nil, fmt.Errorf("cuda: %v planned with %d splits, laid out for %d", op, l.Splits, pn.Splits)
	}
	q, k, v, lengths := in[0], in[1], in[2], in[len(in)-1]
	var nk, nv dptr
	if op.HasNew {
		nk, nv = in[3], in[4]
	}
	counters := p.counters
	return func() error {
		return launchDecodeAttention(d, l, op, bf16, rows, maxLen, out, half, splitWork{aux, counters}, q, k, v, nk, nv, lengths)
	}, nil
}

// splitWork is the scratch of a split decode attention: the partials (rows·h·splits·(dk+2)
// floats, any contents) and the per-item counters of finished splits (rows·kv int32, zero
// before the launch; the kernel leaves them zero).
type splitWork struct{ partials, counters dptr }

// planDecode is planDecodeLaunch on this GPU with the decoder's kernel and forced splits.
func (rt *gpuRuntime) planDecode(op ops.DecodeAttention, rows, keysCap int, bf16 bool) (decodeLaunch, error) {
	l, err := planDecodeLaunch(op, rows, keysCap, rt.d.sms, rt.decKernel, bf16)
	if err == nil && l.Fast && rt.decSplits > 0 {
		l.Splits = rt.decSplits
	}
	return l, err
}

// launchDecodeAttention runs one DecodeAttention over rows sequences as l plans it (the
// reference kernel, or a split kernel, whose last split of each item combines the partials in
// w), writing out and, if outh is set, its bf16 copy; with new rows (nk, nv) the kernel also
// appends them to the cache at each row's length. bf16 says the cache k, v holds bf16.
func launchDecodeAttention(d *driver, l decodeLaunch, op ops.DecodeAttention, bf16 bool, rows, maxLen int,
	out, outh dptr, w splitWork, q, k, v, nk, nv, lengths dptr) error {
	kv, r, dk, h := op.KVHeads, op.Heads/op.KVHeads, op.HeadDim, op.Heads
	scale := float32(op.Scale)
	suffix := "_f32"
	if bf16 {
		suffix = "_bf16"
	}
	if !l.Fast {
		return d.launch("k_decode_attn_ref"+suffix, [3]int{rows * h, 1, 1}, [3]int{l.Threads, 1, 1}, l.SmemBytes, out, outh, q, k, v, nk, nv,
			lengths, int32(kv), int32(r), int32(dk), int32(maxLen), int32(op.Window), scale)
	}
	s := l.Splits
	var wsO, wsM, wsL, counters dptr
	if s > 1 {
		if w.partials == 0 || w.counters == 0 {
			return fmt.Errorf("cuda: %v with %d splits has no workspace", op, s)
		}
		wsO = w.partials
		wsM = wsO.add(4 * rows * h * s * dk)
		wsL = wsM.add(4 * rows * h * s)
		counters = w.counters
	}
	if l.MMA {
		items := rows * kv * s
		return d.launch(mmaDecodeKernel(bf16, dk), [3]int{min(l.Blocks, items), 1, 1}, [3]int{l.Threads, 1, 1}, l.SmemBytes, out, outh, wsO, wsM, wsL,
			counters, q, k, v, nk, nv, lengths, int32(kv), int32(r), int32(maxLen), int32(op.Window), scale, int32(s), int32(items))
	}
	return d.launch(fastDecodeKernel(suffix, r), [3]int{rows * kv, s, 1}, [3]int{l.Threads, 1, 1}, l.SmemBytes, out, outh, wsO, wsM,
		wsL, counters, q, k, v, nk, nv, lengths, int32(kv), int32(r), int32(dk), int32(maxLen), int32(op.Window), scale, int32(s))
}

// mmaDecodeKernel names the tensor-core kernel's instance for a cache type and head width.
func mmaDecodeKernel(bf16 bool, dk int) string {
	if bf16 {
		return fmt.Sprintf("k_decode_mma_bf16_d%d", dk)
	}
	return fmt.Sprintf("k_decode_mma_f32_d%d", dk)
}

// fillGPU sets the tensor-core kernel's grid, unless already set, to as many blocks as fit on
// the GPU at once.
func (d *driver) fillGPU(l *decodeLaunch, bf16 bool, dk int) error {
	if !l.MMA || l.Blocks > 0 {
		return nil
	}
	perSM, err := d.residentBlocks(mmaDecodeKernel(bf16, dk), l.Threads, l.SmemBytes)
	l.Blocks = max(perSM, 1) * d.sms
	return err
}

// fastDecodeKernel names the instance of the CUDA-core split kernel for r query heads per K/V
// head and the cache's suffix ("_f32" or "_bf16"): one compiled for exactly r (1, 2, 4), else
// the one for up to decMaxR.
func fastDecodeKernel(suffix string, r int) string {
	switch r {
	case 1, 2, 4:
		return fmt.Sprintf("k_decode_attn%s_r%d", suffix, r)
	}
	return "k_decode_attn" + suffix
}

//go:build mqacuda

package cuda

import (
	"math"
	"runtime"
	"unsafe"

	"mqa/layers/ops"
)

// attnRun is what decodeAttentionOnce brings back: the output of two launches in a row (the
// second finds the split counters the first left), the second's bf16 copy of it, and the caches
// after the launches (widened from bf16).
type attnRun struct {
	out, again []float32
	outh       []uint16
	k, v       []float32
}

// decodeAttentionOnce runs one DecodeAttention on the GPU over host inputs (tests), twice: the
// given kernel (fast, simt or ref) with the given splits (0: as planned; split kernels only)
// and blocks (0: as planned; the tensor-core kernel's grid), f32 or bf16 K/V.
func (dec *Decoder) decodeAttentionOnce(op ops.DecodeAttention, q, k, v, nk, nv []float32, lengths []int, maxLen int,
	bf16 bool, kernel string, splits, blocks int) (attnRun, error) {
	rows := len(lengths)
	n := rows * op.Heads * op.HeadDim
	res := attnRun{out: make([]float32, n), again: make([]float32, n), outh: make([]uint16, n), k: make([]float32, len(k)), v: make([]float32, len(v))}
	err := dec.rt.w.do(func() error {
		d := dec.rt.d
		keys := maxLen
		if op.HasNew {
			keys++
		}
		l, err := planDecodeLaunch(op, rows, keys, d.sms, kernel, bf16)
		if err != nil {
			return err
		}
		if splits > 0 && l.Fast {
			l.Splits = splits
		}
		if blocks > 0 && l.MMA {
			l.Blocks = blocks
		}
		if err := d.fillGPU(&l, bf16, op.HeadDim); err != nil {
			return err
		}
		var bufs []dptr
		defer func() {
			for _, b := range bufs {
				d.free(b)
			}
		}()
		up := func(xs []float32, half bool) (dptr, error) {
			if xs == nil {
				return 0, nil
			}
			bytes, src := 4*len(xs), unsafe.Pointer(&xs[0])
			var hs []uint16
			if half {
				hs = make([]uint16, len(xs))
				for i, x := range xs {
					hs[i] = toBF16(x)
				}
				bytes, src = 2*len(xs), unsafe.Pointer(&hs[0])
			}
			p, err := d.alloc(int64(bytes), "test input")
			if err != nil {
				return 0, err
			}
			bufs = append(bufs, p)
			if err := d.upload(p, src, bytes); err != nil {
				return 0, err
			}
			err = d.sync()
			runtime.KeepAlive(hs)
			return p, err
		}
		lens := make([]float32, rows)
		for i, x := range lengths {
			lens[i] = math.Float32frombits(uint32(int32(x))) // int32 bits, uploaded as they are
		}
		var dq, dk, dv, dnk, dnv, dl, dout, douth dptr
		for _, x := range []struct {
			p    *dptr
			xs   []float32
			half bool
		}{{&dq, q, false}, {&dk, k, bf16}, {&dv, v, bf16}, {&dnk, nk, false}, {&dnv, nv, false}, {&dl, lens, false},
			{&dout, res.out, false}, {&douth, res.out, true}} {
			if *x.p, err = up(x.xs, x.half); err != nil {
				return err
			}
		}
		var w splitWork
		if l.Fast && l.Splits > 1 {
			counters := make([]float32, rows*op.KVHeads) // zero bits
			if w.partials, err = up(make([]float32, rows*op.Heads*l.Splits*(op.HeadDim+2)), false); err != nil {
				return err
			}
			if w.counters, err = up(counters, false); err != nil {
				return err
			}
		}
		for _, dst := range [][]float32{res.out, res.again} {
			if err := launchDecodeAttention(d, l, op, bf16, rows, maxLen, dout, douth, w, dq, dk, dv, dnk, dnv, dl); err != nil {
				return err
			}
			if err := d.download(unsafe.Pointer(&dst[0]), dout, 4*n); err != nil {
				return err
			}
		}
		if err := d.download(unsafe.Pointer(&res.outh[0]), douth, 2*n); err != nil {
			return err
		}
		for _, c := range []struct {
			dst []float32
			src dptr
		}{{res.k, dk}, {res.v, dv}} {
			if !bf16 {
				if err := d.download(unsafe.Pointer(&c.dst[0]), c.src, 4*len(c.dst)); err != nil {
					return err
				}
				continue
			}
			hs := make([]uint16, len(c.dst))
			if err := d.download(unsafe.Pointer(&hs[0]), c.src, 2*len(hs)); err != nil {
				return err
			}
			for i, h := range hs {
				c.dst[i] = fromBF16(h)
			}
		}
		return nil
	})
	return res, err
}

// toBF16 rounds to the nearest bfloat16 (ties to even), as the kernels' dec_store.
func toBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return 0x7fc0
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// fromBF16 widens a bfloat16.
func fromBF16(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

//go:build mqacuda

package cuda

import (
	"math"
	"runtime"
	"unsafe"

	"mqa/layers/ops"
)

// decodeAttentionOnce runs one DecodeAttention on the GPU over host inputs (tests): the
// given kernel (fast, simt or ref) with the given splits (0: as planned; split kernels only)
// and blocks (0: as planned; the tensor-core kernel's grid), f32 or bf16 K/V.
func (dec *Decoder) decodeAttentionOnce(op ops.DecodeAttention, q, k, v, nk, nv []float32, lengths []int, maxLen int,
	bf16 bool, kernel string, splits, blocks int) ([]float32, error) {
	rows := len(lengths)
	out := make([]float32, rows*op.Heads*op.HeadDim)
	err := dec.e.w.do(func() error {
		d := dec.e.d
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
		var dq, dk, dv, dnk, dnv, dl, dout, ws dptr
		for _, x := range []struct {
			p    *dptr
			xs   []float32
			half bool
		}{{&dq, q, false}, {&dk, k, bf16}, {&dv, v, bf16}, {&dnk, nk, false}, {&dnv, nv, false}, {&dl, lens, false}, {&dout, out, false}} {
			if *x.p, err = up(x.xs, x.half); err != nil {
				return err
			}
		}
		if l.Fast && l.Splits > 1 {
			if ws, err = d.alloc(int64(4*rows*op.Heads*l.Splits*(op.HeadDim+2)), "test workspace"); err != nil {
				return err
			}
			bufs = append(bufs, ws)
		}
		if err := launchDecodeAttention(d, l, op, bf16, rows, maxLen, dout, ws, dq, dk, dv, dnk, dnv, dl); err != nil {
			return err
		}
		return d.download(unsafe.Pointer(&out[0]), dout, 4*len(out))
	})
	return out, err
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

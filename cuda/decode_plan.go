package cuda

// The untagged half of GPU decoding: plans of the decode-step and encoder graphs, the launch
// configuration of the decode-attention kernel (kernels/decode.cu), a Go model of that
// kernel's split/tile/online-softmax arithmetic (tested against ops.DecodeAttention), byte
// accounting for the benchmark, and the decoder's options.

import (
	"fmt"
	"math"
	"os"

	G "gorgonia.org/gorgonia"

	"mqa/infer"
	"mqa/layers/ops"
	"mqa/models"
)

// DecodeOptions choose how the GPU decodes.
type DecodeOptions struct {
	Cache  string // element type of the self-attention K/V cache: "fp32" (default) or "bf16"
	Math   string // GEMMs: "fp32" (default, strict), "tf32", or "bf16" (bf16 copies of the weights and of each product's input, FP32 accumulation)
	Graphs bool   // replay each step as a captured CUDA graph (DefaultDecodeOptions turns it on; the zero value does not)
	Kernel string // decode attention: "fast" (default: the tensor-core kernel where it applies, else "simt"), "simt" (the CUDA-core split kernel) or "ref"
	Splits int    // key-range splits per (sequence, K/V head) of the split kernels: 0 (default) plans them, 1…64 forces that many
	Memory string // GPU memory budget (ParseMemoryBudget); empty: what the card has free
}

// DefaultDecodeOptions are FP32 cache and GEMMs, CUDA graphs on, the fast kernel, and the
// memory budget of MQA_CUDA_MEMORY (-gpu-memory).
func DefaultDecodeOptions() DecodeOptions {
	return DecodeOptions{Cache: "fp32", Math: "fp32", Graphs: true, Kernel: "fast", Memory: os.Getenv(MemoryEnv)}
}

// Validate checks the option values.
func (o DecodeOptions) Validate() error {
	switch {
	case o.Cache != "fp32" && o.Cache != "bf16":
		return fmt.Errorf("cuda decode: cache type %q (allowed: fp32, bf16)", o.Cache)
	case o.Math != "fp32" && o.Math != "tf32" && o.Math != "bf16":
		return fmt.Errorf("cuda decode: math %q (allowed: fp32, tf32, bf16)", o.Math)
	case o.Kernel != "fast" && o.Kernel != "simt" && o.Kernel != "ref":
		return fmt.Errorf("cuda decode: kernel %q (allowed: fast, simt, ref)", o.Kernel)
	case o.Splits < 0 || o.Splits > decMaxSplt:
		return fmt.Errorf("cuda decode: splits %d (allowed: 0 to plan them, or 1…%d)", o.Splits, decMaxSplt)
	case o.Splits > 0 && o.Kernel == "ref":
		return fmt.Errorf("cuda decode: splits %d with the reference kernel, which does not split (allowed: 0)", o.Splits)
	}
	if _, _, err := ParseMemoryBudget(o.Memory); err != nil {
		return fmt.Errorf("cuda decode: %w", err)
	}
	return nil
}

// BackendDecodeOptions are the GPU decoder's options for a command's choice of decoding
// backend (infer.NewBackend "cuda"): DefaultDecodeOptions with opt's cache type. The GPU
// decoder always caches, so it refuses NoCache.
func BackendDecodeOptions(opt infer.BackendOptions) (DecodeOptions, error) {
	o := DefaultDecodeOptions()
	if opt.NoCache {
		return o, fmt.Errorf("cuda decode: decoding without a K/V cache is CPU only")
	}
	if opt.Cache != "" {
		o.Cache = opt.Cache
	}
	return o, o.Validate()
}

// ErrNoGPUBuild is what the commands say when -device cuda is asked of a build without it.
var ErrNoGPUBuild = fmt.Errorf("device cuda: this mqa was built without GPU support; build it with -tags mqacuda (scripts/gpu.sh build)")

// DecodeBenchSpec is the GPU decode benchmark: a preset with random weights for each
// attention variant (parameter-matched to MHA), cache type, batch and context.
type DecodeBenchSpec struct {
	Preset, Task string
	Vocab        int
	Attn         []string // "mha", "gqa:G", "mqa"
	Caches       []string // "fp32", "bf16"
	Batches      []int
	Contexts     []int // cached tokens before the timed steps (translation: also the source length)
	Beams        []int // translation: rows per source (the step runs batch·beam rows)
	Steps        int   // timed steps per point (replays of the captured step)
	HostSteps    int   // also time this many host-driven search steps (StepTopK, and Reorder for beams), 0: none
	Seed         uint64
	Math         string // GEMMs: fp32, tf32 or bf16 (as DecodeOptions.Math)
	Kernel       string // fast, simt or ref
	Splits       int    // 0: planned (as DecodeOptions.Splits)
	MemFraction  float64
}

// DecodeBenchRow is one measured point. Times are per decode step of all rows, and per output
// token (a step makes one token per source sentence / sequence, whatever the beam).
type DecodeBenchRow struct {
	Impl        string  `json:"impl"`
	Device      string  `json:"gpu"`
	Task        string  `json:"task"`
	Attn        string  `json:"attn"`
	KVHeads     int     `json:"kv_heads"`
	FFDim       int     `json:"ff_dim"`
	Params      int     `json:"params"`
	Batch       int     `json:"batch"`
	Beam        int     `json:"beam"`
	Context     int     `json:"context"`
	Cache       string  `json:"cache_dtype"`
	Weights     string  `json:"weight_dtype"`
	Math        string  `json:"math"`
	Kernel      string  `json:"kernel"`
	Splits      int     `json:"splits"`
	StepUS      float64 `json:"us_per_step"`
	TokenUS     float64 `json:"us_per_token"`
	HostStepUS  float64 `json:"host_us_per_step,omitempty"` // host-driven search step: upload, replay, GPU ranking, candidates back (+ beam reorder)
	EncoderUS   float64 `json:"encoder_us_per_token,omitempty"`
	WeightBytes int64   `json:"weight_bytes_per_step"`
	KVBytes     int64   `json:"kv_bytes_per_step"`
	StepBytes   int64   `json:"bytes_per_step"`
	GBps        float64 `json:"achieved_gbps"`
	FloorUS     float64 `json:"floor_us"`
	OverFloor   float64 `json:"ratio_to_floor"`
	Kernels     int     `json:"kernels_per_step"`
}

// DecodeBenchResult is a benchmark run: the card, its measured bandwidth and the rows.
type DecodeBenchResult struct {
	Device   string           `json:"gpu"`
	CopyGBps float64          `json:"copy_gbps"` // device-to-device copy kernel: (read + write bytes) / time
	ReadGBps float64          `json:"read_gbps"` // read-only kernel
	FloorBW  string           `json:"floor_bandwidth"`
	Rows     []DecodeBenchRow `json:"rows"`
	Skipped  []string         `json:"skipped,omitempty"`
}

// NewDecodePlan classifies the nodes of a decode-step graph. The int inputs tokens,
// positions, lengths (and src_lens) are fed per step; the per-layer caches and the
// cross-attention memory are float inputs bound to buffers the decoder owns; the logits are
// kept for reading after the run (the new K/V rows go into the cache inside the
// decode-attention kernel).
func NewDecodePlan(s *models.DecodeStep, names []string) (*Plan, error) {
	fed := map[*G.Node]string{s.Tokens: "tokens", s.Positions: "positions", s.Lengths: "lengths"}
	if s.SrcLens != nil {
		fed[s.SrcLens] = "src_lens"
	}
	floatFed := map[*G.Node]string{}
	for i := range s.CacheK {
		floatFed[s.CacheK[i]], floatFed[s.CacheV[i]] = fmt.Sprintf("cache_k.%d", i), fmt.Sprintf("cache_v.%d", i)
		if s.MemK != nil {
			floatFed[s.MemK[i]], floatFed[s.MemV[i]] = fmt.Sprintf("mem_k.%d", i), fmt.Sprintf("mem_v.%d", i)
		}
	}
	p, err := newPlan(s.G, names, fed, floatFed)
	if err != nil {
		return nil, err
	}
	return p, p.keep([]*G.Node{s.Logits})
}

// NewEncoderPlan classifies the nodes of an encoder graph (src and src_lens fed); the
// per-layer cross-attention keys and values are kept.
func NewEncoderPlan(e *models.Encoder, names []string) (*Plan, error) {
	p, err := newPlan(e.G, names, map[*G.Node]string{e.Src: "src", e.SrcLens: "src_lens"}, nil)
	if err != nil {
		return nil, err
	}
	return p, p.keep(append(append([]*G.Node{}, e.MemK...), e.MemV...))
}

func (p *Plan) keep(nodes []*G.Node) error {
	for _, n := range nodes {
		j, ok := p.Index[n]
		if !ok {
			return fmt.Errorf("cuda plan: output %s missing", n.Name())
		}
		p.Keep = append(p.Keep, j)
	}
	return nil
}

// Limits of the split decode-attention kernels (kernels/decode.cu: DEC_NT, DEC_TK, DEC_MAXR,
// MMA_TK).
const (
	decThreads = 128
	decTile    = 64 // keys per tile of the CUDA-core kernel, and the least keys per split of both
	decMaxR    = 8
	decMaxSplt = 64
	mmaTile    = 16 // keys per warp tile of the tensor-core kernel
	mmaWarps   = 4  // most warps per block of the tensor-core kernel
	smemLimit  = 48 << 10
)

// decodeLaunch is how one DecodeAttention node runs.
type decodeLaunch struct {
	Fast      bool // a split kernel (tensor-core or CUDA-core), else the reference kernel
	MMA       bool // the tensor-core kernel
	Threads   int
	Blocks    int // grid of the tensor-core kernel (0: as many blocks as fit on the GPU at once, at most one per item)
	Splits    int
	SmemBytes int
	Reason    string
}

// fastDecodeOK says whether the CUDA-core split kernel handles a head width and group size.
func fastDecodeOK(headDim, group int) bool {
	switch headDim {
	case 4, 8, 16, 32, 64, 128:
		return group >= 1 && group <= decMaxR
	}
	return false
}

// mmaDecodeOK says whether the tensor-core kernel handles a head width and group size (it has
// instances for these head widths).
func mmaDecodeOK(headDim, group int) bool {
	switch headDim {
	case 16, 32, 64, 128:
		return group >= 1 && group <= decMaxR
	}
	return false
}

// mmaWarpBytes is the shared memory in which one warp of the tensor-core kernel double-buffers
// its tiles: 2 × mmaTile rows of K (dk + 8 elements) and V (dk + 8 for bf16, dk + 4 for FP32).
func mmaWarpBytes(dk int, bf16 bool) int {
	if bf16 {
		return 2 * mmaTile * (2*dk + 16) * 2
	}
	return 2 * mmaTile * (2*dk + 12) * 4
}

// mmaSmemBytes is the tensor-core kernel's shared memory with warps warps for r query heads per
// K/V head: their stages, then the merge area (m, l and weights [warps][8], L [8], partial
// outputs [warps][r][dk]), which the combine of splits reuses for its weights [r][splits].
func mmaSmemBytes(dk, r, warps int, bf16 bool) int {
	return warps*mmaWarpBytes(dk, bf16) + 4*max(warps*(24+r*dk)+8, r*decMaxSplt)
}

// planDecodeLaunch chooses the kernel, the number of key splits and the shared memory for a
// DecodeAttention over rows sequences with keysCap = the most keys a row can see (cache
// length, +1 for the new row) and a bf16 or FP32 cache, on a GPU of sms multiprocessors. Splits
// are chosen so that rows·kv·splits items stay within about four per multiprocessor (one wave
// of the kernels' resident blocks: a second, partly filled wave costs more than the splits
// save), with whole 128-key chunks per split: a split's fixed cost (its partial, the combine)
// outweighs the parallelism it adds below that (measured on an H200: one split beats two at
// 129 keys and at 512 items of 1,025 keys; results/2026-11-27-benchmarks-history/
// BENCHMARKS-history.md §5). Splits past the keys a step fills stay empty: the kernels take
// the length as data. kernel "fast" takes the tensor-core kernel where it applies, "simt" the
// CUDA-core one, "ref" the reference kernel.
func planDecodeLaunch(op ops.DecodeAttention, rows, keysCap, sms int, kernel string, bf16 bool) (decodeLaunch, error) {
	r := op.Heads / op.KVHeads
	dk := op.HeadDim
	if kernel != "ref" && fastDecodeOK(dk, r) {
		blocks := rows * op.KVHeads
		s := min(4*max(sms, 1)/blocks, keysCap/(2*decTile), decMaxSplt)
		s = max(s, 1)
		l := decodeLaunch{Fast: true, Splits: s, Threads: decThreads}
		if kernel == "fast" && mmaDecodeOK(dk, r) {
			warps := mmaWarps
			for warps > 1 && mmaSmemBytes(dk, r, warps, bf16) > smemLimit {
				warps--
			}
			l.MMA, l.Threads, l.SmemBytes = true, 32*warps, mmaSmemBytes(dk, r, warps, bf16)
		} else {
			tile := max(decTile*(dk+4), decThreads*r*4)
			l.SmemBytes = 4 * (r*dk + tile + r*decTile + 3*decMaxR)
		}
		return l, nil
	}
	// Whole 16-byte words: the driver's compiler loads the unrolled loop's remainder of scores
	// as one vector (compute-sanitizer's memcheck saw a 12-byte read past 4·keysCap).
	smem := 16 * ((keysCap + 3) / 4)
	if smem > smemLimit {
		return decodeLaunch{}, fmt.Errorf("cuda: %v over %d keys: the reference decode kernel keeps all scores in 48 KiB of shared memory (at most %d keys); head_dim %d / group %d are outside the split kernels' limits (head_dim a power of two 4…128, at most %d query heads per K/V head)",
			op, keysCap, smemLimit/4, dk, r, decMaxR)
	}
	reason := "requested"
	if kernel != "ref" {
		reason = fmt.Sprintf("head_dim %d / %d query heads per K/V head outside the split kernels' limits", dk, r)
	}
	return decodeLaunch{Fast: false, Threads: 128, Splits: 1, SmemBytes: smem, Reason: reason}, nil
}

// decodeAttnModel is the CUDA-core split kernel's arithmetic in Go (float32 like the GPU): the same
// splits, tiles, online softmax and combine. Inputs as ops.DecodeAttention (newK, newV nil
// without new rows); it exists so that the index arithmetic is tested without a GPU.
func decodeAttnModel(op ops.DecodeAttention, q, k, v, newK, newV []float32, lengths []int, maxLen, splits int) []float32 {
	kvh, r, dk := op.KVHeads, op.Heads/op.KVHeads, op.HeadDim
	B := len(lengths)
	out := make([]float32, B*op.Heads*dk)
	scale := float32(op.Scale)
	for b := 0; b < B; b++ {
		for g := 0; g < kvh; g++ {
			bg := b*kvh + g
			n := lengths[b]
			lo, keys, total := 0, 0, 0
			if n >= 0 {
				lo = ops.WindowStart(n, op.Window)
				keys = n - lo
				total = keys
				if newK != nil {
					total++
				}
			}
			row := func(src, nw []float32, kj int) []float32 {
				if kj < keys {
					o := (bg*maxLen + lo + kj) * dk
					return src[o : o+dk]
				}
				return nw[bg*dk : bg*dk+dk]
			}
			chunk := max((total+splits-1)/splits, decTile)
			parts := make([]attnPart, splits)
			qs := q[bg*r*dk : (bg+1)*r*dk]
			for s := 0; s < splits; s++ {
				k0 := min(total, s*chunk)
				k1 := min(total, k0+chunk)
				parts[s] = attnSplit(qs, scale, r, dk, k0, k1,
					func(kj int) []float32 { return row(k, newK, kj) }, func(kj int) []float32 { return row(v, newV, kj) })
			}
			combineParts(out[bg*r*dk:(bg+1)*r*dk], parts, r, dk)
		}
	}
	return out
}

// attnPart is one split's result for the r query heads of one (sequence, K/V head): the
// unnormalised output, and per head the running maximum and sum of exponentials.
type attnPart struct {
	acc  []float32
	m, l []float32
}

// attnSplit runs the online softmax of the r queries qs (scaled by scale) over keys k0…k1−1,
// a tile of decTile keys at a time; key and value give each key's row.
func attnSplit(qs []float32, scale float32, r, dk, k0, k1 int, key, value func(int) []float32) attnPart {
	p := attnPart{acc: make([]float32, r*dk), m: make([]float32, r), l: make([]float32, r)}
	for i := range p.m {
		p.m[i] = float32(math.Inf(-1))
	}
	for t0 := k0; t0 < k1; t0 += decTile {
		nt := min(decTile, k1-t0)
		sc := make([]float32, r*nt)
		for j := 0; j < nt; j++ {
			kr := key(t0 + j)
			for i := 0; i < r; i++ {
				var a float32
				for d := 0; d < dk; d++ {
					a += qs[i*dk+d] * scale * kr[d]
				}
				sc[i*nt+j] = a
			}
		}
		for i := 0; i < r; i++ {
			mt := float32(math.Inf(-1))
			for j := 0; j < nt; j++ {
				mt = max(mt, sc[i*nt+j])
			}
			mnew := max(p.m[i], mt)
			al := float32(math.Exp(float64(p.m[i] - mnew)))
			var sum float32
			for j := 0; j < nt; j++ {
				e := float32(math.Exp(float64(sc[i*nt+j] - mnew)))
				sc[i*nt+j] = e
				sum += e
			}
			p.l[i] = p.l[i]*al + sum
			p.m[i] = mnew
			for d := 0; d < dk; d++ {
				p.acc[i*dk+d] *= al
			}
		}
		for j := 0; j < nt; j++ {
			vr := value(t0 + j)
			for i := 0; i < r; i++ {
				for d := 0; d < dk; d++ {
					p.acc[i*dk+d] += sc[i*nt+j] * vr[d]
				}
			}
		}
	}
	return p
}

// combineParts writes the r heads' outputs out (r·dk, zero where no key is visible) from the
// splits' parts, as the kernel's last split does.
func combineParts(out []float32, parts []attnPart, r, dk int) {
	for i := 0; i < r; i++ {
		o := out[i*dk : (i+1)*dk]
		if len(parts) == 1 {
			if l := parts[0].l[i]; l > 0 {
				for d := range o {
					o[d] = parts[0].acc[i*dk+d] / l
				}
			}
			continue
		}
		M := float32(math.Inf(-1))
		for _, p := range parts {
			M = max(M, p.m[i])
		}
		if math.IsInf(float64(M), -1) {
			continue
		}
		var L float32
		acc := make([]float32, dk)
		for _, p := range parts {
			if math.IsInf(float64(p.m[i]), -1) {
				continue
			}
			w := float32(math.Exp(float64(p.m[i] - M)))
			L += w * p.l[i]
			for d := range acc {
				acc[d] += w * p.acc[i*dk+d]
			}
		}
		if L > 0 {
			for d := range o {
				o[d] = acc[d] / L
			}
		}
	}
}

// StepBytes counts what one decode step must read from memory: the weights it uses (gemmElem
// bytes per element of a matrix a GEMM reads: 4, or 2 for BF16 GEMMs, which read the bf16
// copies; 4 for what other ops read, a gathered table counting only its gathered rows) and,
// per layer, the visible cached K/V rows (cacheElem bytes each) plus the new rows, and for
// translation the cross-attention memory. visible is the mean number of cached rows a query
// sees over the timed steps.
func StepBytes(p *Plan, cfg models.Config, rows int, visible float64, srcLen, cacheElem, gemmElem int) (weights, kv int64) {
	for i, pn := range p.Nodes {
		if pn.Kind != KParam {
			continue
		}
		var gathered int64
		byGEMM, byOther := false, false
		for _, qn := range p.Nodes[i+1:] {
			for _, j := range qn.In {
				if p.Nodes[j].Alias != i {
					continue
				}
				switch {
				case qn.Kind == KReshape: // an alias: its readers are counted as readers of i
				case qn.Kind == KGather && qn.In[0] == j:
					gathered += int64(4 * qn.Size)
				case qn.Kind == KMatMul || qn.Kind == KBatchedMatMul:
					byGEMM = true
				default:
					byOther = true
				}
			}
		}
		gathered = min(gathered, int64(4*pn.Size))
		switch {
		case byOther:
			weights += int64(4 * pn.Size)
		case byGEMM:
			weights += int64(gemmElem*pn.Size) + gathered
		default:
			weights += gathered
		}
	}
	per := float64(2*rows*cfg.KVHeads*cfg.HeadDim) * float64(cfg.Layers)
	kv = int64(per*visible*float64(cacheElem) + per*4)
	if srcLen > 0 {
		kv += int64(per * float64(srcLen) * 4)
	}
	return weights, kv
}

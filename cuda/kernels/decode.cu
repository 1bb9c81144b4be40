// Incremental-decoding kernels of the mqa CUDA executor: the fused decode attention over the
// K/V cache (flash-decoding style) on the tensor cores and on the CUDA cores, each also appending
// the step's own K/V rows to the cache and combining its key-range splits in the block that
// finishes an item's last split, a simple reference version, the cache's beam reorder, greedy argmax, top-k
// ranking and sampling on the device, and the bandwidth probes of `mqa bench decode -device
// cuda`. Compiled at run time with NVRTC after kernels.cu,
// in one module (it uses kernels.cu's warp and block reductions, to_bf16 and mix64);
// scripts/gpu.sh vet compiles that module.
//
// Layouts (see ops.DecodeAttention): q [B, h·dk] with head = g·r + i (g the K/V head, r = h/kv
// query heads per K/V head, i < r); cache K, V [B, kv, maxLen, dk] (float or bf16); the step's
// own rows newK, newV [B, kv·dk] (float); lengths [B] int32: cached rows visible to the query
// (self-attention: its position; cross-attention: the source length); negative = finished row
// (output zero, nothing read). Window W > 0: the query at position n sees positions n−W+1 … n.
//
// ---- Bytes and the time floor of the decode attention ----------------------------------------
// One step must read, per layer, every visible cached K and V row once:
//     bytes = 2 · B · kv · n · dk · sizeof(elem)      (n = visible rows, + the new row: 2·B·kv·dk·4)
// plus the queries (B·h·dk·4) and the output (B·h·dk·4), which are small. With splits S > 1 the
// partials add 2·B·h·S·(dk+2)·4 bytes written and read once more (small against the cache once
// n ≫ S). Both split kernels read each K/V row exactly once for all r = h/kv query heads that
// share it (scores and weighted sums from tiles staged in shared memory, or V rows streamed once
// per block), so MQA's cache traffic is h times smaller than MHA's, GQA's h/g times smaller.
// Floor: bytes / DRAM bandwidth. Example, base model (6 layers, h 8, dk 64), B 1024, n 129, FP32:
//     MHA: 6 · 2·1024·8·129·64·4 B = 3.25 GB → ≈ 0.98 ms at 3.35 TB/s (H100 SXM), 0.68 ms at 4.8 TB/s (H200)
//     MQA: 1/8 of that = 406 MB      → ≈ 121 µs (H100), 85 µs (H200)
// The decode step adds the weights (read once per step, ≈ 4·N_decoder bytes) to this; `mqa bench
// decode -device cuda` prints bytes per step, the achieved GB/s and the floor from the read and
// copy bandwidths measured in the same run (over the higher).
//
// Work per K/V row (r query heads): r·dk multiply-adds for the scores and r·dk for the values,
// i.e. r/2 FLOP per byte at FP32 (MQA, r = 8: 4 FLOP/B), below the H100's ≈ 20 FLOP/B balance,
// so the kernels are meant to be bandwidth-bound. In the CUDA-core kernel (k_decode_attn_*)
// shared-memory traffic per row is kept at ≈ 2 LDS.128 wavefronts per 16 B of K (padded rows,
// no bank conflicts) and the scores need no warp shuffles (one thread per key computes all r
// dot products from the staged tile); the tensor-core kernel (k_decode_mma_*) is described
// where it is defined.

#define DEC_NT 128   // threads per block of k_decode_attn
#define DEC_TK 64    // keys per tile (DEC_NT = 2·DEC_TK: two threads per key in the score phase)
#define DEC_MAXR 8   // most query heads per K/V head handled by the split kernels (else the reference kernel)

// Cache elements: float or bf16_t (kernels.cu's to_bf16 rounding).
__device__ __forceinline__ float dec_to_f(float x) { return x; }
__device__ __forceinline__ float dec_to_f(bf16_t x) { return __uint_as_float(((unsigned)x) << 16); }
__device__ __forceinline__ void dec_store(float* p, float x) { *p = x; }
__device__ __forceinline__ void dec_store(bf16_t* p, float x) { *p = to_bf16(x); }
// Four consecutive elements (16-byte aligned for float, 8-byte for bf16).
__device__ __forceinline__ float4 dec_load4(const float* p) { return *(const float4*)p; }
__device__ __forceinline__ float4 dec_load4(const bf16_t* p) {
    uint2 u = *(const uint2*)p;
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}

// out[i] = x, and its bf16 copy (the output projection's input under BF16 GEMMs) if outh is set.
__device__ __forceinline__ void dec_out(float* out, bf16_t* outh, long long i, float x) {
    out[i] = x;
    if (outh) outh[i] = to_bf16(x);
}

// The append: the step's own key and value rows of sequence·K/V head bg (nk, nv [B·kv, dk]) go to
// row n (the sequence's length before the step) of the caches, by the threads of one warp or
// block (lane = its thread index, width = its thread count). Called by the one block whose split
// holds the new row; no block of the launch reads row n (they read rows < n), so the next step
// finds the row in place without a separate kernel. A full cache (n ≥ maxLen) is skipped: the
// host refuses such steps.
template <typename T>
__device__ __forceinline__ void dec_append(const T* kc, const T* vc, const float* nk, const float* nv, int bg, int n, int maxLen,
                                           int dk, int lane, int width) {
    if (n < 0 || n >= maxLen) return;
    T* k = const_cast<T*>(kc); // the kernels read the cache through const pointers
    T* v = const_cast<T*>(vc);
    const long long row = ((long long)bg * maxLen + n) * dk;
    for (int d = lane; d < dk; d += width) {
        dec_store(k + row + d, nk[(long long)bg * dk + d]);
        dec_store(v + row + d, nv[(long long)bg * dk + d]);
    }
}

// Split partials: after a block has written its partial (ws_o, ws_m, ws_l) of split s of item
// bg, the last of the item's splits to finish combines them into out (and outh), so that no
// separate combine kernel runs. counters[bg] counts the finished splits (zero before the launch;
// the last block resets it, so the next launch finds it zero). Every thread fences its partial's
// writes before the count; the last block reads the others' partials from L2 (__ldcg).
__device__ __forceinline__ bool dec_last_split(int* counters, int bg, int splits) {
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(counters + bg, 1) == splits - 1;
        if (last) counters[bg] = 0;
    }
    __syncthreads();
    return last;
}

#define DEC_CU 4 // outputs a thread of dec_combine sums at a time

// dec_combine: the block's warps first turn each head's split maxima and sums into weights
// wt[i][s] = exp(m_s − M) / L in shared memory (wt: r·splits floats, splits ≤ 64), then its
// threads sum the partial outputs, each read once and coalesced.
__device__ __forceinline__ void dec_combine(float* out, bf16_t* outh, const float* ws_o, const float* ws_m,
                                            const float* ws_l, float* wt, int bg, int r, int dk, int splits) {
    __threadfence(); // after the count that made this block the last: the partials' reads follow it
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const long long p0 = (long long)bg * splits;
    for (int i = w; i < r; i += nw) {
        float m[2], f[2];
        for (int z = 0; z < 2; z++) {
            const int s = lane + 32 * z;
            m[z] = s < splits ? __ldcg(ws_m + (p0 + s) * r + i) : NEG_INF;
        }
        const float M = warp_max(fmaxf(m[0], m[1]));
        float L = 0.f;
        for (int z = 0; z < 2; z++) {
            const int s = lane + 32 * z;
            f[z] = m[z] == NEG_INF ? 0.f : expf(m[z] - M); // 0: an empty split (or all empty)
            if (s < splits) L += f[z] * __ldcg(ws_l + (p0 + s) * r + i);
        }
        L = warp_sum(L);
        for (int z = 0; z < 2; z++) {
            const int s = lane + 32 * z;
            if (s < splits) wt[i * splits + s] = L > 0.f ? f[z] / L : 0.f;
        }
    }
    __syncthreads();
    // DEC_CU outputs per thread at a time (idx, idx + blockDim, …): their loads are independent,
    // so each split's step has DEC_CU reads in flight rather than one (a 64-thread block
    // combines 512 outputs of 32 splits)
    const long long stride = (long long)r * dk;
    for (int base = threadIdx.x; base < r * dk; base += DEC_CU * blockDim.x) {
        float a[DEC_CU];
        const float* wi[DEC_CU];
#pragma unroll
        for (int u = 0; u < DEC_CU; u++) {
            a[u] = 0.f;
            wi[u] = wt + min((base + u * (int)blockDim.x) / dk, r - 1) * splits;
        }
#pragma unroll 4
        for (int s = 0; s < splits; s++) {
            const float* o = ws_o + (p0 + s) * stride + base;
#pragma unroll
            for (int u = 0; u < DEC_CU; u++)
                if (base + u * (int)blockDim.x < r * dk) a[u] += wi[u][s] * __ldcg(o + u * blockDim.x);
        }
#pragma unroll
        for (int u = 0; u < DEC_CU; u++)
            if (base + u * (int)blockDim.x < r * dk) dec_out(out, outh, (long long)bg * stride + base + u * blockDim.x, a[u]);
    }
}

#define MMA_TK 16 // keys per warp tile of the tensor-core kernel

// The keys of split s of sequence·K/V head bg (item bg·splits + s of the split kernels): the
// visible cached rows start at lo, the split takes keys k0 … k1−1 of the keys + 1 (with the
// step's own row, key `keys`), i.e. cached keys k0 … kc−1, in `tiles` tiles of MMA_TK (the
// tensor-core kernel's). Both split kernels cut a row's keys here, so their partials agree.
// bg < 0: past the last item.
struct DecItem {
    int bg, s, lo, keys, k0, k1, kc, tiles;
};

__device__ __forceinline__ DecItem dec_item(int it, int items, const int* lengths, int kvh, int splits, int window,
                                            bool hasNew) {
    DecItem e = {-1, 0, 0, 0, 0, 0, 0, 0};
    if (it >= items) return e;
    e.bg = it / splits;
    e.s = it - e.bg * splits;
    const int n = lengths[e.bg / kvh];
    int total = 0;
    if (n >= 0) {
        e.lo = window_start(n, window);
        e.keys = n - e.lo;
        total = e.keys + (hasNew ? 1 : 0);
    }
    const int chunk = max((total + splits - 1) / splits, DEC_TK); // splits past the keys stay empty
    e.k0 = min(total, e.s * chunk);
    e.k1 = min(total, e.k0 + chunk);
    e.kc = min(e.k1, e.keys);
    e.tiles = e.kc > e.k0 ? (e.kc - e.k0 + MMA_TK - 1) / MMA_TK : 0;
    return e;
}

// ---- the fast decode attention ----------------------------------------------------------------
// Grid (B·kv, S), DEC_NT threads. Block (b, g, s) takes split s of the visible keys of sequence b
// and K/V head g (the cached rows lo … n−1, then the new row), in tiles of DEC_TK keys:
//   1. the K tile is staged in shared memory (rows padded to dk+4 floats: conflict-free LDS.128);
//   2. scores: thread (key j, half) computes q_i·k_j (scale folded into q) for i = half, half+2, …;
//   3. one warp per query head updates the running max m_i and sum l_i (online softmax) and
//      turns the tile's scores into p = exp(s − m_i);
//   4. values: thread (d4, kq) streams V rows kq, kq+KQ, … of the tile straight from global
//      memory (coalesced: consecutive threads read consecutive float4 of a row) and updates its
//      accumulators acc[i][4·d4 … 4·d4+3] for all r heads, rescaled by exp(m_old − m_new).
// At the end the KQ partial accumulators are summed through shared memory; with S = 1 the block
// writes out = acc / l, else the partial (acc, m, l) goes to the workspace and the block that
// finishes the item's last split combines the partials (dec_last_split, dec_combine). The block
// whose split holds the new row also appends it to the cache (dec_append).
// Needs dk ∈ {4, 8, 16, 32, 64, 128} and r ≤ R ≤ DEC_MAXR (the host checks; else the reference kernel).
// R, the most heads per K/V head the instance holds accumulators for, is a compile-time bound: the
// _r1, _r2 and _r4 instances (MHA and GQA of 2 or 4 query heads per K/V head) keep 4·R accumulator
// registers instead of 32, so more blocks fit on a multiprocessor; the unsuffixed ones take r ≤ 8.
// Shared memory (floats): r·dk (queries) + max(TK·(dk+4), NT·r·4) (K tile / reduction) + r·TK
// (probabilities) + 3·DEC_MAXR (m, l, rescale), ≤ 40 KB for dk 128, r 8.
template <typename T, int R>
__device__ void decode_attn(float* out, bf16_t* outh, float* ws_o, float* ws_m, float* ws_l, int* counters,
                            const float* q, const T* k, const T* v, const float* nk, const float* nv, const int* lengths, int kvh, int r,
                            int dk, int maxLen, int window, float scale, int splits) {
    extern __shared__ float4 dec_smem4[];
    float* sm = (float*)dec_smem4;
    const int tid = threadIdx.x;
    const int bg = blockIdx.x, s = blockIdx.y;
    const int D4 = dk >> 2, KS = dk + 4, KQ = DEC_NT / D4;
    const int tileFloats = max(DEC_TK * KS, DEC_NT * r * 4);
    float* qs = sm;               // [r][dk]
    float* ks = qs + r * dk;      // [TK][dk+4], later [KQ][r][dk]
    float* ps = ks + tileFloats;  // [r][TK]
    float* st = ps + r * DEC_TK;  // m[MAXR], l[MAXR], alpha[MAXR]

    const DecItem e = dec_item(bg * splits + s, bg * splits + s + 1, lengths, kvh, splits, window, nk != 0);
    const int lo = e.lo, keys = e.keys, k0 = e.k0, k1 = e.k1;
    if (nk != 0 && keys >= k0 && keys < k1) dec_append(k, v, nk, nv, bg, lo + keys, maxLen, dk, tid, DEC_NT);

    const float* qb = q + (long long)bg * r * dk;
    for (int i = tid; i < r * dk; i += DEC_NT) qs[i] = qb[i] * scale;
    if (tid < DEC_MAXR) {
        st[tid] = NEG_INF;
        st[DEC_MAXR + tid] = 0.f;
        st[2 * DEC_MAXR + tid] = 1.f;
    }
    const int d4 = tid % D4, kq = tid / D4;
    float4 acc[R];
#pragma unroll
    for (int i = 0; i < R; i++) acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    const long long rowBase = (long long)bg * maxLen; // row (b, g, 0) of the cache
    const float* nkr = nk != 0 ? nk + (long long)bg * dk : 0;
    const float* nvr = nv != 0 ? nv + (long long)bg * dk : 0;
    __syncthreads();

    for (int t0 = k0; t0 < k1; t0 += DEC_TK) {
        const int nt = min(DEC_TK, k1 - t0);
        // 1. K tile
        for (int idx = tid; idx < nt * D4; idx += DEC_NT) {
            int j = idx / D4, c = idx - j * D4;
            int kj = t0 + j;
            float4 x = kj < keys ? dec_load4(k + (rowBase + lo + kj) * dk + 4 * c) : *(const float4*)(nkr + 4 * c);
            *(float4*)(ks + j * KS + 4 * c) = x;
        }
        __syncthreads();
        // 2. scores
        {
            const int j = tid % DEC_TK, half = tid / DEC_TK;
            if (j < nt) {
                float a[(R + 1) / 2];
#pragma unroll
                for (int m = 0; m < (R + 1) / 2; m++) a[m] = 0.f;
                const float* kr = ks + j * KS;
                for (int c = 0; c < D4; c++) {
                    float4 kx = *(const float4*)(kr + 4 * c);
#pragma unroll
                    for (int m = 0; m < (R + 1) / 2; m++) {
                        int i = half + 2 * m;
                        if (i < r) {
                            float4 qx = *(const float4*)(qs + i * dk + 4 * c);
                            a[m] += qx.x * kx.x + qx.y * kx.y + qx.z * kx.z + qx.w * kx.w;
                        }
                    }
                }
#pragma unroll
                for (int m = 0; m < (R + 1) / 2; m++) {
                    int i = half + 2 * m;
                    if (i < r) ps[i * DEC_TK + j] = a[m];
                }
            }
        }
        __syncthreads();
        // 3. online softmax, one warp per head
        {
            const int w = tid >> 5, lane = tid & 31;
            for (int i = w; i < r; i += DEC_NT / 32) {
                float x0 = lane < nt ? ps[i * DEC_TK + lane] : NEG_INF;
                float x1 = lane + 32 < nt ? ps[i * DEC_TK + lane + 32] : NEG_INF;
                float mold = st[i], lold = st[DEC_MAXR + i];
                float mnew = fmaxf(mold, warp_max(fmaxf(x0, x1))); // finite: nt ≥ 1
                float p0 = lane < nt ? expf(x0 - mnew) : 0.f;
                float p1 = lane + 32 < nt ? expf(x1 - mnew) : 0.f;
                ps[i * DEC_TK + lane] = p0;
                ps[i * DEC_TK + lane + 32] = p1;
                float sum = warp_sum(p0 + p1);
                __syncwarp();
                if (lane == 0) {
                    float al = expf(mold - mnew); // 0 on the first tile (mold = −inf)
                    st[i] = mnew;
                    st[DEC_MAXR + i] = lold * al + sum;
                    st[2 * DEC_MAXR + i] = al;
                }
            }
        }
        __syncthreads();
        // 4. values
        {
#pragma unroll
            for (int i = 0; i < R; i++) {
                if (i < r) {
                    float al = st[2 * DEC_MAXR + i];
                    acc[i].x *= al; acc[i].y *= al; acc[i].z *= al; acc[i].w *= al;
                }
            }
            for (int j = kq; j < nt; j += KQ) {
                int kj = t0 + j;
                float4 x = kj < keys ? dec_load4(v + (rowBase + lo + kj) * dk + 4 * d4) : *(const float4*)(nvr + 4 * d4);
#pragma unroll
                for (int i = 0; i < R; i++) {
                    if (i < r) {
                        float p = ps[i * DEC_TK + j];
                        acc[i].x += p * x.x; acc[i].y += p * x.y; acc[i].z += p * x.z; acc[i].w += p * x.w;
                    }
                }
            }
        }
        __syncthreads();
    }
    // 5. sum the KQ partial accumulators
    float* red = ks;
#pragma unroll
    for (int i = 0; i < R; i++)
        if (i < r) *(float4*)(red + (kq * r + i) * dk + 4 * d4) = acc[i];
    __syncthreads();
    for (int o = tid; o < r * dk; o += DEC_NT) {
        float sum = 0.f;
        for (int z = 0; z < KQ; z++) sum += red[z * r * dk + o];
        int i = o / dk;
        if (splits == 1) {
            float l = st[DEC_MAXR + i];
            dec_out(out, outh, (long long)bg * r * dk + o, l > 0.f ? sum / l : 0.f);
        } else {
            ws_o[((long long)bg * splits + s) * r * dk + o] = sum;
        }
    }
    if (splits == 1) return;
    if (tid < r) {
        ws_m[((long long)bg * splits + s) * r + tid] = st[tid];
        ws_l[((long long)bg * splits + s) * r + tid] = st[DEC_MAXR + tid];
    }
    if (dec_last_split(counters, bg, splits)) dec_combine(out, outh, ws_o, ws_m, ws_l, ks, bg, r, dk, splits); // ks ≥ 512 floats
}

// ---- the tensor-core decode attention -------------------------------------------------------
// Same inputs, splits and partial outputs as decode_attn, for up to DEC_MAXR query heads per K/V
// head and dk ∈ {16, 32, 64, 128}; scores and weighted sums on the tensor cores (mma.sync), the
// cache streamed through shared memory by cp.async while the previous tile is multiplied.
//
// Items are the (sequence·K/V head, split) pairs, items = B·kv·S; a grid of G ≤ items blocks of
// NW warps (NW·32 threads) takes items blockIdx.x, blockIdx.x + G, … (G is what fits on the GPU
// at once, so blocks do not wait for their turn with nothing in flight). An item's cached keys
// are cut into tiles of MMA_TK = 16 keys; warp w takes tiles w, w+NW, … with its own online
// softmax, double-buffering its tiles (cp.async of its next tile — of this item or, at its end,
// of the block's next item — while the current one is used), so warps wait for each other only
// at the end of an item, when the NW partial results are merged through shared memory. The
// step's own row (nk, nv, FP32) is taken by one warp after its tiles, in FP32 on the CUDA cores,
// and that warp also appends it to the cache (dec_append). With splits, the block that finishes
// an item's last split combines the partials (dec_last_split, dec_combine).
//
// The MMA's 16 rows are the group's (up to 8) query heads twice: row i holds the high part of
// query i, row i + 8 the low part (q = hi + lo, both rounded to the MMA's input type), so a
// score is row i + row i + 8 and the products keep about 16 (bf16) or 21 (tf32) bits of q; the
// probabilities P are split the same way for P·V. The cache's own elements are exact in bf16
// (BF16 cache: m16n8k16 bf16 MMAs); an FP32 cache is split into tf32 high and low parts too
// (m16n8k8 tf32 MMAs, four products each), which keeps FP32 accuracy (≈ 2⁻²¹ relative per term).
// Lane l of a warp is (group gq = l / 4, thread tq = l % 4) in the MMA fragment layouts: it owns
// query head gq's scores of keys 2·tq, 2·tq + 1 of each 8-key half of a tile, and its output
// columns 2·tq, 2·tq + 1 of each 8-column block.
//
// Shared memory per warp: 2 stages × MMA_TK rows of K (dk + 8 elements: conflict-free fragment
// loads) and of V (dk + 8 for bf16, ldmatrix.trans; dk + 4 for FP32); then the merge area of
// NW·(24 + r·dk) + 8 floats, at least r·64 (the combine's weights).

__device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
// 16 bytes global → shared, asynchronously; src_bytes 0 writes zeros (rows past the tile's end).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait1() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

// Two floats as a bf16 pair, x0 in the low half (the lower fragment index), rounded to nearest.
__device__ __forceinline__ unsigned pack_bf16(float x0, float x1) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(x1), "f"(x0));
    return r;
}
// x = hi + lo + O(2⁻¹⁶·|x|), each pair packed as pack_bf16.
__device__ __forceinline__ void split_bf16(float x0, float x1, unsigned* hi, unsigned* lo) {
    unsigned h = pack_bf16(x0, x1);
    *hi = h;
    *lo = pack_bf16(x0 - __uint_as_float(h << 16), x1 - __uint_as_float(h & 0xffff0000u));
}
// x = hi + lo + O(2⁻²²·|x|) in tf32.
__device__ __forceinline__ void split_tf32(float x, unsigned* hi, unsigned* lo) {
    unsigned h, l;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(h) : "f"(x));
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(l) : "f"(x - __uint_as_float(h)));
    *hi = h;
    *lo = l;
}
__device__ __forceinline__ void mma_bf16(float* d, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_tf32(float* d, const unsigned* a, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// What differs between the BF16 and the FP32 cache: the A fragments of q, the scores of a tile,
// and P·V. QF is the number of 4-register A fragments of q.
template <typename T, int DK> struct MmaCache;

template <int DK> struct MmaCache<bf16_t, DK> {
    static const int KS = DK + 8, VS = DK + 8, QF = DK / 16;
    // q row (scaled) → A fragments over 16-dim chunks: rows gq (hi) and gq + 8 (lo).
    __device__ static void load_q(unsigned (*qa)[4], const float* qg, float scale, int tq) {
#pragma unroll
        for (int c = 0; c < QF; c++) {
            const float* x = qg + 16 * c + 2 * tq;
            split_bf16(x[0] * scale, x[1] * scale, &qa[c][0], &qa[c][1]);
            split_bf16(x[8] * scale, x[9] * scale, &qa[c][2], &qa[c][3]);
        }
    }
    // s[j] = the 16×8 score block of keys 8j … 8j+7 of the tile.
    __device__ static void scores(float (*s)[4], unsigned (*qa)[4], const bf16_t* ks, int gq, int tq) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const bf16_t* kr = ks + (8 * j + gq) * KS + 2 * tq;
#pragma unroll
            for (int c = 0; c < QF; c++)
                mma_bf16(s[j], qa[c], *(const unsigned*)(kr + 16 * c), *(const unsigned*)(kr + 16 * c + 8));
        }
    }
    // o += P·V for the tile; p[j][e] is the probability of key 8j + 2·tq + e for head gq.
    __device__ static void pv(float (*o)[4], float (*p)[2], const bf16_t* vs, int lane) {
        unsigned a[4];
        split_bf16(p[0][0], p[0][1], &a[0], &a[1]);
        split_bf16(p[1][0], p[1][1], &a[2], &a[3]);
        const int mi = lane >> 3, row = (lane & 7) + 8 * (mi & 1);
        const unsigned base = smem_addr(vs + row * VS + 8 * (mi >> 1));
#pragma unroll
        for (int nb = 0; nb < DK / 8; nb += 2) {
            unsigned b0, b1, b2, b3;
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3)
                         : "r"(base + 16 * nb)
                         : "memory");
            mma_bf16(o[nb], a, b0, b1);
            mma_bf16(o[nb + 1], a, b2, b3);
        }
    }
};

template <int DK> struct MmaCache<float, DK> {
    static const int KS = DK + 8, VS = DK + 4, QF = DK / 8;
    // tf32 fragments over 8-dim chunks c; A column tq is dim 8c + 2·tq, column tq + 4 is dim
    // 8c + 2·tq + 1 (the scores' B fragments use the same pairing).
    __device__ static void load_q(unsigned (*qa)[4], const float* qg, float scale, int tq) {
#pragma unroll
        for (int c = 0; c < QF; c++) {
            split_tf32(qg[8 * c + 2 * tq] * scale, &qa[c][0], &qa[c][1]);
            split_tf32(qg[8 * c + 2 * tq + 1] * scale, &qa[c][2], &qa[c][3]);
        }
    }
    __device__ static void scores(float (*s)[4], unsigned (*qa)[4], const float* ks, int gq, int tq) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const float* kr = ks + (8 * j + gq) * KS + 2 * tq;
#pragma unroll
            for (int c = 0; c < QF; c++) {
                float2 k2 = *(const float2*)(kr + 8 * c);
                unsigned h0, l0, h1, l1;
                split_tf32(k2.x, &h0, &l0);
                split_tf32(k2.y, &h1, &l1);
                mma_tf32(s[j], qa[c], h0, h1);
                mma_tf32(s[j], qa[c], l0, l1);
            }
        }
    }
    // 8-key chunk j: A column tq is key 8j + 2·tq, column tq + 4 key 8j + 2·tq + 1.
    __device__ static void pv(float (*o)[4], float (*p)[2], const float* vs, int lane) {
        const int gq = lane >> 2, tq = lane & 3;
#pragma unroll
        for (int j = 0; j < 2; j++) {
            unsigned a[4];
            split_tf32(p[j][0], &a[0], &a[1]);
            split_tf32(p[j][1], &a[2], &a[3]);
            const float* v0 = vs + (8 * j + 2 * tq) * VS + gq;
#pragma unroll
            for (int nb = 0; nb < DK / 8; nb++) {
                unsigned h0, l0, h1, l1;
                split_tf32(v0[8 * nb], &h0, &l0);
                split_tf32(v0[VS + 8 * nb], &h1, &l1);
                mma_tf32(o[nb], a, h0, h1);
                mma_tf32(o[nb], a, l0, l1);
            }
        }
    }
};

template <typename T, int DK>
__device__ void decode_attn_mma(float* out, bf16_t* outh, float* ws_o, float* ws_m, float* ws_l, int* counters,
                                const float* q, const T* k, const T* v, const float* nk, const float* nv, const int* lengths, int kvh,
                                int r, int maxLen, int window, float scale, int splits, int items) {
    typedef MmaCache<T, DK> C;
    extern __shared__ float4 dec_smem4[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, NW = blockDim.x >> 5;
    const int gq = lane >> 2, tq = lane & 3;
    const int stageElems = MMA_TK * (C::KS + C::VS);
    T* stage = (T*)dec_smem4 + w * 2 * stageElems;
    // the merge area after all warps' stages: m, l, weights [NW][8], L [8], o [NW][r][DK]
    float* cm = (float*)((T*)dec_smem4 + NW * 2 * stageElems);
    float* cl = cm + NW * 8;
    float* cf = cl + NW * 8;
    float* cL = cf + NW * 8;
    float* co = cL + 8;
    const int chunks = DK * (int)sizeof(T) / 16; // 16-byte pieces per row

    // Stage tile t of item e into buffer buf: rows past e.kc are zero-filled.
    auto issue = [&](const DecItem& e, int t, int buf) {
        T* ks = stage + buf * stageElems;
        T* vs = ks + MMA_TK * C::KS;
        const long long rowBase = (long long)e.bg * maxLen + e.lo; // row (b, g, lo) of the cache
        const int t0 = e.k0 + t * MMA_TK;
        for (int i = lane; i < MMA_TK * chunks; i += 32) {
            const int j = i / chunks, c = i - j * chunks;
            const bool in = t0 + j < e.kc;
            const long long row = in ? rowBase + t0 + j : rowBase;
            cp_async16(ks + j * C::KS + c * (16 / (int)sizeof(T)), k + row * DK + c * (16 / (int)sizeof(T)), in ? 16 : 0);
            cp_async16(vs + j * C::VS + c * (16 / (int)sizeof(T)), v + row * DK + c * (16 / (int)sizeof(T)), in ? 16 : 0);
        }
    };

    // Items blockIdx.x, blockIdx.x + gridDim.x, …; a warp's n-th tile overall goes to buffer n & 1,
    // and its first tile of the next item is staged while it finishes the current one.
    DecItem cur = dec_item(blockIdx.x, items, lengths, kvh, splits, window, nk != 0);
    int cnt = 0;
    if (w < cur.tiles) issue(cur, w, 0);
    cp_async_commit();
    for (int it = blockIdx.x; it < items; it += gridDim.x) {
        const DecItem nxt = dec_item(it + gridDim.x, items, lengths, kvh, splits, window, nk != 0);
        // A fragments of the group's queries, scaled (rows of heads past r are zero).
        const float* qg = q + ((long long)cur.bg * r + gq) * DK;
        unsigned qa[C::QF][4];
        if (gq < r) {
            C::load_q(qa, qg, scale, tq);
        } else {
#pragma unroll
            for (int c = 0; c < C::QF; c++) qa[c][0] = qa[c][1] = qa[c][2] = qa[c][3] = 0u;
        }
        float o[DK / 8][4];
#pragma unroll
        for (int nb = 0; nb < DK / 8; nb++) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.f;
        float m = NEG_INF, l = 0.f;

        for (int t = w; t < cur.tiles; t += NW, cnt++) {
            if (t + NW < cur.tiles) {
                issue(cur, t + NW, (cnt + 1) & 1);
            } else if (w < nxt.tiles) {
                issue(nxt, w, (cnt + 1) & 1);
            }
            cp_async_commit();
            cp_async_wait1();
            __syncwarp();
            const T* ks = stage + (cnt & 1) * stageElems;
            float sc[2][4];
#pragma unroll
            for (int j = 0; j < 2; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
            C::scores(sc, qa, ks, gq, tq);
            // online softmax over the tile's keys 8j + 2·tq + e for head gq (rows gq and gq + 8)
            const int t0 = cur.k0 + t * MMA_TK;
            float x[2][2], mt = NEG_INF;
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const bool in = t0 + 8 * j + 2 * tq + e < cur.kc;
                    x[j][e] = in ? sc[j][e] + sc[j][2 + e] : NEG_INF;
                    mt = fmaxf(mt, x[j][e]);
                }
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
            const float mnew = fmaxf(m, mt); // finite: the tile has a key
            const float al = expf(m - mnew);
            float p[2][2], ps = 0.f;
#pragma unroll
            for (int j = 0; j < 2; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    p[j][e] = x[j][e] == NEG_INF ? 0.f : expf(x[j][e] - mnew);
                    ps += p[j][e];
                }
            l = l * al + ps;
            m = mnew;
#pragma unroll
            for (int nb = 0; nb < DK / 8; nb++) {
                o[nb][0] *= al; o[nb][1] *= al; o[nb][2] *= al; o[nb][3] *= al;
            }
            C::pv(o, p, ks + MMA_TK * C::KS, lane);
            __syncwarp();
        }
        if (w >= cur.tiles && w < nxt.tiles) issue(nxt, w, cnt & 1); // a warp without tiles here
        cp_async_commit();
        // The step's own row, in FP32, by the warp next in turn.
        if (nk != 0 && cur.keys >= cur.k0 && cur.keys < cur.k1 && w == cur.tiles % NW) {
            const float* nkr = nk + (long long)cur.bg * DK;
            const float* nvr = nv + (long long)cur.bg * DK;
            float x = 0.f;
            if (gq < r)
                for (int d = tq; d < DK; d += 4) x += qg[d] * scale * nkr[d];
            x += __shfl_xor_sync(0xffffffffu, x, 1);
            x += __shfl_xor_sync(0xffffffffu, x, 2);
            const float mnew = fmaxf(m, x);
            const float al = expf(m - mnew), p = expf(x - mnew);
            l = l * al + (tq == 0 ? p : 0.f);
            m = mnew;
#pragma unroll
            for (int nb = 0; nb < DK / 8; nb++) {
                o[nb][0] = o[nb][0] * al + p * nvr[8 * nb + 2 * tq];
                o[nb][1] = o[nb][1] * al + p * nvr[8 * nb + 2 * tq + 1];
                o[nb][2] *= al;
                o[nb][3] *= al;
            }
            dec_append(k, v, nk, nv, cur.bg, cur.lo + cur.keys, maxLen, DK, lane, 32);
        }
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);

        // Merge the NW warps' partials: each warp's weight exp(m_w − M) per head once, then the sums.
        if (tq == 0) {
            cm[w * 8 + gq] = m;
            cl[w * 8 + gq] = l;
        }
        if (gq < r) {
#pragma unroll
            for (int nb = 0; nb < DK / 8; nb++) {
                float* row = co + (w * r + gq) * DK + 8 * nb + 2 * tq;
                row[0] = o[nb][0] + o[nb][2];
                row[1] = o[nb][1] + o[nb][3];
            }
        }
        __syncthreads();
        if (threadIdx.x < r) {
            const int i = threadIdx.x;
            float M = NEG_INF;
            for (int z = 0; z < NW; z++) M = fmaxf(M, cm[z * 8 + i]);
            float L = 0.f;
            for (int z = 0; z < NW; z++) {
                const float f = cm[z * 8 + i] == NEG_INF ? 0.f : expf(cm[z * 8 + i] - M); // 0: a warp without keys
                cf[z * 8 + i] = f;
                L += f * cl[z * 8 + i];
            }
            cL[i] = L;
            if (splits > 1) {
                const long long pi = (long long)cur.bg * splits + cur.s;
                ws_m[pi * r + i] = M;
                ws_l[pi * r + i] = L;
            }
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < r * DK; idx += blockDim.x) {
            const int i = idx / DK;
            float a = 0.f;
            for (int z = 0; z < NW; z++) a += cf[z * 8 + i] * co[z * r * DK + idx];
            if (splits == 1) {
                dec_out(out, outh, (long long)cur.bg * r * DK + idx, cL[i] > 0.f ? a / cL[i] : 0.f);
            } else {
                ws_o[((long long)cur.bg * splits + cur.s) * r * DK + idx] = a;
            }
        }
        if (splits > 1 && dec_last_split(counters, cur.bg, splits)) dec_combine(out, outh, ws_o, ws_m, ws_l, cm, cur.bg, r, DK, splits);
        __syncthreads(); // the merge area is rewritten by the next item
        cur = nxt;
    }
}

// ---- the reference decode attention -----------------------------------------------------------
// One block per (b, query head), scores of all visible keys in shared memory ((maxLen+1) floats),
// K/V rows re-read for every query head: simple, for any dk and r, and the fallback when the
// split kernels' limits are not met (or -kernel ref). Grid B·h, 128 threads; the block of each group's
// first query head appends the new row (dec_append).
template <typename T>
__device__ void decode_attn_ref(float* out, bf16_t* outh, const float* q, const T* k, const T* v, const float* nk, const float* nv,
                                const int* lengths, int kvh, int r, int dk, int maxLen, int window, float scale) {
    extern __shared__ float4 dec_smem4[];
    float* sc = (float*)dec_smem4;
    const int bh = blockIdx.x, bg = bh / r, b = bg / kvh;
    const long long o = (long long)bh * dk;
    const int n = lengths[b];
    if (nk != 0 && bh == bg * r) dec_append(k, v, nk, nv, bg, n, maxLen, dk, threadIdx.x, blockDim.x);
    if (n < 0) {
        for (int d = threadIdx.x; d < dk; d += blockDim.x) dec_out(out, outh, o + d, 0.f);
        return;
    }
    const int lo = window_start(n, window);
    const int keys = n - lo, total = keys + (nk != 0 ? 1 : 0);
    if (total == 0) {
        for (int d = threadIdx.x; d < dk; d += blockDim.x) dec_out(out, outh, o + d, 0.f);
        return;
    }
    const float* qh = q + (long long)bh * dk;
    const long long rowBase = (long long)bg * maxLen;
    float mx = NEG_INF;
    for (int j = threadIdx.x; j < total; j += blockDim.x) {
        float s = 0.f;
        if (j < keys) {
            const T* kr = k + (rowBase + lo + j) * dk;
            for (int d = 0; d < dk; d++) s += qh[d] * dec_to_f(kr[d]);
        } else {
            const float* kr = nk + (long long)bg * dk;
            for (int d = 0; d < dk; d++) s += qh[d] * kr[d];
        }
        s *= scale;
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx);
    float sum = 0.f;
    for (int j = threadIdx.x; j < total; j += blockDim.x) {
        float e = expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    sum = block_sum(sum); // its barriers also order the sc writes before the reads below
    for (int d = threadIdx.x; d < dk; d += blockDim.x) {
        float a = 0.f;
        for (int j = 0; j < keys; j++) a += sc[j] * dec_to_f(v[(rowBase + lo + j) * dk + d]);
        if (total > keys) a += sc[keys] * nv[(long long)bg * dk + d];
        dec_out(out, outh, o + d, a / sum);
    }
}

// Cache gather: dst[b, g, 0:rows, :] = src[parents[b], g, 0:rows, :] (see k_cache_gather4). Block x
// is the (b, g) pair, whose rows·dk elements are one contiguous run in both caches; the blocks
// of grid y share the run, copied in 16-byte words when its size and start allow.
template <typename T>
__device__ void cache_gather(T* dst, const T* src, const int* parents, int kvh, int maxLen, int dk, int rows) {
    const int b = blockIdx.x / kvh, g = blockIdx.x - b * kvh;
    const int sb = parents ? parents[b] : b;
    const long long stride = (long long)maxLen * dk; // elements per (b, g)
    T* d = dst + ((long long)b * kvh + g) * stride;
    const T* s = src + ((long long)sb * kvh + g) * stride;
    const long long run = (long long)rows * dk;
    const int step = gridDim.y * blockDim.x;
    if ((run * sizeof(T)) % 16 == 0 && (stride * sizeof(T)) % 16 == 0) {
        uint4* d4 = (uint4*)d;
        const uint4* s4 = (const uint4*)s;
        for (long long k = blockIdx.y * blockDim.x + threadIdx.x; k < run * (long long)sizeof(T) / 16; k += step) d4[k] = s4[k];
        return;
    }
    for (long long k = blockIdx.y * blockDim.x + threadIdx.x; k < run; k += step) d[k] = s[k];
}

extern "C" {

#define DEC_ATTN(NAME, T, R)                                                                                      \
    __global__ void __launch_bounds__(DEC_NT) NAME(float* out, bf16_t* outh, float* ws_o, float* ws_m, float* ws_l,  \
            int* counters, const float* q, const T* k, const T* v, const float* nk, const float* nv, const int* lengths, int kvh, \
            int r, int dk, int maxLen, int window, float scale, int splits) {                                         \
        decode_attn<T, R>(out, outh, ws_o, ws_m, ws_l, counters, q, k, v, nk, nv, lengths, kvh, r, dk, maxLen, window, \
                          scale, splits);                                                                              \
    }
DEC_ATTN(k_decode_attn_f32, float, DEC_MAXR)
DEC_ATTN(k_decode_attn_f32_r1, float, 1)
DEC_ATTN(k_decode_attn_f32_r2, float, 2)
DEC_ATTN(k_decode_attn_f32_r4, float, 4)
DEC_ATTN(k_decode_attn_bf16, bf16_t, DEC_MAXR)
DEC_ATTN(k_decode_attn_bf16_r1, bf16_t, 1)
DEC_ATTN(k_decode_attn_bf16_r2, bf16_t, 2)
DEC_ATTN(k_decode_attn_bf16_r4, bf16_t, 4)

// BOUNDS: the launch bounds; (128, 5) keeps the dk-64 BF16 instance (the base and small
// presets' head width) at ≤ 102 registers, so that five blocks fit on a multiprocessor.
#define DEC_MMA(NAME, T, DK, BOUNDS)                                                                                 \
    __global__ void __launch_bounds__ BOUNDS NAME(float* out, bf16_t* outh, float* ws_o, float* ws_m, float* ws_l,      \
            int* counters, const float* q, const T* k, const T* v, const float* nk, const float* nv, const int* lengths, int kvh,    \
            int r, int maxLen, int window, float scale, int splits, int items) {                                         \
        decode_attn_mma<T, DK>(out, outh, ws_o, ws_m, ws_l, counters, q, k, v, nk, nv, lengths, kvh, r, maxLen, window, \
                               scale, splits, items);                                                                   \
    }
DEC_MMA(k_decode_mma_f32_d16, float, 16, (128))
DEC_MMA(k_decode_mma_f32_d32, float, 32, (128))
DEC_MMA(k_decode_mma_f32_d64, float, 64, (128))
DEC_MMA(k_decode_mma_f32_d128, float, 128, (128))
DEC_MMA(k_decode_mma_bf16_d16, bf16_t, 16, (128))
DEC_MMA(k_decode_mma_bf16_d32, bf16_t, 32, (128))
DEC_MMA(k_decode_mma_bf16_d64, bf16_t, 64, (128, 5))
DEC_MMA(k_decode_mma_bf16_d128, bf16_t, 128, (128))

__global__ void k_decode_attn_ref_f32(float* out, bf16_t* outh, const float* q, const float* k, const float* v, const float* nk,
        const float* nv, const int* lengths, int kvh, int r, int dk, int maxLen, int window, float scale) {
    decode_attn_ref<float>(out, outh, q, k, v, nk, nv, lengths, kvh, r, dk, maxLen, window, scale);
}
__global__ void k_decode_attn_ref_bf16(float* out, bf16_t* outh, const float* q, const bf16_t* k, const bf16_t* v, const float* nk,
        const float* nv, const int* lengths, int kvh, int r, int dk, int maxLen, int window, float scale) {
    decode_attn_ref<bf16_t>(out, outh, q, k, v, nk, nv, lengths, kvh, r, dk, maxLen, window, scale);
}

// ---- the cache ----------------------------------------------------------------------------

// dst[b, :, 0:rows, :] = src[parents[b], :, 0:rows, :] (parents null: the identity), for caches
// [B, kv, maxLen, dk] of 4-byte (f32) or 2-byte (bf16) elements; grid (B·kv, any). Beam reorder
// gathers into a scratch layer and copies back (a parent may itself be overwritten).
__global__ void k_cache_gather4(float* dst, const float* src, const int* parents, int kvh, int maxLen, int dk, int rows) {
    cache_gather(dst, src, parents, kvh, maxLen, dk, rows);
}
__global__ void k_cache_gather2(bf16_t* dst, const bf16_t* src, const int* parents, int kvh, int maxLen, int dk, int rows) {
    cache_gather(dst, src, parents, kvh, maxLen, dk, rows);
}

// dst row r = src row r / beams (rows of rowElems floats): the encoder memory repeated per beam.
__global__ void k_repeat_rows(float* dst, const float* src, long long rowElems, int rows, int beams) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rowElems * rows) return;
    long long r = i / rowElems, e = i - r * rowElems;
    dst[i] = src[(r / beams) * rowElems + e];
}

// ---- choosing tokens on the device ---------------------------------------------------------------

// Ranking order of (value, id) pairs: the larger value first, ties to the lower id (infer's
// greedy choice and infer.TopK). NaN never ranks first.
__device__ __forceinline__ bool dec_better(float x, int j, float y, int i) { return x > y || (x == y && j < i); }

__device__ __forceinline__ void warp_best(float* v, int* id) {
    for (int o = 16; o > 0; o >>= 1) {
        float y = __shfl_xor_sync(0xffffffffu, *v, o);
        int i = __shfl_xor_sync(0xffffffffu, *id, o);
        if (dec_better(y, i, *v, *id)) { *v = y; *id = i; }
    }
}

// The best (value, id) pair of a block (blockDim.x a multiple of 32); every thread gets it.
__device__ void block_best(float* v, int* id) {
    __shared__ float pv[32];
    __shared__ int pi[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    warp_best(v, id);
    __syncthreads();
    if (lane == 0) { pv[w] = *v; pi[w] = *id; }
    __syncthreads();
    *v = lane < nw ? pv[lane] : NEG_INF;
    *id = lane < nw ? pi[lane] : 0x7fffffff;
    warp_best(v, id);
}

// tokens[b] = argmax_j logits[b, j] (ties: the lowest j, as infer's greedy choice); then the next
// step's inputs advance: positions[b] += 1 and lengths[b] += 1 for rows that are not finished.
// One block (256 threads) per row.
__global__ void k_argmax_advance(int* tokens, int* positions, int* lengths, const float* logits, int V) {
    const int b = blockIdx.x;
    const float* row = logits + (long long)b * V;
    float best = NEG_INF;
    int arg = 0x7fffffff;
    for (int j = threadIdx.x; j < V; j += blockDim.x)
        if (dec_better(row[j], j, best, arg)) { best = row[j]; arg = j; }
    block_best(&best, &arg);
    if (threadIdx.x == 0) {
        int l = lengths[b];
        if (l >= 0) {
            tokens[b] = arg == 0x7fffffff ? 0 : arg;
            positions[b] += 1;
            lengths[b] = l + 1;
        }
    }
}

// Each row's k best tokens (infer.Ranker.StepTopK): ids[b, r] and logp[b, r] = logits[b, id] −
// logsumexp(logits[b, :]), best first in the ranking order. Round r takes the best token ranked
// after round r−1's, so nothing is marked. One block (256 threads) per row; an id of 0x7fffffff
// says the row has fewer than k ranked values (NaN logits), which the host reports.
__global__ void k_topk(int* ids, float* logp, const float* logits, int V, int k) {
    const int b = blockIdx.x;
    const float* row = logits + (long long)b * V;
    const float lse = block_logsumexp(row, V);
    float pv = __int_as_float(0x7f800000);
    int pi = -1;
    for (int r = 0; r < k; r++) {
        float best = NEG_INF;
        int arg = 0x7fffffff;
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float x = row[j];
            if (dec_better(pv, pi, x, j) && dec_better(x, j, best, arg)) { best = x; arg = j; }
        }
        block_best(&best, &arg);
        if (threadIdx.x == 0) {
            ids[(long long)b * k + r] = arg;
            logp[(long long)b * k + r] = best - lse;
        }
        pv = best;
        pi = arg;
    }
}

// ids[b] = the token drawn from softmax(logits[b, :] / temperature) with u[b] ∈ [0, 1)
// (infer.SampleRow): the first id, in id order, at which the running sum of exp((logit − max) /
// temperature) exceeds u[b] times the total; the last id if rounding leaves none. One block (256
// threads) per row: thread t sums a contiguous chunk of ids, the chunks' sums are scanned, and
// the thread whose chunk holds the target walks it. Sums in double, as the host's.
__global__ void k_sample(int* ids, const float* logits, const double* u, int V, double temperature) {
    __shared__ double part[256];
    __shared__ int found;
    const int b = blockIdx.x, t = threadIdx.x;
    const float* row = logits + (long long)b * V;
    float m = NEG_INF;
    for (int j = t; j < V; j += blockDim.x) m = fmaxf(m, row[j]);
    m = block_max(m);
    const int chunk = (V + blockDim.x - 1) / blockDim.x, c0 = min(V, t * chunk), c1 = min(V, c0 + chunk);
    double s = 0.0;
    for (int j = c0; j < c1; j++) s += exp(((double)row[j] - (double)m) / temperature);
    part[t] = s;
    if (t == 0) found = V - 1;
    __syncthreads();
    for (int off = 1; off < blockDim.x; off <<= 1) { // inclusive scan of the chunk sums
        const double x = t >= off ? part[t - off] : 0.0;
        __syncthreads();
        part[t] += x;
        __syncthreads();
    }
    const double target = u[b] * part[blockDim.x - 1], lo = t > 0 ? part[t - 1] : 0.0;
    if (lo <= target && target < part[t]) { // exactly one chunk holds the target
        double cum = lo;
        int j = c0;
        for (; j < c1 - 1; j++) {
            cum += exp(((double)row[j] - (double)m) / temperature);
            if (cum > target) break;
        }
        found = j;
    }
    __syncthreads();
    if (t == 0) ids[b] = found;
}

// ---- benchmark helpers ---------------------------------------------------------------------

// Uniform values in [−scale, scale) from a hash of (seed, i) (kernels.cu's mix64): the
// benchmark's cache contents.
__global__ void k_fill_hash_f32(float* p, long long n, unsigned long long seed, float scale) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float u = (float)(mix64(seed ^ (unsigned long long)i) >> 40) / 16777216.f;
        p[i] = (2.f * u - 1.f) * scale;
    }
}
__global__ void k_fill_hash_bf16(bf16_t* p, long long n, unsigned long long seed, float scale) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float u = (float)(mix64(seed ^ (unsigned long long)i) >> 40) / 16777216.f;
        dec_store(p + i, (2.f * u - 1.f) * scale);
    }
}

// Bandwidth probes: a copy (reads and writes n4 float4) and a read-only sum (one float per block).
__global__ void k_copy4(float4* dst, const float4* src, long long n4) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x)
        dst[i] = src[i];
}
__global__ void k_read4(float* out, const float4* src, long long n4) {
    float s = 0.f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
        float4 x = src[i];
        s += x.x + x.y + x.z + x.w;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}

} // extern "C"

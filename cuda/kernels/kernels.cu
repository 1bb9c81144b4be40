// Kernels of the mqa CUDA executor. Compiled at run time with NVRTC (runtime.go, loadKernels); every
// kernel mirrors the CPU implementation of an op in mqa/layers/ops, float32 in and out.
// Sizes are 32-bit (the executor refuses tensors of 2^31 elements or more).

#define WARP 32
#define NEG_INF __int_as_float(0xff800000)

// The first key that a query at position p sees under a local window of w keys (itself and the
// w−1 before it): p − w + 1, or 0 without a window (w = 0) or where the window reaches back past
// the first key. ops.WindowStart is the same rule in Go.
__device__ __forceinline__ int window_start(int p, int w) {
    int lo = 0;
    if (w > 0 && p - w + 1 > lo) lo = p - w + 1;
    return lo;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum (MAX false) or maximum (MAX true) over a block of up to 1024 threads; every thread gets
// the result.
template <bool MAX>
__device__ float block_reduce(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) part[w] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = lane < nw ? part[lane] : (MAX ? NEG_INF : 0.f);
    return MAX ? warp_max(v) : warp_sum(v);
}
__device__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ float block_max(float v) { return block_reduce<true>(v); }

// log Σ_j exp(row[j]) over a row of n values, by the whole block (max first, then the sum of
// exponentials); every thread gets it.
__device__ float block_logsumexp(const float* row, int n) {
    float m = NEG_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, row[j]);
    m = block_max(m);
    float s = 0.f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) s += expf(row[j] - m);
    return m + logf(block_sum(s));
}

// bfloat16 storage: the upper half of a float32, rounded to nearest even (NaN stays NaN). BF16
// GEMM inputs (Options.Math "bf16") are such copies: of the parameters (written by k_to_bf16 at
// upload and by k_adamw at each update) and of activations (written by their producer, or by
// k_to_bf16 right after it).
typedef unsigned short bf16_t;

__device__ __forceinline__ bf16_t to_bf16(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

// General permutation of up to 6 axes: out has shape os[0..rank), and is[k] is the input
// stride of output axis k.
struct PermArgs { int rank; int os[6]; int is[6]; };

template <typename T>
__device__ void permute(T* y, const T* x, const PermArgs& a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int rem = i, off = 0;
    for (int k = a.rank - 1; k >= 0; k--) {
        int c = rem % a.os[k];
        rem /= a.os[k];
        off += c * a.is[k];
    }
    y[i] = x[off];
}

// Warp-per-row forms of k_norm and k_add_norm for rows of at most 32·NORM_PER_LANE elements: the
// row stays in registers and the statistics are warp reductions (no barriers, one read of the
// inputs); blocks of 128 threads take four rows. The pointers are __restrict__ (the executor
// never aliases them) and every input, gamma and beta included, is loaded before the first
// store, so that a row's loads are in flight together rather than one round trip after another.
#define NORM_PER_LANE 32

template <bool ADD>
__device__ void norm_rows(float* __restrict__ y, bf16_t* __restrict__ yh, float* __restrict__ s,
                          const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ gamma,
                          const float* __restrict__ beta, int n, int d, int rms, float eps) {
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= n) return; // whole warps
    const long long base = (long long)row * d;
    float v[NORM_PER_LANE], g[NORM_PER_LANE], bt[NORM_PER_LANE];
    float sum = 0.f;
#pragma unroll
    for (int c = 0; c < NORM_PER_LANE; c++) {
        const int j = lane + 32 * c;
        v[c] = g[c] = bt[c] = 0.f;
        if (j < d) {
            v[c] = ADD ? a[base + j] + b[base + j] : a[base + j];
            g[c] = gamma[j];
            if (!rms) bt[c] = beta[j];
        }
        sum += v[c];
    }
    const float m = rms ? 0.f : warp_sum(sum) / d;
    float ss = 0.f;
#pragma unroll
    for (int c = 0; c < NORM_PER_LANE; c++) {
        const float t = v[c] - m;
        if (lane + 32 * c < d) ss += t * t;
    }
    const float rs = rsqrtf(warp_sum(ss) / d + eps);
#pragma unroll
    for (int c = 0; c < NORM_PER_LANE; c++) {
        const int j = lane + 32 * c;
        if (j < d) {
            const float o = (v[c] - m) * rs * g[c] + bt[c];
            if (ADD) s[base + j] = v[c];
            y[base + j] = o;
            if (yh) yh[base + j] = to_bf16(o);
        }
    }
}

extern "C" {

// ---- elementwise -------------------------------------------------------------------

__global__ void k_add(float* y, const float* a, const float* b, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a[i] + b[i];
}

__global__ void k_to_bf16(bf16_t* y, const float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = to_bf16(x[i]);
}


// y[r, j] = x[r, j] + b[j]
__global__ void k_bias_add(float* y, const float* x, const float* b, int n, int d) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n * d) y[i] = x[i] + b[i % d];
}

// out[j] = sum_r x[r, j]; block (32, 32), grid ceil(d/32).
__global__ void k_col_sum(float* out, const float* x, int n, int d) {
    __shared__ float s[32][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.f;
    if (j < d)
        for (int r = threadIdx.y; r < n; r += 32) acc += x[(long long)r * d + j];
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < d) {
        float t = 0.f;
        for (int k = 0; k < 32; k++) t += s[k][threadIdx.x];
        out[j] = t;
    }
}

// out[j] = sum_r g[r, j] * (x[r, j] - mean_r) * rstd_r, with stats[2r] = mean, stats[2r+1] = rstd.
__global__ void k_col_sum_xhat(float* out, const float* g, const float* x, const float* stats, int n, int d) {
    __shared__ float s[32][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.f;
    if (j < d)
        for (int r = threadIdx.y; r < n; r += 32) {
            long long o = (long long)r * d + j;
            acc += g[o] * (x[o] - stats[2 * r]) * stats[2 * r + 1];
        }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < d) {
        float t = 0.f;
        for (int k = 0; k < 32; k++) t += s[k][threadIdx.x];
        out[j] = t;
    }
}

// Permutations (axes simplified by the executor's permuteAxes).
__global__ void k_permute(float* y, const float* x, PermArgs a, int n) { permute(y, x, a, n); }
// The same over float4 elements: the innermost axis stays innermost and its length is a multiple
// of 4 (lengths and strides given in float4 units).
__global__ void k_permute4(float4* y, const float4* x, PermArgs a, int n) { permute(y, x, a, n); }

// ---- embedding ---------------------------------------------------------------------

__global__ void k_gather(float* y, const float* table, const int* ids, int n, int d, float scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * d) return;
    int r = i / d, j = i - r * d;
    y[i] = table[(long long)ids[r] * d + j] * scale;
}

// out must be zeroed first.
__global__ void k_scatter_add(float* out, const int* ids, const float* g, int n, int d, float scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * d) return;
    int r = i / d, j = i - r * d;
    atomicAdd(&out[(long long)ids[r] * d + j], g[i] * scale);
}

// ---- dropout: the hash of ops.Dropout's mask ----------------------------------------

__device__ __forceinline__ unsigned long long mix64(unsigned long long x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// key = ops.Dropout.SiteKey() = mix(mix(seed ^ golden) ^ site); the step is read from the
// device counter (and mixed in here) so that a captured CUDA graph sees the current step.
__global__ void k_dropout(float* y, const float* x, int n, unsigned long long key, const unsigned long long* step,
                          double p, double scale) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long k = mix64(key ^ *step);
    double u = (double)(mix64(k ^ (unsigned long long)i) >> 40) / 16777216.0;
    y[i] = u >= p ? (float)((double)x[i] * scale) : 0.f;
}

// ---- rotary positions --------------------------------------------------------------

__global__ void k_rope(float* y, const float* x, const int* pos, int n, int width, int hd, double base, double sign) {
    int half = hd / 2;
    int i = blockIdx.x * blockDim.x + threadIdx.x; // over n * (width/2)
    int pairs = width / 2;
    if (i >= n * pairs) return;
    int r = i / pairs, q = i - r * pairs;
    int h = q / half, j = q - h * half;
    double theta = sign * (double)pos[r] * pow(base, -2.0 * (double)j / (double)hd);
    double s, c;
    sincos(theta, &s, &c);
    long long o = (long long)r * width + h * hd;
    double a = x[o + j], b = x[o + j + half];
    y[o + j] = (float)(a * c - b * s);
    y[o + j + half] = (float)(a * s + b * c);
}

// ---- activations -------------------------------------------------------------------
// kind: 0 relu, 1 gelu (erf), 2 swiglu ([a|b] -> silu(a) * b, width = input width),
// 3 gelu_tanh (x/2 * (1 + tanh(GELU_TANH_C * (x + GELU_TANH_A * x^3))))
#define GELU_TANH_C 0.7978845608028654
#define GELU_TANH_A 0.044715

// yh, if not null, receives a bf16 copy of y (the input of a BF16 GEMM).
__global__ void k_act(float* y, bf16_t* yh, const float* x, int n, int width, int kind) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float o;
    if (kind == 2) {
        int h = width / 2;
        if (i >= n * h) return;
        int r = i / h, j = i - r * h;
        float a = x[(long long)r * width + j], b = x[(long long)r * width + h + j];
        o = (float)((double)a / (1.0 + exp(-(double)a)) * (double)b);
    } else {
        if (i >= n * width) return;
        float v = x[i];
        double u = v;
        if (kind == 0) o = v > 0.f ? v : 0.f;
        else if (kind == 1) o = (float)(0.5 * u * (1.0 + erf(u * 0.7071067811865476)));
        else o = (float)(0.5 * u * (1.0 + tanh(GELU_TANH_C * (u + GELU_TANH_A * u * u * u))));
    }
    y[i] = o;
    if (yh) yh[i] = to_bf16(o);
}

__global__ void k_act_grad(float* dx, const float* x, const float* g, int n, int width, int kind) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (kind == 2) {
        int h = width / 2;
        if (i >= n * h) return;
        int r = i / h, j = i - r * h;
        long long o = (long long)r * width;
        double a = x[o + j], b = x[o + h + j], gj = g[i];
        double s = 1.0 / (1.0 + exp(-a));
        dx[o + j] = (float)(gj * b * s * (1.0 + a * (1.0 - s)));
        dx[o + h + j] = (float)(gj * a * s);
        return;
    }
    if (i >= n * width) return;
    float v = x[i];
    if (kind == 0) dx[i] = v > 0.f ? g[i] : 0.f;
    else if (kind == 1) {
        double xv = v;
        double d = 0.5 * (1.0 + erf(xv * 0.7071067811865476)) + xv * exp(-xv * xv / 2) * 0.3989422804014327;
        dx[i] = (float)((double)g[i] * d);
    } else {
        double xv = v;
        double t = tanh(GELU_TANH_C * (xv + GELU_TANH_A * xv * xv * xv));
        double d = 0.5 * (1.0 + t) + 0.5 * xv * (1.0 - t * t) * GELU_TANH_C * (1.0 + 3.0 * GELU_TANH_A * xv * xv);
        dx[i] = (float)((double)g[i] * d);
    }
}

// ---- layer / RMS norm --------------------------------------------------------------
// Two-pass statistics. k_norm and k_add_norm: one block (128 threads) per row, for any width;
// k_norm_rows and k_add_norm_rows (below): one warp per row, for rows of up to 1024.

__device__ void row_stats(const float* row, int d, int rms, float eps, float* mean, float* rstd) {
    float m = 0.f;
    if (!rms) {
        float s = 0.f;
        for (int j = threadIdx.x; j < d; j += blockDim.x) s += row[j];
        m = block_sum(s) / d;
    }
    float ss = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float t = row[j] - m;
        ss += t * t;
    }
    ss = block_sum(ss);
    *mean = m;
    *rstd = rsqrtf(ss / d + eps);
}

// yh, if not null, receives a bf16 copy of y (the input of a BF16 GEMM).
__global__ void k_norm(float* y, bf16_t* yh, const float* x, const float* gamma, const float* beta, int n, int d, int rms,
                       float eps) {
    int r = blockIdx.x;
    const float* row = x + (long long)r * d;
    float m, rs;
    row_stats(row, d, rms, eps, &m, &rs);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float o = (row[j] - m) * rs * gamma[j];
        if (!rms) o += beta[j];
        y[(long long)r * d + j] = o;
        if (yh) yh[(long long)r * d + j] = to_bf16(o);
    }
}

// k_norm of s = a + b, writing s too: the residual sum and the next block's norm in one kernel
// (the executor fuses an add into the norm that reads it; see fuseAddNorm in plan.go). Each
// block writes its row of s and reads it back after a barrier.
__global__ void k_add_norm(float* y, bf16_t* yh, float* s, const float* a, const float* b, const float* gamma,
                           const float* beta, int n, int d, int rms, float eps) {
    long long base = (long long)blockIdx.x * d;
    for (int j = threadIdx.x; j < d; j += blockDim.x) s[base + j] = a[base + j] + b[base + j];
    __syncthreads();
    const float* row = s + base;
    float m, rs;
    row_stats(row, d, rms, eps, &m, &rs);
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float o = (row[j] - m) * rs * gamma[j];
        if (!rms) o += beta[j];
        y[base + j] = o;
        if (yh) yh[base + j] = to_bf16(o);
    }
}

// One warp per row (norm_rows): rows of up to 32·NORM_PER_LANE elements.
__global__ void k_norm_rows(float* y, bf16_t* yh, const float* x, const float* gamma, const float* beta, int n, int d,
                            int rms, float eps) {
    norm_rows<false>(y, yh, 0, x, 0, gamma, beta, n, d, rms, eps);
}

__global__ void k_add_norm_rows(float* y, bf16_t* yh, float* s, const float* a, const float* b, const float* gamma,
                                const float* beta, int n, int d, int rms, float eps) {
    norm_rows<true>(y, yh, s, a, b, gamma, beta, n, d, rms, eps);
}

__global__ void k_norm_stats(float* stats, const float* x, int n, int d, int rms, float eps) {
    int r = blockIdx.x;
    float m, rs;
    row_stats(x + (long long)r * d, d, rms, eps, &m, &rs);
    if (threadIdx.x == 0) {
        stats[2 * r] = m;
        stats[2 * r + 1] = rs;
    }
}

__global__ void k_norm_grad_x(float* dx, const float* x, const float* gamma, const float* g, int n, int d, int rms, float eps) {
    int r = blockIdx.x;
    const float* row = x + (long long)r * d;
    const float* gr = g + (long long)r * d;
    float m, rs;
    row_stats(row, d, rms, eps, &m, &rs);
    float sd = 0.f, sdx = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float dh = gr[j] * gamma[j];
        sd += dh;
        sdx += dh * (row[j] - m) * rs;
    }
    sd = block_sum(sd);
    sdx = block_sum(sdx);
    if (rms) sd = 0.f;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float xh = (row[j] - m) * rs;
        float dh = gr[j] * gamma[j];
        dx[(long long)r * d + j] = rs * (dh - sd / d - xh * sdx / d);
    }
}

// ---- attention softmax -------------------------------------------------------------
// One warp per row of the [slices, rows, keys] logits; see ops.Softmax.VisibleRange.

__global__ void k_softmax(float* y, const float* x, const int* lengths, int slices, int rows, int keys, int groups,
                          int qlen, int koff, int causal, int window, float scale) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x & 31;
    if (row >= slices * rows) return;
    int s = row / rows, r = row - s * rows;
    int i = r % qlen + koff;
    int hi = keys;
    if (causal && i + 1 < hi) hi = i + 1;
    if (lengths && lengths[s / groups] < hi) hi = lengths[s / groups];
    const int lo = window_start(i, window);
    const float* xr = x + (long long)row * keys;
    float* yr = y + (long long)row * keys;
    float mx = NEG_INF;
    for (int j = lo + lane; j < hi; j += WARP) mx = fmaxf(mx, xr[j] * scale);
    mx = warp_max(mx);
    float sum = 0.f;
    for (int j = lo + lane; j < hi; j += WARP) sum += expf(xr[j] * scale - mx);
    sum = warp_sum(sum);
    float inv = 1.f / sum;
    for (int j = lane; j < keys; j += WARP) yr[j] = (j >= lo && j < hi) ? expf(xr[j] * scale - mx) * inv : 0.f;
}

__global__ void k_softmax_grad(float* dx, const float* p, const float* g, int nrows, int keys, float scale) {
    int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x & 31;
    if (row >= nrows) return;
    long long o = (long long)row * keys;
    float dot = 0.f;
    for (int j = lane; j < keys; j += WARP) dot += p[o + j] * g[o + j];
    dot = warp_sum(dot);
    for (int j = lane; j < keys; j += WARP) dx[o + j] = scale * p[o + j] * (g[o + j] - dot);
}

// ---- cross-entropy -----------------------------------------------------------------
// Forward: one block per row writes rowloss[r] (0 for ignored rows); k_xent_reduce sums
// and divides by the number of counted rows, writing the scalar loss (and the count, when
// count is not null; the executor passes null).

__global__ void k_xent_rows(float* rowloss, const float* logits, const int* targets, int n, int v, float eps, int ignore) {
    int r = blockIdx.x;
    int t = targets[r];
    if (t == ignore) {
        if (threadIdx.x == 0) rowloss[r] = 0.f;
        return;
    }
    const float* row = logits + (long long)r * v;
    float mx = NEG_INF;
    for (int j = threadIdx.x; j < v; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_max(mx);
    float s = 0.f, sx = 0.f;
    for (int j = threadIdx.x; j < v; j += blockDim.x) {
        s += expf(row[j] - mx);
        sx += row[j];
    }
    s = block_sum(s);
    sx = block_sum(sx);
    if (threadIdx.x == 0) {
        float logz = mx + logf(s);
        float nll = logz - row[t];
        if (eps > 0.f) nll = (1.f - eps) * nll + eps * (logz - sx / v);
        rowloss[r] = nll;
    }
}

// One block: loss[0] = sum(rowloss) / max(count, 1); count[0] = rows whose target is not ignored.
__global__ void k_xent_reduce(float* loss, float* count, const float* rowloss, const int* targets, int n, int ignore) {
    double s = 0.0;
    float c = 0.f;
    for (int r = threadIdx.x; r < n; r += blockDim.x) {
        s += rowloss[r];
        if (targets[r] != ignore) c += 1.f;
    }
    __shared__ double ps[32];
    __shared__ float pc[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    s = warp_sum_d(s);
    c = warp_sum(c);
    if (lane == 0) { ps[w] = s; pc[w] = c; }
    __syncthreads();
    if (threadIdx.x == 0) {
        double ts = 0.0;
        float tc = 0.f;
        for (int k = 0; k < (int)(blockDim.x >> 5); k++) { ts += ps[k]; tc += pc[k]; }
        if (count) count[0] = tc;
        loss[0] = (float)(ts / fmax((double)tc, 1.0));
    }
}

// Gradient: dl[r, j] = g/count * (softmax_j - eps/v - (1-eps)[j == t]); ignored rows are 0.
__global__ void k_xent_grad(float* dl, const float* logits, const int* targets, const float* gscalar, const float* count,
                            int n, int v, float eps, int ignore) {
    int r = blockIdx.x;
    int t = targets[r];
    float* dr = dl + (long long)r * v;
    if (t == ignore) {
        for (int j = threadIdx.x; j < v; j += blockDim.x) dr[j] = 0.f;
        return;
    }
    const float* row = logits + (long long)r * v;
    const float lse = block_logsumexp(row, v);
    float scale = gscalar[0] / fmaxf(count[0], 1.f);
    for (int j = threadIdx.x; j < v; j += blockDim.x) {
        float d = expf(row[j] - lse) - eps / v;
        if (j == t) d -= 1.f - eps;
        dr[j] = scale * d;
    }
}

// ---- optimiser ---------------------------------------------------------------------

// acc = first ? g : acc + g
__global__ void k_accum(float* acc, const float* g, int n, int first) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) acc[i] = first ? g[i] : acc[i] + g[i];
}

// out[0] += sum x^2 (double atomics; out zeroed by the caller)
__global__ void k_sumsq(double* out, const float* x, int n) {
    double s = 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        double v = x[i];
        s += v * v;
    }
    s = warp_sum_d(s);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, s);
}

// AdamW exactly as train.AdamW.Update.
// ph, if not null, receives a bf16 copy of the updated parameter (the BF16 GEMMs' weights).
__global__ void k_adamw(float* p, bf16_t* ph, float* m, float* v, const float* g, int n, float b1, float b2, float step,
                        float rbc2, float eps, float scale, float decay) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gj = g[i] * scale;
    float mj = b1 * m[i] + (1.f - b1) * gj;
    float vj = b2 * v[i] + (1.f - b2) * gj * gj;
    m[i] = mj;
    v[i] = vj;
    float pj = p[i] * decay - step * mj / (sqrtf(vj) * rbc2 + eps);
    p[i] = pj;
    if (ph) ph[i] = to_bf16(pj);
}

// count[0] = number of targets that are not ignored (one block).
__global__ void k_count(float* count, const int* targets, int n, int ignore) {
    float c = 0.f;
    for (int r = threadIdx.x; r < n; r += blockDim.x) c += targets[r] != ignore ? 1.f : 0.f;
    c = block_sum(c);
    if (threadIdx.x == 0) count[0] = c;
}

} // extern "C"

/* gptq_transposed.cu: the decode GEMM on layout 2 ("tiled", gptq_mi100/layouts.py),
 * c[m, n] = a[m, :] @ W for M = 1 .. 16 in one pass over the weights.
 *
 *   N: strips of 16 columns (the last may be 4, 8 or 12 wide)        grid.x = strip
 *   K: tiles of TK = 512 / bits rows; a strip's tiles are contiguous   grid.y = K split
 *
 *   one tile = 16 columns x TK rows = 1 KiB = 64 chunks of 16 bytes
 *     chunk c = 16q + col: column col, rows 16 st + 4q + j (st < TK/16, j < 4)
 *   block = 256 threads = 4 slots x 64 lanes (4 wave64 on gfx908, 8 warp32 on sm_90)
 *     thread t: slot = t / 64 takes tiles slot, slot + 4, ... of the block's split;
 *     chunk t % 64 of each: one 16-byte load, issued one tile ahead of its use
 *   a[m0 : m0 + MT, split's rows] (a_perm gathered) -> LDS once, after the first
 *     weight loads are issued, so HBM latency overlaps the staging barrier
 *   thread: acc[MT] for its one column; per 16-row step the 4 values are 2 pairs
 *     ((w >> bits*p) & mask2) | 0x6400_6400 = fp16 (1024 + q) pairs, minus (1024 + z):
 *     exact (q - z); pair . activation pair in fp32 (v_dot2 on gfx908), x scale per step
 *   end: 16 partials per (column, row) summed in LDS in fixed order; with splits > 1
 *     each block writes fp32 partials, and the last block of the strip (a per-strip
 *     counter it resets) sums them in split order: no second launch, no float atomics.
 *
 * Bytes in flight: each thread keeps two 16-byte loads outstanding (current and next
 * tile). sm_90: 2048 threads/SM x 32 B = 64 KiB per SM, above the ~25 KiB that 4.2 TB/s
 * x ~0.8 us latency needs per SM of an H200. gfx908: the instantiations used for M <= 8
 * are capped at 64 VGPRs (4 waves/SIMD = 16 waves/CU = 1024 lanes x 32 B = 32 KiB per CU)
 * against ~8 KiB per CU for 1.2 TB/s x ~700 cycles over 120 CUs: latency is covered by
 * occupancy, not by deep unrolling. (Reasoned for gfx908, not measured.)
 *
 * The layout's chunk is also an MFMA 16x16x16 B operand per step (lane = chunk) and an
 * mma m16n8k16 B fragment pair (see layouts.py): the matrix-instruction kernel reads
 * the same bytes.
 */
#include <mutex>
#include <type_traits>

#include "compat.h"
#include "device_util.cuh"
#include "../gptq_kernels.h"
#include "gptq_gpu.h"

static constexpr int kTpThreads = 256;
static constexpr int kTpSlots = kTpThreads / 64; /* tiles in flight per block */
static constexpr int kTpActElems = 4096;         /* MT x K-range activations staged per block */
static constexpr int kTpMaxM = 16;               /* rows per pass; larger M loops passes */
/* Resident blocks of 256 per SM/CU the register budget must allow (launch bounds).
 * gfx908: 4 = 4 waves/SIMD (<= 64 VGPRs), reached without scratch for M <= 2 at 4/8 bits;
 * larger tiles take 2 (<= 128 VGPRs) or 1, where 64 would spill (resource report).
 * sm_90: 4 (<= 64 registers) up to M = 4, then 2-3 (ptxas spills at 64). */
static constexpr int kTpMinBlocks(int mt, int bits) {
  return GPTQ_TARGET_AMD ? ((mt <= 2 && bits >= 4) ? 4 : mt >= 16 ? 1 : 2)
                         : (mt >= 8 ? 2 : (bits == 2 && mt >= 4) ? 3 : 4);
}
/* Split-K aims at this many blocks per SM/CU (sm_90: 8 x 256 = 2048 threads). */
static constexpr int kTpBlocksPerSm = GPTQ_TARGET_AMD ? 4 : 8;

/* Per-strip arrival counters, one region per (device, stream): launches on one stream
 * are ordered, and each launch leaves its counters at 0 (the last block resets them). */
static constexpr int kTpCounterRegions = 256;
static constexpr int kTpCountersPerRegion = 8192; /* strips per launch: N <= 131072 */
__device__ unsigned g_tp_counters[kTpCounterRegions * kTpCountersPerRegion];

enum { kTpF16 = 0, kTpBF16 = 1 };

struct tp_args {
  const uint16_t* a;       /* [m, lda] */
  const int32_t* qweight;  /* layout 2 */
  const int32_t* qzeros;   /* [groups, n * bits / 32] */
  const uint16_t* scales;  /* [groups, n] */
  const int32_t* a_perm;   /* [k] or NULL */
  uint16_t* c;             /* [m, ldc] */
  float* ws;               /* [splits, m, n] partials (splits > 1) */
  unsigned* counters;      /* this stream's region (splits > 1) */
  int* errors;             /* clamped-index counter or NULL */
  int64_t m, n, k, lda, ldc, group_size;
  int64_t m0;              /* first row of this pass */
  int tiles_per_split, splits, zero_offset, scale_bf16;
};

/* Activation pair in LDS: see compat.h ("weight pair x activation pair"). */
template <int ACT>
struct tp_act {
#if GPTQ_DOT2_F16
  typedef typename std::conditional<ACT == kTpF16, uint32_t, float2>::type pair_t;
#else
  typedef float2 pair_t;
#endif
};

__device__ __forceinline__ void tp_store_pair(uint32_t& dst, uint16_t lo, uint16_t hi, int) {
  dst = (uint32_t)lo | ((uint32_t)hi << 16);
}
__device__ __forceinline__ void tp_store_pair(float2& dst, uint16_t lo, uint16_t hi, int bf16) {
  dst = bf16 ? make_float2(gptq_bf16_bits_to_float(lo), gptq_bf16_bits_to_float(hi))
             : make_float2(gptq_f16_bits_to_float(lo), gptq_f16_bits_to_float(hi));
}
/* acc + w.lo * a.lo + w.hi * a.hi; w is an exact (q - z) fp16 pair. */
__device__ __forceinline__ float tp_dot(__half2 w, float2 wf, uint32_t a, float acc) {
  (void)wf;
  return gptq_dot2_f32(w, gptq_h2_from_bits(a), acc);
}
__device__ __forceinline__ float tp_dot(__half2 w, float2 wf, float2 a, float acc) {
  (void)w;
  return fmaf(wf.y, a.y, fmaf(wf.x, a.x, acc));
}

template <int BITS>
__device__ __forceinline__ uint32_t tp_zero_pair(const int32_t* qzeros, int64_t zwords, int64_t g,
                                                  int64_t col, int zero_offset) {
  const int64_t bit = col * BITS; /* 2/4/8 bits never straddle a word */
  const uint32_t z = ((uint32_t)qzeros[g * zwords + (bit >> 5)] >> (bit & 31)) & ((1u << BITS) - 1u);
  /* 1024 + z in both halves; exact for z <= 256 (8-bit v1 zero 255 + 1) */
  return 0x64006400u + (z + (uint32_t)zero_offset) * 0x00010001u;
}

template <int BITS, int ACT, int MT>
__global__ GPTQ_LAUNCH_BOUNDS(kTpThreads, kTpMinBlocks(MT, BITS)) void gptq_transposed_kernel(tp_args p) {
  typedef typename tp_act<ACT>::pair_t pair_t;
  constexpr int TK = 512 / BITS;     /* rows per tile */
  constexpr int STEPS = TK / 16;     /* 16-row steps per tile */
  constexpr int PPW = 16 / BITS;     /* pairs per 32-bit word */
  constexpr uint32_t kPairMask = ((1u << BITS) - 1u) * 0x00010001u;
  constexpr int ACT_PAIRS = kTpActElems / 2;

  __shared__ pair_t s_act[ACT_PAIRS];      /* [MT][krange / 2] */
  __shared__ float s_red[16 * MT * 16];    /* [slot * 4 + q][m][col] */
  __shared__ int s_last;

  const int t = threadIdx.x;
  const int slot = t >> 6, lane = t & 63, q = lane >> 4, col = lane & 15;
  const int64_t strip = blockIdx.x, split = blockIdx.y;
  const int64_t col0 = strip * 16;
  const int width = (int)(p.n - col0 < 16 ? p.n - col0 : 16);
  const bool active = col < width;
  const int64_t ncol = col0 + col;
  const int64_t words_per_col = p.k * BITS / 32;
  const int tiles = (int)(p.k / TK);
  const int kt0 = (int)split * p.tiles_per_split;
  const int kt1 = kt0 + p.tiles_per_split < tiles ? kt0 + p.tiles_per_split : tiles;
  const int krange = (kt1 - kt0) * TK;
  const int64_t rows = p.m - p.m0 < MT ? p.m - p.m0 : MT;

  /* chunk q * width + col of tile kt: strip base + kt * 16 * width + 4 * chunk words */
  const uint4* wbase = reinterpret_cast<const uint4*>(p.qweight + col0 * words_per_col) +
                       (q * width + col);
  const int64_t tile_stride = 4 * (int64_t)width; /* uint4 per tile */

  int kt = kt0 + slot;
  uint4 cur = make_uint4(0u, 0u, 0u, 0u);
  if (active && kt < kt1) cur = wbase[kt * tile_stride];

  /* Stage activations of the split's rows as pairs (2i, 2i + 1), zeros past row m. A
   * fixed trip count, loads first: every thread's loads are in flight at once (one or,
   * with a_perm, two round trips), not one latency per loop iteration. */
  const int half = krange / 2;
  constexpr int PER = ACT_PAIRS / kTpThreads;
  uint16_t lo[PER], hi[PER];
  int slot_of[PER];
#pragma unroll
  for (int it = 0; it < PER; ++it) {
    const int i = it * kTpThreads + t;
    const int m = i / half, pr = i - m * half;
    lo[it] = hi[it] = 0;
    slot_of[it] = i < (int)MT * half ? i : -1;
    if (m < rows && i < (int)MT * half) {
      const int64_t r = (int64_t)kt0 * TK + 2 * pr;
      int64_t s0 = r, s1 = r + 1;
      if (p.a_perm) {
        s0 = clamp_index(p.a_perm[r], p.k, p.errors, true);
        s1 = clamp_index(p.a_perm[r + 1], p.k, p.errors, true);
      }
      const uint16_t* arow = p.a + (p.m0 + m) * p.lda;
      lo[it] = arow[s0];
      hi[it] = arow[s1];
    }
  }
#pragma unroll
  for (int it = 0; it < PER; ++it)
    if (slot_of[it] >= 0) tp_store_pair(s_act[slot_of[it]], lo[it], hi[it], ACT == kTpBF16);
  __syncthreads();

  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;

  const int64_t zwords = p.n * BITS / 32;
  const int gs = (int)p.group_size; /* rows fit in int32 (K < 2^31) */
  /* zero pair and scale of the first group of a tile, loaded one tile ahead with the
   * weights; groups shorter than a tile load the rest on demand (whole 16-row steps) */
  int g = kt * TK / gs;
  uint32_t zh = 0, nzh = 0;
  float sc = 0.0f, nsc = 0.0f;
  if (active && kt < kt1) {
    zh = tp_zero_pair<BITS>(p.qzeros, zwords, g, ncol, p.zero_offset);
    sc = load_scale(p.scales, (int64_t)g * p.n + ncol, p.scale_bf16);
  }
  for (; kt < kt1; kt += kTpSlots) {
    uint4 nxt = cur;
    const int next_g = (kt + kTpSlots) * TK / gs;
    if (active && kt + kTpSlots < kt1) {
      nxt = wbase[(kt + kTpSlots) * tile_stride];
      nzh = tp_zero_pair<BITS>(p.qzeros, zwords, next_g, ncol, p.zero_offset);
      nsc = load_scale(p.scales, (int64_t)next_g * p.n + ncol, p.scale_bf16);
    }
    if (active) {
      const uint32_t wv[4] = {cur.x, cur.y, cur.z, cur.w};
      const int row0 = kt * TK;
      int g_end = (g + 1) * gs;
      const int krel = (kt - kt0) * TK + 4 * q; /* row of pair h = 0, step 0, in the split */
#pragma unroll
      for (int st = 0; st < STEPS; ++st) {
        if (row0 + 16 * st >= g_end) { /* groups are whole steps (group_size % 16 == 0) */
          ++g;
          g_end += gs;
          zh = tp_zero_pair<BITS>(p.qzeros, zwords, g, ncol, p.zero_offset);
          sc = load_scale(p.scales, (int64_t)g * p.n + ncol, p.scale_bf16);
        }
        float part[MT];
#pragma unroll
        for (int m = 0; m < MT; ++m) part[m] = 0.0f;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int pt = 2 * st + h;
          const uint32_t f = ((wv[pt / PPW] >> (BITS * (pt % PPW))) & kPairMask) | 0x64006400u;
          const __half2 w = __hsub2(gptq_h2_from_bits(f), gptq_h2_from_bits(zh));
          const float2 wf = __half22float2(w);
          const int pair = (krel + 16 * st + 2 * h) >> 1;
#pragma unroll
          for (int m = 0; m < MT; ++m) part[m] = tp_dot(w, wf, s_act[m * half + pair], part[m]);
        }
#pragma unroll
        for (int m = 0; m < MT; ++m) acc[m] = fmaf(part[m], sc, acc[m]);
      }
    }
    cur = nxt;
    g = next_g;
    zh = nzh;
    sc = nsc;
  }

  /* Block reduction: 16 partials per (row, column) in fixed (slot, q) order. */
#pragma unroll
  for (int m = 0; m < MT; ++m) s_red[((slot * 4 + q) * MT + m) * 16 + col] = acc[m];
  __syncthreads();
  const int om = t >> 4, oc = t & 15; /* output (row, column) of this thread */
  const bool writer = om < rows && oc < width;
  float sum = 0.0f;
  if (writer) {
#pragma unroll
    for (int i = 0; i < 16; ++i) sum += s_red[(i * MT + om) * 16 + oc];
  }
  const int64_t orow = p.m0 + om, on = col0 + oc;
  if (p.splits == 1) {
    if (writer)
      p.c[orow * p.ldc + on] = ACT == kTpF16 ? gptq_float_to_f16_bits(sum) : gptq_float_to_bf16_bits(sum);
    return;
  }
  if (writer) p.ws[(split * p.m + orow) * p.n + on] = sum;
  __threadfence();
  __syncthreads();
  if (t == 0) s_last = atomicAdd(&p.counters[strip], 1u) == (unsigned)(p.splits - 1);
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  if (writer) {
    float total = 0.0f;
    for (int sp = 0; sp < p.splits; ++sp) total += gptq_load_coherent(&p.ws[(sp * p.m + orow) * p.n + on]);
    p.c[orow * p.ldc + on] = ACT == kTpF16 ? gptq_float_to_f16_bits(total) : gptq_float_to_bf16_bits(total);
  }
  if (t == 0) p.counters[strip] = 0u; /* ready for the next launch on this stream */
}

/* ---- dequantize layout 2: out[a_perm ? a_perm[r] : r, n] = w[r, n] ---------------------- */
template <int BITS, int ACT>
__global__ GPTQ_LAUNCH_BOUNDS(kTpThreads, 1) void gptq_transposed_dequant_kernel(tp_args p) {
  constexpr int TK = 512 / BITS, STEPS = TK / 16;
  const int t = threadIdx.x, q = (t & 63) >> 4, col = t & 15;
  const int64_t col0 = (int64_t)blockIdx.x * 16;
  const int width = (int)(p.n - col0 < 16 ? p.n - col0 : 16);
  if (col >= width) return; /* no barriers in this kernel */
  const int64_t ncol = col0 + col, words_per_col = p.k * BITS / 32;
  const uint4* wbase = reinterpret_cast<const uint4*>(p.qweight + col0 * words_per_col) + (q * width + col);
  const int64_t zwords = p.n * BITS / 32;
  const int tiles = (int)(p.k / TK);
  for (int kt = blockIdx.y * kTpSlots + (t >> 6); kt < tiles; kt += gridDim.y * kTpSlots) {
    const uint4 v = wbase[kt * 4 * (int64_t)width];
    const uint32_t wv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4 * STEPS; ++i) { /* value i: step i / 4, j = i % 4 */
      const int st = i >> 2, j = i & 3, pt = 2 * st + (j >> 1), pos = pt % (16 / BITS);
      const uint32_t qv = (wv[pt / (16 / BITS)] >> (BITS * pos + 16 * (j & 1))) & ((1u << BITS) - 1u);
      const int64_t r = (int64_t)kt * TK + 16 * st + 4 * q + j;
      const int64_t g = r / p.group_size;
      const int64_t bit = ncol * BITS;
      const int z = (int)(((uint32_t)p.qzeros[g * zwords + (bit >> 5)] >> (bit & 31)) & ((1u << BITS) - 1u)) +
                    p.zero_offset;
      const float w = (float)((int)qv - z) * load_scale(p.scales, g * p.n + ncol, p.scale_bf16);
      const int64_t dst = p.a_perm ? clamp_index(p.a_perm[r], p.k, p.errors, t == 0) : r;
      p.c[dst * p.ldc + ncol] = ACT == kTpF16 ? gptq_float_to_f16_bits(w) : gptq_float_to_bf16_bits(w);
    }
  }
}

/* ==== host side ========================================================================= */

static int64_t tp_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Counter region of (device, stream): handed out once per pair, never reused. Each
 * thread remembers its last answer, so a decode loop on one stream takes no lock. */
static unsigned* tp_counter_region(void* stream) {
  static std::mutex mu;
  static int used = 0;
  static int dev_of[kTpCounterRegions];
  static void* stream_of[kTpCounterRegions];
  static unsigned* base_of[kTpCounterRegions];
  thread_local int last_dev = -1;
  thread_local void* last_stream = nullptr;
  thread_local unsigned* last_region = nullptr;
  int dev = 0;
  if (gptq_get_device(&dev) != GPTQ_SUCCESS) {
    (void)gptq_get_last_error();
    return nullptr;
  }
  if (last_region && dev == last_dev && stream == last_stream) return last_region;
  std::lock_guard<std::mutex> lock(mu);
  int region = -1;
  for (int i = 0; i < used && region < 0; ++i)
    if (dev_of[i] == dev && stream_of[i] == stream) region = i;
  if (region < 0) {
    if (used == kTpCounterRegions) return nullptr;
    void* base = nullptr; /* this device's copy of g_tp_counters */
    if (gptq_get_symbol_address(&base, g_tp_counters) != GPTQ_SUCCESS) {
      (void)gptq_get_last_error();
      return nullptr;
    }
    region = used++;
    dev_of[region] = dev;
    stream_of[region] = stream;
    base_of[region] = (unsigned*)base + (size_t)region * kTpCountersPerRegion;
  }
  last_dev = dev;
  last_stream = stream;
  last_region = base_of[region];
  return last_region;
}

/* Largest row tile compiled per (bits, activation): wider tiles of 2-bit weights and of
 * 4-bit weights with bf16 activations (fp32 pairs) spill to scratch on gfx908. */
static int tp_max_mt(int bits, int act) {
  if (bits == 2) return act == kTpBF16 ? 2 : 4;
  return (bits == 4 && act == kTpBF16) ? 4 : 16;
}

struct tp_plan {
  int mt;               /* rows per pass: 1, 2, 4, 8 or 16 */
  int64_t strips;       /* grid.x */
  int splits;           /* grid.y */
  int tiles_per_split;
  size_t ws_bytes;
};

static tp_plan tp_make_plan(const gptq_problem* p, int sm_count) {
  tp_plan pl;
  const int64_t m = p->m < kTpMaxM ? p->m : kTpMaxM;
  pl.mt = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : m <= 8 ? 8 : 16;
  const int max_mt = tp_max_mt(p->bits, p->a_dtype == GPTQ_BF16 ? kTpBF16 : kTpF16);
  if (pl.mt > max_mt) pl.mt = max_mt; /* more rows: passes of max_mt (each re-reads W) */
  const int tk = 512 / p->bits;
  const int64_t tiles = p->k / tk;
  pl.strips = tp_ceil_div(p->n, 16);
  /* LDS holds mt x split rows of activations; fill the GPU with strips x splits blocks */
  int64_t cap = (kTpActElems / pl.mt) / tk;
  if (cap < 1) cap = 1;
  int64_t splits = tp_ceil_div(tiles, cap);
  const int64_t fill = tp_ceil_div((int64_t)sm_count * kTpBlocksPerSm, pl.strips);
  if (fill > splits) splits = fill < tiles ? fill : tiles;
  if (splits < 1) splits = 1;
  pl.tiles_per_split = (int)tp_ceil_div(tiles, splits);
  pl.splits = (int)tp_ceil_div(tiles, pl.tiles_per_split);
  pl.ws_bytes = pl.splits > 1 ? (size_t)pl.splits * (size_t)p->m * (size_t)p->n * sizeof(float) : 0;
  return pl;
}

typedef void (*tp_kernel_fn)(tp_args);

static tp_kernel_fn tp_pick(int bits, int act, int mt) {
#define GPTQ_TP_CASE(B, A, M) \
  if (bits == B && act == A && mt == M) return gptq_transposed_kernel<B, A, M>;
#define GPTQ_TP_CASES(B, A) \
  GPTQ_TP_CASE(B, A, 1) GPTQ_TP_CASE(B, A, 2) GPTQ_TP_CASE(B, A, 4) GPTQ_TP_CASE(B, A, 8) GPTQ_TP_CASE(B, A, 16)
  GPTQ_TP_CASES(4, kTpF16)
  GPTQ_TP_CASE(4, kTpBF16, 1) GPTQ_TP_CASE(4, kTpBF16, 2) GPTQ_TP_CASE(4, kTpBF16, 4)
  GPTQ_TP_CASES(8, kTpF16)
  GPTQ_TP_CASES(8, kTpBF16)
  GPTQ_TP_CASE(2, kTpF16, 1) GPTQ_TP_CASE(2, kTpF16, 2) GPTQ_TP_CASE(2, kTpF16, 4)
  GPTQ_TP_CASE(2, kTpBF16, 1) GPTQ_TP_CASE(2, kTpBF16, 2)
#undef GPTQ_TP_CASES
#undef GPTQ_TP_CASE
  return nullptr;
}

/* What layout 2 and the kernels' group handling need (shapes only); NULL when met. */
static const char* tp_layout_unsupported(const gptq_problem* p) {
  if (p->bits != 2 && p->bits != 4 && p->bits != 8) return "covers bits 2, 4 and 8 only";
  if (p->k % (512 / p->bits) != 0) return "K must be a multiple of the 512 / bits row tile";
  if (p->n % 4 != 0) return "N must be a multiple of 4";
  if (p->group_index) return "needs groups of group_size consecutive rows (no group_index)";
  if (p->group_size % 16 != 0) return "group size must be a multiple of 16";
  return nullptr;
}

const char* gptq_gpu_transposed_unsupported(const gptq_problem* p) {
  if (!p) return "no problem";
  const char* why = tp_layout_unsupported(p);
  if (why) return why;
  if (tp_ceil_div(p->n, 16) > kTpCountersPerRegion) return "N must be at most 131072 (split-K counters)";
  return nullptr;
}

/* Memory safety of a launch: the shared checks, the kernel's requirements, pointers. */
static gptq_status tp_preconditions(const gptq_problem* p, bool gemm) {
  gptq_status st = gptq_check_problem(p);
  if (st != GPTQ_OK) return st;
  if (gemm ? gptq_gpu_transposed_unsupported(p) : tp_layout_unsupported(p)) return GPTQ_ERR_SHAPE;
  if (!p->qweight || !p->qzeros || !p->scales || !p->c) return GPTQ_ERR_SHAPE;
  if (((uintptr_t)p->qweight & 15u) != 0) return GPTQ_ERR_ALIGNMENT;
  return GPTQ_OK;
}

static tp_args tp_make_args(const gptq_problem* p) {
  tp_args a;
  a.a = (const uint16_t*)p->a;
  a.qweight = p->qweight;
  a.qzeros = p->qzeros;
  a.scales = (const uint16_t*)p->scales;
  a.a_perm = p->a_perm;
  a.c = (uint16_t*)p->c;
  a.ws = nullptr;
  a.counters = nullptr;
  a.errors = p->index_errors;
  a.m = p->m;
  a.n = p->n;
  a.k = p->k;
  a.lda = p->lda;
  a.ldc = p->ldc;
  a.group_size = p->group_size;
  a.m0 = 0;
  a.tiles_per_split = 1;
  a.splits = 1;
  a.zero_offset = p->zero_offset;
  a.scale_bf16 = p->scale_dtype == GPTQ_BF16;
  return a;
}

size_t gptq_gpu_transposed_workspace_bytes(const gptq_problem* p, int sm_count) {
  if (!p || p->m <= 0 || tp_preconditions(p, true) != GPTQ_OK) return 0;
  return tp_make_plan(p, sm_count).ws_bytes;
}

gptq_status gptq_gpu_transposed_gemm(const gptq_problem* p, int sm_count, void* workspace,
                                     size_t workspace_bytes, void* stream) {
  if (!p) return GPTQ_ERR_SHAPE;
  if (p->m == 0) return GPTQ_OK;
  gptq_status st = tp_preconditions(p, true);
  if (st != GPTQ_OK) return st;
  if (!p->a || p->lda < p->k) return GPTQ_ERR_SHAPE;
  const tp_plan pl = tp_make_plan(p, sm_count);
  tp_args a = tp_make_args(p);
  a.splits = pl.splits;
  a.tiles_per_split = pl.tiles_per_split;
  if (pl.splits > 1) {
    if (!workspace || workspace_bytes < pl.ws_bytes) return GPTQ_ERR_SHAPE;
    a.ws = (float*)workspace;
    a.counters = tp_counter_region(stream);
    if (!a.counters) return GPTQ_ERR_LAUNCH;
  }
  const int act = p->a_dtype == GPTQ_BF16 ? kTpBF16 : kTpF16;
  const tp_kernel_fn fn = tp_pick(p->bits, act, pl.mt);
  if (!fn) return GPTQ_ERR_NO_KERNEL;
  const dim3 grid((unsigned)pl.strips, (unsigned)pl.splits);
  /* M beyond one pass: passes of pl.mt rows, in order on the stream (each re-reads W) */
  for (int64_t m0 = 0; m0 < p->m; m0 += pl.mt) {
    a.m0 = m0;
    fn<<<grid, kTpThreads, 0, (gptq_stream_t)stream>>>(a);
    const gptq_status st = gptq_launch_status();
    if (st != GPTQ_OK) return st;
  }
  return GPTQ_OK;
}

gptq_status gptq_gpu_transposed_dequantize(const gptq_problem* p, void* stream) {
  if (!p) return GPTQ_ERR_SHAPE;
  gptq_status st = tp_preconditions(p, false);
  if (st != GPTQ_OK) return st;
  tp_args a = tp_make_args(p);
  const int64_t tiles = p->k / (512 / p->bits);
  int64_t ys = tp_ceil_div(tiles, kTpSlots);
  if (ys > 65535) ys = 65535;
  const dim3 grid((unsigned)tp_ceil_div(p->n, 16), (unsigned)ys);
  const gptq_stream_t s = (gptq_stream_t)stream;
  gptq_dispatch_bits_act(p->bits, p->a_dtype == GPTQ_BF16, [&](auto bits, auto act) {
    if constexpr (decltype(bits)::value != 3) /* no layout 2 for 3-bit (rejected above) */
      gptq_transposed_dequant_kernel<decltype(bits)::value, decltype(act)::value><<<grid, kTpThreads, 0, s>>>(a);
  });
  return gptq_launch_status();
}

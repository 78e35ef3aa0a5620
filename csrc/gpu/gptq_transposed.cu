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
 * x ~0.8 us latency needs per SM of an H200. gfx908: every row tile fits 64 VGPRs and
 * 16 KiB of LDS (one buffer for activations and reduction), so >= 4 blocks = 16 waves
 * per CU are resident (4-6 waves/SIMD at M <= 8, resource report); even counting only
 * the next tile's chunk, 1024 lanes x 16 B = 16 KiB per CU are in flight against ~8 KiB
 * per CU for 1.2 TB/s x ~700 cycles over 120 CUs. The steps of a tile run as a rolled
 * loop there: latency is covered by occupancy, not by unrolling. (Reasoned for gfx908,
 * not measured.)
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
 * gfx908: 4 = 4 waves/SIMD (<= 64 VGPRs) at every row tile, without spills (the step
 * loops below stay rolled there; resource report). sm_90: 4 (<= 64 registers) up to
 * M = 2, then 2-3 (ptxas spills at 64). */
static constexpr int kTpMinBlocks(int mt) { return GPTQ_TARGET_AMD ? 4 : (mt >= 8 ? 2 : mt >= 4 ? 3 : 4); }
/* Unroll the 16-row steps of a tile: sm_90 yes (its registers fit a tile). gfx908 no: an
 * unrolled tile lets the compiler hoist every step's LDS loads and group reloads ahead of
 * the math (95-127 VGPRs + AGPR spills at M <= 8); rolled, one step's activations are
 * live (<= 64 VGPRs: 4 waves/SIMD hide the latency instead). */
static constexpr bool kTpUnrollSteps = !GPTQ_TARGET_AMD;
/* Split-K aims at this many blocks per SM/CU (sm_90: 8 x 256 = 2048 threads). */
static constexpr int kTpBlocksPerSm = GPTQ_TARGET_AMD ? 4 : 8;

/* Per-strip arrival counters, one region per (device, stream): launches on one stream
 * are ordered, and each launch leaves its counters at 0 (the last block resets them). */
static constexpr int kTpCounterRegions = 256;
static constexpr int kTpCountersPerRegion = 8192; /* strips per launch: N <= 131072 */
__device__ unsigned g_tp_counters[kTpCounterRegions * kTpCountersPerRegion];

enum { kTpF16 = 0, kTpBF16 = 1 };

/* Phase timestamps of the mma kernel, per wave: a measurement probe that
 * benchmarks/micro/tp_timeline.cu defines before including this file (NOTES 52); the
 * extension compiles it away. `dep`: a value the mark waits for (0.0f: none). */
#ifndef GPTQ_TP_MARK
#define GPTQ_TP_MARK(event, dep) ((void)0)
#endif

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
  int kslices;             /* mma: waves per strip, each a slice of the split's tiles */
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

/* Activation pairs i and i + 1 (i even) in one LDS load: 8 bytes (fp16 pairs) or 16
 * (fp32 pairs), one instruction with an immediate row offset instead of two. */
__device__ __forceinline__ void tp_load_pairs(const uint32_t* s, uint32_t& a0, uint32_t& a1) {
  const uint2 v = *reinterpret_cast<const uint2*>(s);
  a0 = v.x;
  a1 = v.y;
}
__device__ __forceinline__ void tp_load_pairs(const float2* s, float2& a0, float2& a1) {
  const float4 v = *reinterpret_cast<const float4*>(s);
  a0 = make_float2(v.x, v.y);
  a1 = make_float2(v.z, v.w);
}

/* Stage activations a[m0 + m, r0 + 2i .. 2i + 1] (a_perm gathered) as pairs into
 * s_act[m * stride + i] for m < rows_stage, i < half; zeros for m >= rows. In batches of
 * PER pairs per thread, loads first: a batch's loads are all in flight at once (one or,
 * with a_perm, two round trips), not one latency per element. tp_act_load / tp_act_store
 * are one batch's two halves, for callers that compute between them. */
template <int PER>
__device__ __forceinline__ void tp_act_load(uint32_t (&v)[PER], const tp_args& p, int64_t r0, int half,
                                            int rows, int total, int base) {
  const int t = threadIdx.x;
  /* m = i / half without an integer division per element: (i + 0.5) / half is at least
   * 0.5 / half from an integer, far above fp32 rounding for i, half < 2^16 */
  const float inv_half = 1.0f / (float)half;
#pragma unroll
  for (int it = 0; it < PER; ++it) {
    const int i = base + it * kTpThreads + t;
    const int m = (int)(((float)i + 0.5f) * inv_half), pr = i - m * half;
    v[it] = 0; /* lo | hi << 16 */
    if (m < rows && i < total) {
      const int64_t r = r0 + 2 * pr;
      int64_t s0 = r, s1 = r + 1;
      if (p.a_perm) {
        s0 = clamp_index(p.a_perm[r], p.k, p.errors, true);
        s1 = clamp_index(p.a_perm[r + 1], p.k, p.errors, true);
      }
      const uint16_t* arow = p.a + (p.m0 + m) * p.lda;
      v[it] = (uint32_t)arow[s0] | ((uint32_t)arow[s1] << 16);
    }
  }
}
template <int PER, int ACT, typename pair_t>
__device__ __forceinline__ void tp_act_store(pair_t* s_act, int stride, const uint32_t (&v)[PER], int half,
                                             int total, int base) {
  const int t = threadIdx.x;
  const float inv_half = 1.0f / (float)half;
#pragma unroll
  for (int it = 0; it < PER; ++it) {
    const int i = base + it * kTpThreads + t;
    const int m = (int)(((float)i + 0.5f) * inv_half), pr = i - m * half;
    if (i < total)
      tp_store_pair(s_act[m * stride + pr], (uint16_t)(v[it] & 0xffffu), (uint16_t)(v[it] >> 16), ACT == kTpBF16);
  }
}
template <int PER, int ACT, typename pair_t>
__device__ __forceinline__ void tp_stage_act(pair_t* s_act, int stride, const tp_args& p, int64_t r0,
                                             int half, int rows, int rows_stage) {
  const int total = rows_stage * half;
  for (int base = 0; base < total; base += PER * kTpThreads) {
    uint32_t v[PER];
    tp_act_load<PER>(v, p, r0, half, rows, total, base);
    tp_act_store<PER, ACT>(s_act, stride, v, half, total, base);
  }
}

/* Split-K arrival, called by every thread after its partials are stored: true (in every
 * thread) for the last block of the counter's column tile to arrive, which may then read
 * all blocks' partials (compat.h: one acquire-release arrival per block, NOTES 53). */
__device__ __forceinline__ bool tp_arrive_last(unsigned* counter, int splits, int* s_last) {
  __syncthreads();
  if (threadIdx.x == 0) *s_last = gptq_arrive_acq_rel(counter) == (unsigned)(splits - 1);
  __syncthreads();
  return *s_last != 0;
}

/* An output's split-K partials summed in split order (ws: split 0's, `stride` floats per
 * split), BATCH loads in flight before their adds: ceil(splits / BATCH) dependent L2 round
 * trips instead of `splits`; the same adds in the same order whatever BATCH is. The vector
 * kernels take 1 (they sit at their 64-register cap on sm_90; batches that re-read the last
 * split measured slower where splits are few, NOTES entry 14); the mma tail 8 (entry 30). */
template <int BATCH>
__device__ __forceinline__ float tp_sum_partials(const float* ws, int64_t stride, int splits) {
  float total = 0.0f;
  for (int sp0 = 0; sp0 < splits; sp0 += BATCH) {
    float part[BATCH];
#pragma unroll
    for (int j = 0; j < BATCH; ++j) part[j] = sp0 + j < splits ? gptq_load_coherent(ws + (sp0 + j) * stride) : 0.0f;
#pragma unroll
    for (int j = 0; j < BATCH; ++j)
      if (sp0 + j < splits) total += part[j];
  }
  return total;
}

/* A zero point as the step decoders want it: zh = 1024 + z in both fp16 halves (128 + z
 * in bf16 for bf16 activations at <= 4 bits), zl = -(64 + z) in fp16 (4-bit fp16 only). */
struct tp_zero {
  uint32_t zh, zl;
};
template <int BITS, int ACT>
__device__ __forceinline__ tp_zero tp_make_zero(uint32_t z) { /* z includes the v1 offset */
  tp_zero r;
  r.zh = (ACT == kTpBF16 && BITS <= 4 ? 0x43004300u : 0x64006400u) + z * 0x00010001u;
  r.zl = (0xd400u + 16u * z) * 0x00010001u; /* -(64 + z): exponent 6, unit 1/16 (z < 64) */
  return r;
}

/* Zero pair and scale of group g for column col of a strip: the group's row is a
 * per-block (scalar) pointer, the column a small per-lane offset, so no 64-bit address
 * is held per lane across the tile loop (gfx908: 2 VGPRs each). 16 columns x 2/4/8 bits
 * are whole zero words, and a column's bits never straddle a word. */
template <int BITS>
struct tp_group_ref {
  const int32_t* zeros;   /* qzeros + the strip's first word */
  const uint16_t* scales; /* scales + the strip's first column */
  int64_t zwords, n;
  uint32_t zbyte, sbyte; /* the column's byte offsets in a row */
  int zshift, zero_offset, scale_bf16;
  __device__ __forceinline__ tp_group_ref(const tp_args& p, int64_t col0, int c)
      : zeros(p.qzeros + col0 * BITS / 32), scales(p.scales + col0), zwords(p.n * BITS / 32), n(p.n),
        zbyte((uint32_t)(c * BITS / 32) * 4u), sbyte((uint32_t)c * 2u), zshift(c * BITS % 32),
        zero_offset(p.zero_offset), scale_bf16(p.scale_bf16) {}
  /* Raw loads and their decoding apart: a load ahead of use keeps the raw word, since
   * decoding it at once would wait out the load there (NOTES 21). */
  __device__ __forceinline__ uint32_t zero_word(int g) const {
    const char* row = reinterpret_cast<const char*>(zeros + (int64_t)g * zwords);
    return *reinterpret_cast<const uint32_t*>(row + zbyte);
  }
  /* fp16 zero pairs (zh exact for z <= 256: 8-bit v1 zero 255 + 1) */
  __device__ __forceinline__ tp_zero zero_of_word(uint32_t word) const {
    return tp_make_zero<BITS, kTpF16>(((word >> zshift) & ((1u << BITS) - 1u)) + (uint32_t)zero_offset);
  }
  __device__ __forceinline__ uint32_t scale_bits(int g) const {
    const char* row = reinterpret_cast<const char*>(scales + (int64_t)g * n);
    return *reinterpret_cast<const uint16_t*>(row + sbyte);
  }
  __device__ __forceinline__ tp_zero zero(int g) const { return zero_of_word(zero_word(g)); }
  __device__ __forceinline__ float scale(int g) const { return scale_from_bits(scale_bits(g), scale_bf16); }
};

/* How a kernel of the family feeds the shared tile math (the registry's `transposed` and
 * its issue-12 variants; csrc/gpu/gptq_gpu.h):
 *   kFeedLdg16    transposed, vectorized:load=16: one 16-byte load per lane per tile
 *   kFeedLdg8     vectorized:load=8: the same chunk as two 8-byte loads
 *   kFeedLds      coalesced: thread t loads 16-byte unit t of the block's 4-tile window (a
 *                 strip's tiles are contiguous), stores it to LDS; lanes read their chunk
 *   kFeedShuffle  warp_shuffle: no activation LDS; lane (q, c) holds activation pairs
 *                 u = c + 16 h (u = 2 step + j) of its tile rows and the 16 lanes of a q
 *                 group broadcast them per step by shuffles; partial sums over q by
 *                 shuffle xor, only the per-wave sums pass through LDS */
enum { kFeedLdg16 = 0, kFeedLdg8 = 1, kFeedLds = 2, kFeedShuffle = 3 };
/* warp_shuffle holds 2 x (2 steps / 16) x MT activation registers (next tile in flight):
 * on gfx908 M tiles >= 4 take 2 blocks per CU (<= 128 VGPRs) instead of spilling at 64. */
static constexpr int kTpMinBlocksFeed(int mt, int feed) {
  return (GPTQ_TARGET_AMD && feed == kFeedShuffle && mt >= 4) ? 2 : kTpMinBlocks(mt);
}

template <int BITS, int ACT, int MT, int FEED>
__global__ GPTQ_LAUNCH_BOUNDS(kTpThreads, kTpMinBlocksFeed(MT, FEED)) void gptq_transposed_kernel(tp_args p) {
  typedef typename tp_act<ACT>::pair_t pair_t;
  constexpr bool kShuffle = FEED == kFeedShuffle, kStaged = FEED == kFeedLds;
  constexpr int TK = 512 / BITS;     /* rows per tile */
  constexpr int STEPS = TK / 16;     /* 16-row steps per tile */
  constexpr int PPW = 16 / BITS;     /* pairs per 32-bit word */
  constexpr int SPW = PPW / 2;       /* 16-row steps per word */
  constexpr int WORD_UNROLL = kTpUnrollSteps ? 4 : 1, STEP_UNROLL = kTpUnrollSteps ? SPW : 1;
  constexpr uint32_t kPairMask = ((1u << BITS) - 1u) * 0x00010001u;
  constexpr int ACT_PAIRS = kTpActElems / 2;
  constexpr int STRIDE = ACT_PAIRS / MT; /* pairs per staged row: >= a split's K / 2 */
  /* partials per (row, column) that reach LDS: 16 = [slot * 4 + q]; shuffles: 8 = [slot * 2 +
   * q / 2] (a wave64 fills half: its xor-32 shuffle already summed q / 2) */
  constexpr int RED = (kShuffle ? 8 : 16) * MT * 16;
  constexpr int ACT_BYTES = kShuffle ? 0 : ACT_PAIRS * (int)sizeof(pair_t);
  constexpr int SMEM = ACT_BYTES > RED * 4 ? ACT_BYTES : RED * 4;
  constexpr int HOLD = kShuffle ? (2 * STEPS + 15) / 16 : 1; /* activation pairs per lane per row */
  static_assert(HOLD <= 2, "a lane holds at most two pairs per row (2-bit tiles)");

  /* One LDS buffer: activations, then (after a barrier) the block reduction, then the
   * split-K flag (written after the barrier that ends the reduction's reads). Separate
   * arrays would add MT KiB + 4 B per block: over 16 KiB, gfx908 (64 KiB LDS per CU)
   * would fit 3 blocks, not 4. */
  __shared__ uint4 s_mem[SMEM / 16];
  __shared__ uint4 s_w[kStaged ? kTpThreads : 1]; /* coalesced: the block's 4-tile window */
  pair_t* s_act = reinterpret_cast<pair_t*>(s_mem);
  float* s_red = reinterpret_cast<float*>(s_mem);
  int* s_last = reinterpret_cast<int*>(s_mem);

  const int t = threadIdx.x;
  const int slot = gptq_wave_uniform(t >> 6), lane = t & 63, q = lane >> 4, col = lane & 15;
  const int64_t strip = blockIdx.x, split = blockIdx.y;
  const int64_t col0 = strip * 16;
  const int width = (int)(p.n - col0 < 16 ? p.n - col0 : 16);
  const bool active = col < width;
  const int64_t words_per_col = p.k * BITS / 32;
  const int tiles = (int)(p.k / TK);
  const int kt0 = (int)split * p.tiles_per_split;
  const int kt1 = kt0 + p.tiles_per_split < tiles ? kt0 + p.tiles_per_split : tiles;
  const int krange = (kt1 - kt0) * TK;
  const int64_t rows = p.m - p.m0 < MT ? p.m - p.m0 : MT;

  /* chunk q * width + col of tile kt: 16-byte unit kt * 4 * width + q * width + col of
   * the strip (< K * bits / 8 < 2^31); per lane only the 32-bit wlane is held */
  const uint4* wstrip = reinterpret_cast<const uint4*>(p.qweight + col0 * words_per_col);
  const int wlane = q * width + col, tile_stride = 4 * width;
  auto chunk = [&](int tile) {
    const int32_t* src = reinterpret_cast<const int32_t*>(wstrip + (tile * tile_stride + wlane));
    return FEED == kFeedLdg8 ? gptq_ld_2x_v2(src) : gptq_ld_v4(src);
  };
  /* coalesced: unit t of the window of tiles base .. base + 3 (contiguous in the strip) */
  auto window_unit = [&](int base) {
    const int n_tiles = kt1 - base < kTpSlots ? kt1 - base : kTpSlots;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (t < n_tiles * tile_stride)
      v = gptq_ld_v4(reinterpret_cast<const int32_t*>(wstrip + ((int64_t)base * tile_stride + t)));
    return v;
  };
  /* warp_shuffle: this lane's activation pairs of a tile, rows tile * TK + 16 st + 4 q + 2 j
   * (+1) for u = 2 st + j = col + 16 h; every lane loads (all are shuffle sources) */
  auto load_held = [&](int tile, uint32_t (&dst)[HOLD][MT]) {
#pragma unroll
    for (int h = 0; h < HOLD; ++h) {
      const int u = col + 16 * h;
      const bool valid = tile < kt1 && u < 2 * STEPS;
      int64_t s0 = 0, s1 = 0;
      if (valid) {
        const int64_t r = (int64_t)tile * TK + 16 * (u >> 1) + 4 * q + 2 * (u & 1);
        s0 = r;
        s1 = r + 1;
        if (p.a_perm) {
          s0 = clamp_index(p.a_perm[r], p.k, p.errors, true);
          s1 = clamp_index(p.a_perm[r + 1], p.k, p.errors, true);
        }
      }
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        dst[h][m] = 0u;
        if (valid && m < rows) {
          const uint16_t* arow = p.a + (p.m0 + m) * p.lda;
          dst[h][m] = (uint32_t)arow[s0] | ((uint32_t)arow[s1] << 16);
        }
      }
    }
  };

  int kt = kt0 + slot;
  uint4 cur = make_uint4(0u, 0u, 0u, 0u), staged = cur;
  uint32_t held[HOLD][MT];
  if constexpr (kStaged) staged = window_unit(kt0);
  else if (active && kt < kt1) cur = chunk(kt);
  if constexpr (kShuffle) {
    load_held(kt, held);
  } else {
    tp_stage_act<kTpActElems / 2 / kTpThreads, ACT>(s_act, STRIDE, p, (int64_t)kt0 * TK, krange / 2,
                                                    (int)rows, MT);
    __syncthreads();
  }

  float acc[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) acc[m] = 0.0f;

  const tp_group_ref<BITS> gr(p, col0, col);
  const int gs = (int)p.group_size; /* rows fit in int32 (K < 2^31) */
  /* zero pair and scale of the first group of a tile, loaded one tile ahead with the
   * weights; groups shorter than a tile load the rest on demand (whole 16-row steps) */
  int g = kt * TK / gs;
  tp_zero zr = {0u, 0u};
  float sc = 0.0f;
  uint32_t nzword = 0u, nsbits = 0u; /* the next tile's, raw */
  if (active && kt < kt1) {
    zr = gr.zero(g);
    sc = gr.scale(g);
  }
  /* the thread's activation pairs of step 0: row 4 q of its tile in the split */
  const pair_t* a_lane = s_act + 2 * q;

  /* d: the running group's sums, folded into acc x scale when the group ends or the tile
   * does: one multiply per group and row instead of a zeroed sum and a multiply per step.
   * gfx908 has the registers for d up to M tile 8 with fp16 activations, 4 with bf16 (fp32
   * pairs); past that it would move VGPRs to AGPRs, so those tiles scale every step. */
  constexpr bool kGroupSums = !GPTQ_TARGET_AMD || MT <= 4 || (MT == 8 && ACT == kTpF16);
  float d[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) d[m] = 0.0f;
  auto fold = [&]() {
    if constexpr (kGroupSums) {
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        acc[m] = fmaf(d[m], sc, acc[m]);
        d[m] = 0.0f;
      }
    }
  };
  /* One tile: 16-row steps of (q - z) pairs x activation pairs into acc. */
  auto tile_math = [&](const uint4& wv) {
    /* w: the word in use, shifted down one step (2 pairs) at a time, then the next word
     * rotates in: constant register names for a rolled loop (gfx908 has no cheap indexed
     * register read) */
    uint32_t w = wv.x, w1 = wv.y, w2 = wv.z, w3 = wv.w;
    const int row0 = kt * TK;
    int g_end = (g + 1) * gs;
    const pair_t* a_step = a_lane + (kt - kt0) * (TK / 2);
#pragma unroll WORD_UNROLL
    for (int wi = 0; wi < 4; ++wi) {
#pragma unroll STEP_UNROLL
      for (int s = 0; s < SPW; ++s) {
        const int st = wi * SPW + s;
        if (row0 + 16 * st >= g_end) { /* groups are whole steps (group_size % 16 == 0) */
          fold();
          ++g;
          g_end += gs;
          if (active) {
            zr = gr.zero(g);
            sc = gr.scale(g);
          }
        }
        /* pairs 2 st and 2 st + 1 (bits 0 and BITS of w) as exact (q - z) fp16 pairs; 4-bit
         * odd pairs in place: 0x6400 | q << 4 = 1024 + 16 q, x 1/16 - (64 + z) in one fma
         * (no shift; gfx908: v_and_or_b32 + v_pk_fma_f16) */
        const __half2 e0 = __hsub2(gptq_h2_from_bits(gptq_and_or<kPairMask>(w, 0x64006400u)), gptq_h2_from_bits(zr.zh));
        const __half2 e1 =
            BITS == 4 ? __hfma2(gptq_h2_from_bits(gptq_and_or<(kPairMask << 4)>(w, 0x64006400u)),
                                gptq_h2_from_bits(0x2c002c00u), gptq_h2_from_bits(zr.zl))
                      : __hsub2(gptq_h2_from_bits(gptq_and_or<kPairMask>(w >> BITS, 0x64006400u)),
                                gptq_h2_from_bits(zr.zh));
        const float2 ef0 = __half22float2(e0), ef1 = __half22float2(e1);
        /* the step's activations first (all in flight), then per row: pair 0, pair 1,
         * x scale */
        pair_t a0[MT], a1[MT];
        if constexpr (kShuffle) {
          /* pairs 2 st, 2 st + 1 of the q group sit in its lanes (2 st) % 16, + 1 */
          const bool upper = HOLD == 2 && st >= 8;
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            const uint32_t v = upper ? held[HOLD - 1][m] : held[0][m];
            const uint32_t x0 = gptq_shfl_group(v, (2 * st) & 15, 16);
            const uint32_t x1 = gptq_shfl_group(v, (2 * st + 1) & 15, 16);
            tp_store_pair(a0[m], (uint16_t)(x0 & 0xffffu), (uint16_t)(x0 >> 16), ACT == kTpBF16);
            tp_store_pair(a1[m], (uint16_t)(x1 & 0xffffu), (uint16_t)(x1 >> 16), ACT == kTpBF16);
          }
        } else {
#pragma unroll
          for (int m = 0; m < MT; ++m) tp_load_pairs(a_step + m * STRIDE, a0[m], a1[m]);
        }
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if constexpr (kGroupSums) d[m] = tp_dot(e1, ef1, a1[m], tp_dot(e0, ef0, a0[m], d[m]));
          else acc[m] = fmaf(tp_dot(e1, ef1, a1[m], tp_dot(e0, ef0, a0[m], 0.0f)), sc, acc[m]);
        }
        w >>= 2 * BITS;
        a_step += 8;
      }
      w = w1;
      w1 = w2;
      w2 = w3;
    }
    fold();
  };
  /* zero pair and scale of the slot's next tile, ahead of its use */
  auto prefetch_group = [&](int next) {
    if (active && next < kt1) {
      nzword = gr.zero_word(next * TK / gs);
      nsbits = gr.scale_bits(next * TK / gs);
    }
  };
  auto advance_group = [&](int next) {
    g = next * TK / gs;
    zr = gr.zero_of_word(nzword);
    sc = scale_from_bits(nsbits, gr.scale_bf16);
  };

  if constexpr (kStaged) {
    /* block-uniform trip count: every thread meets the barriers */
    for (int base = kt0; base < kt1; base += kTpSlots) {
      kt = base + slot;
      __syncthreads(); /* the previous window's reads are done */
      s_w[t] = staged;
      __syncthreads();
      if (base + kTpSlots < kt1) staged = window_unit(base + kTpSlots);
      prefetch_group(kt + kTpSlots);
      if (active && kt < kt1) tile_math(s_w[slot * tile_stride + wlane]);
      advance_group(kt + kTpSlots);
    }
  } else {
    /* trip count uniform per slot (whole waves): shuffles see every lane */
    for (; kt < kt1; kt += kTpSlots) {
      uint4 nxt = cur;
      if (active && kt + kTpSlots < kt1) nxt = chunk(kt + kTpSlots);
      prefetch_group(kt + kTpSlots);
      if constexpr (kShuffle) {
        uint32_t nheld[HOLD][MT];
        load_held(kt + kTpSlots, nheld);
        tile_math(cur); /* inactive lanes too: their sums are never stored */
#pragma unroll
        for (int h = 0; h < HOLD; ++h)
#pragma unroll
          for (int m = 0; m < MT; ++m) held[h][m] = nheld[h][m];
      } else if (active) {
        tile_math(cur);
      }
      cur = nxt;
      advance_group(kt + kTpSlots);
    }
  }

  const int om = t >> 4, oc = t & 15; /* output (row, column) of this thread */
  const bool writer = om < rows && oc < width;
  float sum = 0.0f;
  if constexpr (kShuffle) {
    /* q pairs (0, 1) and (2, 3) summed across lanes; a wave64 also sums the two pairs.
     * Either way each output adds (q01 + q23) per slot, slots in order: one result on
     * both wave sizes. */
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      float v = acc[m];
      v += gptq_shfl_xor(v, 16);
#if GPTQ_WAVE_SIZE >= 64
      v += gptq_shfl_xor(v, 32);
      if (q == 0) s_red[((slot * 2) * MT + m) * 16 + col] = v;
#else
      if ((q & 1) == 0) s_red[((slot * 2 + (q >> 1)) * MT + m) * 16 + col] = v;
#endif
    }
    __syncthreads();
    if (writer) {
#pragma unroll
      for (int sl = 0; sl < kTpSlots; ++sl) {
#if GPTQ_WAVE_SIZE >= 64
        sum += s_red[((sl * 2) * MT + om) * 16 + oc];
#else
        sum += s_red[((sl * 2) * MT + om) * 16 + oc] + s_red[((sl * 2 + 1) * MT + om) * 16 + oc];
#endif
      }
    }
  } else {
    /* Block reduction: 16 partials per (row, column) in fixed (slot, q) order. */
    __syncthreads(); /* s_red overlays s_act */
#pragma unroll
    for (int m = 0; m < MT; ++m) s_red[((slot * 4 + q) * MT + m) * 16 + col] = acc[m];
    __syncthreads();
    if (writer) {
#pragma unroll
      for (int i = 0; i < 16; ++i) sum += s_red[(i * MT + om) * 16 + oc];
    }
  }
  const int64_t orow = p.m0 + om, on = col0 + oc;
  if (p.splits == 1) {
    if (writer)
      p.c[orow * p.ldc + on] = ACT == kTpF16 ? gptq_float_to_f16_bits(sum) : gptq_float_to_bf16_bits(sum);
    return;
  }
  if (writer) p.ws[(split * p.m + orow) * p.n + on] = sum;
  if (!tp_arrive_last(&p.counters[strip], p.splits, s_last)) return;
  if (writer) {
    const float total = tp_sum_partials<1>(p.ws + orow * p.n + on, p.m * p.n, p.splits);
    p.c[orow * p.ldc + on] = ACT == kTpF16 ? gptq_float_to_f16_bits(total) : gptq_float_to_bf16_bits(total);
  }
  if (t == 0) p.counters[strip] = 0u; /* ready for the next launch on this stream */
}

/* ==== matrix-instruction variant: gptq_transposed_mma_kernel ============================
 *
 *   block = 256 threads = S waves (S = 8 warp32 on NVIDIA, 4 wave64 on gfx908)
 *         = S / kslices strips x kslices K slices; a strip's slices are summed in LDS
 *   wave  = one strip (16 columns): walks its slice of the K split's tiles in order
 *                                                                       grid.x = strip group
 *   lane  = GPTQ_MMA_CHUNKS chunks of each 1 KiB tile (2 on warp32, 1 on wave64): a wave's
 *           loads cover the whole tile                                  grid.y = K split
 *   per 16-row step, per GPTQ_MMA_ROWS activation rows, one matrix instruction with the
 *     roles swapped ("swap AB"): A = W^T, the 16 columns x 16 k of the tile (the lane's
 *     chunks, exact (q - z) pairs), B = activations^T, 16 k x ROWS rows (one 8-byte load
 *     from LDS or a: row = the lane's chunk column, k = 4 q), D = fp32: NVIDIA mma.sync m16n8k16
 *     (8 rows), gfx908 v_mfma_f32_16x16x16f16 (16 rows); compat.h holds both islands.
 *     D accumulates a group in fp32, then x the D column's scale into acc.
 *   NVIDIA: M <= 8 costs what M = 1 costs, 9..16 a second mma per step; gfx908: M <= 16 one
 *   MFMA per step. Row tiles 32 and 64 (one weight pass for M <= 64), and every NVIDIA
 *   tile, take B straight from global memory instead of LDS (kMmaBFromGlobal); from 16
 *   rows from a copy of a in fragment order, one contiguous load per fragment (kMmaBFrag).
 *   Row tiles 32 and 64 may give a wave SW adjacent strips (kMmaSwCompiled): each B
 *   fragment then feeds SW instructions, with the scales folded into A.
 *   More rows: passes of the row tile.
 *
 * Bytes in flight. NVIDIA (every row tile): a wave loads a tile (1 KiB, 16-byte loads
 * that skip L1) and then uses it; B comes from a (L1 hits; row tile 8 reads a itself,
 * gathered first only for act-order or an unaligned a). Latency is hidden by occupancy:
 * row tile 8 runs 4 blocks = 32 warps per SM (63 registers), 32 KiB per SM in flight,
 * above the ~23 KiB that ~3 TB/s x ~1 us loaded latency needs per SM of an H100 (H200:
 * ~30 KiB at 4 TB/s). Wide tiles hold fewer warps and fall short of it (NOTES 33). A
 * register ring of tiles ahead measured slower (NOTES 24): ptxas shares load scoreboards
 * between the ring and the tile's own loads, so a tile waited for loads issued after it.
 * Row tile 32 runs 2 blocks per SM (128 registers), 64 1 block.
 * gfx908 (reasoned, not measured, NOTES entry 11): a 3-deep
 * ring, 2 blocks/CU = 8 waves x 2 KiB = 16 KiB per CU in flight,
 * against ~8 KiB that 1.2 TB/s x ~700 cycles needs per CU; one MFMA 16x16x16 (32 cycles) and
 * ~4 VALU per step: 8 steps of a 4-bit tile cost ~290 SIMD cycles against ~610 cycles for a
 * CU's four SIMDs to receive their four 1 KiB tiles from HBM: memory-bound through M = 16.
 * Split-K: each wave writes its fp32 partials; the last block of the strip group (a counter
 * per group, reset by that block) sums them in split order. K slices shorten a wave's chain of
 * tiles without that tail (fence, counter, L2 round trips): qkv and o at decode have too few
 * strips to fill the GPU otherwise (NOTES 36).
 */
static constexpr int kMmaWaves = GPTQ_TARGET_AMD ? kTpThreads / 64 : kTpThreads / 32; /* strips per block */
static constexpr int kMmaActElems = 8192;          /* rows x K-range activations per block */
/* Resident blocks per SM/CU the register cap must allow, without spills (resource report):
 * NVIDIA 4 (<= 64 registers, 32 warps) at row tile 8 at 4 and 8 bits; row tile 64 1; else 2
 * (<= 128, 16 warps); 1 where a wave's rows x strips pass 64 (row tile 32 with 4 strips).
 * Row tile 32 with acc in shared memory at 3 blocks measured 13% slower
 * than in registers at 2 (NOTES 28b). gfx908 2 (<= 128 VGPRs, 2 waves per SIMD; the
 * accumulators live in AGPRs). */
static constexpr int kMmaMinBlocks(int mt, int bits, int sw) {
  return GPTQ_TARGET_AMD ? 2 : (mt == 8 && bits >= 4) ? 4 : (mt == 64 || mt * sw > 64) ? 1 : 2;
}
/* Strips per wave (tile key `sw`) of the wide row tiles: each B fragment loaded feeds SW
 * matrix instructions instead of one, so a tile's B traffic per weight byte falls by SW
 * (gate_up W4 M = 64: 524 MB through L1 against 33 MB of weights at SW = 1, NOTES 44). SW > 1
 * folds the scales into the weights (fp16 or bf16 (q - z) x scale, one rounding, as exllama
 * and Marlin do) and accumulates straight into acc: no per-group sums beside acc, whose
 * registers SW x NB x 4 would not fit twice. SW = 1 keeps exact (q - z) and fp32 scales. 2-bit
 * tiles take SW = 1 only: 2 or 4 strips of them spill (sm_90 and gfx908 scratch). */
__host__ __device__ static constexpr bool kMmaSwCompiled(int mt, int sw, int bits) {
  return sw == 1 || (bits >= 4 && ((mt == 32 && (sw == 2 || sw == 4)) || (mt == 64 && sw == 2)));
}
/* The launcher's SW when the tile leaves it open: 2 on the wide tiles of layers with at
 * least 4 strips per SM, else 1. Measured (H100, NOTES 46): sw2 against sw1 at M = 32 / 64,
 * W4, gate_up (800 strips) -12% / -18%, Llama-3-8B gate_up (1792) -8% / -28%; sw4 at M = 32
 * only +2% / -4%; on down and o (320 strips) and qkv (160) sw2 was 10-70% slower: half as
 * many strip groups take twice the K splits, and their partials' tail grows with M. */
static int tp_mma_sw_default(int mt, int bits, int64_t strips, int sm_count) {
  return kMmaSwCompiled(mt, 2, bits) && mt > 16 && strips >= 4 * (int64_t)sm_count ? 2 : 1;
}
/* Row tiles: multiples of the instruction's rows up to 16 (NVIDIA 8 and 16, gfx908 16). */
static constexpr int kMmaMinRowTile = GPTQ_MMA_ROWS;
/* Tiles per wave in registers or in flight: the one computed and kMmaStages - 1 ahead,
 * weights and their zeros/scales alike (a dependent zero/scale load costs a full HBM
 * latency per tile). gfx908 3. NVIDIA row tile 64: 2 (B in fragment order left its tiles
 * waiting on load latency: one tile ahead measured 26% faster in m1_stream, NOTES 38); row
 * tile 32: 1 (2 stages spill at its 128-register cap); narrow tiles 1 (load a tile, then use
 * it: with a ring, ptxas's shared load scoreboards made tiles wait for loads issued after
 * theirs, NOTES 24 and 26). */
__host__ __device__ static constexpr int kMmaStagesOf(int mt) { return GPTQ_TARGET_AMD ? 3 : mt == 64 ? 2 : 1; }
/* Where B operands come from: the split's activations staged in LDS (gfx908 narrow tiles,
 * a_perm gathered there), or 8-byte loads straight from a, L1 hits with no block barrier
 * (wide tiles; every NVIDIA tile: LDS staging measured ~20% slower there, m1_stream act1).
 * Tiles reading a directly need it in order and 8-byte aligned: the launcher gathers a
 * permuted or unaligned a into the workspace first (one small extra launch). */
__host__ __device__ static constexpr bool kMmaBFromGlobal(int mt) { return mt > 16 || !GPTQ_TARGET_AMD; }
/* Tiles of 16 rows or more that read B from global memory read a copy of a in fragment
 * order (gptq_transposed_frag_act_kernel): loaded from row-major a, one B fragment touches
 * ROWS cache lines (32 of each line's 128 bytes), and L1 serves about one line per cycle:
 * L1/TEX 90% busy at gate_up M = 64 (NOTES 33). In fragment order one load is WAVE x 8
 * contiguous bytes. Row tile 8 (M <= 8) reads a as it is: no extra launch at decode. */
__host__ __device__ static constexpr bool kMmaBFrag(int mt) { return kMmaBFromGlobal(mt) && mt >= 16; }
static constexpr int kMmaLanes = 64 / GPTQ_MMA_CHUNKS; /* lanes of one matrix instruction */
/* K slices (tp_args.kslices > 1) on NVIDIA only: there they replace the split-K tail of the
 * small shapes (NOTES 36). gfx908's narrow tiles stage the split in LDS and its wide ones are
 * not given slices; the slice sum raised its wide tiles' VGPRs past 3 waves per SIMD (2-bit:
 * scratch), so the kernel there is built without it. */
static constexpr bool kMmaKSlices = !GPTQ_TARGET_AMD;
/* Waves of a 16-slice block (tile key kslices=16; NVIDIA row tile 8 at 4 and 8 bits): one strip
 * per 512-thread block, its tiles walked by 16 warps, so a strip's chain halves again without a
 * K split's tail: qkv W4 (160 strips of 40 tiles) 3 tiles per wave instead of 5 at 8 slices
 * (NOTES 54). Same 64-register cap: 2 blocks = 32 warps per SM. */
static constexpr int kMmaSliceWaves = 16;
__host__ __device__ static constexpr bool kMmaWavesCompiled(int mt, int sw, int bits, int waves) {
  return waves == kMmaWaves || (kMmaKSlices && waves == kMmaSliceWaves && mt == 8 && sw == 1 && bits >= 4);
}

/* The two (q - z) pairs of step `st` in a chunk word (pairs 2st, 2st + 1 of the chunk at
 * positions p, p + 1 of word (2st) / PPW), as A registers (fp16, or bf16 for bf16
 * activations), exact. */
template <int BITS, int ACT>
__device__ __forceinline__ void tp_mma_step_pairs(uint32_t w, int st, tp_zero z, uint32_t& lo, uint32_t& hi) {
  constexpr int PPW = 16 / BITS;
  constexpr uint32_t kMask = ((1u << BITS) - 1u) * 0x00010001u;
  const int pos = (2 * st) % PPW;
  if (ACT == kTpF16 && BITS == 4) {
    /* 0x6400 | q = 1024 + q; 0x6400 | q << 4 = 1024 + 16 q, which the fma scales by 1/16
     * while subtracting 64 + z: one shift per word instead of one per pair */
    const uint32_t x = pos ? w >> 8 : w;
    lo = gptq_h2_bits(__hsub2(gptq_h2_from_bits(gptq_and_or<0x000f000fu>(x, 0x64006400u)),
                              gptq_h2_from_bits(z.zh)));
    hi = gptq_h2_bits(__hfma2(gptq_h2_from_bits(gptq_and_or<0x00f000f0u>(x, 0x64006400u)),
                              gptq_h2_from_bits(0x2c002c00u), gptq_h2_from_bits(z.zl)));
    return;
  }
  uint32_t f0, f1;
  if (BITS == 8) { /* bytes (0, 2) and (1, 3) next to 0x64: 1024 + q */
    gptq_byte_pairs_f16(w, f0, f1);
  } else {
    const uint32_t base = ACT == kTpBF16 ? 0x43004300u : 0x64006400u;
    f0 = gptq_and_or<kMask>(w >> (BITS * pos), base);
    f1 = gptq_and_or<kMask>(w >> (BITS * (pos + 1)), base);
  }
  if (ACT == kTpBF16 && BITS <= 4) {
    lo = gptq_sub_bf16x2(f0, z.zh);
    hi = gptq_sub_bf16x2(f1, z.zh);
    return;
  }
  lo = gptq_h2_bits(__hsub2(gptq_h2_from_bits(f0), gptq_h2_from_bits(z.zh)));
  hi = gptq_h2_bits(__hsub2(gptq_h2_from_bits(f1), gptq_h2_from_bits(z.zh)));
  if (ACT == kTpBF16) { /* 8-bit with bf16 activations: exact via fp32 */
    lo = gptq_f16x2_to_bf16x2(lo);
    hi = gptq_f16x2_to_bf16x2(hi);
  }
}

/* A column's scale as the A registers' pair type (fp16 or bf16 in both halves), once per group. */
template <int ACT>
__device__ __forceinline__ uint32_t tp_scale_pair(uint32_t bits16, int scale_bf16) {
  const float f = scale_from_bits(bits16, scale_bf16);
  return (uint32_t)(ACT == kTpF16 ? gptq_float_to_f16_bits(f) : gptq_float_to_bf16_bits(f)) * 0x00010001u;
}
/* An exact (q - z) pair times its column's scale pair, rounded once to the pair type (the
 * SW > 1 fold). bf16 through fp32: gfx908 has no bf16 arithmetic. */
template <int ACT>
__device__ __forceinline__ uint32_t tp_scaled_pair(uint32_t pair, uint32_t s2) {
  if (ACT == kTpF16) return gptq_h2_bits(__hmul2(gptq_h2_from_bits(pair), gptq_h2_from_bits(s2)));
  const float sc = __uint_as_float(s2 << 16);
  return (uint32_t)gptq_float_to_bf16_bits(__uint_as_float(pair << 16) * sc) |
         (uint32_t)gptq_float_to_bf16_bits(__uint_as_float(pair & 0xffff0000u) * sc) << 16;
}

template <int BITS, int ACT, int MT, int SW, int NW>
__global__ GPTQ_LAUNCH_BOUNDS(NW* kMmaLanes, kMmaMinBlocks(MT, BITS, SW) * kMmaWaves / NW) void gptq_transposed_mma_kernel(
    tp_args p) {
  constexpr int TK = 512 / BITS, STEPS = TK / 16, PPW = 16 / BITS;
  constexpr int CPL = GPTQ_MMA_CHUNKS, DS = GPTQ_MMA_DSCALES, ROWS = GPTQ_MMA_ROWS;
  constexpr int NB = MT / ROWS; /* instructions per step: activation rows 0..ROWS-1, ... */
  constexpr int WAVE = kMmaLanes;
  /* Wide row tiles (32, 64) read B from global memory, 8 bytes per lane and instruction (L1/L2
   * hits: every wave of the GPU reads the same few hundred KiB): staging the whole split in
   * LDS would cut splits to one tile of K at 64 rows, and staging chunks of it cost a block
   * barrier per chunk with its load latency exposed (NOTES entry 18). */
  constexpr bool kWide = MT > 16;
  constexpr int kMmaStages = kMmaStagesOf(MT);
  constexpr bool kBGlobal = kMmaBFromGlobal(MT), kBFrag = kMmaBFrag(MT);
  /* Two D-column scales per register save registers, but the packing shift waits for the
   * scale load where the stage is loaded: with tiles in flight (NVIDIA row tile 64) that
   * wait stalled every tile for a full memory latency (ncu, NOTES 43), so a stage ahead keeps
   * one scale per register there. Packed scales are converted at tile start. 8-bit row tile
   * 16 keeps them packed: unpacked it takes 96 registers instead of 80, i.e. 2 resident
   * blocks instead of 3 (W8 M = 16 down +47%, o +28%, H100, NOTES 43). */
  constexpr bool kPackScales = SW == 1 && (GPTQ_TARGET_AMD || (BITS == 8 && MT == 16));
  constexpr bool kFold = SW > 1; /* scales folded into the weights (kMmaSwCompiled) */
  static_assert(MT % ROWS == 0 && (MT <= 16 || MT == 32 || MT == 64), "row tile: whole instructions");
  static_assert(kMmaSwCompiled(MT, SW, BITS), "strips per wave: see kMmaSwCompiled");
  static_assert(kMmaWavesCompiled(MT, SW, BITS, NW) && (NW == kMmaWaves || kBGlobal), "waves per block: kMmaWavesCompiled");
  constexpr int kThreads = NW * WAVE;
  /* rows x half pairs, each row padded to 8 (mod 32) words: conflict-free 8-byte reads */
  __shared__ __align__(16) uint32_t s_act[kBGlobal ? 4 : kMmaActElems / 2 + 40 * MT];
  __shared__ float s_slices[kMmaKSlices ? NW * NB * 4 * WAVE : 1]; /* K-slice sums: [wave][b][i][lane] */
  __shared__ int s_last;

  GPTQ_TP_MARK(0, 0.0f);
  /* wave = strip slot x K slice: the block's NW / kslices strips, each walked by
   * kslices waves over consecutive parts of the split's tiles (summed in LDS below) */
  const int t = threadIdx.x, wave = gptq_wave_uniform((int)(threadIdx.x / WAVE)), lane = (int)(threadIdx.x % WAVE);
  const int kslices = kMmaKSlices && SW == 1 ? p.kslices : 1, strips_per_block = NW / kslices;
  const int slice = wave % kslices;
  /* the wave's first strip; its SW strips are consecutive */
  const int64_t strip = ((int64_t)blockIdx.x * strips_per_block + wave / kslices) * SW, split = blockIdx.y;
  int64_t col0 = strip * 16;
  auto width_of = [&](int64_t c0) { return c0 < p.n ? (int)(p.n - c0 < 16 ? p.n - c0 : 16) : 0; };
  int widths[SW]; /* wave-uniform */
#pragma unroll
  for (int j = 0; j < SW; ++j) widths[j] = width_of(col0 + 16 * j);
  const int width = widths[0];
  const int64_t words_per_col = p.k * BITS / 32;
  const int tiles = (int)(p.k / TK);
  const int kt0 = (int)split * p.tiles_per_split;
  const int kt1 = kt0 + p.tiles_per_split < tiles ? kt0 + p.tiles_per_split : tiles;
  /* this wave's slice [ks0, ks1) of the split's tiles (may be empty) */
  const int slice_tiles = (kt1 - kt0 + kslices - 1) / kslices;
  const int ks0 = !kMmaKSlices ? kt0 : kt0 + slice * slice_tiles < kt1 ? kt0 + slice * slice_tiles : kt1;
  const int ks1 = !kMmaKSlices ? kt1 : ks0 + slice_tiles < kt1 ? ks0 + slice_tiles : kt1;
  const int half = (kt1 - kt0) * TK / 2;
  const int stride = ((half + 31) & ~31) + 8;
  const int rows = (int)(p.m - p.m0 < MT ? p.m - p.m0 : MT);

  /* the lane's chunk 0 (column ccol, k quad cq; chunk c: column + c x CSTEP) and its first
   * D-column scale (column dcol0; scale s: + s x DSTEP); lane offsets live in the pointers */
  constexpr int CSTEP = GPTQ_MMA_CHUNK_STEP, DSTEP = GPTQ_MMA_DSCALE_STEP;
  const int ccol = gptq_mma_chunk_col(lane), cq = gptq_mma_chunk_q(lane);
  const int dcol0 = gptq_mma_dscale_col(lane);
  bool on[SW][CPL], son[DS];
#pragma unroll
  for (int j = 0; j < SW; ++j)
#pragma unroll
    for (int c = 0; c < CPL; ++c) on[j][c] = ccol + CSTEP * c < widths[j];
#pragma unroll
  for (int i = 0; i < DS; ++i) son[i] = dcol0 + DSTEP * i < width;
  /* chunk c's zero field: word (CSTEP c BITS) / 32 past chunk 0's, shift + CSTEP c BITS
   * (mod 32); exact because chunk 0's shift plus that stays inside the word (columns < 8) */
  const int zsh0 = (ccol * BITS) & 31;
  auto zword = [](int c) { return (CSTEP * c * BITS) >> 5; };
  auto zshift = [&](int c) { return (zsh0 + CSTEP * c * BITS) & 31; };
  const int brow = ccol, bk = 4 * cq; /* the lane's B operand: row, first k */

  /* strip j's tiles: 4 x width 16-byte chunks each (the last strip of N may be narrower);
   * strips past the first are reached by int offsets from its pointer (registers) */
  const uint4* w0 = reinterpret_cast<const uint4*>(p.qweight + col0 * words_per_col) + (cq * width + ccol);
  const int tile_stride = 4 * width;
  int woff[SW], wstep[SW]; /* strip j's chunk - strip 0's, and its change per tile */
#pragma unroll
  for (int j = 0; j < SW; ++j) {
    woff[j] = (int)(16 * j * words_per_col / 4) + cq * (widths[j] - width);
    wstep[j] = 4 * (widths[j] - width);
  }
  const int64_t zwords = p.n * BITS / 32;
  const int gs = (int)p.group_size;
  /* Everything one tile needs, as loaded: its chunks, the raw zero words and the scale
   * bits of its first group (decoded at use). Inactive columns load nothing.
   * Zero words and scale bits per stage. SW = 1: the lane's chunk words, and its D columns'
   * scales (two per word if packed). Fold: one zero word and one column's scale per strip,
   * lane l holding word l % (BITS / 2) and column l % 16, handed to the lanes that use them
   * by shuffles at tile start (2 fewer registers per strip and stage on NVIDIA: W4 mt64
   * sw2 spilled without it). */
  constexpr int kStageZeros = kFold ? 1 : CPL;
  constexpr int kStageScales = kFold ? 1 : kPackScales ? (DS + 1) / 2 : DS;
  struct stage {
    uint4 w[SW][CPL];
    uint32_t z[SW][kStageZeros];
    uint32_t s[SW][kStageScales];
  };
  /* The farthest tile in flight: its chunk pointer, and its group's zero word / scale
   * pointers for the lane, advanced without division. */
  const int32_t* zp0 = p.qzeros + (((col0 + ccol) * BITS) >> 5);
  /* strip j's zero words and scales: + j BITS / 2 words, + 16 j columns */
  const uint16_t* sp0 = p.scales + col0 + (kFold ? ccol : dcol0);
  const uint4* wq = w0 + ks0 * tile_stride;
#pragma unroll
  for (int j = 0; j < SW; ++j) woff[j] += ks0 * wstep[j];
  /* the fold's staged zero word and scale column of the lane (above), strip 0 */
  const int fz = lane % (BITS / 2), fs = lane % 16;
  bool fzon[SW], fson[SW];
#pragma unroll
  for (int j = 0; j < SW; ++j) {
    fzon[j] = kFold && fz * 32 / BITS < widths[j];
    fson[j] = kFold && fs < widths[j];
  }
  const int32_t* zq = (kFold ? p.qzeros + ((col0 * BITS) >> 5) + fz : zp0) + (int64_t)(ks0 * TK / gs) * zwords;
  const uint16_t* sq = (kFold ? p.scales + col0 + fs : sp0) + (int64_t)(ks0 * TK / gs) * p.n;
  int ahead = ks0, ahead_end = (ks0 * TK / gs + 1) * gs;
  /* Inactive columns keep whatever a stage held: their A rows only reach D rows that are
   * never stored, and a stage past ks1 is never computed. */
  auto load_next_stage = [&](stage& sg) {
    const int kt = ahead++;
    if (kt >= ks1) return;
    while (kt * TK >= ahead_end) { /* once per group */
      ahead_end += gs;
      zq += zwords;
      sq += p.n;
    }
#pragma unroll
    for (int j = 0; j < SW; ++j)
#pragma unroll
      for (int c = 0; c < CPL; ++c)
        if (on[j][c]) {
          sg.w[j][c] = gptq_load_stream16(wq + woff[j] + CSTEP * c);
          if (!kFold) sg.z[j][c] = (uint32_t)zq[j * BITS / 2 + zword(c)];
        }
    if (kFold) {
#pragma unroll
      for (int j = 0; j < SW; ++j) {
        if (fzon[j]) sg.z[j][0] = (uint32_t)zq[j * BITS / 2];
        if (fson[j]) sg.s[j][0] = sq[16 * j];
      }
    } else {
#pragma unroll
      for (int i = 0; i < DS; ++i)
        if (son[i]) {
          const uint32_t bits16 = sq[DSTEP * i];
          if (kPackScales) sg.s[0][i / 2] = i % 2 ? sg.s[0][i / 2] | bits16 << 16 : bits16;
          else sg.s[0][i] = bits16;
        }
    }
    wq += tile_stride;
#pragma unroll
    for (int j = 0; j < SW; ++j) woff[j] += wstep[j];
  };
  auto zero_of = [&](uint32_t raw, int sh) {
    return tp_make_zero<BITS, ACT>(((raw >> sh) & ((1u << BITS) - 1u)) + (uint32_t)p.zero_offset);
  };

  /* tiles ks0 .. ks0 + kMmaStages - 2 in flight before the activations are staged */
  stage sg[kMmaStages];
#pragma unroll
  for (int i = 0; i < kMmaStages; ++i)
#pragma unroll
    for (int j = 0; j < SW; ++j) {
#pragma unroll
      for (int c = 0; c < CPL; ++c) sg[i].w[j][c] = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
      for (int e = 0; e < kStageZeros; ++e) sg[i].z[j][e] = 0u;
#pragma unroll
      for (int e = 0; e < kStageScales; ++e) sg[i].s[j][e] = 0u;
    }
  if (width == 0) ahead = ks1;

#pragma unroll
  for (int i = 0; i < kMmaStages - 1; ++i) load_next_stage(sg[i]);

  /* Launched early behind the act-order gather (gptq_launch_early), the kernel waits for it
   * before its first read of a: on NVIDIA (one stage) after the first tile's loads, in the
   * loop below; with staging or a ring, here. */
  if (!kBGlobal || kMmaStages > 1) gptq_wait_prior_grid();
  if constexpr (!kBGlobal) {
    tp_stage_act<8, ACT>(s_act, stride, p, (int64_t)kt0 * TK, half, rows, rows);
    __syncthreads();
  }

  GPTQ_TP_MARK(1, 0.0f);
  float acc[SW][NB][4];
#pragma unroll
  for (int j = 0; j < SW; ++j)
#pragma unroll
    for (int b = 0; b < NB; ++b)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[j][b][i] = 0.0f;

  /* The tile in use: zero pairs, D-column scales and words of its first group, and the
   * group sums d (folded into acc x scale at each group end). */
  tp_zero z[SW][CPL];
  uint32_t s2[SW][kFold ? CPL : 1]; /* fold: the chunk columns' scale pairs */
  /* D-column scales. NVIDIA narrow tiles keep the bits and convert them where a group is
   * folded, so the scale load's first use comes after the tile's matrix instructions, not
   * before its B loads (NOTES 43); wider tiles convert at tile start (converting late costs
   * them 20-45 registers: row tile 32 spills at its cap). */
  constexpr bool kLateScales = !kPackScales && MT <= 16;
  float sc[DS] = {};
  uint32_t scb[DS] = {};
  auto scale_of = [&](int j) { return kLateScales ? scale_from_bits(scb[j], p.scale_bf16) : sc[j]; };
  uint32_t wv[SW][CPL][4];
  float d[kFold ? 1 : NB][4]; /* the group's sums (SW = 1) */
  int row0 = 0, grp = 0, g_end = 0;
  auto fold = [&]() { /* acc += the group's sums x their D columns' scales; d restarts at 0 */
    if constexpr (!kFold) {
#pragma unroll
      for (int b = 0; b < NB; ++b) {
#pragma unroll
        for (int i = 0; i < 4; ++i)
          acc[0][b][i] = fmaf(d[b][i], scale_of(gptq_mma_dscale_of(i)), acc[0][b][i]);
#pragma unroll
        for (int i = 0; i < 4; ++i) d[b][i] = 0.0f;
      }
    }
  };
  auto tile_begin = [&](int kt, const stage& cur) {
#pragma unroll
    for (int j = 0; j < SW; ++j)
#pragma unroll
      for (int c = 0; c < CPL; ++c) {
        if constexpr (kFold) { /* from the lanes holding chunk c's zero word and column */
          const int col = ccol + CSTEP * c;
          z[j][c] = zero_of(gptq_shfl_group(cur.z[j][0], (col * BITS) >> 5, WAVE), zshift(c));
          s2[j][c] = tp_scale_pair<ACT>(gptq_shfl_group(cur.s[j][0], col, WAVE), p.scale_bf16);
        } else {
          z[j][c] = zero_of(cur.z[j][c], zshift(c));
        }
        wv[j][c][0] = cur.w[j][c].x;
        wv[j][c][1] = cur.w[j][c].y;
        wv[j][c][2] = cur.w[j][c].z;
        wv[j][c][3] = cur.w[j][c].w;
      }
    if constexpr (!kFold) {
#pragma unroll
      for (int i = 0; i < DS; ++i) {
        scb[i] = !kPackScales ? cur.s[0][i] : i % 2 ? cur.s[0][i / 2] >> 16 : cur.s[0][i / 2] & 0xffffu;
        if (!kLateScales) sc[i] = scale_from_bits(scb[i], p.scale_bf16);
      }
    }
    row0 = kt * TK;
    grp = row0 / gs;
    g_end = (grp + 1) * gs;
    if constexpr (!kFold) {
#pragma unroll
      for (int b = 0; b < NB; ++b)
#pragma unroll
        for (int i = 0; i < 4; ++i) d[b][i] = 0.0f;
    }
  };
  /* step st of the tile; bstep: the lane's B pairs of that step for its first instruction's
   * rows, the next instruction's bgroup words on. kSplitGroups: groups end inside tiles
   * (group_size < TK). */
  auto step = [&](int st, const uint32_t* bstep, int bgroup, auto split_groups) {
    if (decltype(split_groups)::value && row0 + 16 * st >= g_end) { /* fold, load the next group */
      fold();
      ++grp;
      g_end += gs;
#pragma unroll
      for (int j = 0; j < SW; ++j)
#pragma unroll
        for (int c = 0; c < CPL; ++c)
          if (on[j][c]) {
            z[j][c] = zero_of((uint32_t)zp0[(int64_t)grp * zwords + j * BITS / 2 + zword(c)], zshift(c));
            if constexpr (kFold)
              s2[j][c] = tp_scale_pair<ACT>(sp0[16 * j + CSTEP * c + (int64_t)grp * p.n], p.scale_bf16);
          }
      if constexpr (!kFold) {
#pragma unroll
        for (int i = 0; i < DS; ++i)
          if (son[i]) {
            scb[i] = sp0[DSTEP * i + (int64_t)grp * p.n];
            if (!kLateScales) sc[i] = scale_from_bits(scb[i], p.scale_bf16);
          }
      }
    }
    uint32_t a[SW][2 * CPL];
#pragma unroll
    for (int j = 0; j < SW; ++j)
#pragma unroll
      for (int c = 0; c < CPL; ++c) {
        tp_mma_step_pairs<BITS, ACT>(wv[j][c][2 * st / PPW], st, z[j][c], a[j][c], a[j][c + CPL]);
        if constexpr (kFold) {
          a[j][c] = tp_scaled_pair<ACT>(a[j][c], s2[j][c]);
          a[j][c + CPL] = tp_scaled_pair<ACT>(a[j][c + CPL], s2[j][c]);
        }
      }
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      uint2 av = make_uint2(0u, 0u);
      if (brow + ROWS * b < rows) av = *reinterpret_cast<const uint2*>(bstep + b * bgroup);
      const uint32_t bv[2] = {av.x, av.y};
#pragma unroll
      for (int j = 0; j < SW; ++j) {
        if constexpr (kFold) gptq_mma_16<ACT == kTpBF16>(acc[j][b], a[j], bv);
        else gptq_mma_16<ACT == kTpBF16>(d[b], a[j], bv);
      }
    }
  };
  /* one tile: B from the split's staged activations (gfx908 narrow), from a copy of a in
   * fragment order (kBFrag: the lane's 8 bytes of row group g, 16-k step s at
   * ((g KS + s) WAVE + lane) x 8), or straight from a (rows 8-byte aligned, k in order; the
   * launcher gathers a into the workspace otherwise) */
  const int64_t ksteps = p.k / 16;
  auto tile = [&](int kt, const stage& cur, auto split_groups) {
    tile_begin(kt, cur);
    const uint32_t* arow =
        kBFrag     ? reinterpret_cast<const uint32_t*>(p.a) + 2 * ((p.m0 / ROWS * ksteps + (int64_t)kt * STEPS) * WAVE + lane)
        : kBGlobal ? reinterpret_cast<const uint32_t*>(p.a + (p.m0 + brow) * p.lda + kt * TK + bk)
                   : s_act + brow * stride + ((kt - kt0) * TK + bk) / 2;
    const int bgroup = (int)(kBFrag ? 2 * ksteps * WAVE : kBGlobal ? ROWS * (p.lda / 2) : ROWS * stride);
    constexpr int kStepWords = kBFrag ? 2 * WAVE : 8; /* words from one step's B to the next */
    /* a 2-bit tile (32 steps) fully unrolled at 64 rows spills on sm_90: 8 steps at a time */
    constexpr int kStepUnroll = (kWide && BITS == 2) ? 8 : STEPS;
#pragma unroll kStepUnroll
    for (int st = 0; st < STEPS; ++st) step(st, arow + kStepWords * st, bgroup, split_groups);
    fold();
  };

  const bool split_groups = gs % TK != 0;
  /* hipcc (gfx908) does not unroll the ring loop around a wide tile's body: there the ring
   * rotates by copies (a step's 2-4 MFMAs dwarf them) */
  constexpr bool kRotateRing = kWide && GPTQ_TARGET_AMD;
  if (kRotateRing && width > 0) {
    for (int kt = ks0; kt < ks1; ++kt) {
      load_next_stage(sg[kMmaStages - 1]); /* the farthest tile first */
      if (split_groups) tile(kt, sg[0], std::true_type{});
      else tile(kt, sg[0], std::false_type{});
#pragma unroll
      for (int i = 0; i + 1 < kMmaStages; ++i) sg[i] = sg[i + 1];
    }
  } else if (width > 0) { /* wave-uniform: the matrix instruction needs the whole wave */
    /* unrolled by the ring size, so stage j stays in fixed registers (no copies) */
    for (int kt = ks0; kt < ks1; kt += kMmaStages) {
#pragma unroll
      for (int j = 0; j < kMmaStages; ++j) {
        if (kt + j < ks1) {
          load_next_stage(sg[(j + kMmaStages - 1) % kMmaStages]); /* the farthest tile first */
          if (kt + j == ks0) gptq_wait_prior_grid(); /* a: see gptq_launch_early below */
          if (split_groups) tile(kt + j, sg[j], std::true_type{});
          else tile(kt + j, sg[j], std::false_type{});
          if (kt + j - ks0 < 10) GPTQ_TP_MARK(2 + kt + j - ks0, acc[0][0][0]); /* tiles 0..9 */
        }
      }
    }
  }

  /* K slices: slice 0 of each strip adds the others' sums in slice order (LDS, one barrier);
   * the strip's outputs are then slice 0's. The wave's indices are derived again here, not
   * held across the loop (sm_90: row tile 8 sits at its 64-register cap). */
  GPTQ_TP_MARK(13, acc[0][0][0]);
  const int okslices = kMmaKSlices && SW == 1 ? p.kslices : 1;
  const int owave = kMmaKSlices ? gptq_wave_uniform((int)(gptq_thread_x_reread() / WAVE)) : wave;
  const int oslice = owave % okslices, ostrips = NW / okslices;
  if (okslices > 1) {
    float* mine = s_slices + owave * (NB * 4 * WAVE) + lane;
    if (oslice > 0)
#pragma unroll
      for (int b = 0; b < NB; ++b)
#pragma unroll
        for (int i = 0; i < 4; ++i) mine[(b * 4 + i) * WAVE] = acc[0][b][i];
    __syncthreads();
    if (oslice == 0)
      for (int j = 1; j < okslices; ++j)
#pragma unroll
        for (int b = 0; b < NB; ++b)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[0][b][i] += mine[(j * NB * 4 + b * 4 + i) * WAVE];
  }
  GPTQ_TP_MARK(14, acc[0][0][0]);

  /* lane's outputs: (m = ROWS b + d_row(i), column col0 + 16 j + d_col(i)) = acc[j][b][i] */
  col0 = ((int64_t)gptq_block_x_reread() * ostrips + owave / okslices) * SW * 16;
  auto each_output = [&](auto&& f) { /* f(row, column, acc entry) for this lane's outputs */
#pragma unroll
    for (int j = 0; j < SW; ++j) {
      const int out_width = oslice != 0 ? 0 : SW == 1 ? width : width_of(col0 + 16 * j);
#pragma unroll
      for (int b = 0; b < NB; ++b)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int m = ROWS * b + gptq_mma_d_row(lane, i), col = gptq_mma_d_col(lane, i);
          if (m < rows && col < out_width) f(p.m0 + m, col0 + 16 * j + col, acc[j][b][i]);
        }
    }
  };
  auto store = [&](int64_t row, int64_t col, float v) {
    p.c[row * p.ldc + col] = ACT == kTpF16 ? gptq_float_to_f16_bits(v) : gptq_float_to_bf16_bits(v);
  };
  if (p.splits == 1) {
    each_output(store);
    GPTQ_TP_MARK(17, 0.0f);
    return;
  }
  each_output([&](int64_t row, int64_t col, float v) { p.ws[(split * p.m + row) * p.n + col] = v; });
  GPTQ_TP_MARK(15, 0.0f);
  if (!tp_arrive_last(&p.counters[blockIdx.x], p.splits, &s_last)) {
    GPTQ_TP_MARK(17, 0.0f);
    return;
  }
  GPTQ_TP_MARK(16, 0.0f);
  /* Both tails add each output's partials in split order (bitwise the same result).
   * At most 2 outputs per thread (M <= 4 at row tile 8): the group's outputs spread over
   * the block, one per thread at a time, consecutive columns, 8 splits' loads in flight.
   * More: each lane sums its own outputs, one split's loads for all of them at a time. The
   * first measured 10-22% faster at M = 1 (qkv, o, down: 20, 8, 13 splits), the second
   * 10-27% at M = 8 and 16 at the same split counts (H200, NOTES entry 34). */
  const int64_t gcol0 = (int64_t)gptq_block_x_reread() * ostrips * SW * 16;
  const int gcols = (int)(p.n - gcol0 < ostrips * SW * 16 ? p.n - gcol0 : ostrips * SW * 16);
  if (rows * gcols <= 2 * kThreads) {
    for (int o = t; o < rows * gcols; o += kThreads) {
      const int m = o / gcols, col = o - m * gcols;
      const int64_t row = p.m0 + m, ocol = gcol0 + col;
      store(row, ocol, tp_sum_partials<8>(p.ws + row * p.n + ocol, p.m * p.n, p.splits));
    }
  } else {
#pragma unroll
    for (int j = 0; j < SW; ++j)
#pragma unroll
      for (int b = 0; b < NB; ++b)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[j][b][i] = 0.0f;
    for (int sp = 0; sp < p.splits; ++sp) {
      const float* ws = p.ws + (int64_t)sp * p.m * p.n;
      each_output([&](int64_t row, int64_t col, float& v) { v += gptq_load_coherent(ws + row * p.n + col); });
    }
    each_output(store);
  }
  if (t == 0) p.counters[blockIdx.x] = 0u; /* ready for the next launch on this stream */
  GPTQ_TP_MARK(18, 0.0f);
}

/* ---- activations for the mma tiles that read a directly: dst[m, k] = a[m, a_perm[k]] ----
 * (dense rows of K, 8-byte aligned), when a is permuted or its rows are not 8-byte aligned */
__global__ void gptq_transposed_gather_act_kernel(tp_args p, uint16_t* dst) {
  gptq_release_dependents(); /* the GEMM's blocks may start their weight loads now */
  const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; /* grid.x covers K */
  if (k >= p.k) return;
  const int64_t src = p.a_perm ? clamp_index(p.a_perm[k], p.k, p.errors, blockIdx.y == 0) : k;
  for (int64_t m = blockIdx.y; m < p.m; m += gridDim.y) dst[m * p.k + k] = p.a[m * p.lda + src];
}

/* ---- activations in B-fragment order for the tiles of kMmaBFrag: unit u = (g KS + s) WAVE
 * + lane (KS = K / 16) holds the 8 bytes the lane loads for row group g, 16-k step s:
 * a[g ROWS + brow][a_perm[16 s + bk + j]], j < 4 (brow, bk: the lane's B operand, compat.h);
 * zeros for rows past m. A warp's load is then WAVE x 8 contiguous bytes. */
__global__ void gptq_transposed_frag_act_kernel(tp_args p, uint2* dst, int64_t units) {
  gptq_release_dependents(); /* the GEMM's blocks may start their weight loads now */
  const int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (u >= units) return;
  const int lane = (int)(u % kMmaLanes), brow = gptq_mma_chunk_col(lane);
  const int64_t gs = u / kMmaLanes, ksteps = p.k / 16, g = gs / ksteps;
  const int64_t m = g * GPTQ_MMA_ROWS + brow, k0 = 16 * (gs - g * ksteps) + 4 * gptq_mma_chunk_q(lane);
  uint32_t v[4] = {0u, 0u, 0u, 0u};
  if (m < p.m)
#pragma unroll
    for (int j = 0; j < 4; ++j) { /* bad indices counted once per k: row group 0, row 0 */
      const int64_t src = p.a_perm ? clamp_index(p.a_perm[k0 + j], p.k, p.errors, g == 0 && brow == 0) : k0 + j;
      v[j] = p.a[m * p.lda + src];
    }
  dst[u] = make_uint2(v[0] | v[1] << 16, v[2] | v[3] << 16);
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
    for (int st = 0; st < STEPS; ++st) {
      /* the thread's rows r0 .. r0 + 3 of step st lie in one group (group_size % 16 == 0):
       * one division, zero and scale per step, not per value */
      const int r0 = kt * TK + 16 * st + 4 * q; /* K < 2^31 */
      const int64_t g = r0 / (int)p.group_size;
      const int64_t bit = ncol * BITS;
      const int z = (int)(((uint32_t)p.qzeros[g * zwords + (bit >> 5)] >> (bit & 31)) & ((1u << BITS) - 1u)) +
                    p.zero_offset;
      const float sc = load_scale(p.scales, g * p.n + ncol, p.scale_bf16);
#pragma unroll
      for (int j = 0; j < 4; ++j) { /* value j of the step: pair 2 st + j / 2, half j % 2 */
        const int pt = 2 * st + (j >> 1), pos = pt % (16 / BITS);
        const uint32_t qv = (wv[pt / (16 / BITS)] >> (BITS * pos + 16 * (j & 1))) & ((1u << BITS) - 1u);
        const float w = (float)((int)qv - z) * sc;
        const int64_t r = r0 + j;
        const int64_t dst = p.a_perm ? clamp_index(p.a_perm[r], p.k, p.errors, t == 0) : r;
        p.c[dst * p.ldc + ncol] = ACT == kTpF16 ? gptq_float_to_f16_bits(w) : gptq_float_to_bf16_bits(w);
      }
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

typedef void (*tp_kernel_fn)(tp_args);

/* Row tiles compiled per feed: transposed every one up to kTpMaxM; the variants up to 8
 * (decode sizes; the module stays lean: 24 instantiations per variant). */
static bool tp_row_tile_compiled(int feed, int mt) {
  return (mt == 1 || mt == 2 || mt == 4 || mt == 8) || (feed == kFeedLdg16 && mt == 16);
}

static tp_kernel_fn tp_pick(int bits, int act, int mt, int feed) {
#define GPTQ_TP_CASE(B, A, M, F) \
  if (bits == B && act == A && mt == M && feed == F) return gptq_transposed_kernel<B, A, M, F>;
#define GPTQ_TP_FEED(B, A, F) \
  GPTQ_TP_CASE(B, A, 1, F) GPTQ_TP_CASE(B, A, 2, F) GPTQ_TP_CASE(B, A, 4, F) GPTQ_TP_CASE(B, A, 8, F)
#define GPTQ_TP_CASES(B, A)                                                                 \
  GPTQ_TP_FEED(B, A, kFeedLdg16) GPTQ_TP_CASE(B, A, 16, kFeedLdg16) GPTQ_TP_FEED(B, A, kFeedLdg8) \
  GPTQ_TP_FEED(B, A, kFeedLds) GPTQ_TP_FEED(B, A, kFeedShuffle)
  GPTQ_TP_CASES(2, kTpF16) GPTQ_TP_CASES(2, kTpBF16)
  GPTQ_TP_CASES(4, kTpF16) GPTQ_TP_CASES(4, kTpBF16)
  GPTQ_TP_CASES(8, kTpF16) GPTQ_TP_CASES(8, kTpBF16)
#undef GPTQ_TP_CASES
#undef GPTQ_TP_FEED
#undef GPTQ_TP_CASE
  return nullptr;
}

/* The feed of a vector-family kernel (load=16 makes `vectorized` the `transposed` code). */
static int tp_feed(gptq_gpu_kernel kernel, const gptq_gpu_tile* tile) {
  switch (kernel) {
    case GPTQ_GPU_KERNEL_VECTORIZED: return tile && tile->load_bytes == 16 ? kFeedLdg16 : kFeedLdg8;
    case GPTQ_GPU_KERNEL_COALESCED: return kFeedLds;
    case GPTQ_GPU_KERNEL_WARP_SHUFFLE: return kFeedShuffle;
    default: return kFeedLdg16;
  }
}

/* Row tiles are whole instructions: NVIDIA 8, 16, 32, 64; gfx908 16, 32, 64 (no 8 there);
 * strips per wave as kMmaSwCompiled allows. */
template <int B, int A, int M, int S, int W>
static tp_kernel_fn tp_mma_fn() {
  if constexpr (M % GPTQ_MMA_ROWS != 0 || !kMmaSwCompiled(M, S, B) || !kMmaWavesCompiled(M, S, B, W)) return nullptr;
  else return gptq_transposed_mma_kernel<B, A, M, S, W>;
}

static tp_kernel_fn tp_mma_pick(int bits, int act, int mt, int sw, int waves) {
#define GPTQ_TP_CASE(B, A, M, S) \
  if (bits == B && act == A && mt == M && sw == S && waves == kMmaWaves) return tp_mma_fn<B, A, M, S, kMmaWaves>();
#define GPTQ_TP_CASES(B, A)                                                                        \
  GPTQ_TP_CASE(B, A, 8, 1) GPTQ_TP_CASE(B, A, 16, 1) GPTQ_TP_CASE(B, A, 32, 1) GPTQ_TP_CASE(B, A, 32, 2) \
  GPTQ_TP_CASE(B, A, 32, 4) GPTQ_TP_CASE(B, A, 64, 1) GPTQ_TP_CASE(B, A, 64, 2)                    \
  if (bits == B && act == A && mt == 8 && sw == 1 && waves == kMmaSliceWaves)                       \
    return tp_mma_fn<B, A, 8, 1, kMmaSliceWaves>();
  GPTQ_TP_CASES(2, kTpF16) GPTQ_TP_CASES(2, kTpBF16)
  GPTQ_TP_CASES(4, kTpF16) GPTQ_TP_CASES(4, kTpBF16)
  GPTQ_TP_CASES(8, kTpF16) GPTQ_TP_CASES(8, kTpBF16)
#undef GPTQ_TP_CASES
#undef GPTQ_TP_CASE
  return nullptr;
}

struct tp_plan {
  tp_kernel_fn fn;
  int mt;               /* rows per pass */
  int64_t grid_x;       /* strips (vector) or groups of waves / kslices strips (mma) */
  int waves;            /* mma: waves per block (kMmaWaves, or kMmaSliceWaves for 16 slices) */
  int threads;          /* block size */
  int splits;           /* grid.y */
  int kslices;          /* mma: waves per strip, each a slice of the split's tiles */
  int sw;               /* mma: strips per wave */
  int tiles_per_split;
  size_t ws_bytes;      /* split partials, then the gathered activations (if any) */
  bool gather;          /* the tile reads a copy of a at gather_offset: dense, or */
  bool frag;            /* in B-fragment order (kMmaBFrag) */
  size_t gather_offset;
};

/* Split K into tiles_per_split pieces: at least what LDS needs (cap tiles per split) and,
 * when the columns alone do not fill the GPU, up to `fill` splits. */
static void tp_split(tp_plan* pl, const gptq_problem* p, int64_t tiles, int64_t cap, int64_t fill) {
  if (cap < 1) cap = 1;
  int64_t splits = tp_ceil_div(tiles, cap);
  if (fill > splits) splits = fill < tiles ? fill : tiles;
  if (splits < 1) splits = 1;
  pl->tiles_per_split = (int)tp_ceil_div(tiles, splits);
  pl->splits = (int)tp_ceil_div(tiles, pl->tiles_per_split);
  pl->ws_bytes = pl->splits > 1 ? (size_t)pl->splits * (size_t)p->m * (size_t)p->n * sizeof(float) : 0;
}

/* K splits and K slices of an mma launch whose tiles read a directly (any split length),
 * from a model of its length in bytes-equivalent (NOTES entries 30, 34, 36; fitted to the H200
 * and H100 split and slice sweeps, results/nvidia-h100-2026-12-07):
 *   the weight bytes, each tile's taking (1 + rows / 7) times its byte time as the B loads
 *   and matrix instructions grow with the rows (measured 1.3 / 1.9 / 3.1 / 5.0 / 9.5 at
 *   M = 1 / 8 / 16 / 32 / 64, H200), or, when longer, the chain of one memory latency
 *   (tile_latency) per tile a wave walks, ceil(ceil(tiles / s) / kslices) per round of
 *   resident blocks: a plan of few blocks cannot keep enough bytes in flight;
 *   each round of blocks also pays a fixed start and drain (round_fixed);
 *   each split > 1 writes and the last block reads rows x n fp32 partials, after an arrival
 *   (fence, counter: arrive_fixed) and dependent L2 round trips (trip): one per 8 splits in
 *   the block-wide tail, one per split in the per-lane tail;
 *   K slices are summed in LDS behind one block barrier (nothing modelled).
 * The least cost; of equal ones the fewest slices, then the smallest s. Blocks of `waves`
 * waves; chosen slices stay within kMmaWaves (16 slices: the rule in tp_make_plan, NOTES 56). */
static void tp_mma_splits(int64_t tiles, int64_t strips, int64_t slots, int64_t rows, int64_t n, int waves,
                          int kslices, int64_t* splits_out, int* kslices_out) { /* kslices 0: chosen too */
  if (slots < 1) slots = 1;
  const double slowdown = 1.0 + (double)rows / 7.0;
  const double bytes = (double)tiles * (double)strips * 1024.0 * slowdown;
  /* ~1.1 us at ~4 TB/s: a wave's 2-20 tiles one after another (H200 split sweep of qkv) */
  const double tile_latency = 4.5e6;
  /* a round of blocks also pays one loaded memory latency to start and drain (~1.5 us at
   * ~4 TB/s): 16 splits of 2 tiles in 7 rounds measured 25% slower than 2 splits in one on
   * Llama-3-8B gate_up at M = 1, H200 (NOTES entry 34) */
  const double round_fixed = 6.0e6;
  const double arrive_fixed = 3.0e6, trip = 1.0e6;
  int64_t best = 0;
  int best_ks = 1;
  double best_cost = 0.0;
  const int ks_first = kslices ? kslices : 1, ks_last = kslices ? kslices : kMmaKSlices ? kMmaWaves : 1;
  for (int ks = ks_first; ks <= ks_last; ks *= 2) {
    const int64_t grid_x = tp_ceil_div(strips, waves / ks);
    const int64_t gcols = (int64_t)(waves / ks) * 16;
    /* only the smallest s of each split length (a larger one is the same launch): ~2
     * sqrt(tiles) candidates, not `tiles`, on the host path of every call */
    for (int64_t s = 1; s <= tiles;) {
      const int64_t tps = tp_ceil_div(tiles, s), rounds = tp_ceil_div(grid_x * s, slots);
      const double chain = (double)rounds * (double)tp_ceil_div(tps, ks) * tile_latency;
      const double trips = (double)(rows * gcols > 2 * waves * kMmaLanes ? s : tp_ceil_div(s, 8));
      const double cost = (chain > bytes ? chain : bytes) + (double)rounds * round_fixed +
                          (s > 1 ? (double)s * (double)rows * (double)n * 8.0 + arrive_fixed + trip * trips : 0.0);
      if (!best || cost < best_cost) {
        best = s;
        best_ks = ks;
        best_cost = cost;
      }
      s = tps > 1 ? tp_ceil_div(tiles, tps - 1) : tiles + 1; /* the first s with shorter splits */
    }
  }
  *splits_out = best;
  *kslices_out = best_ks;
}

/* K splits of the wide row tiles (32, 64 rows: one slice), entry 30's round model of the
 * launch's length in bytes-equivalent (measured there and in entry 34; not refitted):
 *   blocks run in rounds of `slots` resident blocks, and a split's tiles one after another,
 *   so the launch lasts ceil(grid_x s / slots) x ceil(tiles / s) tile rounds; a round moves
 *   slots x kMmaWaves KiB, a tile taking (1 + rows / 7) times its byte time;
 *   each split > 1 writes and the last block reads rows x n fp32 partials.
 * The smallest s of least cost: a partial round costs a full one, but short splits even
 * out the rounds (gate_up at 2 blocks/SM: 5 splits 18% faster than the one round of 2). */
static int64_t tp_mma_splits_wide(int64_t tiles, int64_t strips, int64_t slots, int64_t rows, int64_t n, int sw) {
  if (slots < 1) slots = 1;
  const double round_bytes = (double)slots * kMmaWaves * sw * 1024.0, slowdown = 1.0 + (double)rows / 7.0;
  /* a round of blocks also pays one loaded memory latency to start and drain (NOTES 34) */
  const double round_fixed = 6.0e6;
  const int64_t grid_x = tp_ceil_div(strips, kMmaWaves * sw);
  int64_t best = 0;
  double best_cost = 0.0;
  for (int64_t s = 1; s <= tiles;) {
    const int64_t tps = tp_ceil_div(tiles, s);
    const double cost = (double)tp_ceil_div(grid_x * s, slots) * ((double)tps * round_bytes * slowdown + round_fixed) +
                        (s > 1 ? (double)s * (double)rows * (double)n * 8.0 : 0.0);
    if (!best || cost < best_cost) {
      best = s;
      best_cost = cost;
    }
    s = tps > 1 ? tp_ceil_div(tiles, tps - 1) : tiles + 1; /* the first s with shorter splits */
  }
  return best;
}

/* Tiles that read a directly load 4 activations (8 bytes) per lane (kMmaBFromGlobal). */
static bool tp_a_not_direct(const gptq_problem* p) {
  return p->a_perm || (p->lda & 3) || ((uintptr_t)p->a & 7u);
}

static tp_plan tp_make_plan(const gptq_problem* p, gptq_gpu_kernel kernel, const gptq_gpu_tile* tile,
                           int sm_count) {
  tp_plan pl;
  pl.gather = false;
  pl.frag = false;
  pl.gather_offset = 0;
  const int act = p->a_dtype == GPTQ_BF16 ? kTpBF16 : kTpF16;
  const int tk = 512 / p->bits;
  const int64_t tiles = p->k / tk;
  const int want_mt = tile ? tile->row_tile : 0, want_splits = tile ? tile->splits : 0;
  const int want_slices = tile ? tile->kslices : 0, want_sw = tile ? tile->sw : 0;
  pl.kslices = 1;
  pl.sw = 1;
  pl.waves = kMmaWaves;
  pl.threads = kTpThreads;
  if (kernel == GPTQ_GPU_KERNEL_TRANSPOSED_MMA) {
    /* NVIDIA: M <= 8 costs one mma per step whatever M is, 9..16 two, M 17..32 one pass
     * of the 32-row tile (measured 1.3-1.9x faster than two passes of 16 on every Qwen3-32B
     * TP=4 shape, H100, NOTES entry 18), and beyond one pass of the 64-row tile per 64 rows
     * (two stages: 10-47% faster than dequantize + matmul at M = 64, H100, NOTES entry 38).
     * gfx908: one MFMA of 16 rows, passes of 16 beyond (its wide tile is reasoned, not
     * measured). */
    pl.mt = want_mt ? want_mt
            : p->m <= kMmaMinRowTile ? kMmaMinRowTile
            : (p->m <= 16 || GPTQ_TARGET_AMD) ? 16 : p->m <= 32 ? 32 : 64;
    const int64_t rows = p->m < pl.mt ? p->m : pl.mt;
    const bool b_global = kMmaBFromGlobal(pl.mt);
    const int64_t strips = tp_ceil_div(p->n, 16);
    pl.sw = want_sw ? want_sw : tp_mma_sw_default(pl.mt, p->bits, strips, sm_count);
    pl.waves = want_slices > kMmaWaves ? kMmaSliceWaves : kMmaWaves;
    pl.fn = tp_mma_pick(p->bits, act, pl.mt, pl.sw, pl.waves);
    /* [act][row tile 8/16/32/64][sw 1/2/4][bits][kMmaWaves or 16 waves], 0 = not asked yet; racing
     * writers store the same value. Per process: a build holds one architecture (sm_90 or
     * gfx908), and every device of it gives the same answer. */
    static int resident[2][4][3][9][2];
    auto resident_of = [&](tp_kernel_fn fn, int waves) {
      int* slot = &resident[act][pl.mt == 8 ? 0 : pl.mt == 16 ? 1 : pl.mt == 32 ? 2 : 3][pl.sw == 1 ? 0 : pl.sw == 2 ? 1 : 2]
                           [p->bits][waves == kMmaWaves ? 0 : 1];
      int r = __atomic_load_n(slot, __ATOMIC_RELAXED);
      if (!r && fn) {
        r = gptq_resident_blocks(fn, waves * kMmaLanes);
        __atomic_store_n(slot, r, __ATOMIC_RELAXED);
      }
      return r > 0 ? r : 1;
    };
    /* Left open, row tile 8 takes 16 waves per strip (one split) where one round of those
     * blocks holds every strip and the chain falls by 2 tiles or more against 8 slices: qkv's
     * 160 strips on 132 SMs, 40 tiles, 3 per wave instead of 5 (H100: qkv `auto` W4 M 1..8
     * -8..-17%, W8 -6..-8%; o's and down's 320 strips would take two rounds, +33%; NOTES 54,
     * 56). The cost model below does not price 16-wave blocks. */
    bool sixteen = false;
    if (!want_slices && !want_splits && b_global && kMmaWavesCompiled(pl.mt, pl.sw, p->bits, kMmaSliceWaves) &&
        tp_ceil_div(tiles, kMmaSliceWaves) + 2 <= tp_ceil_div(tiles, kMmaWaves)) {
      const tp_kernel_fn fn16 = tp_mma_pick(p->bits, act, pl.mt, pl.sw, kMmaSliceWaves);
      if (fn16 && strips <= (int64_t)sm_count * resident_of(fn16, kMmaSliceWaves)) {
        sixteen = true;
        pl.waves = kMmaSliceWaves;
        pl.fn = fn16;
      }
    }
    pl.threads = pl.waves * kMmaLanes;
    const int64_t slots = (int64_t)sm_count * resident_of(pl.fn, pl.waves);
    /* splits given: one slice unless given too. Slices and splits chosen together for the
     * narrow tiles (the model fitted there); the wide ones keep entry 30's split rule and
     * one slice unless slices are given. Tiles staging activations in LDS (gfx908 narrow):
     * splits short enough for it, one slice, and one round of resident blocks when the
     * strip groups alone are too few */
    int64_t fill = sixteen ? 1 : want_splits;
    int ks = sixteen ? kMmaSliceWaves : want_slices ? want_slices : 1;
    if (b_global && !want_splits && !sixteen) {
      if (pl.mt > 16 && want_slices <= 1) fill = tp_mma_splits_wide(tiles, strips, slots, rows, p->n, pl.sw);
      else tp_mma_splits(tiles, strips, slots, rows, p->n, pl.waves, want_slices, &fill, &ks);
    }
    pl.kslices = ks;
    pl.grid_x = tp_ceil_div(strips, pl.waves / pl.kslices * pl.sw);
    if (!fill) fill = slots / pl.grid_x;
    tp_split(&pl, p, tiles, b_global ? tiles : kMmaActElems / (rows * tk), fill);
    pl.frag = kMmaBFrag(pl.mt);
    if (pl.frag || (b_global && tp_a_not_direct(p))) {
      /* fragment order pads M to whole instructions (zeros) */
      const int64_t rows_padded = pl.frag ? tp_ceil_div(p->m, GPTQ_MMA_ROWS) * GPTQ_MMA_ROWS : p->m;
      pl.gather = true;
      pl.gather_offset = (pl.ws_bytes + 15) & ~(size_t)15;
      pl.ws_bytes = pl.gather_offset + (size_t)rows_padded * (size_t)p->k * sizeof(uint16_t);
    }
    return pl;
  }
  const int feed = tp_feed(kernel, tile);
  const int max_mt = feed == kFeedLdg16 ? kTpMaxM : 8;
  const int64_t m = p->m < max_mt ? p->m : max_mt;
  pl.mt = want_mt ? want_mt : m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : m <= 8 ? 8 : 16; /* more rows: passes */
  pl.fn = tp_pick(p->bits, act, pl.mt, feed);
  pl.grid_x = tp_ceil_div(p->n, 16);
  /* LDS holds mt x split rows of activations (warp_shuffle keeps them in registers: any
   * split); fill the GPU with strips x splits blocks */
  const int64_t cap = feed == kFeedShuffle ? tiles : (kTpActElems / pl.mt) / tk;
  tp_split(&pl, p, tiles, cap,
           want_splits ? want_splits : tp_ceil_div((int64_t)sm_count * kTpBlocksPerSm, pl.grid_x));
  return pl;
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

int gptq_gpu_transposed_mma_compiled(void) { return GPTQ_HAS_MMA; }

/* Smallest M `auto` gives the matrix kernel. NVIDIA 1: measured fastest at every decode M on
 * the H200 (NOTES entry 7). gfx908 8 (reasoned, not measured, NOTES entry 11): below it
 * `transposed` (v_dot2, 4-6 waves/SIMD) is memory-bound as well and keeps more loads in
 * flight than the MFMA kernel's 3 waves/SIMD; from 8 rows its VALU work per weight grows
 * with M while one 16-row MFMA per step stays under the byte time to M = 16. */
static constexpr int64_t kMmaAutoMinMGfx908 = 8;
int64_t gptq_gpu_mma_auto_min_m(void) { return GPTQ_TARGET_AMD ? kMmaAutoMinMGfx908 : 1; }

const char* gptq_gpu_tile_unsupported(gptq_gpu_kernel kernel, const gptq_gpu_tile* tile) {
  if (!tile) return nullptr;
  if (kernel == GPTQ_GPU_KERNEL_EXLLAMA && (tile->row_tile || tile->splits || tile->load_bytes || tile->kslices || tile->sw))
    return "exllama takes no tile parameters";
  if (tile->row_tile < 0 || tile->splits < 0 || tile->load_bytes < 0 || tile->kslices < 0 || tile->sw < 0)
    return "tile values must be positive";
  if (tile->kslices && kernel != GPTQ_GPU_KERNEL_TRANSPOSED_MMA) return "only `transposed_mma` takes kslices";
  if (tile->kslices && !kMmaKSlices && tile->kslices != 1)
    return "kslices must be 1 on this target (transposed_mma has no K slices there)";
  if (tile->kslices && ((tile->kslices & (tile->kslices - 1)) || tile->kslices > kMmaSliceWaves))
    return "kslices must be 1, 2, 4, 8 or 16 (waves per strip; 16: row tile 8)";
  if (tile->kslices > kMmaWaves && tile->row_tile && tile->row_tile != 8) return "kslices=16 needs mt=8";
  if (tile->sw && kernel != GPTQ_GPU_KERNEL_TRANSPOSED_MMA) return "only `transposed_mma` takes sw";
  if (tile->sw > 4 || tile->sw == 3) return "sw must be 1, 2 or 4 (strips per wave)"; /* < 0: above */
  if (tile->sw > 1 && !kMmaSwCompiled(tile->row_tile, tile->sw, 4))
    return "sw=2 needs mt=32 or mt=64, sw=4 needs mt=32 (strips per wave of the wide row tiles)";
  if (tile->sw > 1 && tile->kslices > 1) return "sw > 1 takes one K slice (kslices=1)";
  if (tile->splits > 65535) return "splits must be at most 65535 (grid.y)";
  if (kernel == GPTQ_GPU_KERNEL_VECTORIZED) {
    if (tile->load_bytes && tile->load_bytes != 8 && tile->load_bytes != 16) return "load must be 8 or 16 (bytes per lane)";
  } else if (tile->load_bytes) {
    return "only `vectorized` takes load";
  }
  if (!tile->row_tile) return nullptr;
  if (kernel == GPTQ_GPU_KERNEL_TRANSPOSED_MMA)
    return tile->row_tile == 16 || tile->row_tile == 32 || tile->row_tile == 64 ||
                   (tile->row_tile == 8 && kMmaMinRowTile == 8)
               ? nullptr
               : (kMmaMinRowTile == 8 ? "mt must be 8, 16, 32 or 64" : "mt must be 16, 32 or 64 (MFMA of 16 rows)");
  if (!tp_row_tile_compiled(tp_feed(kernel, tile), tile->row_tile))
    return kernel == GPTQ_GPU_KERNEL_TRANSPOSED ? "mt must be 1, 2, 4, 8 or 16" : "mt must be 1, 2, 4 or 8";
  return nullptr;
}

const char* gptq_gpu_tile_problem_unsupported(const gptq_problem* p, gptq_gpu_kernel kernel,
                                              const gptq_gpu_tile* tile) {
  if (p && tile && kernel == GPTQ_GPU_KERNEL_TRANSPOSED_MMA && tile->sw > 1 &&
      !kMmaSwCompiled(tile->row_tile, tile->sw, p->bits))
    return "sw > 1 needs 4- or 8-bit weights (2-bit tiles spill with several strips per wave: sw=1)";
  if (p && tile && kernel == GPTQ_GPU_KERNEL_TRANSPOSED_MMA && tile->kslices > kMmaWaves &&
      !kMmaWavesCompiled(tile->row_tile ? tile->row_tile : p->m <= 8 ? 8 : 16, 1, p->bits, kMmaSliceWaves))
    return "kslices=16 needs row tile 8 (M <= 8 or mt=8) and 4- or 8-bit weights";
  return nullptr;
}

const char* gptq_gpu_transposed_unsupported(const gptq_problem* p, gptq_gpu_kernel kernel) {
  if (!p) return "no problem";
  if (kernel == GPTQ_GPU_KERNEL_TRANSPOSED_MMA && !GPTQ_HAS_MMA)
    return "needs matrix instructions (compat.h has none for this target)";
  const char* why = tp_layout_unsupported(p);
  if (why) return why;
  if (tp_ceil_div(p->n, 16) > kTpCountersPerRegion) return "N must be at most 131072 (split-K counters)";
  return nullptr;
}

/* Memory safety of a launch: the shared checks, the kernel's requirements, pointers. */
static gptq_status tp_preconditions(const gptq_problem* p, const gptq_gpu_kernel* gemm) {
  gptq_status st = gptq_check_problem(p);
  if (st != GPTQ_OK) return st;
  if (gemm && *gemm == GPTQ_GPU_KERNEL_TRANSPOSED_MMA && !GPTQ_HAS_MMA) return GPTQ_ERR_NO_KERNEL;
  if (gemm ? gptq_gpu_transposed_unsupported(p, *gemm) : tp_layout_unsupported(p)) return GPTQ_ERR_SHAPE;
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
  a.kslices = 1;
  a.zero_offset = p->zero_offset;
  a.scale_bf16 = p->scale_dtype == GPTQ_BF16;
  return a;
}

size_t gptq_gpu_transposed_workspace_bytes(const gptq_problem* p, gptq_gpu_kernel kernel,
                                           const gptq_gpu_tile* tile, int sm_count) {
  if (!p || p->m <= 0 || tp_preconditions(p, &kernel) != GPTQ_OK) return 0;
  if (gptq_gpu_tile_unsupported(kernel, tile)) return 0;
  return tp_make_plan(p, kernel, tile, sm_count).ws_bytes;
}

gptq_status gptq_gpu_transposed_gemm(const gptq_problem* p, gptq_gpu_kernel kernel,
                                     const gptq_gpu_tile* tile, int sm_count, void* workspace,
                                     size_t workspace_bytes, void* stream) {
  if (!p) return GPTQ_ERR_SHAPE;
  if (p->m == 0) return GPTQ_OK;
  gptq_status st = tp_preconditions(p, &kernel);
  if (st != GPTQ_OK) return st;
  if (gptq_gpu_tile_unsupported(kernel, tile)) return GPTQ_ERR_SHAPE;
  if (!p->a || p->lda < p->k) return GPTQ_ERR_SHAPE;
  const tp_plan pl = tp_make_plan(p, kernel, tile, sm_count);
  if (!pl.fn) return GPTQ_ERR_NO_KERNEL;
  tp_args a = tp_make_args(p);
  a.splits = pl.splits;
  a.tiles_per_split = pl.tiles_per_split;
  a.kslices = pl.kslices;
  if (pl.ws_bytes && (!workspace || workspace_bytes < pl.ws_bytes)) return GPTQ_ERR_SHAPE;
  if (pl.splits > 1) {
    a.ws = (float*)workspace;
    a.counters = tp_counter_region(stream);
    if (!a.counters) return GPTQ_ERR_LAUNCH;
  }
  if (pl.gather) {
    uint16_t* dense = (uint16_t*)((char*)workspace + pl.gather_offset);
    if (pl.frag) {
      const int64_t units = tp_ceil_div(p->m, GPTQ_MMA_ROWS) * (p->k / 16) * kMmaLanes;
      GPTQ_LAUNCH(gptq_transposed_frag_act_kernel, dim3((unsigned)tp_ceil_div(units, kTpThreads)), dim3(kTpThreads),
                  (gptq_stream_t)stream)(a, (uint2*)dense, units);
    } else {
      const dim3 ggrid((unsigned)tp_ceil_div(p->k, kTpThreads), (unsigned)(p->m < 65535 ? p->m : 65535));
      GPTQ_LAUNCH(gptq_transposed_gather_act_kernel, ggrid, kTpThreads, (gptq_stream_t)stream)(a, dense);
    }
    const gptq_status gst = gptq_launch_status();
    if (gst != GPTQ_OK) return gst;
    a.a = dense;
    a.lda = p->k;
    a.a_perm = nullptr;
  }
  const dim3 grid((unsigned)pl.grid_x, (unsigned)pl.splits);
  /* M beyond one pass: passes of pl.mt rows, in order on the stream (each re-reads W) */
  for (int64_t m0 = 0; m0 < p->m; m0 += pl.mt) {
    a.m0 = m0;
    /* behind the gather: start the weight loads while it finishes (the kernel waits for it
     * before reading a) */
    if (pl.gather && m0 == 0) gptq_launch_early(pl.fn, grid, dim3(pl.threads), (gptq_stream_t)stream, a);
    else GPTQ_LAUNCH(pl.fn, grid, pl.threads, (gptq_stream_t)stream)(a);
    const gptq_status st = gptq_launch_status();
    if (st != GPTQ_OK) return st;
  }
  return GPTQ_OK;
}

gptq_status gptq_gpu_transposed_dequantize(const gptq_problem* p, void* stream) {
  if (!p) return GPTQ_ERR_SHAPE;
  gptq_status st = tp_preconditions(p, nullptr);
  if (st != GPTQ_OK) return st;
  tp_args a = tp_make_args(p);
  const int64_t tiles = p->k / (512 / p->bits);
  int64_t ys = tp_ceil_div(tiles, kTpSlots);
  if (ys > 65535) ys = 65535;
  const dim3 grid((unsigned)tp_ceil_div(p->n, 16), (unsigned)ys);
  const gptq_stream_t s = (gptq_stream_t)stream;
  gptq_dispatch_bits_act(p->bits, p->a_dtype == GPTQ_BF16, [&](auto bits, auto act) {
    if constexpr (decltype(bits)::value != 3) /* no layout 2 for 3-bit (rejected above) */
      GPTQ_LAUNCH((gptq_transposed_dequant_kernel<decltype(bits)::value, decltype(act)::value>), grid,
                  kTpThreads, s)(a);
  });
  return gptq_launch_status();
}

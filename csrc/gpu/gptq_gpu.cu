/* gptq_gpu.cu: torch-free GPTQ kernels for gfx908 (HIP) and sm_90 (CUDA), one source.
 *
 * Baseline GEMM c[m, n] = a[m, :] @ W ("exllama" decomposition, deterministic split-K):
 *
 *            N (output columns) ---------------------------------------------->
 *            |<----- block: THREADS x 4 columns ------>|<---- next block ---->|
 *            | t0 | t1 | t2 | ...               | tT-1 |                      |  grid.x
 *   K   -----+----+----+----+-------------------+------+----------------------+
 *   |  split | K tile of BLOCK_K rows:                 |                      |
 *   |    0   |  A[m0 : m0+M_TILE, a_perm[k0 : k0+BK]] -> LDS, fp16 in pair order
 *   |  (z)   |  group of every row, and of every chunk -> LDS
 *   |        |  thread t: one 16-byte load = 4 adjacent columns of one packed int32
 *   |        |  row; (q - z) pairs . activation pairs, fp32 accumulation; scale per
 *   |        |  chunk in fp32; acc[M_TILE][4] in registers for the whole split
 *   |  ------+------------------------------------------+----------------------+
 *   v  split |  ... next rows_per_split rows (multiple of 32)                   |
 *      1     |                                                                  |
 *
 *   grid.y: M tiles of M_TILE rows (looped in-kernel beyond 65535).
 *   grid.z: K splits. splits == 1: the GEMM writes c. splits > 1: fp32 partials go
 *   to ws[split][m][n] and gptq_reduce_kernel sums them in split order. No atomics
 *   on floats anywhere, so results are bitwise identical run to run.
 *
 * A chunk is the K rows of one packed unit: 32/bits rows in one int32 (2, 4, 8 bits)
 * or 32 rows in 3 int32 (3 bits). Pair j of a chunk is rows (j, j + rows/2): with that
 * pairing, one shift and mask of the word yields both values in the two fp16 halves,
 * and activations are staged in LDS in the same pair order.
 */
#include "compat.h"
#include "device_util.cuh"
#include "../gptq_kernels.h"
#include "gptq_gpu.h"

/* ---- block-size table: one row per target, the row in use chosen by vendor ---------- */
struct gptq_arch_cfg {
  int threads;              /* GEMM block size; 4 output columns per thread */
  int block_k;              /* K rows staged in LDS per tile */
  int min_blocks;           /* GPTQ_LAUNCH_BOUNDS second argument (blocks per SM/CU) */
  int split_min_rows;       /* a K split covers at least this many rows */
  int target_blocks_per_sm; /* split-K aims at this many GEMM blocks per SM/CU */
  int max_q_gemm_rows;      /* above this m, dequantize + dense GEMM is expected to win */
  int max_q_gemm_rows_4bit; /* same for 4-bit weights */
  int max_q_gemm_rows_8bit; /* same for 8-bit weights */
};

/* gfx908 (not measured on MI100). The row limits 64 / 32 (large-M threshold 65 / 33) now
 * bound the default `transposed` on layout 2 (reasoned, benchmarks/NOTES.md entries 8-9).
 * 256 threads = 4 waves = one wave per SIMD of a CU;
 * K tile 256 and the row limits 64 / 32 are the earlier MI100 effort's tuning of the
 * exllama kernel (BLOCK_KN_SIZE, MAX_Q_GEMM_ROWS, MAX_Q_GEMM_ROWS_8BIT). Launch bounds
 * (256, 2) instead of that effort's (256, 1): with 1 the compiler takes 150-250 VGPRs
 * for 4- and 8-row tiles here (1 wave/SIMD); 2 blocks/CU caps VGPRs at 128, i.e. 2 waves
 * per SIMD and 2 x 16 KB of weight loads in flight per CU (10-20 KB are needed to cover
 * ~700-cycle DRAM latency). Split-K aims at 2 blocks per CU (120 CUs): at <= 128 VGPRs
 * exactly 2 blocks of 256 threads fit on a CU, so more would only queue. */
static constexpr gptq_arch_cfg kCfgGfx908 = {256, 256, 2, 128, 2, 64, 64, 32};
/* sm_90: 128 threads, K tile 128, no register cap (not swept). Split-K target 4
 * blocks/SM: one H100 check (4-bit m=1, 5120x12800: 33.8 -> 25.1 us against 2 blocks/SM;
 * 8 gave nothing more). Max q-gemm rows 32 / 64 (4-bit) / 64 (8-bit): transposed_mma on
 * layout 2 beat dequantize + cuBLAS through M = 32 on all four Qwen3-32B TP=4 W4 shapes (H200,
 * benchmarks/results/nvidia-h200-issue10/), and its 64-row tile with two stages at M = 64
 * by 10-47% (H100, NOTES entry 38); 8-bit: NOTES entry 45. 2/3-bit keep 32 (not measured
 * past M = 8). This exllama kernel itself crossed over at M = 16 (H100) and at 16-32 (H200). */
static constexpr gptq_arch_cfg kCfgSm90 = {128, 128, 1, 128, 4, 32, 64, 64};

static constexpr gptq_arch_cfg kCfg = GPTQ_TARGET_AMD ? kCfgGfx908 : kCfgSm90;
static const char* const kCfgText =
    GPTQ_TARGET_AMD
        ? "gfx908: GEMM block 256 threads x 4 columns, K tile 256, M tile 1/2/4/8 "
          "(3-bit 1/2/4), launch bounds (256 threads, 2 blocks/CU = 2 waves/SIMD, "
          "<= 128 VGPRs), split-K >= 128 rows/split aiming at 2 blocks/CU, max q-gemm "
          "rows 64 (8-bit 32) (not measured on MI100)"
        : "sm_90: GEMM block 128 threads x 4 columns, K tile 128, M tile 1/2/4/8 "
          "(3-bit 1/2/4), launch bounds (128 threads, 1 block/SM), split-K >= 128 "
          "rows/split aiming at 4 blocks/SM, max q-gemm rows 32 (4-bit 64, 8-bit 64) (measured on H200 and H100 for transposed_mma)";

static constexpr int kThreads = kCfg.threads;
static constexpr int kBlockK = kCfg.block_k;
static constexpr int kMinBlocks = kCfg.min_blocks;
static constexpr int kCols = 4;          /* columns per thread: one 16-byte int32x4 load */
static constexpr int kSplitGranule = 32; /* split starts are multiples of every chunk */
static constexpr int kMaxSplits = 256;   /* bounds workspace and the reduce loop */
static constexpr int kAuxThreads = 256;  /* reduce / dequantize / permute blocks */
static constexpr unsigned kMaxGridY = 65535u;

static_assert(kThreads % 64 == 0, "GEMM block must be whole waves on wave64 and warp32");
static_assert(kThreads % GPTQ_WAVE_SIZE == 0, "GEMM block must be whole waves");
static_assert(kBlockK % 64 == 0, "K tile must hold whole batches of every bit width");

/* Activation dtype codes used as template arguments (match gptq_dtype). */
enum { kActF16 = 0, kActBF16 = 1 };

/* Clamped a_perm / group_index entries, counted with integer atomics (module memory).
 * A GEMM block counts each bad entry each time it stages it (once per K tile per M
 * tile), dequantize and permute once per block: the count is 0 exactly when nothing
 * was clamped; otherwise it is at least the number of bad entries, not that number. */
__device__ int g_gptq_index_errors;

/* ---- packing traits ---------------------------------------------------------------- */
template <int BITS>
struct qpack {
  static constexpr int kRows = BITS == 3 ? 32 : 32 / BITS; /* K rows per chunk */
  static constexpr int kWords = BITS == 3 ? 3 : 1;          /* int32 rows per chunk */
  static constexpr int kPairs = kRows / 2;                  /* pairs (j, j + kPairs) */
  static constexpr uint32_t kMask = (1u << BITS) - 1u;
  /* chunks loaded per batch: 64 bytes (96 for 3-bit) in flight per thread */
  static constexpr int kUnroll = BITS == 3 ? 2 : 4;
};

/* Activation storage in LDS: fp16 pairs as one 32-bit word, bf16 widened to float2. */
template <int ACT>
struct act_lds;
template <>
struct act_lds<kActF16> {
  typedef uint32_t pair_t;
};
template <>
struct act_lds<kActBF16> {
  typedef float2 pair_t;
};

/* Kernel arguments of the GEMM (by value; one struct keeps the launch list short). */
struct gemm_args {
  const uint16_t* a;          /* [m, lda] fp16 or bf16 bits */
  const int32_t* qweight;     /* [k * bits / 32, n], 16-byte aligned */
  const int32_t* qzeros;      /* [groups, n * bits / 32] */
  const uint16_t* scales;     /* [groups, n] fp16 or bf16 bits */
  const int32_t* a_perm;      /* [k] or NULL */
  const int32_t* group_index; /* [k] or NULL */
  uint16_t* c;                /* [m, ldc] output (splits == 1) */
  float* ws;                  /* [splits, m, n] fp32 partials, NULL when splits == 1 */
  int* errors;                /* clamped-index counter or NULL */
  int64_t m, n, k, lda, ldc;
  int64_t groups, group_size;
  int64_t rows_per_split;     /* K rows per split, multiple of 32 */
  int64_t m_blocks;           /* ceil(m / M_TILE) */
  int zero_offset;            /* 1: GPTQ v1, 0: v2 */
  int scale_bf16;             /* scales are bf16 (else fp16) */
};

/* ---- small device helpers ---------------------------------------------------------- */
__device__ __forceinline__ uint32_t u4_get(const uint4& v, int c) {
  return c == 0 ? v.x : (c == 1 ? v.y : (c == 2 ? v.z : v.w));
}

/* Group of kernel row r: group_index[r] clamped, or r / group_size. */
__device__ __forceinline__ int group_of(int64_t r, const int32_t* group_index, int64_t groups,
                                       int64_t group_size, int* errors, bool count) {
  if (group_index) return (int)clamp_index(group_index[r], groups, errors, count);
  const int64_t g = r / group_size;
  return (int)(g < groups ? g : groups - 1);
}

/* Value i (runtime) of a chunk held in w[0..kWords-1] (one column). 3-bit: 96-bit stream,
 * value i at bit 3i; selects instead of a dynamic register index (which would spill). */
template <int BITS>
__device__ __forceinline__ uint32_t value_at(const uint32_t (&w)[3], int i) {
  if (BITS != 3) return (w[0] >> (BITS * i)) & qpack<BITS>::kMask;
  const int p = 3 * i;
  const uint32_t lo = p < 32 ? w[0] : (p < 64 ? w[1] : w[2]);
  const uint32_t hi = p < 32 ? w[1] : w[2];
  const uint64_t v = ((uint64_t)hi << 32) | lo;
  return (uint32_t)(v >> (p & 31)) & 7u;
}

/* Pair j (compile-time after unrolling) of a chunk as two BITS-wide fields at bits 0 and 16:
 * rows j and j + kPairs. For 2/4/8 bits that is one shift and one mask. */
template <int BITS>
__device__ __forceinline__ uint32_t pair_fields(const uint32_t (&w)[3], int j) {
  if (BITS != 3) {
    const uint32_t m = qpack<BITS>::kMask;
    return (w[0] >> (BITS * j)) & (m | (m << 16));
  }
  return value_at<3>(w, j) | (value_at<3>(w, j + 16) << 16);
}

/* Zeros of the 4 columns n0..n0+3 of group row zrow (packed along N). Every word read
 * holds a bit of a column < n, so no read goes past the row (n % 4 == 0, n0 < n). */
template <int BITS>
__device__ __forceinline__ void load_zeros4(const int32_t* zrow, int64_t n0, int (&z)[4]) {
  const int64_t bit0 = n0 * BITS;
  const uint32_t w0 = (uint32_t)zrow[bit0 >> 5];
  const int sh = (int)(bit0 & 31);
  uint64_t v = w0;
  if (BITS == 3 && sh + 4 * BITS > 32) v |= (uint64_t)(uint32_t)zrow[(bit0 >> 5) + 1] << 32;
#pragma unroll
  for (int c = 0; c < kCols; ++c) z[c] = (int)((v >> (sh + BITS * c)) & qpack<BITS>::kMask);
}

/* Row stride of the LDS activation tile, in pairs. */
static constexpr int kPairStride = kBlockK / 2;

/* Column c's words of a chunk (one uint4 per int32 row of the chunk). */
template <int WORDS>
__device__ __forceinline__ void column_words(const uint4 (&wv)[WORDS], int c, uint32_t (&w)[3]) {
  w[0] = u4_get(wv[0], c);
  w[1] = WORDS > 1 ? u4_get(wv[WORDS > 1 ? 1 : 0], c) : 0u;
  w[2] = WORDS > 2 ? u4_get(wv[WORDS > 2 ? 2 : 0], c) : 0u;
}

/* One chunk whose rows share a group: fp32 partial per (column, row) over the chunk
 * from exact fp16 (q - z) pairs, then one fma with the fp32 scale into acc. The pair
 * loop is outermost so each activation pair is read from LDS once per chunk. */
template <int BITS, int ACT, int M_TILE>
__device__ __forceinline__ void fast_chunk(const uint4 (&wv)[qpack<BITS>::kWords],
                                           const typename act_lds<ACT>::pair_t* pairs, /* chunk's pairs of row 0 */
                                           const uint32_t (&zh)[kCols], const float (&sc)[kCols],
                                           float (&acc)[M_TILE][kCols]) {
  constexpr int PAIRS = qpack<BITS>::kPairs;
  float part[kCols][M_TILE];
#pragma unroll
  for (int c = 0; c < kCols; ++c)
#pragma unroll
    for (int m = 0; m < M_TILE; ++m) part[c][m] = 0.0f;
#pragma unroll
  for (int j = 0; j < PAIRS; ++j) {
    typename act_lds<ACT>::pair_t ap[M_TILE];
#pragma unroll
    for (int m = 0; m < M_TILE; ++m) ap[m] = pairs[m * kPairStride + j];
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      uint32_t w[3];
      column_words(wv, c, w);
      /* (1024 + q) pair minus (1024 + z) pair: exact (q - z) in both fp16 halves */
      const __half2 wq = __hsub2(gptq_h2_from_bits(pair_fields<BITS>(w, j) | 0x64006400u),
                                 gptq_h2_from_bits(zh[c]));
      if constexpr (ACT == kActF16) {
#pragma unroll
        for (int m = 0; m < M_TILE; ++m)
          part[c][m] = gptq_dot2_f32(wq, gptq_h2_from_bits(ap[m]), part[c][m]);
      } else {
        /* no bf16 dot on gfx908: widen the weights, two fp32 fmas */
        const float wlo = __low2float(wq), whi = __high2float(wq);
#pragma unroll
        for (int m = 0; m < M_TILE; ++m) part[c][m] = fmaf(whi, ap[m].y, fmaf(wlo, ap[m].x, part[c][m]));
      }
    }
  }
#pragma unroll
  for (int c = 0; c < kCols; ++c)
#pragma unroll
    for (int m = 0; m < M_TILE; ++m) acc[m][c] = fmaf(part[c][m], sc[c], acc[m][c]);
}

/* Row i (runtime) of a chunk whose rows are in several groups: fp32 weight per column. */
template <int BITS, int ACT, int M_TILE>
__device__ __forceinline__ void slow_row(const uint4 (&wv)[qpack<BITS>::kWords],
                                         const typename act_lds<ACT>::pair_t* pairs, int i,
                                         const uint32_t (&zh)[kCols], const float (&sc)[kCols],
                                         float (&acc)[M_TILE][kCols]) {
  constexpr int PAIRS = qpack<BITS>::kPairs;
  const int j = i < PAIRS ? i : i - PAIRS;
  float av[M_TILE];
#pragma unroll
  for (int m = 0; m < M_TILE; ++m) {
    const typename act_lds<ACT>::pair_t pr = pairs[m * kPairStride + j];
    if constexpr (ACT == kActF16) {
      av[m] = gptq_f16_bits_to_float((uint16_t)(i < PAIRS ? pr : pr >> 16));
    } else {
      av[m] = i < PAIRS ? pr.x : pr.y;
    }
  }
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    uint32_t w[3];
    column_words(wv, c, w);
    const int z = (int)(zh[c] & 0xffffu) - 0x6400;
    const float wf = (float)((int)value_at<BITS>(w, i) - z) * sc[c];
#pragma unroll
    for (int m = 0; m < M_TILE; ++m) acc[m][c] = fmaf(wf, av[m], acc[m][c]);
  }
}

/* ---- GEMM kernel ------------------------------------------------------------------- */
template <int BITS,   /* 2, 3, 4 or 8 */
          int ACT,    /* kActF16 or kActBF16 (activations and output) */
          int M_TILE> /* activation rows per block: 1, 2, 4 or 8 */
__global__ GPTQ_LAUNCH_BOUNDS(kThreads, kMinBlocks) void gptq_gemm_kernel(gemm_args p) {
  typedef qpack<BITS> Q;
  typedef typename act_lds<ACT>::pair_t pair_t;
  constexpr int CH = Q::kRows;
  constexpr int PAIRS = Q::kPairs;
  constexpr int WORDS = Q::kWords;
  constexpr int UNROLL = Q::kUnroll;
  static_assert(kBlockK % (CH * UNROLL) == 0, "K tile must hold whole batches");

  __shared__ pair_t s_a[M_TILE][kPairStride]; /* activation pairs of the tile */
  __shared__ int s_grp[kBlockK];              /* group of each tile row */
  __shared__ int s_cgrp[kBlockK / CH];        /* group of each chunk, -1 if mixed */

  const int t = threadIdx.x;
  const int64_t n = p.n;
  const int64_t n0 = ((int64_t)blockIdx.x * kThreads + t) * kCols;
  const bool col_ok = n0 < n; /* n % 4 == 0: all 4 columns valid or none */
  const int64_t split = blockIdx.z;
  const int64_t ks = split * p.rows_per_split;
  const int64_t ke = ks + p.rows_per_split < p.k ? ks + p.rows_per_split : p.k;
  const int64_t zwords = n * BITS / 32; /* int32 per qzeros row */

  for (int64_t mb = blockIdx.y; mb < p.m_blocks; mb += gridDim.y) {
    const int64_t m0 = mb * M_TILE;
    float acc[M_TILE][kCols];
#pragma unroll
    for (int m = 0; m < M_TILE; ++m)
#pragma unroll
      for (int c = 0; c < kCols; ++c) acc[m][c] = 0.0f;

    int cur_g = -1;        /* group whose zeros/scales are loaded (uniform per block) */
    uint32_t zh[kCols];    /* fp16 pair (1024 + z, 1024 + z) per column */
    float sc[kCols];       /* fp32 scale per column */
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      zh[c] = 0;
      sc[c] = 0.0f;
    }
    auto load_group = [&](int g) {
      int z[kCols];
      load_zeros4<BITS>(p.qzeros + (int64_t)g * zwords, n0, z);
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        /* 1024 + z is exact in fp16 for z <= 256 (8-bit v1 zero 255 + 1) */
        zh[c] = 0x64006400u + (uint32_t)(z[c] + p.zero_offset) * 0x00010001u;
        sc[c] = load_scale(p.scales, (int64_t)g * n + n0 + c, p.scale_bf16);
      }
      cur_g = g;
    };

    for (int64_t kt0 = ks; kt0 < ke; kt0 += kBlockK) {
      const int rows = (int)(ke - kt0 < kBlockK ? ke - kt0 : kBlockK); /* multiple of CH */
      const int nch = rows / CH;
      __syncthreads(); /* the previous tile's readers are done */

      /* Stage activation pairs: pair pi = chunk pi / PAIRS, rows (j, j + PAIRS). */
      for (int pi = t; pi < rows / 2; pi += kThreads) {
        const int ch = pi / PAIRS, j = pi - ch * PAIRS;
        const int64_t ra = kt0 + ch * CH + j, rb = ra + PAIRS;
        int64_t sa = ra, sb = rb;
        if (p.a_perm) {
          sa = clamp_index(p.a_perm[ra], p.k, p.errors, true);
          sb = clamp_index(p.a_perm[rb], p.k, p.errors, true);
        }
#pragma unroll
        for (int m = 0; m < M_TILE; ++m) {
          const int64_t row = m0 + m;
          uint16_t va = 0, vb = 0; /* rows past m contribute zeros (never stored) */
          if (row < p.m) {
            va = p.a[row * p.lda + sa];
            vb = p.a[row * p.lda + sb];
          }
          if constexpr (ACT == kActF16) {
            s_a[m][pi] = (uint32_t)va | ((uint32_t)vb << 16);
          } else {
            s_a[m][pi] = make_float2(gptq_bf16_bits_to_float(va), gptq_bf16_bits_to_float(vb));
          }
        }
      }
      /* Stage groups: one thread per chunk, which is uniform (fast path) or mixed. */
      for (int ch = t; ch < nch; ch += kThreads) {
        int g0 = 0;
        bool uniform = true;
#pragma unroll
        for (int i = 0; i < CH; ++i) {
          const int g = group_of(kt0 + ch * CH + i, p.group_index, p.groups, p.group_size,
                                 p.errors, true);
          s_grp[ch * CH + i] = g;
          if (i == 0) g0 = g;
          uniform = uniform && g == g0;
        }
        s_cgrp[ch] = uniform ? g0 : -1;
      }
      __syncthreads();
      if (!col_ok) continue; /* still reaches every barrier of the next tile */

      const int32_t* wt = p.qweight + ((kt0 / CH) * WORDS) * n + n0; /* tile's first word */
#pragma unroll 1
      for (int cb = 0; cb < nch; cb += UNROLL) {
        int g[UNROLL]; /* chunk groups of this batch (uniform across the block) */
        bool mixed = false;
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
          g[u] = s_cgrp[cb + u < nch ? cb + u : nch - 1];
          mixed = mixed || g[u] < 0;
        }
        if (!mixed) {
          /* Fast path. Issue the whole batch of 16-byte weight loads before using any;
           * chunks past the tile re-read its last chunk (in bounds) and are skipped. */
          uint4 wv[UNROLL][WORDS];
#pragma unroll
          for (int u = 0; u < UNROLL; ++u) {
            const int ch = cb + u < nch ? cb + u : nch - 1;
#pragma unroll
            for (int w = 0; w < WORDS; ++w) wv[u][w] = gptq_ld_v4(wt + (int64_t)(ch * WORDS + w) * n);
          }
#pragma unroll
          for (int u = 0; u < UNROLL; ++u) {
            if (cb + u < nch) {
              if (g[u] != cur_g) load_group(g[u]);
              fast_chunk<BITS, ACT, M_TILE>(wv[u], &s_a[0][(cb + u) * PAIRS], zh, sc, acc);
            }
          }
        } else {
          /* Slow path (a chunk's rows in several groups, e.g. unsorted group_index):
           * row by row in fp32, kept out of the fast path's registers. */
#pragma unroll 1
          for (int ch = cb; ch < cb + UNROLL && ch < nch; ++ch) {
            uint4 wv[WORDS];
#pragma unroll
            for (int w = 0; w < WORDS; ++w) wv[w] = gptq_ld_v4(wt + (int64_t)(ch * WORDS + w) * n);
#pragma unroll 1
            for (int i = 0; i < CH; ++i) {
              const int gi = s_grp[ch * CH + i];
              if (gi != cur_g) load_group(gi);
              slow_row<BITS, ACT, M_TILE>(wv, &s_a[0][ch * PAIRS], i, zh, sc, acc);
            }
          }
        }
      }
    }

    if (col_ok) {
#pragma unroll
      for (int m = 0; m < M_TILE; ++m) {
        const int64_t row = m0 + m;
        if (row >= p.m) break;
        if (p.ws) {
          float4 v;
          v.x = acc[m][0];
          v.y = acc[m][1];
          v.z = acc[m][2];
          v.w = acc[m][3];
          *reinterpret_cast<float4*>(p.ws + (split * p.m + row) * n + n0) = v;
        } else {
          uint16_t* out = p.c + row * p.ldc + n0;
#pragma unroll
          for (int c = 0; c < kCols; ++c)
            out[c] = ACT == kActF16 ? gptq_float_to_f16_bits(acc[m][c])
                                    : gptq_float_to_bf16_bits(acc[m][c]);
        }
      }
    }
  }
}

/* ---- split-K reduction: c = sum over splits in fixed order ---------------------------- */
template <int ACT> /* kActF16 or kActBF16 (output) */
__global__ GPTQ_LAUNCH_BOUNDS(kAuxThreads, 1) void gptq_reduce_kernel(
    const float* ws,  /* [splits, m, n] */
    uint16_t* c,      /* [m, ldc] */
    int64_t m,        /* rows */
    int64_t n,        /* columns, multiple of 4 */
    int64_t ldc,      /* output row stride (elements) */
    int splits) {     /* >= 2 */
  const int64_t quads = n / 4;
  const int64_t total = m * quads;
  for (int64_t q = (int64_t)blockIdx.x * kAuxThreads + threadIdx.x; q < total;
       q += (int64_t)gridDim.x * kAuxThreads) {
    const int64_t row = q / quads, col = (q - row * quads) * 4;
    const int64_t plane = m * n;
    const float* src = ws + row * n + col;
    float4 s = *reinterpret_cast<const float4*>(src);
    for (int sp = 1; sp < splits; ++sp) {
      const float4 v = *reinterpret_cast<const float4*>(src + sp * plane);
      s.x += v.x;
      s.y += v.y;
      s.z += v.z;
      s.w += v.w;
    }
    uint16_t* out = c + row * ldc + col;
    const float r[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
    for (int i = 0; i < 4; ++i)
      out[i] = ACT == kActF16 ? gptq_float_to_f16_bits(r[i]) : gptq_float_to_bf16_bits(r[i]);
  }
}

/* ---- dequantize: out[a_perm ? a_perm[r] : r, :] = w[r, :] ----------------------------- */
struct dequant_args {
  const int32_t* qweight;     /* [k * bits / 32, n], 16-byte aligned */
  const int32_t* qzeros;      /* [groups, n * bits / 32] */
  const uint16_t* scales;     /* [groups, n] */
  const int32_t* a_perm;      /* [k] or NULL */
  const int32_t* group_index; /* [k] or NULL */
  uint16_t* out;              /* [k, ldc] */
  int* errors;                /* clamped-index counter or NULL */
  int64_t n, k, ldc, groups, group_size;
  int zero_offset;
  int scale_bf16;
};

template <int BITS, /* 2, 3, 4 or 8 */
          int ACT>  /* output dtype: kActF16 or kActBF16 */
__global__ GPTQ_LAUNCH_BOUNDS(kAuxThreads, 1) void gptq_dequant_kernel(dequant_args p) {
  typedef qpack<BITS> Q;
  const int64_t n = p.n;
  const int64_t n0 = ((int64_t)blockIdx.x * kAuxThreads + threadIdx.x) * kCols;
  if (n0 >= n) return; /* no barriers in this kernel */
  const bool counter = threadIdx.x == 0; /* count each bad entry once per block */
  const int64_t nchunks = p.k / Q::kRows;
  const int64_t zwords = n * BITS / 32;
  for (int64_t ch = blockIdx.y; ch < nchunks; ch += gridDim.y) {
    uint4 wv[Q::kWords];
#pragma unroll
    for (int w = 0; w < Q::kWords; ++w) wv[w] = gptq_ld_v4(p.qweight + (ch * Q::kWords + w) * n + n0);
    int cur_g = -1;
    int z[kCols] = {0, 0, 0, 0};
    float s[kCols] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < Q::kRows; ++i) {
      const int64_t r = ch * Q::kRows + i;
      const int g = group_of(r, p.group_index, p.groups, p.group_size, p.errors, counter);
      if (g != cur_g) {
        load_zeros4<BITS>(p.qzeros + (int64_t)g * zwords, n0, z);
#pragma unroll
        for (int c = 0; c < kCols; ++c) {
          z[c] += p.zero_offset;
          s[c] = load_scale(p.scales, (int64_t)g * n + n0 + c, p.scale_bf16);
        }
        cur_g = g;
      }
      const int64_t dst = p.a_perm ? clamp_index(p.a_perm[r], p.k, p.errors, counter) : r;
      uint16_t* o = p.out + dst * p.ldc + n0;
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        const uint32_t wc[3] = {u4_get(wv[0], c), u4_get(wv[Q::kWords > 1 ? 1 : 0], c),
                                u4_get(wv[Q::kWords > 2 ? 2 : 0], c)};
        const float w = (float)((int)value_at<BITS>(wc, i) - z[c]) * s[c]; /* fp32, one rounding below */
        o[c] = ACT == kActF16 ? gptq_float_to_f16_bits(w) : gptq_float_to_bf16_bits(w);
      }
    }
  }
}

/* ---- permute_rows: dst row r = src row perm[r] (unpacked K space) ----------------------- */
template <int BITS> /* 2, 3, 4 or 8 */
__global__ GPTQ_LAUNCH_BOUNDS(kAuxThreads, 1) void gptq_permute_kernel(
    const int32_t* src,  /* [k * bits / 32, n] */
    int32_t* dst,        /* [k * bits / 32, n], distinct from src */
    const int32_t* perm, /* [k] */
    int64_t k,           /* unpacked rows */
    int64_t n) {         /* columns */
  typedef qpack<BITS> Q;
  const int64_t col = (int64_t)blockIdx.x * kAuxThreads + threadIdx.x;
  if (col >= n) return; /* no barriers in this kernel */
  const bool counter = threadIdx.x == 0;
  const int64_t nchunks = k / Q::kRows;
  for (int64_t ch = blockIdx.y; ch < nchunks; ch += gridDim.y) {
    uint32_t out[3] = {0u, 0u, 0u};
#pragma unroll
    for (int i = 0; i < Q::kRows; ++i) {
      const int64_t sr = clamp_index(perm[ch * Q::kRows + i], k, &g_gptq_index_errors, counter);
      const int64_t sch = sr / Q::kRows;
      const int si = (int)(sr - sch * Q::kRows);
      /* gather value si of source chunk sch (one or two words of this column) */
      const int sp = si * BITS, sw = sp >> 5, ssh = sp & 31;
      const int32_t* sword = src + (sch * Q::kWords + sw) * n + col;
      uint32_t v = (uint32_t)sword[0] >> ssh;
      if (BITS == 3 && ssh > 29) v |= (uint32_t)sword[n] << (32 - ssh);
      v &= Q::kMask;
      /* place it at slot i of the output chunk */
      const int dp = i * BITS, dw = dp >> 5, dsh = dp & 31;
      out[dw] |= v << dsh;
      if (BITS == 3 && dsh > 29) out[dw + 1] |= v >> (32 - dsh);
    }
#pragma unroll
    for (int w = 0; w < Q::kWords; ++w) dst[(ch * Q::kWords + w) * n + col] = (int32_t)out[w];
  }
}

/* ==== host side =========================================================================== */

static constexpr int kMaxDevices = 64;

/* SM/CU count of the current device, read once per device (an attribute query, no sync). */
static int current_sm_count(void) {
  static int cache[kMaxDevices]; /* 0 = not read yet; racing writers store the same value */
  int dev = 0;
  if (gptq_get_device(&dev) != GPTQ_SUCCESS) {
    (void)gptq_get_last_error();
    return 1;
  }
  if (dev >= 0 && dev < kMaxDevices) {
    const int v = __atomic_load_n(&cache[dev], __ATOMIC_RELAXED);
    if (v > 0) return v;
  }
  int sms = 0;
  if (gptq_sm_count(dev, &sms) != GPTQ_SUCCESS || sms <= 0) {
    (void)gptq_get_last_error();
    sms = 1;
  } else if (dev >= 0 && dev < kMaxDevices) {
    __atomic_store_n(&cache[dev], sms, __ATOMIC_RELAXED);
  }
  return sms;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static int chunk_rows(int bits) { return bits == 3 ? 32 : 32 / bits; }

/* Shapes and dtypes the GPU kernels need to be memory-safe (gptq_check_problem covers
 * the rest). No pointer is looked at: the workspace query depends on shapes only. */
static gptq_status gpu_shape_preconditions(const gptq_problem* p) {
  if (p->bits != 2 && p->bits != 3 && p->bits != 4 && p->bits != 8) return GPTQ_ERR_BITS;
  if ((p->a_dtype != GPTQ_F16 && p->a_dtype != GPTQ_BF16) ||
      (p->scale_dtype != GPTQ_F16 && p->scale_dtype != GPTQ_BF16))
    return GPTQ_ERR_DTYPE;
  const int64_t pf = p->bits == 3 ? 32 : 32 / p->bits; /* qzeros pack factor along N */
  if (p->m < 0 || p->n < 0 || p->k < 0 || p->n % pf != 0 || p->n % kCols != 0 ||
      p->k % chunk_rows(p->bits) != 0 || p->ldc < p->n)
    return GPTQ_ERR_SHAPE;
  if (p->groups < 1 || (!p->group_index && p->group_size < 1)) return GPTQ_ERR_GROUP_SIZE;
  return GPTQ_OK;
}

/* Pointers: present, and qweight 16-byte aligned for the int32x4 loads. */
static gptq_status gpu_pointer_preconditions(const gptq_problem* p, bool need_a) {
  if (!p->qweight || !p->qzeros || !p->scales || !p->c) return GPTQ_ERR_SHAPE;
  if (need_a && (!p->a || p->lda < p->k)) return GPTQ_ERR_SHAPE;
  if (((uintptr_t)p->qweight & 15u) != 0) return GPTQ_ERR_ALIGNMENT;
  return GPTQ_OK;
}

/* Launch geometry of one GEMM call; the workspace query uses the same function. */
struct gemm_plan {
  int m_tile;             /* 1, 2, 4 or 8 */
  int64_t col_blocks;     /* grid.x */
  int64_t m_blocks;       /* M tiles; grid.y = min(m_blocks, 65535) */
  int splits;             /* grid.z */
  int64_t rows_per_split; /* multiple of 32 */
  size_t ws_bytes;        /* splits * m * n * 4 when splits > 1, else 0 */
};

static gemm_plan plan_gemm(const gptq_problem* p) {
  gemm_plan pl;
  pl.m_tile = p->m <= 1 ? 1 : (p->m == 2 ? 2 : (p->m <= 4 ? 4 : 8));
  /* 3-bit: an 8-row tile needs more than 128 VGPRs on gfx908 (scratch): use 4-row tiles */
  if (p->bits == 3 && pl.m_tile > 4) pl.m_tile = 4;
  pl.col_blocks = ceil_div(p->n, (int64_t)kThreads * kCols);
  pl.m_blocks = ceil_div(p->m, pl.m_tile);
  /* Split K only as far as needed to give every SM/CU target_blocks_per_sm blocks, and
   * never below split_min_rows rows per split (the reduction then stays small). */
  const int64_t base = pl.col_blocks * pl.m_blocks;
  const int64_t target = (int64_t)current_sm_count() * kCfg.target_blocks_per_sm;
  int64_t splits = base >= target ? 1 : ceil_div(target, base > 0 ? base : 1);
  const int64_t max_splits = p->k / kCfg.split_min_rows;
  if (splits > max_splits) splits = max_splits;
  if (splits > kMaxSplits) splits = kMaxSplits;
  if (splits < 1) splits = 1;
  pl.rows_per_split = ceil_div(ceil_div(p->k, splits), kSplitGranule) * kSplitGranule;
  if (pl.rows_per_split < kSplitGranule) pl.rows_per_split = kSplitGranule;
  splits = ceil_div(p->k, pl.rows_per_split); /* no empty split */
  pl.splits = splits < 1 ? 1 : (int)splits;
  pl.ws_bytes = pl.splits > 1 ? (size_t)pl.splits * (size_t)p->m * (size_t)p->n * sizeof(float) : 0;
  return pl;
}

typedef void (*gemm_kernel_fn)(gemm_args);

/* The compiled GEMM instantiations: bits x activation dtype x M_TILE (30 kernels; 3-bit
 * stops at M_TILE 4). Only these are built, to keep a one-arch build to a few minutes. */
static gemm_kernel_fn pick_gemm(int bits, int act, int m_tile) {
#define GPTQ_GEMM_CASE(B, A, M) \
  if (bits == B && act == A && m_tile == M) return gptq_gemm_kernel<B, A, M>;
#define GPTQ_GEMM_CASES(B, A)                                                        \
  GPTQ_GEMM_CASE(B, A, 1) GPTQ_GEMM_CASE(B, A, 2) GPTQ_GEMM_CASE(B, A, 4) GPTQ_GEMM_CASE(B, A, 8)
  GPTQ_GEMM_CASES(4, kActF16)
  GPTQ_GEMM_CASES(4, kActBF16)
  GPTQ_GEMM_CASES(8, kActF16)
  GPTQ_GEMM_CASES(8, kActBF16)
  GPTQ_GEMM_CASES(2, kActF16)
  GPTQ_GEMM_CASES(2, kActBF16)
  GPTQ_GEMM_CASE(3, kActF16, 1) GPTQ_GEMM_CASE(3, kActF16, 2) GPTQ_GEMM_CASE(3, kActF16, 4)
  GPTQ_GEMM_CASE(3, kActBF16, 1) GPTQ_GEMM_CASE(3, kActBF16, 2) GPTQ_GEMM_CASE(3, kActBF16, 4)
#undef GPTQ_GEMM_CASES
#undef GPTQ_GEMM_CASE
  return nullptr;
}

extern "C" {

size_t gptq_gpu_gemm_workspace_bytes(const gptq_problem* p, gptq_gpu_kernel kernel,
                                     const gptq_gpu_tile* tile) {
  if (p && kernel != GPTQ_GPU_KERNEL_EXLLAMA)
    return gptq_gpu_transposed_workspace_bytes(p, kernel, tile, current_sm_count());
  if (!p || kernel != GPTQ_GPU_KERNEL_EXLLAMA || p->m <= 0) return 0;
  if (gpu_shape_preconditions(p) != GPTQ_OK) return 0;
  return plan_gemm(p).ws_bytes;
}

gptq_status gptq_gpu_gemm(const gptq_problem* p, gptq_gpu_kernel kernel, const gptq_gpu_tile* tile,
                          void* workspace, size_t workspace_bytes, void* stream) {
  if (!p) return GPTQ_ERR_SHAPE;
  if (kernel != GPTQ_GPU_KERNEL_EXLLAMA)
    return gptq_gpu_transposed_gemm(p, kernel, tile, current_sm_count(), workspace, workspace_bytes, stream);
  if (kernel != GPTQ_GPU_KERNEL_EXLLAMA) return GPTQ_ERR_NO_KERNEL;
  if (p->m == 0) return GPTQ_OK; /* nothing to compute or launch */
  gptq_status st = gptq_check_problem(p);
  if (st != GPTQ_OK) return st;
  st = gpu_shape_preconditions(p);
  if (st == GPTQ_OK) st = gpu_pointer_preconditions(p, true);
  if (st != GPTQ_OK) return st;

  const gemm_plan pl = plan_gemm(p);
  if (pl.ws_bytes > 0) {
    /* too small a workspace is a caller shape error (no dedicated status code) */
    if (!workspace || workspace_bytes < pl.ws_bytes) return GPTQ_ERR_SHAPE;
    if (((uintptr_t)workspace & 15u) != 0) return GPTQ_ERR_ALIGNMENT; /* float4 stores */
  }
  const int act = p->a_dtype == GPTQ_BF16 ? kActBF16 : kActF16;
  const gemm_kernel_fn fn = pick_gemm(p->bits, act, pl.m_tile);
  if (!fn) return GPTQ_ERR_NO_KERNEL;

  gemm_args a;
  a.a = (const uint16_t*)p->a;
  a.qweight = p->qweight;
  a.qzeros = p->qzeros;
  a.scales = (const uint16_t*)p->scales;
  a.a_perm = p->a_perm;
  a.group_index = p->group_index;
  a.c = (uint16_t*)p->c;
  a.ws = pl.splits > 1 ? (float*)workspace : nullptr;
  a.errors = p->index_errors;
  a.m = p->m;
  a.n = p->n;
  a.k = p->k;
  a.lda = p->lda;
  a.ldc = p->ldc;
  a.groups = p->groups;
  a.group_size = p->group_size;
  a.rows_per_split = pl.rows_per_split;
  a.m_blocks = pl.m_blocks;
  a.zero_offset = p->zero_offset;
  a.scale_bf16 = p->scale_dtype == GPTQ_BF16;

  const gptq_stream_t s = (gptq_stream_t)stream;
  const dim3 grid((unsigned)pl.col_blocks,
                  (unsigned)(pl.m_blocks < (int64_t)kMaxGridY ? pl.m_blocks : kMaxGridY),
                  (unsigned)pl.splits);
  fn<<<grid, kThreads, 0, s>>>(a);
  st = gptq_launch_status();
  if (st != GPTQ_OK || pl.splits == 1) return st;

  const int64_t quads = p->m * (p->n / 4);
  int64_t blocks = ceil_div(quads, kAuxThreads);
  if (blocks > (1 << 20)) blocks = 1 << 20; /* grid-stride loop covers the rest */
  if (act == kActF16)
    gptq_reduce_kernel<kActF16><<<(unsigned)blocks, kAuxThreads, 0, s>>>(
        a.ws, a.c, p->m, p->n, p->ldc, pl.splits);
  else
    gptq_reduce_kernel<kActBF16><<<(unsigned)blocks, kAuxThreads, 0, s>>>(
        a.ws, a.c, p->m, p->n, p->ldc, pl.splits);
  return gptq_launch_status();
}

gptq_status gptq_gpu_dequantize(const gptq_problem* p, int layout, void* stream) {
  if (!p) return GPTQ_ERR_SHAPE;
  if (layout == GPTQ_LAYOUT_TILED) return gptq_gpu_transposed_dequantize(p, stream);
  if (layout != GPTQ_LAYOUT_CHECKPOINT) return GPTQ_ERR_SHAPE;
  gptq_status st = gpu_shape_preconditions(p);
  if (st == GPTQ_OK) st = gpu_pointer_preconditions(p, false);
  if (st != GPTQ_OK) return st;
  if (p->k == 0 || p->n == 0) return GPTQ_OK;

  dequant_args a;
  a.qweight = p->qweight;
  a.qzeros = p->qzeros;
  a.scales = (const uint16_t*)p->scales;
  a.a_perm = p->a_perm;
  a.group_index = p->group_index;
  a.out = (uint16_t*)p->c;
  a.errors = p->index_errors;
  a.n = p->n;
  a.k = p->k;
  a.ldc = p->ldc;
  a.groups = p->groups;
  a.group_size = p->group_size;
  a.zero_offset = p->zero_offset;
  a.scale_bf16 = p->scale_dtype == GPTQ_BF16;

  const int64_t nchunks = p->k / chunk_rows(p->bits);
  const dim3 grid((unsigned)ceil_div(p->n / kCols, kAuxThreads),
                  (unsigned)(nchunks < (int64_t)kMaxGridY ? nchunks : kMaxGridY));
  const gptq_stream_t s = (gptq_stream_t)stream;
  gptq_dispatch_bits_act(p->bits, p->a_dtype == GPTQ_BF16, [&](auto bits, auto act) {
    gptq_dequant_kernel<decltype(bits)::value, decltype(act)::value><<<grid, kAuxThreads, 0, s>>>(a);
  });
  return gptq_launch_status();
}

gptq_status gptq_gpu_permute_rows(const int32_t* src, int32_t* dst, const int32_t* perm,
                                  int64_t k, int64_t n, int bits, void* stream) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) return GPTQ_ERR_BITS;
  if (k < 0 || n < 0 || k % chunk_rows(bits) != 0) return GPTQ_ERR_SHAPE;
  if (k == 0 || n == 0) return GPTQ_OK;
  if (!src || !dst || !perm || src == dst) return GPTQ_ERR_SHAPE;
  const int64_t nchunks = k / chunk_rows(bits);
  const dim3 grid((unsigned)ceil_div(n, kAuxThreads),
                  (unsigned)(nchunks < (int64_t)kMaxGridY ? nchunks : kMaxGridY));
  const gptq_stream_t s = (gptq_stream_t)stream;
  switch (bits) {
    case 2: gptq_permute_kernel<2><<<grid, kAuxThreads, 0, s>>>(src, dst, perm, k, n); break;
    case 3: gptq_permute_kernel<3><<<grid, kAuxThreads, 0, s>>>(src, dst, perm, k, n); break;
    case 4: gptq_permute_kernel<4><<<grid, kAuxThreads, 0, s>>>(src, dst, perm, k, n); break;
    default: gptq_permute_kernel<8><<<grid, kAuxThreads, 0, s>>>(src, dst, perm, k, n); break;
  }
  return gptq_launch_status();
}

int32_t* gptq_gpu_index_error_counter(void) {
  static int32_t* cache[kMaxDevices]; /* device address of g_gptq_index_errors */
  int dev = 0;
  if (gptq_get_device(&dev) != GPTQ_SUCCESS) {
    (void)gptq_get_last_error();
    return nullptr;
  }
  if (dev >= 0 && dev < kMaxDevices) {
    int32_t* v = __atomic_load_n(&cache[dev], __ATOMIC_RELAXED);
    if (v) return v;
  }
  void* ptr = nullptr;
  if (gptq_get_symbol_address(&ptr, g_gptq_index_errors) != GPTQ_SUCCESS) {
    (void)gptq_get_last_error();
    return nullptr;
  }
  if (dev >= 0 && dev < kMaxDevices) __atomic_store_n(&cache[dev], (int32_t*)ptr, __ATOMIC_RELAXED);
  return (int32_t*)ptr;
}

gptq_status gptq_gpu_take_index_errors(int device, int64_t* out_count) {
  if (!out_count) return GPTQ_ERR_SHAPE;
  *out_count = 0;
  int prev = 0;
  if (gptq_get_device(&prev) != GPTQ_SUCCESS) {
    (void)gptq_get_last_error();
    return GPTQ_ERR_LAUNCH;
  }
  if (device != prev && gptq_set_device(device) != GPTQ_SUCCESS) {
    (void)gptq_get_last_error();
    return GPTQ_ERR_LAUNCH;
  }
  /* Synchronous copies: read, then reset. Only for explicit user calls, never in ops. */
  int value = 0;
  const int zero = 0;
  gptq_status st = GPTQ_OK;
  if (gptq_memcpy_from_symbol(&value, g_gptq_index_errors, sizeof(int)) != GPTQ_SUCCESS ||
      gptq_memcpy_to_symbol(g_gptq_index_errors, &zero, sizeof(int)) != GPTQ_SUCCESS) {
    (void)gptq_get_last_error();
    st = GPTQ_ERR_LAUNCH;
  }
  if (device != prev) (void)gptq_set_device(prev);
  if (st == GPTQ_OK) *out_count = value;
  return st;
}

/* exllama's rule: m > max_q_gemm_rows goes to dequantize + dense GEMM. */
int64_t gptq_gpu_large_m_threshold(int bits) {
  return (bits == 8 ? kCfg.max_q_gemm_rows_8bit : bits == 4 ? kCfg.max_q_gemm_rows_4bit : kCfg.max_q_gemm_rows) + 1;
}

const char* gptq_gpu_arch_config(void) { return kCfgText; }

} /* extern "C" */

/* m1_stream.cu: what bounds a weight-streaming W4 kernel on layout 2 at M = 1..8 (NVIDIA).
 *
 * A standalone experiment, not part of the extension: the same layout, dequantization and
 * mma.sync as gptq_transposed_mma_kernel, with the knobs the extension fixes made template
 * parameters, timed with CUDA graphs over weight copies rotated past L2 next to a read-only
 * stream of the same bytes. It answers, in one device call:
 *   MODE 0 (loads only: chunks, zero words, scales XOR-folded, nothing else): can this
 *          access pattern (a warp walks a strip's contiguous 1 KiB tiles) at D tiles per warp
 *          in flight reach the read-stream bandwidth at all?
 *   MODE 1 (the full tile math): how much of that does the math give back?
 *   ACT 0: B (activations) by 8-byte loads from global (L1 hits), no block barrier;
 *   ACT 1: activations staged in shared memory once per block (the extension's way);
 *   ACT 2: as ACT 0, but a tile's B loads are part of its ring stage (issued with its weights).
 *   ACT 3: as ACT 0, but from a fragment-ordered copy of a (a warp's B load of one 8-row group
 *          and 16-k step is 256 contiguous bytes, not 8 lines); the copy is built on the host
 *          once per shape, untimed: it stands for the product's separate small reorder launch.
 *   FOLD 1: the group scale multiplies the fp16 (q - z) pairs (one hmul2 per A register) and
 *          the mma accumulates straight into the output registers: no per-group fp32 D set
 *          (half the accumulator registers at wide row tiles; one fp16 rounding per weight,
 *          what dequantize + matmul has).
 *   FOLD 2: exact as FOLD 0 (D per group, x scale in fp32), but acc lives in shared memory
 *          (one read-modify-write per output per tile): the same registers saved, no change
 *          in rounding.
 *   RG:    row groups per strip: RG warps of a block share a strip (same weight chunks, L1
 *          hits after the first), each with 8 NB rows of its own (RG x 8 NB rows per pass).
 *   SW:    strips per warp (FOLD 1, no ring): a warp loads the tiles of SW adjacent strips, then
 *          each B fragment once per step for SW mma (B loads per weight byte / SW; W x SW strips
 *          per block).
 * Every variant is checked against a host fp32 reference of the same layout (partials of
 * the K splits summed on the host: the experiment leaves out the in-kernel split reduce).
 *
 * Build and run (device machine): nvcc -O3 -std=c++17 -arch=sm_90 -I csrc/gpu \
 *   benchmarks/micro/m1_stream.cu -o /tmp/m1 && /tmp/m1 [K N M]...
 */
#include <cuda_runtime.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));   \
      exit(1);                                                                             \
    }                                                                                      \
  } while (0)

static constexpr int TK = 128; /* 4-bit tile rows; group size 128 = one group per tile */

struct Params {
  const uint4* qw;        /* layout 2, strips of 16 columns (N % 16 == 0) */
  const uint32_t* qz;     /* [K/128, N/8] */
  const uint16_t* sc;     /* [K/128, N] fp16 */
  const uint16_t* a;      /* [M, K] fp16 */
  const uint2* af;        /* ACT 3: a in fragment order (frag_unit), rows >= M zero */
  float* ws;              /* [splits, M, N] */
  int K, N, M, tps;       /* tiles per split */
  int zoff;               /* 1: GPTQ v1 zeros */
};

__device__ __forceinline__ uint32_t and_or(uint32_t x, uint32_t m, uint32_t o) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(x), "r"(m), "r"(o)); /* (x & m) | o */
  return r;
}
__device__ __forceinline__ uint32_t hsub2u(uint32_t a, uint32_t b) {
  __half2 x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  __half2 r = __hsub2(x, y);
  uint32_t u;
  memcpy(&u, &r, 4);
  return u;
}
__device__ __forceinline__ uint32_t hfma2u(uint32_t a, uint32_t b, uint32_t c) {
  __half2 x, y, z;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  memcpy(&z, &c, 4);
  __half2 r = __hfma2(x, y, z);
  uint32_t u;
  memcpy(&u, &r, 4);
  return u;
}
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <int HINT>
__device__ __forceinline__ uint4 load_chunk(const uint4* p) {
  uint4 v;
  if (HINT)
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  else
    v = *p;
  return v;
}

/* ACT 3 fragment order: unit (8 bytes) u = (g * KS + s) * 32 + lane, KS = K / 16, holds what lane
 * reads in ACT 0 for 8-row group g, 16-k step s: a[8 g + lane / 4][16 s + 4 (lane % 4) .. + 3] */
__host__ __device__ __forceinline__ size_t frag_unit(int g, int s, int lane, int KS) {
  return ((size_t)g * KS + s) * 32 + lane;
}

template <int ACT>
struct Stage {
  uint2 b[ACT == 2 ? 8 : 1]; /* ACT 2: the tile's B operands, loaded with its weights */
  uint4 w0, w1;   /* chunks (q = lane % 4, col = lane / 4) and (q, col + 8) */
  uint2 z;        /* the strip's two zero words of the tile's group */
  uint32_t s0, s1; /* scale bits of columns col, col + 8 */
};

template <int MODE, int D, int WARPS, int MINB, int ACT, int HINT, int NB = 1, int FOLD = 0, int RG = 1>
__global__ void __launch_bounds__(WARPS * 32, MINB) m1_kernel(Params p) {
  static_assert(NB == 1 || ACT == 0 || ACT == 3, "row tiles of 16+ (NB mma per step) read B from L1");
  extern __shared__ __align__(16) uint32_t s_act[]; /* ACT 1: [M][tps * 64 + 8] fp16 pairs */
  static_assert(FOLD != 2 || ACT == 0 || ACT == 3, "FOLD 2 keeps acc in the dynamic shared memory");
  static_assert(WARPS % RG == 0 && (RG == 1 || ((ACT == 0 || ACT == 3) && HINT == 0)),
                "row groups: B from L1, chunks via L1");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int strip = blockIdx.x * (WARPS / RG) + warp / RG, split = blockIdx.y;
  const int row0 = (warp % RG) * 8 * NB; /* this warp's first activation row */
  const int tiles = p.K / TK;
  const int kt0 = split * p.tps, kt1 = min(kt0 + p.tps, tiles);
  const int col0 = strip * 16;
  const bool active = col0 < p.N && kt0 < kt1;
  const int ccol = lane >> 2, cq = lane & 3;
  const int n8 = p.N / 8;
  const uint4* wq = p.qw + ((size_t)strip * tiles) * 64 + cq * 16 + ccol;
  const uint32_t* zq = p.qz + col0 / 8;
  const uint16_t* sq = p.sc + col0 + ccol;
  const int astride = p.tps * 64 + 8;

  Stage<ACT> sg[D];
  int ahead = kt0;
  const int brow = row0 + ccol;
  const int g0 = row0 / 8, KS = p.K / 16; /* ACT 3: this warp's first 8-row group, 16-k steps */
  auto load = [&](Stage<ACT>& s) {
    const int kt = ahead++;
    if (kt >= kt1) return;
    if (ACT == 2) {
#pragma unroll
      for (int st = 0; st < 8; ++st)
        s.b[st] = brow < p.M ? *reinterpret_cast<const uint2*>(p.a + (size_t)brow * p.K + kt * TK + 16 * st + 4 * cq)
                             : make_uint2(0u, 0u);
    }
    s.w0 = load_chunk<HINT>(wq + (size_t)kt * 64);
    s.w1 = load_chunk<HINT>(wq + (size_t)kt * 64 + 8);
    s.z = *reinterpret_cast<const uint2*>(zq + (size_t)kt * n8);
    s.s0 = sq[(size_t)kt * p.N];
    s.s1 = sq[(size_t)kt * p.N + 8];
  };
  if (active) {
#pragma unroll
    for (int i = 0; i < D - 1; ++i) load(sg[i]);
  }
  if (ACT == 1) { /* the split's activations, as fp16 pairs, rows padded */
    const int half = (kt1 - kt0) * 64;
    for (int i = threadIdx.x; i < p.M * half; i += blockDim.x) {
      const int m = i / half, pr = i - m * half;
      s_act[m * astride + pr] = *reinterpret_cast<const uint32_t*>(p.a + (size_t)m * p.K + kt0 * TK + 2 * pr);
    }
    __syncthreads();
  }
  float acc[NB][4] = {};
  float* s_acc = reinterpret_cast<float*>(s_act) + warp * NB * 4 * 32 + lane; /* FOLD 2: [warp][nb 4 + i][lane] */
  if constexpr (FOLD == 2) {
#pragma unroll
    for (int i = 0; i < NB * 4; ++i) s_acc[32 * i] = 0.f;
  }
  uint32_t x = 0;
  auto tile = [&](int kt, const Stage<ACT>& s) {
    if (MODE == 0) {
      x ^= s.w0.x ^ s.w0.y ^ s.w0.z ^ s.w0.w ^ s.w1.x ^ s.w1.y ^ s.w1.z ^ s.w1.w ^ s.z.x ^ s.z.y ^ s.s0 ^ s.s1;
      return;
    }
    const uint32_t z0 = ((s.z.x >> (4 * ccol)) & 15u) + p.zoff, z1 = ((s.z.y >> (4 * ccol)) & 15u) + p.zoff;
    const uint32_t zh0 = 0x64006400u + z0 * 0x10001u, zh1 = 0x64006400u + z1 * 0x10001u;
    const uint32_t zl0 = (0xd400u + 16u * z0) * 0x10001u, zl1 = (0xd400u + 16u * z1) * 0x10001u;
    const uint32_t w0[4] = {s.w0.x, s.w0.y, s.w0.z, s.w0.w}, w1[4] = {s.w1.x, s.w1.y, s.w1.z, s.w1.w};
    float d[NB][4] = {};
    const uint32_t sp0 = s.s0 * 0x10001u, sp1 = s.s1 * 0x10001u; /* FOLD: scale pairs */
#pragma unroll
    for (int st = 0; st < 8; ++st) {
      const uint32_t x0 = (st & 1) ? w0[st / 2] >> 8 : w0[st / 2];
      const uint32_t x1 = (st & 1) ? w1[st / 2] >> 8 : w1[st / 2];
      uint32_t a[4];
      a[0] = hsub2u(and_or(x0, 0x000f000fu, 0x64006400u), zh0);
      a[1] = hsub2u(and_or(x1, 0x000f000fu, 0x64006400u), zh1);
      a[2] = hfma2u(and_or(x0, 0x00f000f0u, 0x64006400u), 0x2c002c00u, zl0);
      a[3] = hfma2u(and_or(x1, 0x00f000f0u, 0x64006400u), 0x2c002c00u, zl1);
      if constexpr (FOLD == 1) {
        a[0] = hfma2u(a[0], sp0, 0u);
        a[1] = hfma2u(a[1], sp1, 0u);
        a[2] = hfma2u(a[2], sp0, 0u);
        a[3] = hfma2u(a[3], sp1, 0u);
      }
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        uint2 b = make_uint2(0u, 0u);
        const int row = brow + 8 * nb;
        if (ACT == 2) {
          b = s.b[st];
        } else if (row < p.M) {
          if (ACT == 0)
            b = *reinterpret_cast<const uint2*>(p.a + (size_t)row * p.K + kt * TK + 16 * st + 4 * cq);
          else if (ACT == 3) /* row / 8 = g0 + nb; step kt * TK / 16 + st */
            b = p.af[frag_unit(g0 + nb, kt * (TK / 16) + st, lane, KS)];
          else
            b = *reinterpret_cast<const uint2*>(s_act + row * astride + ((kt - kt0) * TK + 16 * st + 4 * cq) / 2);
        }
        const uint32_t bv[2] = {b.x, b.y};
        mma16816(FOLD == 1 ? acc[nb] : d[nb], a, bv);
      }
    }
    if constexpr (FOLD == 1) return;
    const float f0 = __half2float(__ushort_as_half((uint16_t)s.s0)), f1 = __half2float(__ushort_as_half((uint16_t)s.s1));
    if constexpr (FOLD == 2) {
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
#pragma unroll
        for (int i = 0; i < 4; ++i) s_acc[32 * (4 * nb + i)] = fmaf(d[nb][i], i < 2 ? f0 : f1, s_acc[32 * (4 * nb + i)]);
    } else {
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        acc[nb][0] = fmaf(d[nb][0], f0, acc[nb][0]);
        acc[nb][1] = fmaf(d[nb][1], f0, acc[nb][1]);
        acc[nb][2] = fmaf(d[nb][2], f1, acc[nb][2]);
        acc[nb][3] = fmaf(d[nb][3], f1, acc[nb][3]);
      }
    }
  };
  if (active) {
    for (int kt = kt0; kt < kt1; kt += D) {
#pragma unroll
      for (int j = 0; j < D; ++j) {
        if (kt + j < kt1) {
          load(sg[(j + D - 1) % D]);
          tile(kt + j, sg[j]);
        }
      }
    }
  }
  if constexpr (FOLD == 2) {
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[nb][i] = s_acc[32 * (4 * nb + i)];
  }
  if (col0 >= p.N) return;
  float* ws = p.ws + (size_t)split * p.M * p.N;
  if (MODE == 0) {
    if (lane == 0) ws[col0] = (float)(x & 0xffff);
    return;
  }
  /* d[0], d[1]: column ccol, rows 2 cq, 2 cq + 1; d[2], d[3]: column ccol + 8 */
#pragma unroll
  for (int nb = 0; nb < NB; ++nb)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int m = row0 + 8 * nb + 2 * cq + (i & 1), col = col0 + ccol + 8 * (i >> 1);
      if (m < p.M) ws[(size_t)m * p.N + col] = active ? acc[nb][i] : 0.f;
    }
}

/* SW strips per warp (MODE 1, FOLD 1, ACT 0, hint 1, no ring): a warp owns SW adjacent strips,
 * loads the SW tiles of a k-tile, then per 16-k step loads each B fragment once and issues SW
 * mma with it (one per strip): B loads per weight byte / SW, acc[SW][NB][4]. A strip at or past
 * N loads nothing (zero weights and scales) and stores nothing. */
template <int WARPS, int MINB, int NB, int SW>
__global__ void __launch_bounds__(WARPS * 32, MINB) m1_sw_kernel(Params p) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int strip0 = (blockIdx.x * WARPS + warp) * SW, split = blockIdx.y;
  const int tiles = p.K / TK;
  const int kt0 = split * p.tps, kt1 = min(kt0 + p.tps, tiles);
  const int col0 = strip0 * 16;
  const bool active = col0 < p.N && kt0 < kt1;
  const int ccol = lane >> 2, cq = lane & 3;
  const int n8 = p.N / 8;
  const uint4* wq = p.qw + ((size_t)strip0 * tiles) * 64 + cq * 16 + ccol;
  const uint32_t* zq = p.qz + col0 / 8;
  const uint16_t* sq = p.sc + col0 + ccol;
  float acc[SW][NB][4] = {};
  if (active) {
    for (int kt = kt0; kt < kt1; ++kt) {
      Stage<0> sg[SW];
#pragma unroll
      for (int j = 0; j < SW; ++j) {
        if (col0 + 16 * j < p.N) {
          const uint4* w = wq + ((size_t)j * tiles + kt) * 64;
          sg[j].w0 = load_chunk<1>(w);
          sg[j].w1 = load_chunk<1>(w + 8);
          sg[j].z = *reinterpret_cast<const uint2*>(zq + (size_t)kt * n8 + 2 * j);
          sg[j].s0 = sq[(size_t)kt * p.N + 16 * j];
          sg[j].s1 = sq[(size_t)kt * p.N + 16 * j + 8];
        } else {
          sg[j].w0 = sg[j].w1 = make_uint4(0u, 0u, 0u, 0u);
          sg[j].z = make_uint2(0u, 0u);
          sg[j].s0 = sg[j].s1 = 0u;
        }
      }
#pragma unroll
      for (int st = 0; st < 8; ++st) {
        uint2 b[NB];
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          b[nb] = make_uint2(0u, 0u);
          const int row = ccol + 8 * nb;
          if (row < p.M) b[nb] = *reinterpret_cast<const uint2*>(p.a + (size_t)row * p.K + kt * TK + 16 * st + 4 * cq);
        }
#pragma unroll
        for (int j = 0; j < SW; ++j) {
          const uint32_t z0 = ((sg[j].z.x >> (4 * ccol)) & 15u) + p.zoff, z1 = ((sg[j].z.y >> (4 * ccol)) & 15u) + p.zoff;
          const uint32_t zh0 = 0x64006400u + z0 * 0x10001u, zh1 = 0x64006400u + z1 * 0x10001u;
          const uint32_t zl0 = (0xd400u + 16u * z0) * 0x10001u, zl1 = (0xd400u + 16u * z1) * 0x10001u;
          const uint32_t sp0 = sg[j].s0 * 0x10001u, sp1 = sg[j].s1 * 0x10001u;
          const uint32_t w0[4] = {sg[j].w0.x, sg[j].w0.y, sg[j].w0.z, sg[j].w0.w};
          const uint32_t w1[4] = {sg[j].w1.x, sg[j].w1.y, sg[j].w1.z, sg[j].w1.w};
          const uint32_t x0 = (st & 1) ? w0[st / 2] >> 8 : w0[st / 2];
          const uint32_t x1 = (st & 1) ? w1[st / 2] >> 8 : w1[st / 2];
          uint32_t a[4];
          a[0] = hfma2u(hsub2u(and_or(x0, 0x000f000fu, 0x64006400u), zh0), sp0, 0u);
          a[1] = hfma2u(hsub2u(and_or(x1, 0x000f000fu, 0x64006400u), zh1), sp1, 0u);
          a[2] = hfma2u(hfma2u(and_or(x0, 0x00f000f0u, 0x64006400u), 0x2c002c00u, zl0), sp0, 0u);
          a[3] = hfma2u(hfma2u(and_or(x1, 0x00f000f0u, 0x64006400u), 0x2c002c00u, zl1), sp1, 0u);
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            const uint32_t bv[2] = {b[nb].x, b[nb].y};
            mma16816(acc[j][nb], a, bv);
          }
        }
      }
    }
  }
  if (col0 >= p.N) return;
  float* ws = p.ws + (size_t)split * p.M * p.N;
#pragma unroll
  for (int j = 0; j < SW; ++j) {
    if (col0 + 16 * j >= p.N) break;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = 8 * nb + 2 * cq + (i & 1), col = col0 + 16 * j + ccol + 8 * (i >> 1);
        if (m < p.M) ws[(size_t)m * p.N + col] = active ? acc[j][nb][i] : 0.f;
      }
  }
}

/* read-only stream of the same bytes: the floor the variants are judged against */
__global__ void __launch_bounds__(512) stream_kernel(const uint4* src, size_t n16, uint32_t* out) {
  uint32_t x = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n16; i += 4 * stride) {
    const uint4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
    x ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n16; i += stride) {
    const uint4 a = src[i];
    x ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (x == 0x12345678u) out[0] = x;
}
__global__ void empty_kernel() {}

/* ---- host ------------------------------------------------------------------------------ */
struct Problem {
  int K, N, M;
  size_t wbytes, zbytes, sbytes, copy_bytes; /* one copy: weights + zeros + scales, aligned */
  int copies;
  char* pool;
  uint16_t* a;
  uint2* af; /* ACT 3: a in fragment order */
  float* ws;
  std::vector<uint32_t> hw, hz;
  std::vector<uint16_t> hs, ha;
};

static float h2f(uint16_t h) {
  __half x;
  memcpy(&x, &h, 2);
  return __half2float(x);
}
static uint16_t f2h(float f) {
  __half x = __float2half(f);
  uint16_t h;
  memcpy(&h, &x, 2);
  return h;
}

/* host decode of layout 2 (gptq_mi100/layouts.py): value of (k, n) */
static int q_at(const Problem& pr, int k, int n) {
  const int tiles = pr.K / TK, strip = n / 16, col = n % 16, kt = k / TK, r = k % TK;
  const int st = r / 16, q = (r % 16) / 4, j = r % 4, t = 2 * st + j / 2;
  const size_t chunk = ((size_t)strip * tiles + kt) * 64 + q * 16 + col;
  const uint32_t word = pr.hw[chunk * 4 + t / 4];
  return (word >> (4 * (t % 4) + 16 * (j % 2))) & 15;
}

static std::vector<double> reference(const Problem& pr, int zoff) {
  std::vector<double> c((size_t)pr.M * pr.N, 0.0);
  std::vector<float> col(pr.K);
  for (int n = 0; n < pr.N; ++n) {
    for (int k = 0; k < pr.K; ++k) {
      const int g = k / TK;
      const int z = ((pr.hz[(size_t)g * (pr.N / 8) + n / 8] >> (4 * (n % 8))) & 15) + zoff;
      col[k] = (float)(q_at(pr, k, n) - z) * h2f(pr.hs[(size_t)g * pr.N + n]);
    }
    for (int m = 0; m < pr.M; ++m) {
      double s = 0;
      for (int k = 0; k < pr.K; ++k) s += (double)col[k] * h2f(pr.ha[(size_t)m * pr.K + k]);
      c[(size_t)m * pr.N + n] = s;
    }
  }
  return c;
}

/* ACT 3: a [M][K] into fragment order, ceil(M / 8) groups, rows >= M zero (the product's
 * separate reorder launch; here once per shape, outside the timed region) */
static std::vector<uint16_t> frag_order(const std::vector<uint16_t>& a, int M, int K) {
  const int KS = K / 16, groups = (M + 7) / 8;
  std::vector<uint16_t> f((size_t)groups * KS * 32 * 4, 0);
  for (int g = 0; g < groups; ++g)
    for (int s = 0; s < KS; ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int m = 8 * g + (lane >> 2);
        if (m < M) memcpy(&f[frag_unit(g, s, lane, KS) * 4], &a[(size_t)m * K + 16 * s + 4 * (lane & 3)], 8);
      }
  return f;
}

static void setup(Problem& pr, int K, int N, int M) {
  pr.K = K, pr.N = N, pr.M = M;
  pr.wbytes = (size_t)K * N / 2;
  pr.zbytes = (size_t)(K / TK) * (N / 8) * 4;
  pr.sbytes = (size_t)(K / TK) * N * 2;
  pr.copy_bytes = (pr.wbytes + pr.zbytes + pr.sbytes + 4095) / 4096 * 4096 + 4096;
  pr.copies = (int)std::max<size_t>(24, (512ull << 20) / pr.copy_bytes + 1);
  uint64_t s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)K << 32) ^ N;
  auto rnd = [&]() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return (uint32_t)(s >> 11);
  };
  pr.hw.resize(pr.wbytes / 4);
  for (auto& w : pr.hw) w = rnd();
  pr.hz.resize(pr.zbytes / 4);
  for (auto& z : pr.hz) z = rnd();
  pr.hs.resize(pr.sbytes / 2);
  for (auto& v : pr.hs) v = f2h(0.002f + 0.008f * (rnd() % 1000) / 1000.f);
  pr.ha.resize((size_t)M * K);
  for (auto& v : pr.ha) v = f2h(((int)(rnd() % 2001) - 1000) / 1000.f);
  CK(cudaMalloc(&pr.pool, pr.copy_bytes * pr.copies));
  for (int c = 0; c < pr.copies; ++c) {
    char* base = pr.pool + pr.copy_bytes * c;
    CK(cudaMemcpy(base, pr.hw.data(), pr.wbytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(base + pr.wbytes, pr.hz.data(), pr.zbytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(base + pr.wbytes + pr.zbytes, pr.hs.data(), pr.sbytes, cudaMemcpyHostToDevice));
  }
  CK(cudaMalloc(&pr.a, pr.ha.size() * 2));
  CK(cudaMemcpy(pr.a, pr.ha.data(), pr.ha.size() * 2, cudaMemcpyHostToDevice));
  const std::vector<uint16_t> fa = frag_order(pr.ha, M, K);
  CK(cudaMalloc(&pr.af, fa.size() * 2));
  CK(cudaMemcpy(pr.af, fa.data(), fa.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMalloc(&pr.ws, (size_t)64 * M * N * 4));
}

static Params params_of(const Problem& pr, int c, int tps) {
  char* base = pr.pool + pr.copy_bytes * c;
  Params p;
  p.qw = reinterpret_cast<const uint4*>(base);
  p.qz = reinterpret_cast<const uint32_t*>(base + pr.wbytes);
  p.sc = reinterpret_cast<const uint16_t*>(base + pr.wbytes + pr.zbytes);
  p.a = pr.a, p.af = pr.af, p.ws = pr.ws, p.K = pr.K, p.N = pr.N, p.M = pr.M, p.tps = tps, p.zoff = 1;
  return p;
}

/* median per-call time (us) of a graph of `copies` launches, one per copy */
template <typename F>
static double time_graph(int copies, F&& launch_copy) {
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (int c = 0; c < copies; ++c) launch_copy(c, st); /* warm */
  CK(cudaStreamSynchronize(st));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int c = 0; c < copies; ++c) launch_copy(c, st);
  CK(cudaStreamEndCapture(st, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<float> t;
  for (int r = 0; r < 21; ++r) {
    CK(cudaEventRecord(e0, st));
    CK(cudaGraphLaunch(ge, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  CK(cudaStreamDestroy(st));
  return t[t.size() / 2] * 1000.0 / copies;
}

struct Variant {
  const char* name;
  int mode, d, warps, act, nb, rg; /* rows per pass 8 nb rg; runs where half of that < M <= it */
  int acc_smem; /* FOLD 2: bytes of shared memory for acc */
  void (*fn)(Params);
  int sw; /* strips per warp */
};
#define V(MODE, D, W, MB, ACT, HINT) \
  Variant{#MODE " D" #D " W" #W " B" #MB " act" #ACT " hint" #HINT, MODE, D, W, ACT, 1, 1, 0, m1_kernel<MODE, D, W, MB, ACT, HINT>, 1}
#define VR(NB, D, W, MB, ACT) \
  Variant{"1 mt" #NB "x8 D" #D " W" #W " B" #MB " act" #ACT " hint1", 1, D, W, ACT, NB, 1, 0, \
          m1_kernel<1, D, W, MB, ACT, 1, NB>, 1}
/* folded scales, RG row groups of 8 NB rows per strip (RG > 1: chunks through L1, hint 0) */
#define VF(NB, RG, W, MB) \
  Variant{"1 fold mt" #NB "x8 rg" #RG " W" #W " B" #MB, 1, 1, W, 0, NB, RG, 0, \
          m1_kernel<1, 1, W, MB, 0, RG == 1, NB, 1, RG>, 1}
/* exact D x scale, acc in shared memory */
#define VS(NB, W, MB) \
  Variant{"1 accsmem mt" #NB "x8 W" #W " B" #MB, 1, 1, W, 0, NB, 1, (W) * (NB) * 4 * 32 * 4, \
          m1_kernel<1, 1, W, MB, 0, 1, NB, 2, 1>, 1}
/* folded scales, SW strips per warp sharing each B fragment */
#define VW(NB, SW, W, MB) \
  Variant{"1 fold mt" #NB "x8 sw" #SW " W" #W " B" #MB, 1, 1, W, 0, NB, 1, 0, m1_sw_kernel<W, MB, NB, SW>, SW}

static const Variant kVariants[] = {
    /* M <= 8: the best of calls 1-2 (the extension's narrow tile), folded or not; act3: what
     * fragment order costs or saves on the narrow tile */
    V(1, 1, 8, 4, 0, 1), V(1, 1, 8, 4, 3, 1), VF(1, 1, 8, 4),
    /* M 9..16: the extension's mt16 (2 blocks/SM), folded, two row groups of mt8 */
    VR(2, 1, 8, 2, 0), VR(2, 1, 8, 2, 3), VF(2, 1, 8, 2), VF(2, 1, 8, 3), VF(1, 2, 8, 4),
    VS(2, 8, 3),
    /* M 17..32; act0 vs act3 (fragment-ordered B), one or two tiles in flight per warp */
    VR(4, 1, 8, 2, 0), VR(4, 2, 8, 2, 0), VR(4, 1, 8, 2, 3), VR(4, 2, 8, 2, 3),
    VF(4, 1, 8, 2), VF(4, 1, 8, 3), VF(2, 2, 8, 3), VF(1, 4, 8, 4), VS(4, 8, 3),
    /* M 33..64; as at 17..32 */
    VR(8, 1, 8, 1, 0), VR(8, 2, 8, 1, 0), VR(8, 1, 8, 1, 3), VR(8, 2, 8, 1, 3),
    VF(8, 1, 8, 1), VF(8, 1, 8, 2), VF(4, 2, 8, 2), VF(2, 4, 8, 3), VF(1, 8, 8, 4),
    VS(8, 8, 2),
    /* SW strips per warp (folded): M 9..16, 17..32, 33..64; sw1 is the same kernel with one
     * strip per warp, so sw1 -> sw2/sw4 isolates the B sharing from the fold (NOTES 44) */
    VW(2, 1, 8, 3), VW(2, 2, 8, 3), VW(2, 4, 4, 3),
    VW(4, 1, 8, 2), VW(4, 2, 8, 2), VW(4, 2, 4, 4), VW(4, 4, 4, 2),
    VW(8, 1, 8, 1), VW(8, 2, 8, 1), VW(8, 2, 4, 2),
};

int main(int argc, char** argv) {
  /* Qwen3-32B TP=4 gate_up at M 1..64, down at 32 and 64 (K N M triples) */
  std::vector<int> shapes = {5120, 12800, 1,  5120, 12800, 8,  5120, 12800, 16, 5120, 12800, 32,
                             5120, 12800, 64, 6400, 5120, 32,  6400, 5120, 64};
  if (argc > 1) {
    shapes.clear();
    for (int i = 1; i + 2 < argc; i += 3) {
      shapes.push_back(atoi(argv[i]));
      shapes.push_back(atoi(argv[i + 1]));
      shapes.push_back(atoi(argv[i + 2]));
    }
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  printf("device %s, %d SMs, L2 %d MiB\n", prop.name, sms, prop.l2CacheSize >> 20);
  for (const Variant& v : kVariants) {
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, v.fn));
    CK(cudaFuncSetAttribute(v.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    int occ = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, v.fn, v.warps * 32, v.act == 1 ? 16 * 1024 : v.acc_smem));
    printf("variant %-32s regs %3d spill %4d B, blocks/SM %d (%d warps)\n", v.name, fa.numRegs,
           (int)fa.localSizeBytes, occ, occ * v.warps);
  }
  uint32_t* dummy;
  CK(cudaMalloc(&dummy, 4));
  for (size_t si = 0; si + 2 < shapes.size(); si += 3) {
    Problem pr;
    setup(pr, shapes[si], shapes[si + 1], shapes[si + 2]);
    const size_t bytes = pr.wbytes + pr.zbytes + pr.sbytes;
    const double t_empty = time_graph(pr.copies, [&](int, cudaStream_t st) { empty_kernel<<<1, 32, 0, st>>>(); });
    const double t_stream = time_graph(pr.copies, [&](int c, cudaStream_t st) {
      stream_kernel<<<sms * 4, 512, 0, st>>>(reinterpret_cast<const uint4*>(pr.pool + pr.copy_bytes * c), bytes / 16, dummy);
    });
    const double B = bytes / (t_stream - t_empty) / 1e3; /* GB/s of the read stream past the floor */
    printf("\nshape K %d N %d M %d: %.2f MB per call, %d copies; launch floor %.2f us; read stream %.2f us "
           "(%.0f GB/s past the floor)\n",
           pr.K, pr.N, pr.M, bytes / 1e6, pr.copies, t_empty, t_stream, B);
    const std::vector<double> ref = reference(pr, 1);
    double refmax = 0;
    for (double r : ref) refmax = std::max(refmax, std::fabs(r));
    const int tiles = pr.K / TK, strips = pr.N / 16;
    for (const Variant& v : kVariants) {
      const int rows = 8 * v.nb * v.rg; /* rows per pass: runs where rows / 2 < M <= rows */
      if (pr.M > rows || (rows > 8 && 2 * pr.M <= rows)) continue;
      int occ = 0;
      CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, v.fn, v.warps * 32, v.acc_smem));
      std::vector<int> split_opts;
      for (int s : {1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32}) {
        const int tps = (tiles + s - 1) / s;
        const int real = (tiles + tps - 1) / tps;
        if (real == s) split_opts.push_back(s);
      }
      double best = 1e30;
      int best_s = 0;
      char line[1024];
      int len = 0;
      for (int s : split_opts) {
        const int tps = (tiles + s - 1) / s;
        const int spb = v.warps / v.rg * v.sw; /* strips per block */
        const dim3 grid((strips + spb - 1) / spb, s);
        const size_t smem = v.act == 1 ? (size_t)pr.M * (tps * 64 + 8) * 4 : (size_t)v.acc_smem;
        if (smem > 64 * 1024) continue;
        /* check once per split count on copy 0 */
        CK(cudaMemset(pr.ws, 0xff, (size_t)s * pr.M * pr.N * 4));
        v.fn<<<grid, v.warps * 32, smem>>>(params_of(pr, 0, tps));
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());
        if (v.mode == 1) {
          std::vector<float> part((size_t)s * pr.M * pr.N);
          CK(cudaMemcpy(part.data(), pr.ws, part.size() * 4, cudaMemcpyDeviceToHost));
          double err = 0;
          for (size_t i = 0; i < ref.size(); ++i) {
            double sum = 0;
            for (int sp = 0; sp < s; ++sp) sum += part[(size_t)sp * ref.size() + i];
            err = std::max(err, std::fabs(sum - ref[i]));
          }
          if (!(err <= 1e-3 * refmax)) {
            printf("FAIL %s splits %d: max err %.3g of %.3g\n", v.name, s, err, refmax);
            return 1;
          }
        }
        const double t = time_graph(pr.copies, [&](int c, cudaStream_t st) {
          v.fn<<<grid, v.warps * 32, smem, st>>>(params_of(pr, c, tps));
        });
        len += snprintf(line + len, sizeof(line) - len, " s%d:%.1f", s, t);
        if (t < best) best = t, best_s = s;
      }
      printf("%-34s best %6.2f us (splits %2d, %4.0f%% of stream B past the floor) |%s\n", v.name, best, best_s,
             100.0 * bytes / ((best - t_empty) * 1e3) / B, line);
    }
    CK(cudaFree(pr.pool));
    CK(cudaFree(pr.a));
    CK(cudaFree(pr.af));
    CK(cudaFree(pr.ws));
  }
  return 0;
}

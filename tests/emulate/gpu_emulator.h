/* gpu_emulator.h: the CUDA subset csrc/gpu/gptq_transposed.cu uses, on the CPU, for tests.
 *
 * No GPU this project can run is an MI100, and the lent NVIDIA GPU is scarce: this runs the
 * layout-2 kernels' own source on the host, one std::thread per GPU thread, so their index
 * math, barriers, cross-lane shuffles and matrix-fragment layouts are checked against the
 * fp32 reference in CI. compat.h includes it when GPTQ_EMULATE is the wave size to emulate:
 * 32 (NVIDIA: mma.sync m16n8k16 fragments) or 64 (gfx908: MFMA 16x16x16 fragments, AMD
 * launch tables). The matrix instructions are emulated from their documented fragment
 * layouts (fp32 sums of exact products). Not emulated: timing, memory ordering between
 * blocks (blocks run one after another), the gfx908 v_dot2 path (fp16 pairs; the fp32-pair
 * path runs instead).
 */
#ifndef GPTQ_MI100_GPU_EMULATOR_H
#define GPTQ_MI100_GPU_EMULATOR_H

#include <stdint.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static /* blocks run one at a time: one copy serves every block */
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

struct uint2 { uint32_t x, y; };
struct __attribute__((aligned(16))) uint4 { uint32_t x, y, z, w; };
struct float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline uint2 make_uint2(uint32_t x, uint32_t y) { return {x, y}; }
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* ---- fp16 ---------------------------------------------------------------------------- */
struct __half { _Float16 v; };
struct __half2 { _Float16 x, y; };
inline __half __ushort_as_half(uint16_t b) { __half h; memcpy(&h, &b, 2); return h; }
inline uint16_t __half_as_ushort(__half h) { uint16_t b; memcpy(&b, &h, 2); return b; }
inline float __half2float(__half h) { return (float)h.v; }
inline __half __float2half_rn(float f) { return {(_Float16)f}; }
inline float2 __half22float2(__half2 h) { return {(float)h.x, (float)h.y}; }
inline float __low2float(__half2 h) { return (float)h.x; }
inline float __high2float(__half2 h) { return (float)h.y; }
/* one rounding to fp16 of the exact result, as the hardware's packed fp16 ops */
inline __half2 __hsub2(__half2 a, __half2 b) {
  return {(_Float16)((double)a.x - (double)b.x), (_Float16)((double)a.y - (double)b.y)};
}
inline __half2 __hmul2(__half2 a, __half2 b) {
  return {(_Float16)((double)a.x * (double)b.x), (_Float16)((double)a.y * (double)b.y)};
}
inline __half2 __hfma2(__half2 a, __half2 b, __half2 c) {
  return {(_Float16)std::fma((double)a.x, (double)b.x, (double)c.x),
          (_Float16)std::fma((double)a.y, (double)b.y, (double)c.y)};
}

/* ---- runtime ----------------------------------------------------------------------- */
typedef int cudaError_t;
typedef void* cudaStream_t;
#define cudaSuccess 0
#define cudaErrorNoKernelImageForDevice 209
#define cudaErrorInvalidDeviceFunction 98

namespace gptq_emu {

/* Barrier of n threads; a wait that takes seconds means a thread skipped it (a kernel bug
 * the hardware would hang or corrupt on): reported and fatal. */
struct barrier {
  std::mutex mu;
  std::condition_variable cv;
  int n = 0, waiting = 0;
  unsigned long generation = 0;
  void wait(const char* what) {
    std::unique_lock<std::mutex> lock(mu);
    const unsigned long gen = generation;
    if (++waiting == n) {
      waiting = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    if (!cv.wait_for(lock, std::chrono::seconds(20), [&] { return generation != gen; })) {
      fprintf(stderr, "gpu_emulator: %s barrier timed out (a thread did not arrive)\n", what);
      std::abort();
    }
  }
};

struct block_state {
  barrier block;
  std::vector<barrier> warps;
  std::vector<uint32_t> slots; /* per lane: 16 words for cross-lane operations */
};
inline block_state*& state() { static block_state* s = nullptr; return s; }
inline std::mutex& atomic_mu() { static std::mutex m; return m; }

}  // namespace gptq_emu

extern thread_local dim3 threadIdx, blockIdx;
extern dim3 gridDim, blockDim;
#define GPTQ_EMU_DEFINE_GLOBALS thread_local dim3 threadIdx, blockIdx; dim3 gridDim, blockDim;

inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
template <typename T>
inline cudaError_t cudaGetSymbolAddress(void** p, T& sym) { *p = (void*)&sym; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, int, int) { *v = 4; return cudaSuccess; }
#define cudaDevAttrMultiProcessorCount 16
template <typename F>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* b, F*, int, size_t) {
  *b = 2;
  return cudaSuccess;
}

inline void __syncthreads() { gptq_emu::state()->block.wait("__syncthreads"); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  std::lock_guard<std::mutex> g(gptq_emu::atomic_mu());
  const unsigned old = *p;
  *p = old + v;
  return old;
}
inline int atomicAdd(int* p, int v) {
  std::lock_guard<std::mutex> g(gptq_emu::atomic_mu());
  const int old = *p;
  *p = old + v;
  return old;
}

namespace gptq_emu {

inline int wave() { return GPTQ_EMULATE; }
inline int lane() { return (int)threadIdx.x % GPTQ_EMULATE; }
inline barrier& warp_barrier() { return state()->warps[threadIdx.x / GPTQ_EMULATE]; }
inline uint32_t* slot(int ln) { return &state()->slots[16 * ((threadIdx.x / GPTQ_EMULATE) * GPTQ_EMULATE + ln)]; }

/* Every lane publishes n words, then reads any lane's: a warp-collective exchange. */
template <typename F>
inline void exchange(const uint32_t* mine, int n, F&& read_all) {
  memcpy(slot(lane()), mine, 4 * n);
  warp_barrier().wait("warp");
  read_all();
  warp_barrier().wait("warp");
}

inline uint32_t shfl(uint32_t v, int src) {
  uint32_t r = 0;
  exchange(&v, 1, [&] { r = slot(src)[0]; });
  return r;
}

inline float bf16_to_float(uint16_t b) { return __uint_as_float((uint32_t)b << 16); }
inline float f16_to_float(uint16_t b) { return __half2float(__ushort_as_half(b)); }
inline float half_of(uint32_t w, int hi, bool bf16) {
  const uint16_t b = (uint16_t)(hi ? w >> 16 : w & 0xffffu);
  return bf16 ? bf16_to_float(b) : f16_to_float(b);
}

/* mma.sync m16n8k16, fp32 accumulators, lane (g = lane / 4, t = lane % 4) as PTX documents. */
template <int BF16>
inline void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  uint32_t mine[10];
  memcpy(mine, a, 16);
  memcpy(mine + 4, b, 8);
  memcpy(mine + 6, d, 16);
  float out[4];
  exchange(mine, 10, [&] {
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
      const uint32_t* s = slot(l);
      const int g = l / 4, t = l % 4;
      for (int e = 0; e < 2; ++e) {
        A[g][2 * t + e] = half_of(s[0], e, BF16);
        A[g + 8][2 * t + e] = half_of(s[1], e, BF16);
        A[g][2 * t + 8 + e] = half_of(s[2], e, BF16);
        A[g + 8][2 * t + 8 + e] = half_of(s[3], e, BF16);
        B[2 * t + e][g] = half_of(s[4], e, BF16);
        B[2 * t + 8 + e][g] = half_of(s[5], e, BF16);
      }
    }
    const int g = lane() / 4, t = lane() % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
      float acc = d[i];
      for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
      out[i] = acc;
    }
  });
  memcpy(d, out, 16);
}

/* v_mfma_f32_16x16x{16f16, 8bf16}: K = 16 (4 fp16 per lane) or 8 (2 bf16 per lane); lane l
 * holds A[l % 16][(K / 4) (l / 16) + j], B[(K / 4) (l / 16) + j][l % 16], D[4 (l / 16) + r][l % 16]. */
template <int K>
inline void mfma_16x16(float d[4], const uint32_t* a, const uint32_t* b) {
  constexpr int PER = K / 4, WORDS = PER / 2;
  uint32_t mine[2 * WORDS];
  memcpy(mine, a, 4 * WORDS);
  memcpy(mine + WORDS, b, 4 * WORDS);
  float out[4];
  exchange(mine, 2 * WORDS, [&] {
    float A[16][16], B[16][16];
    for (int l = 0; l < 64; ++l) {
      const uint32_t* s = slot(l);
      for (int j = 0; j < PER; ++j) {
        A[l % 16][PER * (l / 16) + j] = half_of(s[j / 2], j % 2, K == 8);
        B[PER * (l / 16) + j][l % 16] = half_of(s[WORDS + j / 2], j % 2, K == 8);
      }
    }
    const int l = lane();
    for (int r = 0; r < 4; ++r) {
      float acc = d[r];
      for (int k = 0; k < K; ++k) acc += A[4 * (l / 16) + r][k] * B[k][l % 16];
      out[r] = acc;
    }
  });
  memcpy(d, out, 16);
}

/* Run a kernel over the grid: blocks one after another, each block's threads at once (one
 * std::thread per GPU thread for the whole launch; a barrier between blocks, whose shared
 * arrays are the same statics). */
template <typename... Args>
struct launcher {
  void (*fn)(Args...);
  dim3 grid, block;
  void operator()(Args... args) const {
    gridDim = grid;
    blockDim = block;
    const unsigned n = block.x;
    const unsigned warps = (n + GPTQ_EMULATE - 1) / GPTQ_EMULATE;
    block_state st;
    st.block.n = (int)n;
    st.warps = std::vector<barrier>(warps);
    for (auto& w : st.warps) w.n = GPTQ_EMULATE;
    st.slots.assign(16 * warps * GPTQ_EMULATE, 0u);
    barrier between;
    between.n = (int)n;
    state() = &st;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < n; ++t)
      threads.emplace_back([&, t] {
        threadIdx = dim3(t);
        for (unsigned by = 0; by < grid.y; ++by)
          for (unsigned bx = 0; bx < grid.x; ++bx) {
            blockIdx = dim3(bx, by);
            fn(args...);
            between.wait("end of block");
          }
      });
    for (auto& th : threads) th.join();
    state() = nullptr;
  }
};
template <typename... Args>
inline launcher<Args...> launch(void (*fn)(Args...), dim3 grid, dim3 block) {
  return launcher<Args...>{fn, grid, block};
}

}  // namespace gptq_emu

inline float __shfl_xor_sync(unsigned, float v, int mask) {
  return __uint_as_float(gptq_emu::shfl(__float_as_uint(v), gptq_emu::lane() ^ mask));
}
inline uint32_t __shfl_sync(unsigned, uint32_t v, int src, int width) {
  return gptq_emu::shfl(v, (gptq_emu::lane() & ~(width - 1)) | (src & (width - 1)));
}

#endif /* GPTQ_MI100_GPU_EMULATOR_H */

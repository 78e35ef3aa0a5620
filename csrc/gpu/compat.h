/* compat.h: the ONLY file of gptq_mi100 with vendor #ifs (HIP/ROCm vs CUDA).
 *
 * Kernel code includes this header and uses the gptq_* names below instead of
 * cuda* / hip* identifiers. Each island states the hardware or toolchain reason.
 * The same source must mean the same thing on wave64 (gfx908) and warp32 (sm_90):
 * nothing here changes results except the rounding of gptq_dot2_f32 (fused fp32 dot
 * on gfx9, two fp32 fmas elsewhere; the fp16 products are exact in fp32 either way).
 */
#ifndef GPTQ_MI100_GPU_COMPAT_H
#define GPTQ_MI100_GPU_COMPAT_H

#include <stdint.h>

/* ---- vendor ---------------------------------------------------------------------- */
/* __HIP__ is set by clang in both HIP passes; __HIP_PLATFORM_AMD__ by hipcc and torch. */
#if defined(__HIP__) || defined(__HIP_PLATFORM_AMD__) || defined(__HIP_PLATFORM_HCC__)
#define GPTQ_HIP 1
#else
#define GPTQ_HIP 0
#endif

/* GPTQ_EMULATE (tests only, tests/emulate/): the kernels on the CPU with the CUDA names of
 * tests/emulate/gpu_emulator.h, emulating a wave of GPTQ_EMULATE (32 or 64) lanes; 64 takes
 * the AMD launch tables and MFMA fragment layout. */
#ifndef GPTQ_EMULATE
#define GPTQ_EMULATE 0
#endif

#if GPTQ_EMULATE
#include "gpu_emulator.h"
#elif GPTQ_HIP
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#else
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#endif

/* 1 when this build targets AMD: selects the gfx908 row of the block-size table in
 * gptq_gpu.cu. Keyed by vendor, not by device arch macro, because host launch math
 * needs the row in the host pass, where __gfx908__ / __CUDA_ARCH__ are not defined. */
#define GPTQ_TARGET_AMD (GPTQ_HIP || GPTQ_EMULATE == 64)

/* ---- runtime names --------------------------------------------------------------- */
#if GPTQ_HIP
typedef hipStream_t gptq_stream_t;
typedef hipError_t gptq_error_t;
#define GPTQ_SUCCESS hipSuccess
#define gptq_get_last_error hipGetLastError
#define gptq_get_device hipGetDevice
#define gptq_set_device hipSetDevice
/* HIP_SYMBOL: hip-clang takes the symbol itself, HIP-on-NVIDIA its address. */
#define gptq_memcpy_from_symbol(dst, sym, bytes) \
  hipMemcpyFromSymbol((dst), HIP_SYMBOL(sym), (bytes), 0, hipMemcpyDeviceToHost)
#define gptq_memcpy_to_symbol(sym, src, bytes) \
  hipMemcpyToSymbol(HIP_SYMBOL(sym), (src), (bytes), 0, hipMemcpyHostToDevice)
#define gptq_get_symbol_address(ptr, sym) hipGetSymbolAddress((ptr), HIP_SYMBOL(sym))
static inline gptq_error_t gptq_sm_count(int device, int* out) {
  return hipDeviceGetAttribute(out, hipDeviceAttributeMultiprocessorCount, device);
}
/* A code object missing for this GPU: hipErrorNoBinaryForGpu at load,
 * hipErrorInvalidDeviceFunction at launch (the usual ROCm symptom of a wrong arch). */
#define GPTQ_ERR_IS_NO_KERNEL(e) \
  ((e) == hipErrorNoBinaryForGpu || (e) == hipErrorInvalidDeviceFunction)
#else
typedef cudaStream_t gptq_stream_t;
typedef cudaError_t gptq_error_t;
#define GPTQ_SUCCESS cudaSuccess
#define gptq_get_last_error cudaGetLastError
#define gptq_get_device cudaGetDevice
#define gptq_set_device cudaSetDevice
#define gptq_memcpy_from_symbol(dst, sym, bytes) \
  cudaMemcpyFromSymbol((dst), sym, (bytes), 0, cudaMemcpyDeviceToHost)
#define gptq_memcpy_to_symbol(sym, src, bytes) \
  cudaMemcpyToSymbol(sym, (src), (bytes), 0, cudaMemcpyHostToDevice)
#define gptq_get_symbol_address(ptr, sym) cudaGetSymbolAddress((ptr), sym)
static inline gptq_error_t gptq_sm_count(int device, int* out) {
  return cudaDeviceGetAttribute(out, cudaDevAttrMultiProcessorCount, device);
}
/* No SASS/PTX for this GPU in the fatbinary. */
#define GPTQ_ERR_IS_NO_KERNEL(e) \
  ((e) == cudaErrorNoKernelImageForDevice || (e) == cudaErrorInvalidDeviceFunction)
#endif

/* ---- wave size (device passes only) ---------------------------------------------- */
/* GFX9 (Vega, CDNA: gfx908) runs wave64; RDNA (gfx10+) defaults to wave32; NVIDIA warp32.
 * A macro, never `warpSize`: that is not a constant expression on ROCm 7. Host code must
 * not use it (no arch macro exists in the host pass). Kernels here use it only in
 * static_asserts: no result depends on it. */
#if GPTQ_EMULATE
#define GPTQ_WAVE_SIZE GPTQ_EMULATE
#elif defined(__GFX9__) || defined(__gfx900__) || defined(__gfx906__) || defined(__gfx908__) || \
    defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__)
#define GPTQ_WAVE_SIZE 64
#else
#define GPTQ_WAVE_SIZE 32
#endif

/* ---- launch bounds --------------------------------------------------------------- */
/* GPTQ_LAUNCH_BOUNDS(threads, min_blocks): at most `threads` per block and at least
 * `min_blocks` resident blocks per SM/CU, on both vendors.
 * CUDA's second __launch_bounds__ argument is min blocks per SM. HIP's becomes
 * amdgpu-waves-per-eu = min waves per SIMD, so it is translated: a CU has 4 SIMDs and
 * a block of T threads is T/64 waves, hence waves/SIMD = ceil(min_blocks * T / 256).
 * flat_work_group_size(1, T) is what lets the AMD compiler budget VGPRs for T threads
 * instead of the default 1024. */
#if GPTQ_HIP
#define GPTQ_LAUNCH_BOUNDS(threads, min_blocks)                                   \
  __attribute__((amdgpu_flat_work_group_size(1, (threads)),                      \
                 amdgpu_waves_per_eu(((min_blocks) * (threads) + 255) / 256)))
#else
#define GPTQ_LAUNCH_BOUNDS(threads, min_blocks) __launch_bounds__((threads), (min_blocks))
#endif

/* ---- wave-uniform values ----------------------------------------------------------- */
/* gptq_wave_uniform(x): x, which the caller knows is equal in every lane of the wave
 * (e.g. threadIdx.x / 64 with 64-lane slots). gfx908: readfirstlane puts it in an SGPR,
 * so loop counters, group indices and row offsets derived from it stay scalar (the
 * compiler cannot prove threadIdx.x / 64 uniform, and would hold them in VGPRs, one per
 * lane). NVIDIA has no scalar register file: identity. */
#if GPTQ_HIP
__device__ __forceinline__ int gptq_wave_uniform(int x) { return __builtin_amdgcn_readfirstlane(x); }
#else
__device__ __forceinline__ int gptq_wave_uniform(int x) { return x; }
#endif

/* ---- bit casts ------------------------------------------------------------------- */
/* memcpy is the aliasing-safe bit cast; both compilers lower it to a register move. */
__device__ __forceinline__ __half2 gptq_h2_from_bits(uint32_t u) {
  __half2 h;
  __builtin_memcpy(&h, &u, sizeof(h));
  return h;
}
__device__ __forceinline__ uint32_t gptq_h2_bits(__half2 h) {
  uint32_t u;
  __builtin_memcpy(&u, &h, sizeof(u));
  return u;
}

/* ---- fp16 / bf16 <-> float --------------------------------------------------------- */
/* fp16 and bf16 travel as raw uint16_t bits: HIP's __half2 / bf16 struct fields changed
 * type across ROCm versions, so no code touches .x/.y of a half type. */
__device__ __forceinline__ float gptq_f16_bits_to_float(uint16_t b) {
  return __half2float(__ushort_as_half(b));
}
__device__ __forceinline__ uint16_t gptq_float_to_f16_bits(float f) {
  return __half_as_ushort(__float2half_rn(f));
}
/* bf16 is the top half of an fp32: widening is an exact shift on every vendor. */
__device__ __forceinline__ float gptq_bf16_bits_to_float(uint16_t b) {
  return __uint_as_float(((uint32_t)b) << 16);
}
#if GPTQ_HIP || GPTQ_EMULATE
/* gfx908 has no float->bf16 convert instruction: round to nearest even by integer ops,
 * NaN -> 0x7fff as the NVIDIA cvt.rn.bf16.f32 does, so both vendors agree bitwise. */
__device__ __forceinline__ uint16_t gptq_float_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
#else
/* sm_80+ rounds with one cvt.rn.bf16.f32. */
__device__ __forceinline__ uint16_t gptq_float_to_bf16_bits(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
#endif

/* ---- 2-wide fp16 dot with fp32 accumulation -------------------------------------- */
/* acc + a.lo*b.lo + a.hi*b.hi, accumulated in fp32 (fp16 partial sums overflow on real
 * activations: the "!!!!" bug). */
#if defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__)
typedef _Float16 gptq_v2f16 __attribute__((ext_vector_type(2)));
/* gfx906/908/90a have v_dot2_f32_f16 (dot2-insts). Use the builtin with clamp=false:
 * __ockl_fdot2 ignores its clamp flag on ROCm 5.2 and always emits `clamp` ([0,1]). */
__device__ __forceinline__ float gptq_dot2_f32(__half2 a, __half2 b, float acc) {
  gptq_v2f16 va, vb;
  __builtin_memcpy(&va, &a, sizeof(va));
  __builtin_memcpy(&vb, &b, sizeof(vb));
  return __builtin_amdgcn_fdot2(va, vb, acc, false);
}
#else
/* No fp16 dot with fp32 accumulate on this target: two fp32 fmas (products are exact). */
__device__ __forceinline__ float gptq_dot2_f32(__half2 a, __half2 b, float acc) {
  return fmaf(__high2float(a), __high2float(b), fmaf(__low2float(a), __low2float(b), acc));
}
#endif

/* ---- weight pair x activation pair, fp32 accumulation ----------------------------- */
/* The tiled ("transposed") kernel keeps activations in LDS in the form its inner product
 * takes. gfx906/908/90a: fp16 pairs for v_dot2_f32_f16 (one instruction per pair).
 * Elsewhere (NVIDIA, and bf16 everywhere: gfx908 has no bf16 dot): fp32 pairs, and the
 * exact (q - z) weight pair is widened once and reused for every activation row.
 * Same products (exact in fp32) and the same per-pair sum order on both vendors. */
#if defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__)
#define GPTQ_DOT2_F16 1
#else
#define GPTQ_DOT2_F16 0
#endif

/* ---- matrix multiply-accumulate on the tiled layout: one interface, two islands ----- */
/* The tiled matrix kernel (gptq_transposed.cu) gives each wave one 16-column strip; per
 * 16-row step it multiplies W^T (16 columns x 16 k, exact (q - z) pairs) by activations^T
 * (16 k x GPTQ_MMA_ROWS rows) into fp32. The layout's 16-byte chunk (q, col) holds column
 * col's k = 4q .. 4q + 3 of each step (k relabelled; A and B use the same labels), so both
 * vendors' A fragments are the chunks a lane already holds:
 *   GPTQ_MMA_CHUNKS         chunks of a tile per lane: 64 / wave size
 *   gptq_mma_chunk_q/col    lane's chunk 0; chunk c has the same q, column + c x CHUNK_STEP
 *                           (A registers a[c + GPTQ_MMA_CHUNKS * h] = chunk c's pair h: k 4q + 2h, +1)
 *   B                       one 8-byte activation load per instruction: row = chunk 0's col,
 *                           k = 4 x chunk 0's q
 *   gptq_mma_d_col/row      D register i of the lane: (strip column, activation row)
 *   gptq_mma_dscale_col     column of the lane's first D-column scale; GPTQ_MMA_DSCALES of them,
 *                           DSCALE_STEP apart; gptq_mma_dscale_of(i): D register i's scale
 *   gptq_mma_16(d, a, b)    d += A x B, fp16 or bf16 inputs, fp32 accumulators
 * Everything above this interface (tiling, staging, group scales, split-K) is shared. */
#define GPTQ_HAS_MMA 1
#if !GPTQ_TARGET_AMD
/* NVIDIA mma.sync m16n8k16 (sm_80+), lane (g = lane / 4, t = lane % 4):
 *   a[0] = A[g][2t, 2t+1]  a[1] = A[g+8][2t, 2t+1]  a[2] = A[g][2t+8, +9]  a[3] = A[g+8][2t+8, +9]
 *   b[0] = B[2t, 2t+1][g]  b[1] = B[2t+8, 2t+9][g]
 *   d[0], d[1] = D[g][2t, 2t+1]   d[2], d[3] = D[g+8][2t, 2t+1]
 * (low k in the low 16 bits): chunks (q = t, col = g) and (t, g + 8); hardware k 2t + 8h + e
 * is our 4t + 2h + e. */
#define GPTQ_MMA_ROWS 8
#define GPTQ_MMA_CHUNKS 2
#define GPTQ_MMA_DSCALES 2 /* D columns g and g + 8: the chunk columns */
#define GPTQ_MMA_CHUNK_STEP 8  /* chunk c's column: chunk 0's + 8 c */
#define GPTQ_MMA_DSCALE_STEP 8 /* D-column scale s: the first's column + 8 s */
__device__ __forceinline__ int gptq_mma_chunk_q(int lane) { return lane & 3; }
__device__ __forceinline__ int gptq_mma_chunk_col(int lane) { return lane >> 2; }
__device__ __forceinline__ int gptq_mma_d_col(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
__device__ __forceinline__ int gptq_mma_d_row(int lane, int i) { return 2 * (lane & 3) + (i & 1); }
__device__ __forceinline__ int gptq_mma_dscale_col(int lane) { return lane >> 2; }
__device__ __forceinline__ int gptq_mma_dscale_of(int i) { return i >> 1; }
#if GPTQ_EMULATE
template <int BF16>
__device__ __forceinline__ void gptq_mma_16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  gptq_emu::mma_m16n8k16<BF16>(d, a, b);
}
#else
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "gptq_mi100's NVIDIA build needs sm_80 or newer (mma.sync m16n8k16 with bf16)"
#endif
template <int BF16>
__device__ __forceinline__ void gptq_mma_16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  if (BF16)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif
#else
/* gfx908 v_mfma_f32_16x16x16f16 (wave64; accumulators in AGPRs), lane l (q = l / 16):
 *   A[i][k]: lane i + 16 (k / 4), half k % 4    -> lane (q, col) holds A[col][4q .. 4q + 3]
 *   B[k][j]: lane j + 16 (k / 4), half k % 4    -> activation row l % 16, k 4q .. 4q + 3
 *   D[i][j]: lane j + 16 (i / 4), register i % 4 -> column 4q + r, row l % 16
 * bf16: v_mfma_f32_16x16x8bf16 (k = 8, two bf16 per lane) twice, pair 0 then pair 1 (the
 * hardware's k 2q + e is our 4q + 2h + e; A and B agree). 16 rows per instruction. */
#define GPTQ_MMA_ROWS 16
#define GPTQ_MMA_CHUNKS 1
#define GPTQ_MMA_DSCALES 4 /* D columns 4q .. 4q + 3: not the lane's chunk column */
#define GPTQ_MMA_CHUNK_STEP 0  /* one chunk per lane */
#define GPTQ_MMA_DSCALE_STEP 1 /* D columns 4q + s */
__device__ __forceinline__ int gptq_mma_chunk_q(int lane) { return (lane >> 4) & 3; }
__device__ __forceinline__ int gptq_mma_chunk_col(int lane) { return lane & 15; }
__device__ __forceinline__ int gptq_mma_d_col(int lane, int i) { return 4 * ((lane >> 4) & 3) + i; }
__device__ __forceinline__ int gptq_mma_d_row(int lane, int) { return lane & 15; }
__device__ __forceinline__ int gptq_mma_dscale_col(int lane) { return 4 * ((lane >> 4) & 3); }
__device__ __forceinline__ int gptq_mma_dscale_of(int i) { return i; }
#if GPTQ_EMULATE
template <int BF16>
__device__ __forceinline__ void gptq_mma_16(float d[4], const uint32_t a[2], const uint32_t b[2]) {
  if (BF16) { /* two K = 8 instructions: pair 0, then pair 1 */
    gptq_emu::mfma_16x16<8>(d, a, b);
    gptq_emu::mfma_16x16<8>(d, a + 1, b + 1);
  } else {
    gptq_emu::mfma_16x16<16>(d, a, b);
  }
}
#else
#if defined(__HIP_DEVICE_COMPILE__) && !defined(__gfx908__) && !defined(__gfx90a__)
#error "gptq_mi100's AMD build targets gfx908 (MFMA); add the arch's matrix island to compat.h"
#endif
typedef _Float16 gptq_v4f16 __attribute__((ext_vector_type(4)));
typedef short gptq_v2i16 __attribute__((ext_vector_type(2)));
typedef float gptq_v4f32 __attribute__((ext_vector_type(4)));
template <int BF16>
__device__ __forceinline__ void gptq_mma_16(float d[4], const uint32_t a[2], const uint32_t b[2]) {
#if defined(__HIP_DEVICE_COMPILE__)
  gptq_v4f32 acc = {d[0], d[1], d[2], d[3]};
  if (BF16) {
    gptq_v2i16 a0, a1, b0, b1;
    __builtin_memcpy(&a0, &a[0], 4);
    __builtin_memcpy(&a1, &a[1], 4);
    __builtin_memcpy(&b0, &b[0], 4);
    __builtin_memcpy(&b1, &b[1], 4);
    acc = __builtin_amdgcn_mfma_f32_16x16x8bf16(a0, b0, acc, 0, 0, 0);
    acc = __builtin_amdgcn_mfma_f32_16x16x8bf16(a1, b1, acc, 0, 0, 0);
  } else {
    gptq_v4f16 va, vb;
    __builtin_memcpy(&va, a, 8);
    __builtin_memcpy(&vb, b, 8);
    acc = __builtin_amdgcn_mfma_f32_16x16x16f16(va, vb, acc, 0, 0, 0);
  }
  d[0] = acc[0];
  d[1] = acc[1];
  d[2] = acc[2];
  d[3] = acc[3];
#else
  (void)d;
  (void)a;
  (void)b;
#endif
}
#endif
#endif

#if !GPTQ_HIP && !GPTQ_EMULATE
/* (x & MASK) | bits in one LOP3 (C code compiles to two: LOP3 takes one immediate). */
template <uint32_t MASK>
__device__ __forceinline__ uint32_t gptq_and_or(uint32_t x, uint32_t bits) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(x), "n"(MASK), "r"(bits));
  return r;
}
/* Bytes (0, 2) and (1, 3) of w as fp16 pairs 1024 + byte: one byte permute each. */
__device__ __forceinline__ void gptq_byte_pairs_f16(uint32_t w, uint32_t& f0, uint32_t& f1) {
  f0 = __byte_perm(w, 0x64646464u, 0x4240);
  f1 = __byte_perm(w, 0x64646464u, 0x4341);
}
/* blockIdx.x / threadIdx.x read again from their special registers (asm volatile: not
 * merged with the first read), so an index is recomputed after a long loop instead of held
 * (or spilled) across it. */
__device__ __forceinline__ unsigned gptq_block_x_reread() {
  unsigned r;
  asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned gptq_thread_x_reread() {
  unsigned r;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(r));
  return r;
}
/* bf16 pair a - b (one HADD2.BF16 on sm_90; exact for the small integers used here). */
__device__ __forceinline__ uint32_t gptq_sub_bf16x2(uint32_t a, uint32_t b) {
  __nv_bfloat162 x, y;
  __builtin_memcpy(&x, &a, 4);
  __builtin_memcpy(&y, &b, 4);
  const __nv_bfloat162 r = __hsub2(x, y);
  uint32_t u;
  __builtin_memcpy(&u, &r, 4);
  return u;
}
/* fp16 pair -> bf16 pair, exact for integers up to 256 in magnitude. */
__device__ __forceinline__ uint32_t gptq_f16x2_to_bf16x2(uint32_t h) {
  const __nv_bfloat162 r = __float22bfloat162_rn(__half22float2(gptq_h2_from_bits(h)));
  uint32_t u;
  __builtin_memcpy(&u, &r, 4);
  return u;
}
#else
/* (x & MASK) | bits as one v_and_or_b32. gfx9's VOP3 takes no literal, so with constant
 * operands the compiler splits it into v_and_b32 + v_or_b32 (two VOP2 with literals); an
 * empty asm puts MASK in an SGPR and bits in a VGPR (one of each: gfx9 reads at most one
 * SGPR per VALU instruction), both loop-invariant. */
template <uint32_t MASK>
__device__ __forceinline__ uint32_t gptq_and_or(uint32_t x, uint32_t bits) {
#if GPTQ_HIP
  uint32_t mask = MASK;
  asm("" : "+s"(mask));
  asm("" : "+v"(bits));
  return (x & mask) | bits;
#else
  return (x & MASK) | bits;
#endif
}
__device__ __forceinline__ void gptq_byte_pairs_f16(uint32_t w, uint32_t& f0, uint32_t& f1) {
  f0 = (w & 0x00ff00ffu) | 0x64006400u;
  f1 = ((w >> 8) & 0x00ff00ffu) | 0x64006400u;
}
/* No special-register trick on AMD: blockIdx.x is an SGPR input already (threadIdx.x a
 * VGPR input, kept as it is). */
__device__ __forceinline__ unsigned gptq_block_x_reread() { return blockIdx.x; }
__device__ __forceinline__ unsigned gptq_thread_x_reread() { return threadIdx.x; }
/* bf16 pair a - b through fp32 (gfx908 has no bf16 arithmetic); exact for small integers. */
__device__ __forceinline__ uint32_t gptq_sub_bf16x2(uint32_t a, uint32_t b) {
  const float lo = __uint_as_float(a << 16) - __uint_as_float(b << 16);
  const float hi = __uint_as_float(a & 0xffff0000u) - __uint_as_float(b & 0xffff0000u);
  return (__float_as_uint(lo) >> 16) | (__float_as_uint(hi) & 0xffff0000u);
}
/* fp16 pair -> bf16 pair, exact for integers up to 256 in magnitude (truncation is exact). */
__device__ __forceinline__ uint32_t gptq_f16x2_to_bf16x2(uint32_t h) {
  const float2 f = __half22float2(gptq_h2_from_bits(h));
  return (__float_as_uint(f.x) >> 16) | (__float_as_uint(f.y) & 0xffff0000u);
}
#endif

/* Kernel launch on a stream (the emulator runs it on the host). */
#if GPTQ_EMULATE
#define GPTQ_LAUNCH(fn, grid, block, stream) ::gptq_emu::launch(fn, grid, block)
#else
#define GPTQ_LAUNCH(fn, grid, block, stream) fn<<<grid, block, 0, stream>>>
#endif

/* ---- programmatic dependent launch (NVIDIA sm_90+; elsewhere a plain launch) --------
 * gptq_launch_early(...) lets a kernel's blocks start while the kernel before it on the
 * stream finishes: its prologue and first weight loads overlap that kernel's tail and the
 * launch gap. Such a kernel must call gptq_wait_prior_grid() before it reads anything the
 * earlier kernel writes (a full wait for its completion and memory; a no-op when it was
 * launched the usual way). gptq_release_dependents(): the earlier kernel lets the
 * dependent's blocks be scheduled before its own blocks exit. CUDA graphs keep the edge. */
#if GPTQ_EMULATE || GPTQ_HIP
__device__ __forceinline__ void gptq_wait_prior_grid() {}
__device__ __forceinline__ void gptq_release_dependents() {}
template <typename... P, typename... A>
static inline void gptq_launch_early(void (*fn)(P...), dim3 grid, dim3 block, gptq_stream_t stream, A... args) {
  GPTQ_LAUNCH(fn, grid, block, stream)(args...);
}
#else
__device__ __forceinline__ void gptq_wait_prior_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void gptq_release_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
template <typename... P, typename... A>
static inline void gptq_launch_early(void (*fn)(P...), dim3 grid, dim3 block, gptq_stream_t stream, A... args) {
  int dev = 0, major = 0; /* the attribute is for sm_90+; older GPUs get a plain launch */
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      major < 9) {
    GPTQ_LAUNCH(fn, grid, block, stream)(args...);
    return;
  }
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  (void)cudaLaunchKernelEx(&cfg, fn, args...); /* errors: gptq_launch_status() */
}
#endif

/* Resident blocks per SM/CU of a kernel at this block size (launch planning; no sync). */
template <typename F>
static inline int gptq_resident_blocks(F* kernel, int threads) {
  int blocks = 0;
#if GPTQ_HIP
  if (hipOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, 0) != hipSuccess) {
#else
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, 0) != cudaSuccess) {
#endif
    (void)gptq_get_last_error();
    return 1;
  }
  return blocks > 0 ? blocks : 1;
}

/* Split-K arrival: *counter += 1 at device scope, returning the old value, with acquire and
 * release order, by one thread of the block after a block barrier. The barrier puts every
 * thread's partials before this release (cumulativity: PTX and HSA memory models), and
 * after it, plus a barrier, the block sees what every earlier arrival released. Instead of
 * a full fence in every thread (sm_90: MEMBAR.SC.GPU per warp). NVIDIA: atom.acq_rel.gpu;
 * gfx908: the HIP builtin at agent scope. */
#if GPTQ_EMULATE
__device__ __forceinline__ unsigned gptq_arrive_acq_rel(unsigned* counter) {
  __threadfence();
  return atomicAdd(counter, 1u);
}
#elif GPTQ_HIP
__device__ __forceinline__ unsigned gptq_arrive_acq_rel(unsigned* counter) {
  return __hip_atomic_fetch_add(counter, 1u, __ATOMIC_ACQ_REL, __HIP_MEMORY_SCOPE_AGENT);
}
#else
__device__ __forceinline__ unsigned gptq_arrive_acq_rel(unsigned* counter) {
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.u32 %0, [%1], 1;" : "=r"(old) : "l"(counter) : "memory");
  return old;
}
#endif

/* Non-cached read of data other blocks wrote in this launch (after the arrival above):
 * volatile makes both compilers bypass the non-coherent L1 (ld.volatile / glc). */
__device__ __forceinline__ float gptq_load_coherent(const float* p) {
  return *(const volatile float*)p;
}

/* ---- weight stream loads ---------------------------------------------------------- */
/* gptq_load_stream16(p): 16 bytes read once per call (weights). NVIDIA: read-only path
 * without an L1 line (ld.global.nc.L1::no_allocate): the activations that every warp
 * re-reads keep L1 (3-10% at M = 1..8, H100, benchmarks/micro/m1_stream.cu). gfx908: a
 * plain load (global_load_dwordx4; the resource report checks it). */
#if GPTQ_TARGET_AMD || GPTQ_EMULATE
__device__ __forceinline__ uint4 gptq_load_stream16(const uint4* p) { return *p; }
#else
__device__ __forceinline__ uint4 gptq_load_stream16(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
#endif

/* ---- cross-lane -------------------------------------------------------------------- */
/* gptq_shfl_xor(v, mask): v of lane ^ mask (mask below the wave size).
 * gptq_shfl_group(v, src, width): v of lane src within each aligned group of `width` lanes
 * (width <= 32). Every lane of the wave must call them (NVIDIA's full mask). gfx908: HIP's
 * __shfl family lowers to ds_bpermute_b32 (the LDS crossbar, no LDS allocation); NVIDIA:
 * SHFL. */
#if GPTQ_HIP
__device__ __forceinline__ float gptq_shfl_xor(float v, int mask) { return __shfl_xor(v, mask); }
__device__ __forceinline__ uint32_t gptq_shfl_group(uint32_t v, int src, int width) {
  return (uint32_t)__shfl((int)v, src, width);
}
#else
__device__ __forceinline__ float gptq_shfl_xor(float v, int mask) {
  return __shfl_xor_sync(0xffffffffu, v, mask);
}
__device__ __forceinline__ uint32_t gptq_shfl_group(uint32_t v, int src, int width) {
  return __shfl_sync(0xffffffffu, v, src, width);
}
#endif

/* ---- memory ---------------------------------------------------------------------- */
/* 16-byte global load (4 adjacent int32 columns): one dwordx4 / LDG.128 per lane, so a
 * wave reads contiguous bytes. p must be 16-byte aligned. */
__device__ __forceinline__ uint4 gptq_ld_v4(const int32_t* p) {
  return *reinterpret_cast<const uint4*>(p);
}
/* The same 16 bytes as two 8-byte loads (dwordx2 / LDG.64), kept apart by an empty asm with
 * a memory clobber: both compilers would otherwise merge adjacent loads into one. */
__device__ __forceinline__ uint4 gptq_ld_2x_v2(const int32_t* p) {
  const uint2 lo = *reinterpret_cast<const uint2*>(p);
  asm volatile("" ::: "memory");
  const uint2 hi = *reinterpret_cast<const uint2*>(p + 2);
  return make_uint4(lo.x, lo.y, hi.x, hi.y);
}

#endif /* GPTQ_MI100_GPU_COMPAT_H */

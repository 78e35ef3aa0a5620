/* Torch-free launchers of the GPU kernels (one source for HIP/gfx908 and CUDA/sm_90).
 * Streams are passed as void* (cudaStream_t / hipStream_t); every launcher only enqueues
 * work on that stream: no allocation, no synchronization (graph-capture safe). */
#ifndef GPTQ_MI100_GPU_H
#define GPTQ_MI100_GPU_H

#include "../gptq_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GEMM kernels selectable per call (the host registry, csrc/host/kernel_registry.cpp,
 * says which layout each reads). EXLLAMA, the baseline on layout 1: split-K over blocks
 * with fp32 partials reduced in a fixed order by a second launch. TRANSPOSED, on layout 2
 * (gptq_transposed.cu): one weight pass for every M, split-K reduced in the same launch,
 * inner product on the vector units (v_dot2 on gfx908). TRANSPOSED_MMA: the same weight
 * stream with the inner product on matrix instructions (mma.sync on NVIDIA, MFMA on gfx908). All deterministic, no
 * float atomics. */
typedef enum gptq_gpu_kernel {
  GPTQ_GPU_KERNEL_EXLLAMA = 0,
  GPTQ_GPU_KERNEL_TRANSPOSED = 1,
  GPTQ_GPU_KERNEL_TRANSPOSED_MMA = 2,
  /* The planned variants of TRANSPOSED (issue 12), same layout and building blocks:
   * VECTORIZED loads weights at a chosen width (tile.load_bytes 8 or 16), COALESCED stages
   * each block's weight tiles through LDS, WARP_SHUFFLE broadcasts activations and reduces
   * partial sums across lanes with shuffles instead of LDS. */
  GPTQ_GPU_KERNEL_VECTORIZED = 3,
  GPTQ_GPU_KERNEL_COALESCED = 4,
  GPTQ_GPU_KERNEL_WARP_SHUFFLE = 5
} gptq_gpu_kernel;

/* Tile choices of a layout-2 launch; 0 leaves a field to the launcher's own plan. The
 * tuner (gptq_mi100/tuner.py) measures them; the host registry validates them. */
typedef struct gptq_gpu_tile {
  int row_tile;   /* activation rows per weight pass (a compiled row tile; more rows: passes) */
  int splits;     /* K splits (grid.y), at least what LDS needs, at most one per weight tile */
  int load_bytes; /* VECTORIZED: bytes per lane per weight load, 8 or 16 */
  int kslices;    /* TRANSPOSED_MMA: waves per strip, each a slice of a split's K tiles (LDS sum) */
  int sw;         /* TRANSPOSED_MMA: strips per wave of the wide row tiles (2 or 4: scales folded) */
} gptq_gpu_tile;

/* Bytes of fp32 workspace the caller must provide (torch-allocated) for this problem. */
size_t gptq_gpu_gemm_workspace_bytes(const gptq_problem* p, gptq_gpu_kernel kernel,
                                     const gptq_gpu_tile* tile);

/* c = a @ W for p->m rows. workspace: >= gptq_gpu_gemm_workspace_bytes bytes. tile: NULL
 * or the launch's tile choices (exllama ignores it). */
gptq_status gptq_gpu_gemm(const gptq_problem* p, gptq_gpu_kernel kernel, const gptq_gpu_tile* tile,
                          void* workspace, size_t workspace_bytes, void* stream);

/* W in original K order into p->c ([k, n], dtype p->a_dtype, row stride p->ldc), from a
 * qweight in `layout` (GPTQ_LAYOUT_CHECKPOINT or GPTQ_LAYOUT_TILED). */
gptq_status gptq_gpu_dequantize(const gptq_problem* p, int layout, void* stream);

/* The layout-2 kernels (gptq_transposed.cu); gptq_gpu_gemm / gptq_gpu_dequantize call
 * them. kernel: TRANSPOSED or TRANSPOSED_MMA. sm_count: SMs/CUs of the current device
 * (split-K planning). */
/* Why that GEMM cannot run p (NULL when it can): the one statement of its requirements,
 * read by its launcher and by the host kernel registry. Shapes and build only. */
const char* gptq_gpu_transposed_unsupported(const gptq_problem* p, gptq_gpu_kernel kernel);
/* 1 when this build compiled TRANSPOSED_MMA (mma.sync on NVIDIA, MFMA on gfx908), else 0. */
int gptq_gpu_transposed_mma_compiled(void);
/* Smallest M that "auto" sends to TRANSPOSED_MMA on this build's architecture. */
int64_t gptq_gpu_mma_auto_min_m(void);
size_t gptq_gpu_transposed_workspace_bytes(const gptq_problem* p, gptq_gpu_kernel kernel,
                                           const gptq_gpu_tile* tile, int sm_count);
gptq_status gptq_gpu_transposed_gemm(const gptq_problem* p, gptq_gpu_kernel kernel,
                                     const gptq_gpu_tile* tile, int sm_count, void* workspace,
                                     size_t workspace_bytes, void* stream);
/* Why `tile` is not valid for that kernel (NULL when it is): its row tiles and fields. */
const char* gptq_gpu_tile_unsupported(gptq_gpu_kernel kernel, const gptq_gpu_tile* tile);
/* Why a valid `tile` cannot run the valid problem p (NULL when it can). */
const char* gptq_gpu_tile_problem_unsupported(const gptq_problem* p, gptq_gpu_kernel kernel,
                                              const gptq_gpu_tile* tile);
gptq_status gptq_gpu_transposed_dequantize(const gptq_problem* p, void* stream);

/* dst row r = src row perm[r] in unpacked K space (perm validated by the caller). */
gptq_status gptq_gpu_permute_rows(const int32_t* src, int32_t* dst, const int32_t* perm,
                                  int64_t k, int64_t n, int bits, void* stream);

/* Device-side counter of clamped a_perm/group_index entries (static device memory of
 * this module, so no allocation). Reading it synchronizes: call it only from
 * gptq_mi100.ops.take_index_errors(), never inside an op. */
int32_t* gptq_gpu_index_error_counter(void);
gptq_status gptq_gpu_take_index_errors(int device, int64_t* out_count);

/* Smallest M that "auto" sends to dequantize + matmul on the current device's
 * architecture (per-architecture table in gptq_gpu.cu). */
int64_t gptq_gpu_large_m_threshold(int bits);

/* Compile-time block sizes of the running device's architecture, for reports. */
const char* gptq_gpu_arch_config(void);

#ifdef __cplusplus
}
#endif

#endif /* GPTQ_MI100_GPU_H */

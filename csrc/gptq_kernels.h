/* Torch-free interface of every gptq_mi100 kernel (CPU in C99, GPU in HIP/CUDA).
 *
 * The torch-facing C++ (csrc/ops_*.cpp) validates tensors, fills a gptq_problem and
 * calls a launcher; launchers return a gptq_status that the C++ turns into exceptions.
 *
 * Layout versions: a prepared weight records which one its qweight is in, and a kernel
 * reads exactly one (the kernel registry, csrc/host/kernel_registry.cpp, says which).
 *   GPTQ_LAYOUT_CHECKPOINT (1): described below; every kernel of this header reads it.
 *   GPTQ_LAYOUT_TILED (2): 16-column tiles of 16-byte chunks for the GPU "transposed"
 *     kernel; built in Python (gptq_mi100/layouts.py, which documents it), bits 2/4/8.
 *
 * Layout 1 (checkpoint packing, K rows in kernel order):
 *   qweight  int32 [k * bits / 32, n]  GPTQ checkpoint packing along K, low bits first
 *                                     (3-bit: 32 values in 3 consecutive words).
 *                                     Row r of the unpacked weight is "kernel row r".
 *   qzeros   int32 [groups, n * bits / 32]  checkpoint packing along N.
 *   scales   fp16 or bf16 [groups, n].
 *   a_perm   int32 [k] or NULL: kernel row r multiplies activation column a_perm[r]
 *            (act-order resolved by prepare/gptq_shuffle); NULL means identity.
 *   group_index int32 [k] or NULL: group of kernel row r; NULL means r / group_size.
 *   w[r, n] = scale[g, n] * (q[r, n] - (zero[g, n] + zero_offset)),  zero_offset = 1 for
 *   GPTQ v1 checkpoints, 0 for v2.
 * Out-of-range a_perm / group_index entries are clamped (never read out of bounds) and
 * counted in *index_errors when that pointer is non-NULL.
 */
#ifndef GPTQ_MI100_KERNELS_H
#define GPTQ_MI100_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPTQ_LAYOUT_CHECKPOINT 1
#define GPTQ_LAYOUT_TILED 2

typedef enum gptq_status {
  GPTQ_OK = 0,
  GPTQ_ERR_BITS = 1,        /* bits not in {2, 3, 4, 8} */
  GPTQ_ERR_SHAPE = 2,       /* k, n, m or groups inconsistent with the packing */
  GPTQ_ERR_GROUP_SIZE = 3,  /* group_size not positive or groups * group_size != k */
  GPTQ_ERR_DTYPE = 4,       /* unsupported activation or scale dtype code */
  GPTQ_ERR_LAUNCH = 5,      /* the GPU runtime refused the launch */
  GPTQ_ERR_NO_KERNEL = 6,   /* this build has no kernel for the request (e.g. arch) */
  GPTQ_ERR_ALIGNMENT = 7    /* a pointer or stride breaks the kernel's vector width */
} gptq_status;

typedef enum gptq_dtype {
  GPTQ_F16 = 0,
  GPTQ_BF16 = 1,
  GPTQ_F32 = 2
} gptq_dtype;

/* One quantized linear layer applied to m rows: c[m, n] = a[m, :] @ W. */
typedef struct gptq_problem {
  const void* a;              /* [m, k] activations, row stride lda elements */
  const int32_t* qweight;     /* [k * bits / 32, n] */
  const int32_t* qzeros;      /* [groups, n * bits / 32] */
  const void* scales;         /* [groups, n] */
  const int32_t* a_perm;      /* [k] or NULL */
  const int32_t* group_index; /* [k] or NULL */
  void* c;                    /* [m, n] output, row stride ldc elements */
  int32_t* index_errors;      /* counter of clamped indices, or NULL */
  int64_t m, n, k;
  int64_t lda, ldc;
  int64_t groups;             /* scales.size(0) */
  int64_t group_size;         /* used when group_index is NULL */
  int bits;                   /* 2, 3, 4 or 8 */
  int zero_offset;            /* 1: GPTQ v1 (stored zero + 1), 0: GPTQ v2 */
  gptq_dtype a_dtype;         /* GPTQ_F16 or GPTQ_BF16; c has the same dtype */
  gptq_dtype scale_dtype;     /* GPTQ_F16 or GPTQ_BF16 */
} gptq_problem;

/* Pure shape checks shared by all backends (no data is read): csrc/problem_check.c. */
gptq_status gptq_check_problem(const gptq_problem* p);

/* ---- CPU kernels (csrc/cpu, C99). Each handles output columns [n_begin, n_end);
 * callers parallelize over column ranges that are multiples of 32 / bits.
 * Scratch: a float buffer of at least gptq_cpu_gemm_scratch_floats(p) elements. ---- */
size_t gptq_cpu_gemm_scratch_floats(const gptq_problem* p);
gptq_status gptq_cpu_gemm(const gptq_problem* p, int64_t n_begin, int64_t n_end,
                          float* scratch);

/* W in original (checkpoint) K order: out[a_perm ? a_perm[r] : r, n] = w[r, n].
 * The CPU dequantize alone also accepts a_dtype GPTQ_F32 (fp32 output).
 * out is [k, n] with row stride ldc of dtype out_dtype (p->c, p->ldc, p->a_dtype). */
gptq_status gptq_cpu_dequantize(const gptq_problem* p, int64_t n_begin, int64_t n_end);

/* Reorder kernel rows of a packed qweight: dst row r = src row perm[r] (unpacked K
 * space). perm must be a valid permutation (validated by the caller). */
gptq_status gptq_cpu_permute_rows(const int32_t* src, int32_t* dst, const int32_t* perm,
                                  int64_t k, int64_t n, int bits, int64_t n_begin,
                                  int64_t n_end);

#ifdef __cplusplus
}
#endif

#endif /* GPTQ_MI100_KERNELS_H */

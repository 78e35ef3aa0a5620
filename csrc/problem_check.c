/* Shape and dtype checks of a gptq_problem shared by every backend (CPU C99 kernels,
 * GPU launchers, the torch-facing host code): no pointer is dereferenced. */
#include "gptq_kernels.h"

static int bits_supported(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

static int dtype_supported(gptq_dtype dtype) { return dtype == GPTQ_F16 || dtype == GPTQ_BF16; }

gptq_status gptq_check_problem(const gptq_problem* p) {
  if (p == NULL) return GPTQ_ERR_SHAPE;
  if (!bits_supported(p->bits)) return GPTQ_ERR_BITS;
  if (!dtype_supported(p->a_dtype) || !dtype_supported(p->scale_dtype)) return GPTQ_ERR_DTYPE;
  if (p->k <= 0 || p->k % 32 != 0) return GPTQ_ERR_SHAPE;
  /* qzeros pack 32 / bits columns per word (32 per 3 words for 3-bit) */
  if (p->n < 0 || p->n % (p->bits == 3 ? 32 : 32 / p->bits) != 0) return GPTQ_ERR_SHAPE;
  if (p->m < 0 || p->groups < 1) return GPTQ_ERR_SHAPE;
  if (p->ldc < p->n) return GPTQ_ERR_SHAPE;
  /* a is never read when m == 0 (and dequantize ignores it), so lda only matters then. */
  if (p->m > 0 && p->lda < p->k) return GPTQ_ERR_SHAPE;
  if (p->group_index == NULL) {
    /* k % group_size and k / group_size instead of groups * group_size: no overflow. */
    if (p->group_size <= 0 || p->k % p->group_size != 0 || p->k / p->group_size != p->groups)
      return GPTQ_ERR_GROUP_SIZE;
  }
  return GPTQ_OK;
}

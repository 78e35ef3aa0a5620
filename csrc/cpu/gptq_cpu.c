/* CPU kernels of gptq_mi100 in C99: argument checks, GEMM, dequantization and row
 * permutation of GPTQ-packed weights (interface and layout: ../gptq_kernels.h).
 *
 * Packing seen from one column: the packed K values of a qweight column form a
 * little-endian bit stream of 32-bit words (word row w sits at qweight[w * n + col]),
 * value r at bit r * bits. That one rule covers 2/4/8 bits (pf values per word, never
 * straddling) and 3 bits (32 values in 3 words, values 10 and 21 straddle). A qzeros row
 * is the same kind of stream along N. So every unpack below is "read bits at r * bits,
 * plus the next word when the value straddles".
 *
 * GEMM loop structure (per call, for the columns [n_begin, n_end)):
 *   gather A to fp32 once, in kernel row order (a_perm resolved): a32[m][k]
 *   for each strip of STRIP_COLS columns:
 *     acc[m][strip] = 0
 *     for each tile of K_TILE kernel rows:
 *       dequantize the tile into fp32 w[K_TILE][strip] with the strip's zero/scale
 *         of every group, loaded once per strip
 *       for each activation row mi: acc[mi][:] += a32[mi][r] * w[r][:], r ascending
 *     round acc to the activation dtype into c
 * No full dequantized W is ever built. Each output is a sequential fp32 sum over the
 * kernel rows in ascending order, independent of how the caller splits the columns.
 * No FMA contraction, so results do not change between compilers: gcc -std=c99 (ISO
 * mode) implies -ffp-contract=off, and clang (hipcc builds) gets the C99 pragma below. Inner loops run over contiguous columns through
 * restrict pointers so -O3 vectorizes them without intrinsics.
 *
 * Index safety: out-of-range a_perm / group_index entries are clamped wherever they are
 * read; each call counts every bad entry once into *index_errors (one pass over the
 * index arrays), so a caller that splits columns over T calls sees T times the count. */
#include "../gptq_kernels.h"
#include "fp16_convert.h"

#include <limits.h>
#include <string.h>

#if defined(__clang__) /* gcc ignores this pragma with a warning; its ISO mode is off anyway */
#pragma STDC FP_CONTRACT OFF
#endif

/* 64 columns x 64 rows of fp32 = 16 KiB tile: stays in L1 while every activation row
 * streams over it. K_TILE divides into whole 32-row packing blocks (k % 32 == 0). */
#define STRIP_COLS 64
#define K_TILE 64

/* ---- argument checks (gptq_check_problem itself: csrc/problem_check.c) ---------------- */

static int bits_supported(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

/* Columns per packed zero unit: 32 / bits values per word, 32 columns per 3 words. */
static int64_t column_granule(int bits) { return bits == 3 ? 32 : 32 / bits; }

/* Column ranges must start on a packed-zero boundary so that split calls agree. */
static gptq_status check_column_range(int64_t n, int bits, int64_t n_begin, int64_t n_end) {
  int64_t granule = column_granule(bits);
  if (n_begin < 0 || n_begin > n_end || n_end > n) return GPTQ_ERR_SHAPE;
  if (n_begin % granule != 0 || (n_end % granule != 0 && n_end != n)) return GPTQ_ERR_SHAPE;
  return GPTQ_OK;
}

/* ---- index handling ----------------------------------------------------------------- */

static int64_t clamp_index(int32_t index, int64_t size) {
  if (index < 0) return 0;
  if (index >= size) return size - 1;
  return index;
}

static int64_t count_out_of_range(const int32_t* indices, int64_t count, int64_t size) {
  int64_t bad = 0;
  if (indices == NULL) return 0;
  for (int64_t i = 0; i < count; ++i) bad += (indices[i] < 0 || indices[i] >= size);
  return bad;
}

/* One pass per call, so the count does not depend on strips or tiles. */
static void report_index_errors(const gptq_problem* p) {
  int64_t bad;
  if (p->index_errors == NULL) return;
  bad = count_out_of_range(p->a_perm, p->k, p->k) +
        count_out_of_range(p->group_index, p->k, p->groups);
  if (bad == 0) return;
  /* Saturate instead of overflowing the int32 counter. */
  if (bad > (int64_t)INT32_MAX - *p->index_errors)
    *p->index_errors = INT32_MAX;
  else
    *p->index_errors += (int32_t)bad;
}

static int64_t group_of_row(const gptq_problem* p, int64_t row) {
  if (p->group_index != NULL) return clamp_index(p->group_index[row], p->groups);
  return row / p->group_size; /* < groups: checked groups * group_size == k */
}

static int64_t activation_column_of_row(const gptq_problem* p, int64_t row) {
  return p->a_perm != NULL ? clamp_index(p->a_perm[row], p->k) : row;
}

/* ---- unpacking and dequantization ----------------------------------------------------- */

/* Value `index` of a little-endian stream of `bits`-wide values in 32-bit words. */
static uint32_t stream_value(const uint32_t* words, int64_t index, int bits) {
  int64_t bit = index * bits;
  int64_t word = bit >> 5;
  unsigned offset = (unsigned)(bit & 31);
  uint32_t value = words[word] >> offset;
  if (offset + (unsigned)bits > 32u) value |= words[word + 1] << (32u - offset);
  return value & ((1u << bits) - 1u);
}

static float load_scalar(const uint16_t* values, int64_t index, gptq_dtype dtype) {
  return dtype == GPTQ_BF16 ? gptq_bf16_to_f32(values[index]) : gptq_f16_to_f32(values[index]);
}

/* Zero (with zero_offset folded in) and scale of `group` for `width` columns from col0. */
static void load_group_params(const gptq_problem* p, int64_t group, int64_t col0, int width,
                              float* restrict zero_out, float* restrict scale_out) {
  const uint32_t* zero_row = (const uint32_t*)p->qzeros + group * (p->n * p->bits / 32);
  const uint16_t* scales = (const uint16_t*)p->scales;
  for (int j = 0; j < width; ++j) {
    int32_t zero = (int32_t)stream_value(zero_row, col0 + j, p->bits);
    zero_out[j] = (float)(zero + p->zero_offset);
    scale_out[j] = load_scalar(scales, group * p->n + col0 + j, p->scale_dtype);
  }
}

/* w[j] = scale[j] * (q[row, col0 + j] - zero[j]) in fp32 (q - zero is exact). */
static void dequantize_row(const uint32_t* qweight, int64_t n, int bits, int64_t row,
                           int64_t col0, int width, const float* restrict zero,
                           const float* restrict scale, float* restrict w) {
  int64_t bit = row * bits;
  unsigned offset = (unsigned)(bit & 31);
  uint32_t mask = (1u << bits) - 1u;
  const uint32_t* restrict low = qweight + (bit >> 5) * n + col0;
  if (offset + (unsigned)bits <= 32u) {
    for (int j = 0; j < width; ++j) {
      /* Through int32: the value is small, and signed converts vectorize everywhere. */
      int32_t q = (int32_t)((low[j] >> offset) & mask);
      w[j] = ((float)q - zero[j]) * scale[j];
    }
  } else { /* 3-bit values 10 and 21 of a block straddle into the next word row */
    const uint32_t* restrict high = low + n;
    unsigned high_shift = 32u - offset;
    for (int j = 0; j < width; ++j) {
      int32_t q = (int32_t)(((low[j] >> offset) | (high[j] << high_shift)) & mask);
      w[j] = ((float)q - zero[j]) * scale[j];
    }
  }
}

static void store_row(void* out, int64_t offset, const float* restrict values, int width,
                      gptq_dtype dtype) {
  uint16_t* restrict dst = (uint16_t*)out + offset;
  if (dtype == GPTQ_F32) { /* dequantize only: the CPU large-M path multiplies in fp32 */
    memcpy((float*)out + offset, values, (size_t)width * sizeof(float));
  } else if (dtype == GPTQ_BF16) {
    for (int j = 0; j < width; ++j) dst[j] = gptq_f32_to_bf16(values[j]);
  } else {
    for (int j = 0; j < width; ++j) dst[j] = gptq_f32_to_f16(values[j]);
  }
}

/* ---- GEMM ---------------------------------------------------------------------------- */

size_t gptq_cpu_gemm_scratch_floats(const gptq_problem* p) {
  if (gptq_check_problem(p) != GPTQ_OK) return 0;
  /* a32[m][k] + acc[m][STRIP_COLS] + w tile[K_TILE][STRIP_COLS]
   * + zero and scale of every group for one strip (2 * groups * STRIP_COLS) */
  return (size_t)p->m * (size_t)p->k + (size_t)p->m * STRIP_COLS + (size_t)K_TILE * STRIP_COLS +
         2 * (size_t)p->groups * STRIP_COLS;
}

/* a32[mi][r] = a[mi][a_perm[r]] in fp32: the GEMM then reads A in kernel row order. */
static void gather_activations(const gptq_problem* p, float* restrict a32) {
  const uint16_t* a = (const uint16_t*)p->a;
  for (int64_t mi = 0; mi < p->m; ++mi) {
    const uint16_t* row = a + mi * p->lda;
    float* restrict out = a32 + mi * p->k;
    if (p->a_perm == NULL) {
      if (p->a_dtype == GPTQ_BF16)
        for (int64_t r = 0; r < p->k; ++r) out[r] = gptq_bf16_to_f32(row[r]);
      else
        for (int64_t r = 0; r < p->k; ++r) out[r] = gptq_f16_to_f32(row[r]);
    } else {
      for (int64_t r = 0; r < p->k; ++r)
        out[r] = load_scalar(row, activation_column_of_row(p, r), p->a_dtype);
    }
  }
}

/* acc[j] += a[r] * w[r][j] for r ascending. Four rows per pass keep acc in registers;
 * C evaluates the chained sum left to right, so the rounding order is the same as one
 * row at a time. rows is a multiple of 4 (tiles are whole 32-row blocks). */
static void accumulate_tile(float* restrict acc, const float* restrict a,
                            const float* restrict w, int rows, int width) {
  for (int r = 0; r < rows; r += 4) {
    const float a0 = a[r], a1 = a[r + 1], a2 = a[r + 2], a3 = a[r + 3];
    const float* restrict w0 = w + (int64_t)r * STRIP_COLS;
    const float* restrict w1 = w0 + STRIP_COLS;
    const float* restrict w2 = w1 + STRIP_COLS;
    const float* restrict w3 = w2 + STRIP_COLS;
    for (int j = 0; j < width; ++j)
      acc[j] = acc[j] + a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j];
  }
}

gptq_status gptq_cpu_gemm(const gptq_problem* p, int64_t n_begin, int64_t n_end,
                          float* scratch) {
  gptq_status status = gptq_check_problem(p);
  if (status != GPTQ_OK) return status;
  status = check_column_range(p->n, p->bits, n_begin, n_end);
  if (status != GPTQ_OK) return status;
  if (p->m == 0 || n_begin == n_end) return GPTQ_OK;
  report_index_errors(p);

  const uint32_t* qweight = (const uint32_t*)p->qweight; /* unsigned shifts, same object */
  float* a32 = scratch;
  float* acc = a32 + p->m * p->k;
  float* tile = acc + p->m * STRIP_COLS;
  float* zeros = tile + K_TILE * STRIP_COLS;       /* [groups][STRIP_COLS] */
  float* scales = zeros + p->groups * STRIP_COLS;  /* [groups][STRIP_COLS] */

  gather_activations(p, a32);
  for (int64_t col0 = n_begin; col0 < n_end; col0 += STRIP_COLS) {
    int width = (int)(n_end - col0 < STRIP_COLS ? n_end - col0 : STRIP_COLS);
    /* Every group's zero/scale for the strip up front: an unsorted group_index (vLLM's
     * row-parallel act-order shards) then costs no more than sorted groups. */
    for (int64_t g = 0; g < p->groups; ++g)
      load_group_params(p, g, col0, width, zeros + g * STRIP_COLS, scales + g * STRIP_COLS);
    for (int64_t i = 0; i < p->m * STRIP_COLS; ++i) acc[i] = 0.0f;
    for (int64_t row0 = 0; row0 < p->k; row0 += K_TILE) {
      int rows = (int)(p->k - row0 < K_TILE ? p->k - row0 : K_TILE);
      for (int t = 0; t < rows; ++t) {
        int64_t group = group_of_row(p, row0 + t);
        dequantize_row(qweight, p->n, p->bits, row0 + t, col0, width,
                       zeros + group * STRIP_COLS, scales + group * STRIP_COLS,
                       tile + (int64_t)t * STRIP_COLS);
      }
      for (int64_t mi = 0; mi < p->m; ++mi)
        accumulate_tile(acc + mi * STRIP_COLS, a32 + mi * p->k + row0, tile, rows, width);
    }
    for (int64_t mi = 0; mi < p->m; ++mi)
      store_row(p->c, mi * p->ldc + col0, acc + mi * STRIP_COLS, width, p->a_dtype);
  }
  return GPTQ_OK;
}

/* ---- dequantize ---------------------------------------------------------------------- */

gptq_status gptq_cpu_dequantize(const gptq_problem* p, int64_t n_begin, int64_t n_end) {
  gptq_problem checked;
  gptq_status status;
  if (p == NULL) return GPTQ_ERR_SHAPE;
  checked = *p; /* a, m and lda are unused here: check the rest only */
  checked.m = 0;
  if (checked.a_dtype == GPTQ_F32) checked.a_dtype = GPTQ_F16; /* output may be fp32 here */
  status = gptq_check_problem(&checked);
  if (status != GPTQ_OK) return status;
  status = check_column_range(p->n, p->bits, n_begin, n_end);
  if (status != GPTQ_OK) return status;
  if (n_begin == n_end) return GPTQ_OK;
  report_index_errors(p);

  const uint32_t* qweight = (const uint32_t*)p->qweight;
  float zero[STRIP_COLS], scale[STRIP_COLS], w[STRIP_COLS];
  for (int64_t col0 = n_begin; col0 < n_end; col0 += STRIP_COLS) {
    int width = (int)(n_end - col0 < STRIP_COLS ? n_end - col0 : STRIP_COLS);
    int64_t cached_group = -1;
    for (int64_t row = 0; row < p->k; ++row) {
      int64_t group = group_of_row(p, row);
      if (group != cached_group) {
        load_group_params(p, group, col0, width, zero, scale);
        cached_group = group;
      }
      dequantize_row(qweight, p->n, p->bits, row, col0, width, zero, scale, w);
      /* Kernel row r is original row a_perm[r]: undo act-order on the way out. */
      store_row(p->c, activation_column_of_row(p, row) * p->ldc + col0, w, width, p->a_dtype);
    }
  }
  return GPTQ_OK;
}

/* ---- row permutation ----------------------------------------------------------------- */

gptq_status gptq_cpu_permute_rows(const int32_t* src, int32_t* dst, const int32_t* perm,
                                  int64_t k, int64_t n, int bits, int64_t n_begin,
                                  int64_t n_end) {
  if (!bits_supported(bits)) return GPTQ_ERR_BITS;
  if (k <= 0 || k % 32 != 0 || n < 0) return GPTQ_ERR_SHAPE;
  /* qweight is packed along K only, so any column range works here. src and dst must
   * not overlap (dst is cleared first): an in-place shuffle needs a copy of src. */
  if (n_begin < 0 || n_begin > n_end || n_end > n) return GPTQ_ERR_SHAPE;
  if (n_begin == n_end) return GPTQ_OK;

  /* uint32_t views: the unsigned counterpart may alias int32_t storage. */
  const uint32_t* src_words = (const uint32_t*)src;
  uint32_t* dst_words = (uint32_t*)dst;
  const int64_t width = n_end - n_begin;
  const int64_t word_rows = k * bits / 32;
  const uint32_t mask = (1u << bits) - 1u;

  /* dst is assembled by OR-ing values in, so clear its columns first. */
  for (int64_t w = 0; w < word_rows; ++w) {
    uint32_t* restrict out = dst_words + w * n + n_begin;
    for (int64_t j = 0; j < width; ++j) out[j] = 0;
  }
  for (int64_t row = 0; row < k; ++row) {
    /* perm is validated by the caller; clamping only keeps a bad one in bounds. */
    int64_t src_row = perm != NULL ? clamp_index(perm[row], k) : row;
    int64_t src_bit = src_row * bits, dst_bit = row * bits;
    unsigned src_offset = (unsigned)(src_bit & 31), dst_offset = (unsigned)(dst_bit & 31);
    int src_straddles = src_offset + (unsigned)bits > 32u;
    int dst_straddles = dst_offset + (unsigned)bits > 32u;
    const uint32_t* restrict in_low = src_words + (src_bit >> 5) * n + n_begin;
    const uint32_t* restrict in_high = in_low + (src_straddles ? n : 0);
    uint32_t* restrict out_low = dst_words + (dst_bit >> 5) * n + n_begin;
    uint32_t* restrict out_high = out_low + (dst_straddles ? n : 0);
    /* Shift amounts that are only used on the straddling path; kept below 32. */
    unsigned src_high_shift = src_straddles ? 32u - src_offset : 0u;
    unsigned dst_high_shift = dst_straddles ? 32u - dst_offset : 0u;
    for (int64_t j = 0; j < width; ++j) {
      uint32_t value = in_low[j] >> src_offset;
      if (src_straddles) value |= in_high[j] << src_high_shift;
      value &= mask;
      out_low[j] |= value << dst_offset;
      if (dst_straddles) out_high[j] |= value >> dst_high_shift;
    }
  }
  return GPTQ_OK;
}

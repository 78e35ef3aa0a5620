/* Standalone test of the C99 CPU kernels (no torch). Build and run from the repo root:
 *   cc -std=c99 -O2 -Wall -Wextra -Icsrc csrc/cpu/gptq_cpu.c tests/c/test_cpu_kernels.c -lm -o /tmp/test_cpu_kernels && /tmp/test_cpu_kernels
 *
 * Everything the kernels compute is checked against independent naive code: bit-by-bit
 * packing written from the format description, a double-precision GEMM, and fp16/bf16
 * rounding done with frexp/nearbyint instead of bit tricks. */
#include "gptq_kernels.h"
#include "cpu/fp16_convert.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_passed, g_failed;

static void record(int ok, const char* what) {
  if (ok) {
    g_passed++;
  } else {
    g_failed++;
    printf("FAIL: %s\n", what);
  }
}

/* ---- random numbers (xorshift64*, fixed seed: reproducible) ---- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rand_u32(void) {
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}

static double rand_uniform(double lo, double hi) {
  return lo + (hi - lo) * (rand_u32() / 4294967296.0);
}

static void shuffle(int32_t* values, int64_t count) {
  for (int64_t i = count - 1; i > 0; --i) {
    int64_t j = (int64_t)(rand_u32() % (uint32_t)(i + 1));
    int32_t t = values[i];
    values[i] = values[j];
    values[j] = t;
  }
}

/* ---- reference narrow floats, written without bit tricks ---- */

typedef struct {
  int mantissa_bits, min_exponent, max_exponent, exponent_bias;
} float_format;

static const float_format kF16 = {10, -14, 15, 15};
static const float_format kBF16 = {7, -126, 127, 127};

static const float_format* format_of(gptq_dtype d) { return d == GPTQ_BF16 ? &kBF16 : &kF16; }

static double ref_decode(uint16_t bits, const float_format* f) {
  int exp_bits = 15 - f->mantissa_bits;
  int sign = bits >> 15;
  int exponent = (bits >> f->mantissa_bits) & ((1 << exp_bits) - 1);
  int mantissa = bits & ((1 << f->mantissa_bits) - 1);
  double value;
  if (exponent == (1 << exp_bits) - 1)
    value = mantissa ? NAN : INFINITY;
  else if (exponent == 0)
    value = ldexp(mantissa, f->min_exponent - f->mantissa_bits);
  else
    value = ldexp(mantissa + (1 << f->mantissa_bits), exponent - f->exponent_bias - f->mantissa_bits);
  return sign ? -value : value;
}

/* Round to nearest even (nearbyint in the default rounding mode) on the format's grid. */
static uint16_t ref_encode(double x, const float_format* f) {
  int exp_bits = 15 - f->mantissa_bits;
  uint16_t sign = signbit(x) ? 0x8000 : 0;
  uint16_t inf_bits = (uint16_t)(((1 << exp_bits) - 1) << f->mantissa_bits);
  double magnitude = fabs(x), quantum, rounded;
  int exponent;
  if (isnan(x)) return (uint16_t)(sign | inf_bits | (1 << (f->mantissa_bits - 1)));
  if (magnitude == 0) return sign;
  frexp(magnitude, &exponent);
  exponent -= 1; /* magnitude in [2^exponent, 2^(exponent+1)) */
  if (exponent < f->min_exponent) exponent = f->min_exponent;
  quantum = ldexp(1.0, exponent - f->mantissa_bits);
  rounded = nearbyint(magnitude / quantum) * quantum;
  if (isinf(magnitude) || rounded >= ldexp(1.0, f->max_exponent + 1)) return (uint16_t)(sign | inf_bits);
  if (rounded < ldexp(1.0, f->min_exponent)) /* subnormal (or the smallest normal, 2^mbits) */
    return (uint16_t)(sign | (uint16_t)(rounded / ldexp(1.0, f->min_exponent - f->mantissa_bits)));
  frexp(rounded, &exponent);
  exponent -= 1;
  {
    int mantissa = (int)(rounded / ldexp(1.0, exponent - f->mantissa_bits)) - (1 << f->mantissa_bits);
    return (uint16_t)(sign | ((exponent + f->exponent_bias) << f->mantissa_bits) | mantissa);
  }
}

static int is_nan16(uint16_t bits, const float_format* f) { return isnan(ref_decode(bits, f)); }

static void test_conversions(void) {
  const float_format* formats[2] = {&kF16, &kBF16};
  for (int which = 0; which < 2; ++which) {
    const float_format* f = formats[which];
    int widen_ok = 1, roundtrip_ok = 1, midpoint_ok = 1, random_ok = 1;
    for (uint32_t h = 0; h < 65536; ++h) {
      float wide = which ? gptq_bf16_to_f32((uint16_t)h) : gptq_f16_to_f32((uint16_t)h);
      double expect = ref_decode((uint16_t)h, f);
      uint16_t back = which ? gptq_f32_to_bf16(wide) : gptq_f32_to_f16(wide);
      if (isnan(expect)) {
        widen_ok &= isnan(wide) != 0;
        roundtrip_ok &= is_nan16(back, f) && (back & 0x8000) == (h & 0x8000);
      } else {
        widen_ok &= (double)wide == expect && !signbit(wide) == !signbit(expect); /* signbit: any nonzero */
        roundtrip_ok &= back == h;
      }
    }
    /* Halfway to the next magnitude (the ties) and just either side of it. */
    for (uint32_t h = 0; h < 0x7fff; ++h) {
      double lo = ref_decode((uint16_t)h, f), hi = ref_decode((uint16_t)(h + 1), f);
      double mid, tiny;
      float mid32;
      if (isnan(lo) || isnan(hi) || isinf(lo)) continue;
      if (isinf(hi)) hi = ldexp(1.0, f->max_exponent + 1); /* overflow boundary */
      mid = 0.5 * (lo + hi);
      tiny = ldexp(hi - lo, -10); /* keeps x exact in fp32 where possible */
      for (int side = -1; side <= 1; ++side) {
        double x = mid + side * tiny;
        mid32 = (float)x;
        if ((double)mid32 != x) continue; /* only values fp32 holds exactly */
        for (int s = 0; s < 2; ++s) {
          float v = s ? -mid32 : mid32;
          uint16_t got = which ? gptq_f32_to_bf16(v) : gptq_f32_to_f16(v);
          midpoint_ok &= got == ref_encode(v, f);
        }
      }
    }
    for (int i = 0; i < 2000000; ++i) {
      uint32_t bits = rand_u32();
      float v = gptq_bits_to_f32(bits);
      uint16_t got = which ? gptq_f32_to_bf16(v) : gptq_f32_to_f16(v);
      uint16_t expect = ref_encode(v, f);
      if (isnan(v))
        random_ok &= is_nan16(got, f) && (got & 0x8000) == (expect & 0x8000);
      else
        random_ok &= got == expect;
    }
    record(widen_ok, which ? "bf16 -> f32 for all 65536 patterns" : "f16 -> f32 for all 65536 patterns");
    record(roundtrip_ok, which ? "bf16 -> f32 -> bf16 round trip" : "f16 -> f32 -> f16 round trip");
    record(midpoint_ok, which ? "f32 -> bf16 ties and near-ties" : "f32 -> f16 ties and near-ties");
    record(random_ok, which ? "f32 -> bf16 on random bit patterns" : "f32 -> f16 on random bit patterns");
  }
#ifdef __FLT16_MAX__
  { /* Cross-check against the compiler's own _Float16 where it has one. */
    int ok = 1;
    for (int i = 0; i < 1000000; ++i) {
      float v = gptq_bits_to_f32(rand_u32());
      _Float16 h = (_Float16)v;
      uint16_t bits;
      memcpy(&bits, &h, sizeof bits);
      if (!isnan(v)) ok &= bits == gptq_f32_to_f16(v);
    }
    record(ok, "f32 -> f16 agrees with the compiler's _Float16");
  }
#endif
}

/* ---- naive packing, straight from the format description ---- */

/* A "block" is the unit of packing: 32/bits values in one word, or for 3 bits 32 values in
 * 3 words read as one 96-bit little-endian number. Value i of a block sits at bit i*bits. */
static int values_per_block(int bits) { return bits == 3 ? 32 : 32 / bits; }
static int words_per_block(int bits) { return bits == 3 ? 3 : 1; }

/* Sets value `index` of a packed sequence; words of consecutive blocks are `stride` apart. */
static void naive_put(uint32_t* words, int64_t stride, int64_t index, int bits, uint32_t value) {
  int64_t block = index / values_per_block(bits);
  int first_bit = (int)(index % values_per_block(bits)) * bits;
  for (int b = 0; b < bits; ++b) {
    int bit = first_bit + b;
    int64_t word = block * words_per_block(bits) + bit / 32;
    uint32_t flag = 1u << (bit % 32);
    if ((value >> b) & 1u)
      words[word * stride] |= flag;
    else
      words[word * stride] &= ~flag;
  }
}

static uint32_t naive_get(const uint32_t* words, int64_t stride, int64_t index, int bits) {
  int64_t block = index / values_per_block(bits);
  int first_bit = (int)(index % values_per_block(bits)) * bits;
  uint32_t value = 0;
  for (int b = 0; b < bits; ++b) {
    int bit = first_bit + b;
    int64_t word = block * words_per_block(bits) + bit / 32;
    value |= ((words[word * stride] >> (bit % 32)) & 1u) << b;
  }
  return value;
}

/* q[k][n] -> qweight[k*bits/32][n] (packed along K) */
static void pack_qweight(const uint8_t* q, uint32_t* qweight, int64_t k, int64_t n, int bits) {
  memset(qweight, 0, sizeof(uint32_t) * (size_t)(k * bits / 32 * n));
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c) naive_put(qweight + c, n, r, bits, q[r * n + c]);
}

/* z[groups][n] -> qzeros[groups][n*bits/32] (packed along N) */
static void pack_qzeros(const uint8_t* z, uint32_t* qzeros, int64_t groups, int64_t n, int bits) {
  int64_t row_words = n * bits / 32;
  memset(qzeros, 0, sizeof(uint32_t) * (size_t)(groups * row_words));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t c = 0; c < n; ++c) naive_put(qzeros + g * row_words, 1, c, bits, z[g * n + c]);
}

/* ---- one GEMM / dequantize problem with its double reference ---- */

enum { ORDER_PLAIN, ORDER_GIDX_ONLY, ORDER_PERM_ONLY, ORDER_ACT_ORDER, ORDER_COUNT };
static const char* kOrderNames[] = {"plain", "g_idx", "perm", "act-order"};

typedef struct {
  int bits, order, zero_offset, bad_indices;
  int64_t m, k, n, group_size;
  gptq_dtype a_dtype, scale_dtype;
} case_spec;

typedef struct {
  case_spec spec;
  int64_t groups, lda, ldc;
  uint8_t *q, *z;             /* unpacked, in kernel row order */
  uint32_t *qweight, *qzeros; /* packed */
  uint16_t *scales, *a;
  int32_t *a_perm, *group_index;
  int64_t expected_index_errors;
  double* w;                  /* [k][n] dequantized, kernel row order */
} problem_data;

static int64_t clamp64(int64_t v, int64_t size) { return v < 0 ? 0 : (v >= size ? size - 1 : v); }

static int64_t ref_group(const problem_data* d, int64_t r) {
  return d->group_index ? clamp64(d->group_index[r], d->groups) : r / d->spec.group_size;
}

static int64_t ref_a_col(const problem_data* d, int64_t r) {
  return d->a_perm ? clamp64(d->a_perm[r], d->spec.k) : r;
}

static void build_problem(problem_data* d, const case_spec* spec) {
  int64_t k = spec->k, n = spec->n, m = spec->m;
  memset(d, 0, sizeof *d);
  d->spec = *spec;
  d->groups = k / spec->group_size;
  d->lda = k + 3; /* padded strides catch stride mix-ups */
  d->ldc = n + 5;
  d->q = malloc((size_t)(k * n));
  d->z = malloc((size_t)(d->groups * n));
  d->qweight = malloc(sizeof(uint32_t) * (size_t)(k * spec->bits / 32 * n));
  d->qzeros = malloc(sizeof(uint32_t) * (size_t)(d->groups * n * spec->bits / 32 + 1));
  d->scales = malloc(sizeof(uint16_t) * (size_t)(d->groups * n));
  d->a = malloc(sizeof(uint16_t) * (size_t)(m * d->lda + 1));
  d->w = malloc(sizeof(double) * (size_t)(k * n));
  for (int64_t i = 0; i < k * n; ++i) d->q[i] = (uint8_t)(rand_u32() & ((1u << spec->bits) - 1));
  for (int64_t i = 0; i < d->groups * n; ++i) {
    d->z[i] = (uint8_t)(rand_u32() & ((1u << spec->bits) - 1));
    double s = rand_uniform(0.002, 0.05) * ((rand_u32() & 7) ? 1 : -1);
    d->scales[i] = ref_encode(s, format_of(spec->scale_dtype));
  }
  for (int64_t i = 0; i < m * d->lda; ++i) d->a[i] = ref_encode(rand_uniform(-2, 2), format_of(spec->a_dtype));
  pack_qweight(d->q, d->qweight, k, n, spec->bits);
  pack_qzeros(d->z, d->qzeros, d->groups, n, spec->bits);

  if (spec->order == ORDER_PERM_ONLY || spec->order == ORDER_ACT_ORDER) {
    d->a_perm = malloc(sizeof(int32_t) * (size_t)k);
    for (int64_t r = 0; r < k; ++r) d->a_perm[r] = (int32_t)r;
    shuffle(d->a_perm, k);
  }
  if (spec->order == ORDER_GIDX_ONLY || spec->order == ORDER_ACT_ORDER) {
    d->group_index = malloc(sizeof(int32_t) * (size_t)k);
    for (int64_t r = 0; r < k; ++r) d->group_index[r] = (int32_t)(r / spec->group_size);
    shuffle(d->group_index, k);
  }
  if (spec->bad_indices) {
    if (d->a_perm) {
      d->a_perm[1] = -3;
      d->a_perm[k - 2] = (int32_t)(k + 5);
      d->expected_index_errors += 2;
    }
    if (d->group_index) {
      d->group_index[0] = -1;
      d->group_index[3] = (int32_t)d->groups;
      d->group_index[k - 1] = INT32_MAX;
      d->expected_index_errors += 3;
    }
  }
  for (int64_t r = 0; r < k; ++r) {
    int64_t g = ref_group(d, r);
    for (int64_t c = 0; c < n; ++c) {
      double s = ref_decode(d->scales[g * n + c], format_of(spec->scale_dtype));
      double zero = d->z[g * n + c] + spec->zero_offset;
      d->w[r * n + c] = s * (d->q[r * n + c] - zero);
    }
  }
}

static void free_problem(problem_data* d) {
  free(d->q); free(d->z); free(d->qweight); free(d->qzeros); free(d->scales); free(d->a);
  free(d->a_perm); free(d->group_index); free(d->w);
}

static gptq_problem make_gptq_problem(const problem_data* d, void* c, int32_t* errors) {
  gptq_problem p;
  memset(&p, 0, sizeof p);
  p.a = d->a;
  p.qweight = (const int32_t*)d->qweight;
  p.qzeros = (const int32_t*)d->qzeros;
  p.scales = d->scales;
  p.a_perm = d->a_perm;
  p.group_index = d->group_index;
  p.c = c;
  p.index_errors = errors;
  p.m = d->spec.m;
  p.n = d->spec.n;
  p.k = d->spec.k;
  p.lda = d->lda;
  p.ldc = d->ldc;
  p.groups = d->groups;
  p.group_size = d->spec.group_size;
  p.bits = d->spec.bits;
  p.zero_offset = d->spec.zero_offset;
  p.a_dtype = d->spec.a_dtype;
  p.scale_dtype = d->spec.scale_dtype;
  return p;
}

#define SENTINEL 0xBEEFu

/* Split points: granule-aligned cuts that leave one odd-sized middle piece. */
static int column_cuts(int64_t n, int bits, int64_t* cuts) {
  int64_t granule = bits == 3 ? 32 : 32 / bits;
  int count = 0;
  cuts[count++] = 0;
  if (n >= 2 * granule) cuts[count++] = granule;
  if (n >= 4 * granule) cuts[count++] = (n / granule - 1) * granule;
  cuts[count++] = n;
  return count;
}

static void describe(char* out, size_t size, const char* what, const case_spec* s) {
  snprintf(out, size, "%s bits=%d m=%lld k=%lld n=%lld gs=%lld %s a=%s s=%s v%d%s", what, s->bits,
           (long long)s->m, (long long)s->k, (long long)s->n, (long long)s->group_size,
           kOrderNames[s->order], s->a_dtype == GPTQ_BF16 ? "bf16" : "f16",
           s->scale_dtype == GPTQ_BF16 ? "bf16" : "f16", s->zero_offset ? 1 : 2,
           s->bad_indices ? " bad-indices" : "");
}

static void test_gemm_case(const case_spec* spec) {
  problem_data d;
  char name[256];
  int64_t m = spec->m, n = spec->n, k = spec->k;
  build_problem(&d, spec);
  size_t c_elems = (size_t)(m * d.ldc + 1);
  uint16_t* c_full = malloc(sizeof(uint16_t) * c_elems);
  uint16_t* c_split = malloc(sizeof(uint16_t) * c_elems);
  for (size_t i = 0; i < c_elems; ++i) c_full[i] = c_split[i] = SENTINEL;
  int32_t errors = 0;
  gptq_problem p = make_gptq_problem(&d, c_full, &errors);
  size_t scratch_floats = gptq_cpu_gemm_scratch_floats(&p);
  float* scratch = malloc(sizeof(float) * (scratch_floats ? scratch_floats : 1));
  int ok = 1;

  ok &= gptq_check_problem(&p) == GPTQ_OK;
  ok &= scratch_floats >= (size_t)(m * k);
  ok &= gptq_cpu_gemm(&p, 0, n, scratch) == GPTQ_OK;
  ok &= errors == (m > 0 ? d.expected_index_errors : 0);

  /* Same columns in pieces: bitwise identical, index errors counted once per call. */
  int64_t cuts[4];
  int pieces = column_cuts(n, spec->bits, cuts) - 1;
  gptq_problem split = make_gptq_problem(&d, c_split, NULL);
  for (int i = 0; i < pieces; ++i) ok &= gptq_cpu_gemm(&split, cuts[i], cuts[i + 1], scratch) == GPTQ_OK;
  ok &= memcmp(c_full, c_split, sizeof(uint16_t) * c_elems) == 0;

  const float_format* f = format_of(spec->a_dtype);
  double relative = ldexp(1.0, -f->mantissa_bits - 1);     /* half an ulp of the output */
  double tiny = ldexp(1.0, f->min_exponent - f->mantissa_bits - 1);
  for (int64_t mi = 0; mi < m; ++mi) {
    for (int64_t c = 0; c < d.ldc; ++c) {
      uint16_t got = c_full[mi * d.ldc + c];
      if (c >= n) {
        ok &= got == SENTINEL; /* padding between rows untouched */
        continue;
      }
      double ref = 0, abs_sum = 0;
      for (int64_t r = 0; r < k; ++r) {
        double term = ref_decode(d.a[mi * d.lda + ref_a_col(&d, r)], f) * d.w[r * n + c];
        ref += term;
        abs_sum += fabs(term);
      }
      /* fp32 products and a sequential fp32 sum, then one rounding to the output type. */
      double accumulate = (double)(k + 2) * ldexp(1.0, -24) * abs_sum;
      double allowed = accumulate + relative * (fabs(ref) + accumulate) + tiny;
      double err = fabs(ref_decode(got, f) - ref);
      if (!(err <= allowed)) ok = 0;
    }
  }
  ok &= c_full[m * d.ldc] == SENTINEL;
  describe(name, sizeof name, "gemm", spec);
  record(ok, name);
  free(scratch); free(c_full); free(c_split);
  free_problem(&d);
}

static void test_dequantize_case(const case_spec* spec) {
  problem_data d;
  char name[256];
  int64_t n = spec->n, k = spec->k;
  build_problem(&d, spec);
  size_t out_elems = (size_t)(k * d.ldc);
  uint16_t* out = malloc(sizeof(uint16_t) * out_elems);
  uint16_t* expect = malloc(sizeof(uint16_t) * out_elems);
  for (size_t i = 0; i < out_elems; ++i) out[i] = expect[i] = SENTINEL;
  int32_t errors = 0;
  gptq_problem p = make_gptq_problem(&d, out, &errors);
  p.a = NULL; /* unused by dequantize, as are m and lda */
  p.m = -1;
  p.lda = 0;
  int64_t cuts[4];
  int pieces = column_cuts(n, spec->bits, cuts) - 1;
  int ok = 1;
  for (int i = 0; i < pieces; ++i) ok &= gptq_cpu_dequantize(&p, cuts[i], cuts[i + 1]) == GPTQ_OK;
  ok &= errors == pieces * d.expected_index_errors;
  /* w in fp32 is exact here (fp16/bf16 scale times a small integer), so one rounding
   * of the double value must match bit for bit. Rows written in ascending r, as the
   * kernel does, so clamped duplicates resolve the same way. */
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c)
      expect[ref_a_col(&d, r) * d.ldc + c] = ref_encode(d.w[r * n + c], format_of(spec->a_dtype));
  ok &= memcmp(out, expect, sizeof(uint16_t) * out_elems) == 0;
  describe(name, sizeof name, "dequantize", spec);
  record(ok, name);
  free(out); free(expect);
  free_problem(&d);
}

/* ---- row permutation ---- */

static void test_permute_case(int bits, int64_t k, int64_t n) {
  char name[128];
  int64_t word_rows = k * bits / 32;
  uint8_t* q = calloc((size_t)(k * n), 1); /* calloc: keeps -Wmaybe-uninitialized quiet */
  uint32_t* src = malloc(sizeof(uint32_t) * (size_t)(word_rows * n));
  uint32_t* dst = malloc(sizeof(uint32_t) * (size_t)(word_rows * n));
  uint32_t* before = malloc(sizeof(uint32_t) * (size_t)(word_rows * n));
  int32_t* perm = malloc(sizeof(int32_t) * (size_t)k);
  int ok = 1;
  for (int64_t i = 0; i < k * n; ++i) q[i] = (uint8_t)(rand_u32() & ((1u << bits) - 1));
  pack_qweight(q, src, k, n, bits);
  for (int64_t r = 0; r < k; ++r) perm[r] = (int32_t)r;
  shuffle(perm, k);
  for (int64_t i = 0; i < word_rows * n; ++i) dst[i] = rand_u32(); /* must be overwritten */

  /* A middle column range only: the columns outside stay as they were. */
  int64_t mid_begin = n / 3, mid_end = n / 3 + (n > 4 ? 3 : 1);
  memcpy(before, dst, sizeof(uint32_t) * (size_t)(word_rows * n));
  ok &= gptq_cpu_permute_rows((const int32_t*)src, (int32_t*)dst, perm, k, n, bits, mid_begin, mid_end) == GPTQ_OK;
  for (int64_t w = 0; w < word_rows; ++w)
    for (int64_t c = 0; c < n; ++c)
      if (c < mid_begin || c >= mid_end) ok &= dst[w * n + c] == before[w * n + c];
  /* The rest in two more pieces, then every value checked. */
  ok &= gptq_cpu_permute_rows((const int32_t*)src, (int32_t*)dst, perm, k, n, bits, 0, mid_begin) == GPTQ_OK;
  ok &= gptq_cpu_permute_rows((const int32_t*)src, (int32_t*)dst, perm, k, n, bits, mid_end, n) == GPTQ_OK;
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c) ok &= naive_get(dst + c, n, r, bits) == q[perm[r] * n + c];
  /* NULL perm copies. */
  ok &= gptq_cpu_permute_rows((const int32_t*)src, (int32_t*)dst, NULL, k, n, bits, 0, n) == GPTQ_OK;
  ok &= memcmp(src, dst, sizeof(uint32_t) * (size_t)(word_rows * n)) == 0;
  snprintf(name, sizeof name, "permute_rows bits=%d k=%lld n=%lld", bits, (long long)k, (long long)n);
  record(ok, name);
  free(q); free(src); free(dst); free(before); free(perm);
}

/* The vLLM act-order pipeline end to end: checkpoint with arbitrary g_idx; perm =
 * argsort(g_idx); qweight rows shuffled by permute_rows; the GEMM with a_perm = perm and
 * group_index = g_idx[perm] must equal a @ W of the unshuffled checkpoint. */
static const int32_t* g_sort_keys;
static int compare_by_key(const void* x, const void* y) {
  int32_t a = *(const int32_t*)x, b = *(const int32_t*)y;
  if (g_sort_keys[a] != g_sort_keys[b]) return g_sort_keys[a] < g_sort_keys[b] ? -1 : 1;
  return a < b ? -1 : (a > b);
}

static void test_act_order_pipeline(int bits) {
  case_spec spec = {bits, ORDER_GIDX_ONLY, 1, 0, 5, 128, bits == 3 ? 64 : 96, 32, GPTQ_F16, GPTQ_F16};
  problem_data d;
  char name[128];
  int64_t m = spec.m, k = spec.k, n = spec.n;
  build_problem(&d, &spec); /* d.group_index is the checkpoint g_idx, rows unshuffled */
  int32_t* perm = malloc(sizeof(int32_t) * (size_t)k);
  int32_t* kernel_groups = malloc(sizeof(int32_t) * (size_t)k);
  uint32_t* shuffled = malloc(sizeof(uint32_t) * (size_t)(k * bits / 32 * n));
  uint16_t* c = malloc(sizeof(uint16_t) * (size_t)(m * d.ldc));
  int ok = 1;
  for (int64_t r = 0; r < k; ++r) perm[r] = (int32_t)r;
  g_sort_keys = d.group_index;
  qsort(perm, (size_t)k, sizeof(int32_t), compare_by_key);
  for (int64_t r = 0; r < k; ++r) kernel_groups[r] = d.group_index[perm[r]];
  ok &= gptq_cpu_permute_rows((const int32_t*)d.qweight, (int32_t*)shuffled, perm, k, n, bits, 0, n) == GPTQ_OK;

  gptq_problem p = make_gptq_problem(&d, c, NULL);
  p.qweight = (const int32_t*)shuffled;
  p.a_perm = perm;
  p.group_index = kernel_groups;
  float* scratch = malloc(sizeof(float) * gptq_cpu_gemm_scratch_floats(&p));
  ok &= gptq_cpu_gemm(&p, 0, n, scratch) == GPTQ_OK;
  for (int64_t mi = 0; mi < m; ++mi) {
    for (int64_t col = 0; col < n; ++col) {
      double ref = 0, abs_sum = 0;
      for (int64_t r = 0; r < k; ++r) { /* original order: d.w rows are checkpoint rows */
        double term = ref_decode(d.a[mi * d.lda + r], &kF16) * d.w[r * n + col];
        ref += term;
        abs_sum += fabs(term);
      }
      double accumulate = (double)(k + 2) * ldexp(1.0, -24) * abs_sum;
      double allowed = accumulate + ldexp(1.0, -11) * (fabs(ref) + accumulate) + ldexp(1.0, -25);
      ok &= fabs(ref_decode(c[mi * d.ldc + col], &kF16) - ref) <= allowed;
    }
  }
  snprintf(name, sizeof name, "act-order pipeline (argsort, permute_rows, gemm) bits=%d", bits);
  record(ok, name);
  free(perm); free(kernel_groups); free(shuffled); free(c); free(scratch);
  free_problem(&d);
}

/* ---- argument checks ---- */

static void test_checks(void) {
  int32_t dummy_index[64] = {0};
  gptq_problem base;
  memset(&base, 0, sizeof base);
  base.m = 3; base.n = 264; base.k = 256; base.lda = 256; base.ldc = 264;
  base.groups = 2; base.group_size = 128; base.bits = 4; base.zero_offset = 1;
  base.a_dtype = GPTQ_F16; base.scale_dtype = GPTQ_F16;
  gptq_problem p;
  int ok = 1;
#define EXPECT(mutation, code) \
  do { p = base; mutation; ok &= gptq_check_problem(&p) == (code); \
       if (gptq_check_problem(&p) != (code)) printf("  check: %s -> %d\n", #mutation, (int)gptq_check_problem(&p)); } while (0)
  EXPECT((void)0, GPTQ_OK);
  EXPECT(p.bits = 5, GPTQ_ERR_BITS);
  EXPECT(p.bits = 1, GPTQ_ERR_BITS);
  EXPECT(p.bits = 16, GPTQ_ERR_BITS);
  EXPECT((p.bits = 8, p.n = 260), GPTQ_OK);
  EXPECT((p.bits = 8, p.n = 262), GPTQ_ERR_SHAPE);
  EXPECT((p.bits = 2, p.n = 272, p.ldc = 272), GPTQ_OK);
  EXPECT((p.bits = 2, p.n = 264), GPTQ_ERR_SHAPE);
  EXPECT((p.bits = 3, p.n = 288, p.ldc = 288), GPTQ_OK);
  EXPECT((p.bits = 3, p.n = 264), GPTQ_ERR_SHAPE);
  EXPECT(p.n = 260, GPTQ_ERR_SHAPE);
  EXPECT(p.k = 240, GPTQ_ERR_SHAPE);
  EXPECT((p.k = 0, p.lda = 0), GPTQ_ERR_SHAPE);
  EXPECT(p.m = -1, GPTQ_ERR_SHAPE);
  EXPECT(p.m = 0, GPTQ_OK);
  EXPECT((p.m = 0, p.lda = 0), GPTQ_OK); /* a unread */
  EXPECT(p.lda = 255, GPTQ_ERR_SHAPE);
  EXPECT(p.ldc = 263, GPTQ_ERR_SHAPE);
  EXPECT(p.groups = 0, GPTQ_ERR_SHAPE);
  EXPECT(p.group_size = 0, GPTQ_ERR_GROUP_SIZE);
  EXPECT(p.group_size = -128, GPTQ_ERR_GROUP_SIZE);
  EXPECT(p.group_size = 64, GPTQ_ERR_GROUP_SIZE);
  EXPECT((p.group_size = 64, p.groups = 4), GPTQ_OK);
  EXPECT((p.group_size = 96, p.groups = 2), GPTQ_ERR_GROUP_SIZE); /* 2*96 != 256 */
  EXPECT((p.group_size = 0, p.group_index = dummy_index), GPTQ_OK); /* g_idx overrides */
  EXPECT((p.groups = 7, p.group_index = dummy_index), GPTQ_OK);
  EXPECT(p.a_dtype = GPTQ_BF16, GPTQ_OK);
  EXPECT(p.scale_dtype = GPTQ_BF16, GPTQ_OK);
  EXPECT(p.a_dtype = GPTQ_F32, GPTQ_ERR_DTYPE);
  EXPECT(p.scale_dtype = GPTQ_F32, GPTQ_ERR_DTYPE);
  EXPECT(p.a_dtype = (gptq_dtype)7, GPTQ_ERR_DTYPE);
#undef EXPECT
  ok &= gptq_check_problem(NULL) != GPTQ_OK;
  record(ok, "gptq_check_problem status codes");

  /* Column ranges of the kernels (checked before any data is touched). */
  ok = 1;
  p = base;
  ok &= gptq_cpu_gemm(&p, 4, 264, NULL) == GPTQ_ERR_SHAPE;   /* not a multiple of 8 */
  ok &= gptq_cpu_gemm(&p, 0, 268, NULL) == GPTQ_ERR_SHAPE;   /* past n */
  ok &= gptq_cpu_gemm(&p, 16, 8, NULL) == GPTQ_ERR_SHAPE;    /* reversed */
  ok &= gptq_cpu_gemm(&p, -8, 8, NULL) == GPTQ_ERR_SHAPE;
  ok &= gptq_cpu_gemm(&p, 8, 8, NULL) == GPTQ_OK;            /* empty: nothing read */
  ok &= gptq_cpu_dequantize(&p, 0, 12) == GPTQ_ERR_SHAPE;   /* 12 % 8 */
  p.bits = 3; p.n = 288; p.ldc = 288;
  ok &= gptq_cpu_gemm(&p, 16, 288, NULL) == GPTQ_ERR_SHAPE;  /* 3-bit: multiples of 32 */
  p.m = 0;
  ok &= gptq_cpu_gemm(&p, 0, 288, NULL) == GPTQ_OK;          /* m == 0: nothing read */
  p.bits = 6;
  ok &= gptq_cpu_gemm(&p, 0, 288, NULL) == GPTQ_ERR_BITS;
  ok &= gptq_cpu_dequantize(&p, 0, 288) == GPTQ_ERR_BITS;
  ok &= gptq_cpu_gemm_scratch_floats(&p) == 0;
  ok &= gptq_cpu_permute_rows(NULL, NULL, NULL, 256, 264, 6, 0, 264) == GPTQ_ERR_BITS;
  ok &= gptq_cpu_permute_rows(NULL, NULL, NULL, 250, 264, 4, 0, 264) == GPTQ_ERR_SHAPE;
  ok &= gptq_cpu_permute_rows(NULL, NULL, NULL, 256, 264, 4, 0, 265) == GPTQ_ERR_SHAPE;
  ok &= gptq_cpu_permute_rows(NULL, NULL, NULL, 256, 264, 4, 5, 5) == GPTQ_OK;
  record(ok, "column-range and argument errors of the kernels");
}

int main(void) {
  static const int kBits[] = {2, 3, 4, 8};
  static const int64_t kM[] = {0, 1, 3, 17};
  /* Smallest ragged n per width (not a multiple of the 64-column strip), and a tiny one. */
  static const int64_t kRaggedN[] = {272, 288, 264, 264};
  static const int64_t kTinyN[] = {16, 32, 8, 4};
  static const gptq_dtype kDtypes[][2] = {
      {GPTQ_F16, GPTQ_F16}, {GPTQ_BF16, GPTQ_BF16}, {GPTQ_F16, GPTQ_BF16}, {GPTQ_BF16, GPTQ_F16}};
  int variant = 0;

  test_conversions();
  test_checks();

  for (int b = 0; b < 4; ++b) {
    for (int mi = 0; mi < 4; ++mi) {
      for (int order = 0; order < ORDER_COUNT; ++order, ++variant) {
        case_spec spec;
        spec.bits = kBits[b];
        spec.order = order;
        spec.m = kM[mi];
        spec.n = (variant % 3 == 2) ? kTinyN[b] : kRaggedN[b];
        /* 160 rows = 2.5 tiles of 64; group size cycles through 32, 160 (one group), 32 */
        spec.k = (variant % 2) ? 160 : 96;
        spec.group_size = (variant % 4 == 1) ? spec.k : 32;
        spec.zero_offset = (variant / 2) % 2;
        spec.a_dtype = kDtypes[variant % 4][0];
        spec.scale_dtype = kDtypes[variant % 4][1];
        spec.bad_indices = 0;
        test_gemm_case(&spec);
        if (mi == 0) test_dequantize_case(&spec);
        if (order != ORDER_PLAIN && mi >= 2) { /* clamped and counted */
          spec.bad_indices = 1;
          test_gemm_case(&spec);
          test_dequantize_case(&spec);
        }
      }
    }
    /* A bigger one: several strips and tiles, long groups, v2 zeros. */
    {
      case_spec big = {kBits[b], ORDER_ACT_ORDER, 0, 0, 9, 512, kRaggedN[b] * 2, 128, GPTQ_BF16, GPTQ_BF16};
      test_gemm_case(&big);
      test_dequantize_case(&big);
    }
    test_permute_case(kBits[b], 32, kTinyN[b] + 3);
    test_permute_case(kBits[b], 160, kRaggedN[b]);
    test_act_order_pipeline(kBits[b]);
  }

  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

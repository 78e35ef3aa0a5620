/* Portable fp16 / bf16 <-> fp32 conversions on raw uint16 bit patterns.
 *
 * Plain C99 bit manipulation (no _Float16, no intrinsics), so results do not depend on the
 * compiler or the target: subnormals, infinities and NaNs are handled, and the narrowing
 * directions round to nearest, ties to even. NaNs stay NaN (quieted, sign kept).
 * Also compiles as C++ (for the torch glue or tests). */
#ifndef GPTQ_MI100_FP16_CONVERT_H
#define GPTQ_MI100_FP16_CONVERT_H

#include <stdint.h>
#include <string.h>

static inline float gptq_bits_to_f32(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof value); /* memcpy: no strict-aliasing punning */
  return value;
}

static inline uint32_t gptq_f32_to_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

static inline float gptq_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) /* inf / NaN: the payload moves to the top of the fp32 mantissa */
    return gptq_bits_to_f32(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return gptq_bits_to_f32(sign);
    /* Subnormal: shift the leading one into the implicit position; every fp16 subnormal
     * is a normal fp32 number. */
    int32_t unbiased = -14;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      unbiased--;
    }
    mantissa &= 0x3ffu;
    return gptq_bits_to_f32(sign | ((uint32_t)(unbiased + 127) << 23) | (mantissa << 13));
  }
  return gptq_bits_to_f32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

static inline uint16_t gptq_f32_to_f16(float value) {
  uint32_t bits = gptq_f32_to_bits(value);
  uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {
    if (magnitude == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu)); /* quiet NaN */
  }
  /* 65520 = 0x477ff000 is halfway between 65504 (max fp16, odd mantissa) and 2^16:
   * ties-to-even and everything above round to infinity. */
  if (magnitude >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (magnitude >= 0x38800000u) { /* result is a normal fp16 (>= 2^-14 before rounding) */
    /* Adding 0xfff + lsb rounds to nearest even; a carry out of the mantissa correctly
     * bumps the exponent. */
    uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return (uint16_t)(sign | ((rounded >> 13) - (112u << 10)));
  }
  if (magnitude < 0x33000000u) return sign; /* below 2^-25: rounds to zero */
  {
    /* Subnormal result: value * 2^24 rounded to an integer. Rounding 1023.5 up gives
     * 0x400, which is exactly the smallest normal fp16. */
    uint32_t exponent = magnitude >> 23;                      /* 102 ... 112 */
    uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;  /* with implicit one */
    uint32_t shift = 126u - exponent;                          /* 14 ... 24 */
    uint32_t quotient = mantissa >> shift;
    uint32_t remainder = mantissa & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (quotient & 1u))) quotient++;
    return (uint16_t)(sign | quotient);
  }
}

static inline float gptq_bf16_to_f32(uint16_t h) { return gptq_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t gptq_f32_to_bf16(float value) {
  uint32_t bits = gptq_f32_to_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it NaN even if the payload is low */
    return (uint16_t)((bits >> 16) | 0x0040u);
  /* Ties to even on the dropped 16 bits; overflow carries into infinity, subnormals
   * round the same way because the encoding is linear there. */
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

#endif /* GPTQ_MI100_FP16_CONVERT_H */

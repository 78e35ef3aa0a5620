/* Small device helpers shared by the GPU kernel files (compat.h holds vendor islands). */
#ifndef GPTQ_MI100_GPU_DEVICE_UTIL_CUH
#define GPTQ_MI100_GPU_DEVICE_UTIL_CUH

#include "compat.h"

__device__ __forceinline__ float load_scale(const uint16_t* scales, int64_t idx, int bf16) {
  const uint16_t b = scales[idx];
  return bf16 ? gptq_bf16_bits_to_float(b) : gptq_f16_bits_to_float(b);
}

/* Clamp an index into [0, hi) and count it once when it was out of range. */
__device__ __forceinline__ int64_t clamp_index(int64_t v, int64_t hi, int* errors, bool count) {
  if (v >= 0 && v < hi) return v;
  if (count && errors) atomicAdd(errors, 1);
  return v < 0 ? 0 : hi - 1;
}

#endif /* GPTQ_MI100_GPU_DEVICE_UTIL_CUH */

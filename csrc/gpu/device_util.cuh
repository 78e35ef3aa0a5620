/* Small device helpers shared by the GPU kernel files (compat.h holds vendor islands). */
#ifndef GPTQ_MI100_GPU_DEVICE_UTIL_CUH
#define GPTQ_MI100_GPU_DEVICE_UTIL_CUH

#include <type_traits>

#include "compat.h"
#include "../gptq_kernels.h"

/* A scale's 16 bits (fp16, or bf16 when bf16 != 0) as fp32. */
__device__ __forceinline__ float scale_from_bits(uint32_t bits16, int bf16) {
  return bf16 ? gptq_bf16_bits_to_float((uint16_t)bits16) : gptq_f16_bits_to_float((uint16_t)bits16);
}
__device__ __forceinline__ float load_scale(const uint16_t* scales, int64_t idx, int bf16) {
  return scale_from_bits(scales[idx], bf16);
}

/* Clamp an index into [0, hi) and count it once when it was out of range. */
__device__ __forceinline__ int64_t clamp_index(int64_t v, int64_t hi, int* errors, bool count) {
  if (v >= 0 && v < hi) return v;
  if (count && errors) atomicAdd(errors, 1);
  return v < 0 ? 0 : hi - 1;
}

/* ---- host side ---------------------------------------------------------------------- */

/* Status of the launches just made (a missing code object for this GPU reads as
 * GPTQ_ERR_NO_KERNEL). */
static inline gptq_status gptq_launch_status(void) {
  const gptq_error_t e = gptq_get_last_error();
  if (e == GPTQ_SUCCESS) return GPTQ_OK;
  return GPTQ_ERR_IS_NO_KERNEL(e) ? GPTQ_ERR_NO_KERNEL : GPTQ_ERR_LAUNCH;
}

/* One switch for every bits x activation-dtype launch: calls f(BITS, ACT) with
 * std::integral_constant arguments for the runtime bits (2, 3, 4; anything else 8, the
 * callers have validated it) and act (0 fp16, 1 bf16). */
template <typename F>
static inline void gptq_dispatch_bits_act(int bits, int act, F&& f) {
  auto with_act = [&](auto b) {
    if (act) f(b, std::integral_constant<int, 1>{});
    else f(b, std::integral_constant<int, 0>{});
  };
  switch (bits) {
    case 2: with_act(std::integral_constant<int, 2>{}); break;
    case 3: with_act(std::integral_constant<int, 3>{}); break;
    case 4: with_act(std::integral_constant<int, 4>{}); break;
    default: with_act(std::integral_constant<int, 8>{}); break;
  }
}

#endif /* GPTQ_MI100_GPU_DEVICE_UTIL_CUH */

// Tensor arguments -> gptq_problem, with one clear error per bad argument. Nothing here
// reads device memory except the load-time checks marked so.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>

#include "../gptq_kernels.h"

namespace gptq_mi100 {

void check_bits(const char* op, int64_t bits);
// K from qweight's rows and bits (validates qweight's dtype, rank and contiguity; K = 0,
// which no GPTQ layer has, is refused). name: the argument as the op's schema spells it.
int64_t checked_k(const char* op, const at::Tensor& qweight, int64_t bits,
                  const char* name = "qweight");
gptq_dtype to_gptq_dtype(at::ScalarType t);

// The argument names that messages use: the package's schemas, or vLLM's gptq_gemm.
struct ArgNames {
  const char* a;
  const char* qweight;
  const char* qzeros;
  const char* scales;
  const char* a_perm;
  const char* group_index;
};
extern const ArgNames kGemmArgNames;  // a, qweight, qzeros, scales, a_perm, group_index
extern const ArgNames kVllmArgNames;  // a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx

// op: name used in messages ("gemm", "gptq_gemm", ...). group_size < 0 means "derive
// K / G" (vLLM semantics). p.c / p.ldc are left for the caller to set.
gptq_problem make_problem(const char* op, const at::Tensor& a, const at::Tensor& qweight,
                          const at::Tensor& qzeros, const at::Tensor& scales,
                          const c10::optional<at::Tensor>& a_perm,
                          const c10::optional<at::Tensor>& group_index, int64_t bits,
                          int64_t group_size, bool v2_zeros,
                          const ArgNames& names = kGemmArgNames);
void check_out(const char* op, const at::Tensor& out, const at::Tensor& a, int64_t n);

// Every tensor argument on one device (null or undefined ones skipped); ops check this
// before making a device guard, which would refuse a CPU tensor naming no argument.
struct NamedTensor {
  const char* name;
  const at::Tensor* tensor;
};
void check_one_device(const char* op, std::initializer_list<NamedTensor> tensors);
inline const at::Tensor* optional_tensor(const c10::optional<at::Tensor>& t) {
  return t.has_value() ? &*t : nullptr;
}
// A launcher's status -> exception (no-op for GPTQ_OK).
void check_status(const char* op, gptq_status status, const gptq_problem* p);

// Load-time validation of a permutation / g_idx (reads values back to the host).
void check_permutation(const char* op, const at::Tensor& perm, int64_t k);
void check_g_idx(const char* op, const at::Tensor& g_idx, int64_t k, int64_t groups);

}  // namespace gptq_mi100

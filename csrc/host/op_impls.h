// The op implementations, written once over a backend B and instantiated by each
// backend's TORCH_LIBRARY_IMPL block (csrc/cpu/ops_cpu.cpp, csrc/gpu/ops_gpu.cpp).
//
// B provides (static members):
//   kBackend                             BackendKind
//   kLargeMInFp32                        dequant_matmul multiplies in fp32 (CPU) or not
//   Guard(device)                        device guard type (no-op on CPU)
//   run(choice, p, layout, like)         run the chosen native kernel on p (p.c set)
//   dequantize(p, layout, dtype, like)   W [K, N] in checkpoint K order
//   permute_rows(qweight, perm, bits)    new qweight with kernel rows perm[r]
//   add_index_errors(count)              add a 0-dim int64 tensor to the device's clamped-
//                                        index counter (GPUs: on the stream, no host sync)
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "errors.h"
#include "introspection.h"
#include "kernel_registry.h"
#include "prepare.h"
#include "validate.h"

namespace gptq_mi100 {

template <class B>
struct OpImpls {
  using Guard = typename B::Guard;

  // A per-call row index clamped into [0, k) and counted when out of range, as the native
  // kernels do (int64, for index_select / sort).
  static at::Tensor clamp_rows(const at::Tensor& index, int64_t k) {
    const at::Tensor wide = index.to(at::kLong);
    at::Tensor clamped = wide.clamp(0, k - 1);
    B::add_index_errors(wide.ne(clamped).sum());
    return clamped;
  }

  // Validate, choose the kernel, run. out: undefined to allocate, else written in place.
  static at::Tensor run_gemm(const char* op, const at::Tensor& a, const at::Tensor& qweight,
                             const at::Tensor& qzeros, const at::Tensor& scales,
                             const c10::optional<at::Tensor>& a_perm,
                             const c10::optional<at::Tensor>& group_index, int64_t bits,
                             int64_t group_size, bool v2_zeros, int64_t layout,
                             const c10::optional<c10::string_view>& kernel, at::Tensor out,
                             const ArgNames& names = kGemmArgNames) {
    check_one_device(op, {{names.a, &a}, {names.qweight, &qweight}, {names.qzeros, &qzeros},
                          {names.scales, &scales}, {names.a_perm, optional_tensor(a_perm)},
                          {names.group_index, optional_tensor(group_index)}, {"out", &out}});
    Guard guard(a.device());
    check_layout(op, B::kBackend, layout, bits);
    gptq_problem p = make_problem(op, a, qweight, qzeros, scales, a_perm, group_index, bits,
                                  group_size, v2_zeros, names);
    const KernelChoice choice = choose_kernel(op, kernel, B::kBackend, layout, p);
    const KernelEntry& chosen = *choice.entry;
    if (out.defined())
      check_out(op, out, a, p.n);
    else
      out = at::empty({p.m, p.n}, a.options());
    if (p.m == 0) return out;
    p.c = out.data_ptr();
    p.ldc = out.size(0) > 1 ? out.stride(0) : p.n;
    count_kernel(chosen.id);
    if (fault_kernel() == chosen.id) p.zero_offset += 1;  // self-check test hook (_inject_fault)
    if (chosen.id != KernelId::DequantMatmul) {
      B::run(choice, p, layout, a);
      return out;
    }
    // W in kernel row order times the activations gathered through a_perm (clamped and
    // counted like the native kernels): the native kernels' sum, and every output written
    // whatever a_perm holds (a scatter of W through a bad a_perm would leave rows unset).
    at::Tensor a_rows = a;
    gptq_problem q = p;
    if (p.a_perm) {
      a_rows = a.index_select(1, clamp_rows(*a_perm, p.k));
      q.a_perm = nullptr;
    }
    if (B::kLargeMInFp32) {
      // Peak extra memory: W, A and the product in fp32.
      out.copy_(at::mm(a_rows.to(at::kFloat), B::dequantize(q, layout, at::kFloat, a)));
    } else {
      // Peak extra memory: one [K, N] weight in the activation dtype (+ A when gathered).
      at::mm_out(out, a_rows, B::dequantize(q, layout, a.scalar_type(), a));
    }
    return out;
  }

  static at::Tensor gemm(const at::Tensor& a, const at::Tensor& qweight, const at::Tensor& qzeros,
                         const at::Tensor& scales, const c10::optional<at::Tensor>& a_perm,
                         const c10::optional<at::Tensor>& group_index, int64_t bits,
                         int64_t group_size, bool v2_zeros, int64_t layout,
                         c10::optional<c10::string_view> kernel) {
    return run_gemm("gemm", a, qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                    v2_zeros, layout, kernel, at::Tensor());
  }

  static void gemm_out(const at::Tensor& a, const at::Tensor& qweight, const at::Tensor& qzeros,
                       const at::Tensor& scales, const c10::optional<at::Tensor>& a_perm,
                       const c10::optional<at::Tensor>& group_index, int64_t bits,
                       int64_t group_size, bool v2_zeros, int64_t layout,
                       c10::optional<c10::string_view> kernel, const at::Tensor& out) {
    run_gemm("gemm_out", a, qweight, qzeros, scales, a_perm, group_index, bits, group_size,
             v2_zeros, layout, kernel, out);
  }

  // Load time only. Outputs are empty where an index is not needed: whether it is needed
  // depends on g_idx's values, which a fake kernel cannot see (an Optional output would
  // have to be decided without them).
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> prepare(
      const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
      const c10::optional<at::Tensor>& g_idx, int64_t bits) {
    check_one_device("prepare", {{"qweight", &qweight}, {"qzeros", &qzeros}, {"scales", &scales},
                                 {"g_idx", optional_tensor(g_idx)}});
    Guard guard(qweight.device());
    PreparePlan plan = plan_prepare(qweight, qzeros, scales, g_idx, bits);
    at::Tensor rows = plan.perm ? B::permute_rows(qweight, *plan.perm, bits) : qweight.clone();
    auto none = at::empty({0}, qweight.options());
    return {rows, plan.perm.value_or(none), plan.group_index.value_or(none)};
  }

  static at::Tensor dequantize(const at::Tensor& qweight, const at::Tensor& qzeros,
                               const at::Tensor& scales, const c10::optional<at::Tensor>& a_perm,
                               const c10::optional<at::Tensor>& group_index, int64_t bits,
                               int64_t group_size, bool v2_zeros, int64_t layout,
                               at::ScalarType dtype) {
    const char* op = "dequantize";
    check_one_device(op, {{"qweight", &qweight}, {"qzeros", &qzeros}, {"scales", &scales},
                          {"a_perm", optional_tensor(a_perm)},
                          {"group_index", optional_tensor(group_index)}});
    Guard guard(qweight.device());
    check_layout(op, B::kBackend, layout, bits);
    GPTQ_CHECK_TYPE(dtype == at::kHalf || dtype == at::kBFloat16, op,
                    ": dtype must be float16 or bfloat16, got ", dtype);
    const int64_t k = checked_k(op, qweight, bits);
    auto a = at::empty({0, k}, qweight.options().dtype(dtype));
    gptq_problem p = make_problem(op, a, qweight, qzeros, scales, a_perm, group_index, bits,
                                  group_size, v2_zeros);
    if (!p.a_perm) return B::dequantize(p, layout, dtype, a);
    // Checkpoint order without trusting a_perm: kernel-order rows taken in the stable sort
    // order of the clamped a_perm. Every row written once, the same on every run, and equal
    // to the scatter out[a_perm[r]] = W[r] when a_perm is a permutation.
    const at::Tensor order = std::get<1>(clamp_rows(*a_perm, p.k).sort(/*stable=*/true, 0, false));
    gptq_problem q = p;
    q.a_perm = nullptr;
    return B::dequantize(q, layout, dtype, a).index_select(0, order);
  }

  // Kernel-row reorder in place (layout 1); gptq_shuffle's row part.
  static void shuffle_rows(at::Tensor q_weight, const at::Tensor& q_perm, int64_t bit) {
    // An empty q_perm (no act-order) may live anywhere: it is never read.
    check_one_device("gptq_shuffle",
                     {{"q_weight", &q_weight}, {"q_perm", q_perm.numel() ? &q_perm : nullptr}});
    Guard guard(q_weight.device());
    auto perm = plan_shuffle(q_weight, q_perm, bit);
    if (perm) q_weight.copy_(B::permute_rows(q_weight, *perm, bit));
  }

  // vLLM's drop-in (its exact schema): the process default kernel applies.
  static at::Tensor gptq_gemm(const at::Tensor& a, const at::Tensor& b_q_weight,
                              const at::Tensor& b_gptq_qzeros, const at::Tensor& b_gptq_scales,
                              const at::Tensor& b_g_idx, bool use_exllama, bool use_v2_format,
                              int64_t bit) {
    const VllmCall call = vllm_call(b_q_weight, b_g_idx, use_exllama, bit);
    return run_gemm("gptq_gemm", a, b_q_weight, b_gptq_qzeros, b_gptq_scales, call.a_perm,
                    call.group_index, bit, /*group_size=*/-1, use_v2_format, call.layout,
                    c10::nullopt, at::Tensor(), kVllmArgNames);
  }

  static void register_all(torch::Library& m) {
    m.impl("gemm", &gemm);
    m.impl("gemm_out", &gemm_out);
    m.impl("prepare", &prepare);
    m.impl("dequantize", &dequantize);
    m.impl("shuffle_rows", &shuffle_rows);
    m.impl("gptq_gemm", &gptq_gemm);
  }
};

}  // namespace gptq_mi100

#include "prepare.h"

#include "errors.h"
#include "kernel_registry.h"
#include "validate.h"

namespace gptq_mi100 {

PreparePlan plan_prepare(const at::Tensor& qweight, const at::Tensor& qzeros,
                         const at::Tensor& scales, const c10::optional<at::Tensor>& g_idx,
                         int64_t bits) {
  const char* op = "prepare";
  const int64_t k = checked_k(op, qweight, bits);
  GPTQ_CHECK_VALUE(scales.dim() == 2, op, ": scales must be [G, N], got shape ",
                   scales.sizes());  // before g_idx's range check, which needs G
  const int64_t groups = scales.size(0);
  auto a = at::empty({0, k}, scales.options().dtype(at::kHalf));
  if (!g_idx.has_value()) {
    make_problem(op, a, qweight, qzeros, scales, c10::nullopt, c10::nullopt, bits, -1, true);
    return {};
  }
  GPTQ_CHECK_VALUE(g_idx->device() == qweight.device(), op, ": g_idx is on ", g_idx->device(),
                   " but qweight is on ", qweight.device());
  check_g_idx(op, *g_idx, k, groups);
  auto gi = g_idx->to(at::kInt).contiguous();
  make_problem(op, a, qweight, qzeros, scales, c10::nullopt, gi, bits, -1, true);
  auto uniform = [&](const at::Tensor& sorted_gi) {
    if (k % groups != 0) return false;
    return at::equal(at::arange(k, gi.options()).div(k / groups, "floor"), sorted_gi);
  };
  const bool sorted = k < 2 || (gi.slice(0, 1) >= gi.slice(0, 0, k - 1)).all().item<bool>();
  if (sorted) {
    if (uniform(gi)) return {};
    return {c10::nullopt, gi.clone()};
  }
  // Act-order: rows sorted by group so each group's rows are contiguous (one scale
  // reload per group); the activation is gathered through a_perm instead.
  auto perm = std::get<1>(gi.sort(/*stable=*/true, 0, false)).to(at::kInt).contiguous();
  auto group_index = gi.index_select(0, perm).contiguous();
  if (uniform(group_index)) return {perm, c10::nullopt};
  return {perm, group_index};
}

c10::optional<at::Tensor> plan_shuffle(const at::Tensor& q_weight, const at::Tensor& q_perm,
                                       int64_t bits) {
  const char* op = "gptq_shuffle";
  const int64_t k = checked_k(op, q_weight, bits, "q_weight");
  if (q_perm.numel() == 0) return c10::nullopt;
  GPTQ_CHECK_VALUE(q_perm.device() == q_weight.device(), op, ": q_perm is on ", q_perm.device(),
                   " but q_weight is on ", q_weight.device());
  check_permutation(op, q_perm, k);
  return q_perm.to(at::kInt).contiguous();
}

VllmCall vllm_call(const at::Tensor& b_q_weight, const at::Tensor& b_g_idx, bool use_exllama,
                   int64_t bits) {
  VllmCall call{c10::nullopt, c10::nullopt, GPTQ_LAYOUT_CHECKPOINT};
  if (b_g_idx.numel() > 0) (use_exllama ? call.a_perm : call.group_index) = b_g_idx;
  if (use_exllama) {
    const int64_t k = checked_k("gptq_gemm", b_q_weight, bits, "b_q_weight");
    call.layout = preferred_layout(backend_of(b_q_weight.device()), bits, k, b_q_weight.size(1));
  }
  return call;
}

}  // namespace gptq_mi100

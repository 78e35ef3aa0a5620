// Load-time planning shared by every backend: which kernel-row order a checkpoint needs
// (prepare) and what vLLM's gptq_shuffle / gptq_gemm arguments mean. The backends do
// the row permutation themselves with their own kernel.
#pragma once

#include <ATen/ATen.h>

namespace gptq_mi100 {

struct PreparePlan {
  c10::optional<at::Tensor> perm;         // int32 [K]: kernel row r = checkpoint row perm[r]
  c10::optional<at::Tensor> group_index;  // int32 [K]: group of kernel row r
};

// Validates the checkpoint tensors (reads g_idx back to the host: load time only).
// Sorted g_idx equal to r // (K / G) needs neither index; other sorted ones keep
// group_index; act-order ones are sorted by group (stable), rows gathered through perm.
PreparePlan plan_prepare(const at::Tensor& qweight, const at::Tensor& qzeros,
                         const at::Tensor& scales, const c10::optional<at::Tensor>& g_idx,
                         int64_t bits);

// gptq_shuffle's q_perm validated as an int32 permutation, or nullopt (empty q_perm).
c10::optional<at::Tensor> plan_shuffle(const at::Tensor& q_weight, const at::Tensor& q_perm,
                                       int64_t bits);

// vLLM's gptq_gemm arguments in this package's terms. use_exllama: the weights went
// through gptq_shuffle, b_g_idx is the perm (or empty), groups are K / G rows each, and
// the layout is the one gptq_shuffle produced. Otherwise b_g_idx is the raw per-row group
// of unshuffled checkpoint rows (row-parallel act-order shards), read per row.
struct VllmCall {
  c10::optional<at::Tensor> a_perm;
  c10::optional<at::Tensor> group_index;
  int64_t layout;
};
VllmCall vllm_call(const at::Tensor& b_q_weight, const at::Tensor& b_g_idx, bool use_exllama,
                   int64_t bits);

}  // namespace gptq_mi100

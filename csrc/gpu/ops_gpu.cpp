// GPU implementations (CUDA dispatch key, which ROCm torch also uses for HIP tensors).
// Everything launches on torch's current stream and allocates through torch only, so
// the ops are safe inside CUDA/HIP graph capture.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <string>

#include "../ops_common.h"
#include "gptq_gpu.h"

namespace gptq_mi100 {
namespace {

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

void run_gpu_gemm(const gptq_problem& p, const at::Tensor& like) {
  gptq_problem q = p;
  q.index_errors = gptq_gpu_index_error_counter();
  const size_t bytes = gptq_gpu_gemm_workspace_bytes(&q, GPTQ_GPU_KERNEL_EXLLAMA);
  // Split-K partials: a torch allocation (caching allocator, graph-private in capture).
  at::Tensor workspace;
  if (bytes) workspace = at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
  check_status("gemm", gptq_gpu_gemm(&q, GPTQ_GPU_KERNEL_EXLLAMA,
                                     bytes ? workspace.data_ptr() : nullptr, bytes,
                                     current_stream()),
               &q);
}

at::Tensor gpu_dequantize(const gptq_problem& p, at::ScalarType dtype, const at::Tensor& like) {
  auto w = at::empty({p.k, p.n}, like.options().dtype(dtype));
  gptq_problem q = p;
  q.c = w.data_ptr();
  q.ldc = p.n;
  q.a_dtype = to_gptq_dtype(dtype);
  q.index_errors = gptq_gpu_index_error_counter();
  check_status("dequantize", gptq_gpu_dequantize(&q, current_stream()), &q);
  return w;
}

at::Tensor gpu_permute_rows(const at::Tensor& qweight, const at::Tensor& perm, int64_t bits) {
  auto out = at::empty_like(qweight);
  const int64_t k = checked_k("permute_rows", qweight, bits);
  gptq_problem shape{};
  shape.n = qweight.size(1);
  shape.k = k;
  shape.bits = static_cast<int>(bits);
  check_status("permute_rows",
               gptq_gpu_permute_rows(qweight.data_ptr<int32_t>(), out.data_ptr<int32_t>(),
                                     perm.data_ptr<int32_t>(), k, shape.n,
                                     static_cast<int>(bits), current_stream()),
               &shape);
  return out;
}

const Backend kGpuBackend{Path::Exllama, Kernel::Exllama, &run_gpu_gemm, &gpu_dequantize,
                          false};

at::Tensor gemm(const at::Tensor& a, const at::Tensor& qweight, const at::Tensor& qzeros,
                const at::Tensor& scales, const at::Tensor& a_perm,
                const at::Tensor& group_index, int64_t bits, int64_t group_size,
                bool v2_zeros, int64_t layout, c10::string_view kernel) {
  check_layout("gemm", layout);
  c10::cuda::CUDAGuard guard(a.device());
  return gemm_common("gemm", a, qweight, qzeros, scales, a_perm, group_index, bits,
                     group_size, v2_zeros, std::string(kernel), at::Tensor(), kGpuBackend);
}

void gemm_out(const at::Tensor& a, const at::Tensor& qweight, const at::Tensor& qzeros,
              const at::Tensor& scales, const at::Tensor& a_perm,
              const at::Tensor& group_index, int64_t bits, int64_t group_size,
              bool v2_zeros, int64_t layout, c10::string_view kernel,
              const at::Tensor& out) {
  check_layout("gemm_out", layout);
  c10::cuda::CUDAGuard guard(a.device());
  gemm_common("gemm_out", a, qweight, qzeros, scales, a_perm, group_index, bits,
              group_size, v2_zeros, std::string(kernel), out, kGpuBackend);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> prepare(const at::Tensor& qweight,
                                                       const at::Tensor& qzeros,
                                                       const at::Tensor& scales,
                                                       const at::Tensor& g_idx,
                                                       int64_t bits) {
  c10::cuda::CUDAGuard guard(qweight.device());
  return prepare_common(qweight, qzeros, scales, g_idx, bits, &gpu_permute_rows);
}

at::Tensor dequantize(const at::Tensor& qweight, const at::Tensor& qzeros,
                      const at::Tensor& scales, const at::Tensor& a_perm,
                      const at::Tensor& group_index, int64_t bits, int64_t group_size,
                      bool v2_zeros, int64_t layout, at::ScalarType dtype) {
  c10::cuda::CUDAGuard guard(qweight.device());
  return dequantize_common(qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                           v2_zeros, layout, dtype, kGpuBackend);
}

at::Tensor gptq_gemm(const at::Tensor& a, const at::Tensor& b_q_weight,
                     const at::Tensor& b_gptq_qzeros, const at::Tensor& b_gptq_scales,
                     const at::Tensor& b_g_idx, bool use_exllama, bool use_v2_format,
                     int64_t bit) {
  c10::cuda::CUDAGuard guard(a.device());
  return vllm_gptq_gemm(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
                        use_v2_format, bit, kGpuBackend);
}

void gptq_shuffle(at::Tensor q_weight, const at::Tensor& q_perm, int64_t bit) {
  c10::cuda::CUDAGuard guard(q_weight.device());
  shuffle_common(q_weight, q_perm, bit, &gpu_permute_rows);
}

// Large-M threshold of the running architecture (table in gptq_gpu.cu).
int64_t gpu_large_m_threshold(int64_t bits) {
  return gptq_gpu_large_m_threshold(static_cast<int>(bits));
}

int64_t gpu_take_index_errors(int64_t device_index) {
  int64_t count = 0;
  gptq_problem none{};
  check_status("take_index_errors",
               gptq_gpu_take_index_errors(static_cast<int>(device_index), &count), &none);
  return count;
}

std::string gpu_arch_config() { return gptq_gpu_arch_config(); }

const bool kHooksInstalled = [] {
  install_gpu_hooks({&gpu_large_m_threshold, &gpu_take_index_errors, &gpu_arch_config});
  return true;
}();

}  // namespace
}  // namespace gptq_mi100

TORCH_LIBRARY_IMPL(gptq_mi100, CUDA, m) {
  m.impl("gemm", &gptq_mi100::gemm);
  m.impl("gemm_out", &gptq_mi100::gemm_out);
  m.impl("prepare", &gptq_mi100::prepare);
  m.impl("dequantize", &gptq_mi100::dequantize);
  m.impl("gptq_gemm", &gptq_mi100::gptq_gemm);
  m.impl("gptq_shuffle", &gptq_mi100::gptq_shuffle);
}

// Backend-independent host code: argument validation that turns tensors into a
// gptq_problem, kernel choice, path counters. Nothing here reads device memory.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <type_traits>
#include <vector>

#include "gptq_kernels.h"

namespace gptq_mi100 {

// Error messages are built without std::ostream: in the CUDA build on the H100 machine
// (g++ 13, torch 2.11) streaming an integer inside this module crashed in libstdc++'s
// locale code (a num_put facet mismatch), so numbers go through std::to_string.
namespace detail {
inline void append(std::string& s, const char* v) { s += v; }
inline void append(std::string& s, const std::string& v) { s += v; }
inline void append(std::string& s, c10::string_view v) { s.append(v.data(), v.size()); }
template <typename T, std::enable_if_t<std::is_integral<T>::value, int> = 0>
inline void append(std::string& s, T v) { s += std::to_string(v); }
inline void append(std::string& s, at::IntArrayRef v) {
  s += "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  s += "]";
}
inline void append(std::string& s, at::ScalarType t) { s += c10::toString(t); }
inline void append(std::string& s, const at::Device& d) { s += d.str(); }
}  // namespace detail

template <typename... Args>
std::string msg(const Args&... args) {
  std::string s;
  (detail::append(s, args), ...);
  return s;
}

#define GPTQ_CHECK(cond, ...) TORCH_CHECK(cond, ::gptq_mi100::msg(__VA_ARGS__))
#define GPTQ_CHECK_VALUE(cond, ...) TORCH_CHECK_VALUE(cond, ::gptq_mi100::msg(__VA_ARGS__))
#define GPTQ_CHECK_TYPE(cond, ...) TORCH_CHECK_TYPE(cond, ::gptq_mi100::msg(__VA_ARGS__))

// Which implementation ran; counted per call on the host (graph replays are not counted).
enum class Path : int { CpuC = 0, Exllama = 1, DequantMatmul = 2, Count = 3 };
void count_path(Path path);
std::vector<int64_t> path_counts();  // order of Path
void reset_path_counts();

// Kernel choice. "auto" picks the native kernel below the large-M threshold and
// dequantize + at::matmul at or above it.
enum class Kernel : int { Auto, CpuC, Exllama, DequantMatmul };
std::vector<std::string> kernel_names(const std::string& device_type);
Kernel parse_kernel(const std::string& name, const at::Device& device);
std::string default_kernel_name();  // GPTQ_MI100_KERNEL, validated once
int64_t large_m_threshold_for(const std::string& device_type, int64_t bits);
int64_t large_m_threshold(const at::Device& device, int64_t bits);

// Hooks the GPU translation unit installs at load time (absent in a CPU-only build).
struct GpuHooks {
  int64_t (*large_m_threshold)(int64_t bits);
  int64_t (*take_index_errors)(int64_t device_index);
  std::string (*arch_config)();
};
void install_gpu_hooks(const GpuHooks& hooks);
int64_t take_index_errors(const std::string& device_type, int64_t device_index);
void add_cpu_index_errors(int64_t count);
std::string build_info();

// op: name used in messages ("gemm", "gptq_gemm", ...). group_size < 0 means "derive
// K / G" (vLLM semantics). p.c / p.ldc are left for the caller to set.
gptq_problem make_problem(const char* op, const at::Tensor& a, const at::Tensor& qweight,
                          const at::Tensor& qzeros, const at::Tensor& scales,
                          const at::Tensor& a_perm, const at::Tensor& group_index,
                          int64_t bits, int64_t group_size, bool v2_zeros);
void check_layout(const char* op, int64_t layout);
void check_out(const char* op, const at::Tensor& out, const at::Tensor& a, int64_t n);
int64_t checked_k(const char* op, const at::Tensor& qweight, int64_t bits);
void check_bits(const char* op, int64_t bits);
gptq_dtype to_gptq_dtype(at::ScalarType t);
void check_status(const char* op, gptq_status status, const gptq_problem* p);

// Load-time validation of a permutation / g_idx (reads values back to the host).
void check_permutation(const char* op, const at::Tensor& perm, int64_t k);
void check_g_idx(const char* op, const at::Tensor& g_idx, int64_t k, int64_t groups);

// The prepare algorithm for every backend; permute_rows(src, perm) returns the
// row-permuted packed qweight.
using PermuteRowsFn = at::Tensor (*)(const at::Tensor& qweight, const at::Tensor& perm,
                                     int64_t bits);
std::tuple<at::Tensor, at::Tensor, at::Tensor> prepare_common(
    const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
    const at::Tensor& g_idx, int64_t bits, PermuteRowsFn permute_rows);
void shuffle_common(at::Tensor& q_weight, const at::Tensor& q_perm, int64_t bits,
                    PermuteRowsFn permute_rows);

// One backend's kernels, as the shared GEMM driver sees them.
using DequantizeFn = at::Tensor (*)(const gptq_problem& p, at::ScalarType dtype,
                                    const at::Tensor& like);
struct Backend {
  Path native_path;      // counted when the native kernel runs
  Kernel native_kernel;  // Kernel::CpuC or Kernel::Exllama
  void (*run_native)(const gptq_problem& p, const at::Tensor& like);
  DequantizeFn dequantize;  // W [K, N] in checkpoint K order, dtype given
  bool large_m_in_fp32;     // CPU: dequantize to fp32 and use the fp32 GEMM (fast on CPU)
};

// Validate, choose the kernel (auto: native below the large-M threshold), run.
// out: undefined to allocate, else a validated [M, N] tensor written in place.
at::Tensor gemm_common(const char* op, const at::Tensor& a, const at::Tensor& qweight,
                       const at::Tensor& qzeros, const at::Tensor& scales,
                       const at::Tensor& a_perm, const at::Tensor& group_index,
                       int64_t bits, int64_t group_size, bool v2_zeros,
                       const std::string& kernel, at::Tensor out, const Backend& backend);

// vLLM's gptq_gemm on top of gemm_common (use_exllama picks how b_g_idx is read).
at::Tensor vllm_gptq_gemm(const at::Tensor& a, const at::Tensor& b_q_weight,
                          const at::Tensor& b_gptq_qzeros, const at::Tensor& b_gptq_scales,
                          const at::Tensor& b_g_idx, bool use_exllama, bool use_v2_format,
                          int64_t bit, const Backend& backend);

at::Tensor dequantize_common(const at::Tensor& qweight, const at::Tensor& qzeros,
                             const at::Tensor& scales, const at::Tensor& a_perm,
                             const at::Tensor& group_index, int64_t bits,
                             int64_t group_size, bool v2_zeros, int64_t layout,
                             at::ScalarType dtype, const Backend& backend);

}  // namespace gptq_mi100

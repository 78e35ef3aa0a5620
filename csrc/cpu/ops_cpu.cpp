// CPU implementations: the C99 kernels of gptq_cpu.c, parallelized over output-column
// ranges with at::parallel_for (torch's pool, so torch.set_num_threads applies).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <vector>

#include "../ops_common.h"

namespace gptq_mi100 {
namespace {

// Columns per parallel task: a multiple of 32 / bits for every width (3-bit needs 32).
constexpr int64_t kColumnChunk = 64;

// Runs fn(begin, end) over column ranges in parallel; fn returns a gptq_status.
template <typename Fn>
void for_column_ranges(const char* op, const gptq_problem& p, Fn fn) {
  const int64_t chunks = (p.n + kColumnChunk - 1) / kColumnChunk;
  std::atomic<int> first_error{GPTQ_OK};
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    gptq_status s = fn(begin * kColumnChunk, std::min(p.n, end * kColumnChunk));
    int expected = GPTQ_OK;
    if (s != GPTQ_OK) first_error.compare_exchange_strong(expected, s);
  });
  check_status(op, static_cast<gptq_status>(first_error.load()), &p);
}

void run_cpu_gemm(const gptq_problem& p, const at::Tensor&) {
  check_status("gemm", gptq_check_problem(&p), &p);
  std::atomic<int64_t> errors{0};
  for_column_ranges("gemm", p, [&](int64_t n0, int64_t n1) {
    std::vector<float> scratch(gptq_cpu_gemm_scratch_floats(&p));
    gptq_problem local = p;
    int32_t local_errors = 0;
    local.index_errors = &local_errors;
    gptq_status s = gptq_cpu_gemm(&local, n0, n1, scratch.data());
    errors.fetch_add(local_errors);
    return s;
  });
  add_cpu_index_errors(errors.load());
}

at::Tensor cpu_dequantize(const gptq_problem& p, at::ScalarType dtype, const at::Tensor& like) {
  auto w = at::empty({p.k, p.n}, like.options().dtype(dtype));
  gptq_problem q = p;
  q.c = w.data_ptr();
  q.ldc = p.n;
  q.a_dtype = to_gptq_dtype(dtype);
  std::atomic<int64_t> errors{0};
  for_column_ranges("dequantize", q, [&](int64_t n0, int64_t n1) {
    gptq_problem local = q;
    int32_t local_errors = 0;
    local.index_errors = &local_errors;
    gptq_status s = gptq_cpu_dequantize(&local, n0, n1);
    errors.fetch_add(local_errors);
    return s;
  });
  add_cpu_index_errors(errors.load());
  return w;
}

at::Tensor cpu_permute_rows(const at::Tensor& qweight, const at::Tensor& perm, int64_t bits) {
  auto out = at::empty_like(qweight);
  const int64_t k = checked_k("permute_rows", qweight, bits);
  gptq_problem shape{};
  shape.n = qweight.size(1);
  for_column_ranges("permute_rows", shape, [&](int64_t n0, int64_t n1) {
    return gptq_cpu_permute_rows(qweight.data_ptr<int32_t>(), out.data_ptr<int32_t>(),
                                 perm.data_ptr<int32_t>(), k, shape.n,
                                 static_cast<int>(bits), n0, n1);
  });
  return out;
}

const Backend kCpuBackend{Path::CpuC, Kernel::CpuC, &run_cpu_gemm, &cpu_dequantize, true};

at::Tensor gemm(const at::Tensor& a, const at::Tensor& qweight, const at::Tensor& qzeros,
                const at::Tensor& scales, const at::Tensor& a_perm,
                const at::Tensor& group_index, int64_t bits, int64_t group_size,
                bool v2_zeros, int64_t layout, c10::string_view kernel) {
  check_layout("gemm", layout);
  return gemm_common("gemm", a, qweight, qzeros, scales, a_perm, group_index, bits,
                     group_size, v2_zeros, std::string(kernel), at::Tensor(), kCpuBackend);
}

void gemm_out(const at::Tensor& a, const at::Tensor& qweight, const at::Tensor& qzeros,
              const at::Tensor& scales, const at::Tensor& a_perm,
              const at::Tensor& group_index, int64_t bits, int64_t group_size,
              bool v2_zeros, int64_t layout, c10::string_view kernel,
              const at::Tensor& out) {
  check_layout("gemm_out", layout);
  gemm_common("gemm_out", a, qweight, qzeros, scales, a_perm, group_index, bits,
              group_size, v2_zeros, std::string(kernel), out, kCpuBackend);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> prepare(const at::Tensor& qweight,
                                                       const at::Tensor& qzeros,
                                                       const at::Tensor& scales,
                                                       const at::Tensor& g_idx,
                                                       int64_t bits) {
  return prepare_common(qweight, qzeros, scales, g_idx, bits, &cpu_permute_rows);
}

at::Tensor dequantize(const at::Tensor& qweight, const at::Tensor& qzeros,
                      const at::Tensor& scales, const at::Tensor& a_perm,
                      const at::Tensor& group_index, int64_t bits, int64_t group_size,
                      bool v2_zeros, int64_t layout, at::ScalarType dtype) {
  return dequantize_common(qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                           v2_zeros, layout, dtype, kCpuBackend);
}

at::Tensor gptq_gemm(const at::Tensor& a, const at::Tensor& b_q_weight,
                     const at::Tensor& b_gptq_qzeros, const at::Tensor& b_gptq_scales,
                     const at::Tensor& b_g_idx, bool use_exllama, bool use_v2_format,
                     int64_t bit) {
  return vllm_gptq_gemm(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
                        use_v2_format, bit, kCpuBackend);
}

void gptq_shuffle(at::Tensor q_weight, const at::Tensor& q_perm, int64_t bit) {
  shuffle_common(q_weight, q_perm, bit, &cpu_permute_rows);
}

}  // namespace
}  // namespace gptq_mi100

TORCH_LIBRARY_IMPL(gptq_mi100, CPU, m) {
  m.impl("gemm", &gptq_mi100::gemm);
  m.impl("gemm_out", &gptq_mi100::gemm_out);
  m.impl("prepare", &gptq_mi100::prepare);
  m.impl("dequantize", &gptq_mi100::dequantize);
  m.impl("gptq_gemm", &gptq_mi100::gptq_gemm);
  m.impl("gptq_shuffle", &gptq_mi100::gptq_shuffle);
}

// CPU implementations: the C99 kernels of gptq_cpu.c, parallelized over output-column
// ranges with at::parallel_for (torch's pool, so torch.set_num_threads applies).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <vector>

#include "../host/op_impls.h"

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

struct CpuBackend {
  static constexpr BackendKind kBackend = BackendKind::Cpu;
  static constexpr bool kLargeMInFp32 = true;  // fp32 GEMM is fast on CPU
  struct Guard {
    explicit Guard(const at::Device&) {}
  };
  static void run(const KernelChoice&, const gptq_problem& p, int64_t, const at::Tensor& like) {
    run_cpu_gemm(p, like);  // the registry lists one native CPU kernel, on layout 1
  }
  static at::Tensor dequantize(const gptq_problem& p, int64_t, at::ScalarType dtype,
                               const at::Tensor& like) {
    return cpu_dequantize(p, dtype, like);  // CPU builds read layout 1 only
  }
  static at::Tensor permute_rows(const at::Tensor& qweight, const at::Tensor& perm,
                                 int64_t bits) {
    return cpu_permute_rows(qweight, perm, bits);
  }
  static void add_index_errors(const at::Tensor& count) {
    add_cpu_index_errors(count.item<int64_t>());
  }
};

}  // namespace
}  // namespace gptq_mi100

TORCH_LIBRARY_IMPL(gptq_mi100, CPU, m) {
  gptq_mi100::OpImpls<gptq_mi100::CpuBackend>::register_all(m);
}

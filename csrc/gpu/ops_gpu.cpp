// GPU implementations (CUDA dispatch key, which ROCm torch also uses for HIP tensors).
// Everything launches on torch's current stream and allocates through torch only, so
// the ops are safe inside CUDA/HIP graph capture.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <string>

#include "../host/op_impls.h"
#include "gptq_gpu.h"

namespace gptq_mi100 {
namespace {

// Registry id -> the launcher's kernel enum (the native GPU kernels only).
gptq_gpu_kernel launcher_kernel(KernelId id) {
  switch (id) {
    case KernelId::TransposedMma: return GPTQ_GPU_KERNEL_TRANSPOSED_MMA;
    case KernelId::Transposed: return GPTQ_GPU_KERNEL_TRANSPOSED;
    case KernelId::Vectorized: return GPTQ_GPU_KERNEL_VECTORIZED;
    case KernelId::Coalesced: return GPTQ_GPU_KERNEL_COALESCED;
    case KernelId::WarpShuffle: return GPTQ_GPU_KERNEL_WARP_SHUFFLE;
    default: return GPTQ_GPU_KERNEL_EXLLAMA;
  }
}

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

void run_gpu_gemm(gptq_gpu_kernel kernel, const TileChoice& t, const gptq_problem& p,
                  const at::Tensor& like) {
  gptq_problem q = p;
  q.index_errors = gptq_gpu_index_error_counter();
  const gptq_gpu_tile tile{t.mt, t.splits, t.load, t.kslices, t.sw};
  const size_t bytes = gptq_gpu_gemm_workspace_bytes(&q, kernel, &tile);
  // Split-K partials: a torch allocation (caching allocator, graph-private in capture).
  at::Tensor workspace;
  if (bytes) workspace = at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
  check_status("gemm", gptq_gpu_gemm(&q, kernel, &tile,
                                     bytes ? workspace.data_ptr() : nullptr, bytes,
                                     current_stream()),
               &q);
}

at::Tensor gpu_dequantize(const gptq_problem& p, int64_t layout, at::ScalarType dtype,
                          const at::Tensor& like) {
  auto w = at::empty({p.k, p.n}, like.options().dtype(dtype));
  gptq_problem q = p;
  q.c = w.data_ptr();
  q.ldc = p.n;
  q.a_dtype = to_gptq_dtype(dtype);
  q.index_errors = gptq_gpu_index_error_counter();
  check_status("dequantize", gptq_gpu_dequantize(&q, static_cast<int>(layout), current_stream()), &q);
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

struct GpuBackend {
  static constexpr BackendKind kBackend = BackendKind::Gpu;
  static constexpr bool kLargeMInFp32 = false;
  using Guard = c10::cuda::CUDAGuard;
  static void run(const KernelChoice& c, const gptq_problem& p, int64_t, const at::Tensor& like) {
    run_gpu_gemm(launcher_kernel(c.entry->id), c.tile, p, like);
  }
  static at::Tensor dequantize(const gptq_problem& p, int64_t layout, at::ScalarType dtype,
                               const at::Tensor& like) {
    return gpu_dequantize(p, layout, dtype, like);
  }
  static at::Tensor permute_rows(const at::Tensor& qweight, const at::Tensor& perm,
                                 int64_t bits) {
    return gpu_permute_rows(qweight, perm, bits);
  }
  // Added on the stream into the module's device counter (no host sync; graph-safe).
  static void add_index_errors(const at::Tensor& count) {
    int32_t* device_counter = gptq_gpu_index_error_counter();
    GPTQ_CHECK(device_counter != nullptr, "gptq_mi100: no clamped-index counter on this device");
    at::Tensor counter = at::from_blob(device_counter, {1}, count.options().dtype(at::kInt));
    counter.add_(count.to(at::kInt));
  }
};

}  // namespace
}  // namespace gptq_mi100

TORCH_LIBRARY_IMPL(gptq_mi100, CUDA, m) {
  gptq_mi100::OpImpls<gptq_mi100::GpuBackend>::register_all(m);
}

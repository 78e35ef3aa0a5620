// Host code shared by every backend: validation, kernel choice, counters, prepare.
#include "ops_common.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>

#ifndef GPTQ_MI100_TORCH_VERSION
#define GPTQ_MI100_TORCH_VERSION "unknown"
#endif
#ifndef GPTQ_MI100_BACKEND
#define GPTQ_MI100_BACKEND "cpu"
#endif

namespace gptq_mi100 {

namespace {

std::array<std::atomic<int64_t>, static_cast<int>(Path::Count)> g_path_counts{};
std::atomic<int64_t> g_cpu_index_errors{0};
GpuHooks g_gpu_hooks{nullptr, nullptr, nullptr};
bool g_have_gpu_hooks = false;

// CPU: the C kernel beat dequantize + fp32 matmul up to M = 64 and tied at 128 on the
// 2-core development machine (K = N = 2048, 4-bit; benchmarks/NOTES.md).
constexpr int64_t kCpuLargeM = 128;

const char* kKernelNamesCpu[] = {"auto", "cpu_c", "dequant_matmul"};
const char* kKernelNamesGpu[] = {"auto", "exllama", "dequant_matmul"};

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}

bool is_gpu(const at::Device& d) { return d.is_cuda(); }

}  // namespace

void count_path(Path path) { g_path_counts[static_cast<int>(path)].fetch_add(1); }

std::vector<int64_t> path_counts() {
  std::vector<int64_t> v;
  for (auto& c : g_path_counts) v.push_back(c.load());
  return v;
}

void reset_path_counts() {
  for (auto& c : g_path_counts) c.store(0);
}

std::vector<std::string> kernel_names(const std::string& device_type) {
  if (device_type == "cpu") return {std::begin(kKernelNamesCpu), std::end(kKernelNamesCpu)};
  if (device_type == "cuda")
    return {std::begin(kKernelNamesGpu), std::end(kKernelNamesGpu)};
  GPTQ_CHECK_VALUE(false, "kernel_names: device_type must be 'cpu' or 'cuda', got '",
                    device_type, "'");
}

std::string default_kernel_name() {
  // Read once: the process default must not change under a captured graph.
  static const std::string name = [] {
    const char* env = std::getenv("GPTQ_MI100_KERNEL");
    std::string v = env ? env : "auto";
    std::vector<std::string> all = {"auto", "cpu_c", "exllama", "dequant_matmul"};
    for (auto& n : all)
      if (n == v) return v;
    GPTQ_CHECK_VALUE(false, "GPTQ_MI100_KERNEL must be one of ", join(all), ", got '", v,
                      "'");
  }();
  return name;
}

Kernel parse_kernel(const std::string& name, const at::Device& device) {
  const std::string dev = is_gpu(device) ? "cuda" : "cpu";
  auto valid = kernel_names(dev);
  if (name == "auto") return Kernel::Auto;
  if (name == "dequant_matmul") return Kernel::DequantMatmul;
  if (name == "cpu_c" && dev == "cpu") return Kernel::CpuC;
  if (name == "exllama" && dev == "cuda") return Kernel::Exllama;
  GPTQ_CHECK_VALUE(false, "kernel must be one of ", join(valid), " for ", dev,
                    " tensors, got '", name, "'");
}

int64_t large_m_threshold(const at::Device& device, int64_t bits) {
  static const int64_t env_value = [] {
    const char* env = std::getenv("GPTQ_MI100_LARGE_M");
    if (!env) return int64_t(-1);
    char* end = nullptr;
    long long v = std::strtoll(env, &end, 10);
    GPTQ_CHECK_VALUE(end != env && *end == '\0' && v >= 1,
                      "GPTQ_MI100_LARGE_M must be a positive integer, got '", env, "'");
    return int64_t(v);
  }();
  if (env_value > 0) return env_value;
  if (is_gpu(device)) {
    GPTQ_CHECK(g_have_gpu_hooks, "this gptq_mi100 build has no GPU support");
    return g_gpu_hooks.large_m_threshold(bits);
  }
  return kCpuLargeM;
}

int64_t large_m_threshold_for(const std::string& device_type, int64_t bits) {
  check_bits("large_m_threshold", bits);
  if (device_type == "cpu") return large_m_threshold(at::Device(at::kCPU), bits);
  GPTQ_CHECK_VALUE(device_type == "cuda",
                    "large_m_threshold: device_type must be 'cpu' or 'cuda', got '",
                    device_type, "'");
  return large_m_threshold(at::Device(at::kCUDA, 0), bits);
}

void install_gpu_hooks(const GpuHooks& hooks) {
  g_gpu_hooks = hooks;
  g_have_gpu_hooks = true;
}

void add_cpu_index_errors(int64_t count) {
  if (count) g_cpu_index_errors.fetch_add(count);
}

int64_t take_index_errors(const std::string& device_type, int64_t device_index) {
  if (device_type == "cpu") return g_cpu_index_errors.exchange(0);
  GPTQ_CHECK_VALUE(device_type == "cuda",
                    "take_index_errors: device_type must be 'cpu' or 'cuda', got '",
                    device_type, "'");
  GPTQ_CHECK(g_have_gpu_hooks, "this gptq_mi100 build has no GPU support");
  return g_gpu_hooks.take_index_errors(device_index);
}

std::string build_info() {
  std::string s = msg("torch ", GPTQ_MI100_TORCH_VERSION, "; backend ", GPTQ_MI100_BACKEND);
  if (g_have_gpu_hooks) s += "; " + g_gpu_hooks.arch_config();
  return s;
}

// ---------------------------------------------------------------- validation

void check_bits(const char* op, int64_t bits) {
  GPTQ_CHECK_VALUE(bits == 2 || bits == 3 || bits == 4 || bits == 8, op,
                    ": bits must be one of 2, 3, 4, 8, got ", bits);
}

int64_t checked_k(const char* op, const at::Tensor& qweight, int64_t bits) {
  check_bits(op, bits);
  GPTQ_CHECK_TYPE(qweight.scalar_type() == at::kInt, op,
                   ": qweight must be int32, got ", qweight.scalar_type());
  GPTQ_CHECK_VALUE(qweight.dim() == 2, op, ": qweight must be 2-D [K*bits/32, N], got ",
                    qweight.dim(), " dims");
  GPTQ_CHECK_VALUE(qweight.is_contiguous(), op, ": qweight must be contiguous");
  const int64_t rows = qweight.size(0);
  // 3-bit packs 32 values in 3 words; others pack 32/bits values per word.
  if (bits == 3) {
    GPTQ_CHECK_VALUE(rows % 3 == 0, op,
                      ": for bits=3 qweight.size(0) must be a multiple of 3, got ", rows);
    return rows / 3 * 32;
  }
  return rows * (32 / bits);
}

gptq_dtype to_gptq_dtype(at::ScalarType t) {
  return t == at::kHalf ? GPTQ_F16 : t == at::kBFloat16 ? GPTQ_BF16 : GPTQ_F32;
}

static void check_same_device(const char* op, const char* name, const at::Tensor& t,
                              const at::Tensor& a) {
  GPTQ_CHECK_VALUE(t.device() == a.device(), op, ": ", name, " is on ", t.device(),
                    " but a is on ", a.device());
}

static void check_index_tensor(const char* op, const char* name, const at::Tensor& t,
                               int64_t k, const at::Tensor& a) {
  if (t.numel() == 0) return;
  GPTQ_CHECK_TYPE(t.scalar_type() == at::kInt, op, ": ", name, " must be int32, got ",
                   t.scalar_type());
  GPTQ_CHECK_VALUE(t.dim() == 1 && t.size(0) == k, op, ": ", name,
                    " must be empty or 1-D of length K=", k, ", got shape ", t.sizes());
  GPTQ_CHECK_VALUE(t.is_contiguous(), op, ": ", name, " must be contiguous");
  check_same_device(op, name, t, a);
}

gptq_problem make_problem(const char* op, const at::Tensor& a, const at::Tensor& qweight,
                          const at::Tensor& qzeros, const at::Tensor& scales,
                          const at::Tensor& a_perm, const at::Tensor& group_index,
                          int64_t bits, int64_t group_size, bool v2_zeros) {
  const int64_t k = checked_k(op, qweight, bits);
  const int64_t n = qweight.size(1);
  GPTQ_CHECK_TYPE(a.scalar_type() == at::kHalf || a.scalar_type() == at::kBFloat16, op,
                   ": a must be float16 or bfloat16, got ", a.scalar_type());
  GPTQ_CHECK_VALUE(a.dim() == 2, op, ": a must be 2-D [M, K], got shape ", a.sizes());
  GPTQ_CHECK_VALUE(a.size(1) == k, op, ": a.size(1) must equal K=", k,
                    " (from qweight.size(0)=", qweight.size(0), " and bits=", bits,
                    "), got ", a.size(1));
  GPTQ_CHECK_VALUE(a.size(0) == 0 || a.stride(1) == 1, op,
                    ": a must have unit stride along K, got strides ", a.strides());
  check_same_device(op, "qweight", qweight, a);
  check_same_device(op, "qzeros", qzeros, a);
  check_same_device(op, "scales", scales, a);
  GPTQ_CHECK_VALUE(k % 32 == 0, op, ": K must be a multiple of 32, got ", k);
  const int64_t n_align = bits == 3 ? 32 : 32 / bits;
  GPTQ_CHECK_VALUE(n % n_align == 0 && n > 0, op, ": N (qweight.size(1)) must be a ",
                    "positive multiple of ", n_align, " for bits=", bits, ", got ", n);

  GPTQ_CHECK_TYPE(scales.scalar_type() == at::kHalf ||
                       scales.scalar_type() == at::kBFloat16,
                   op, ": scales must be float16 or bfloat16, got ", scales.scalar_type());
  GPTQ_CHECK_VALUE(scales.dim() == 2 && scales.size(1) == n && scales.size(0) >= 1, op,
                    ": scales must be [G, N=", n, "], got shape ", scales.sizes());
  GPTQ_CHECK_VALUE(scales.is_contiguous(), op, ": scales must be contiguous");
  const int64_t groups = scales.size(0);
  GPTQ_CHECK_TYPE(qzeros.scalar_type() == at::kInt, op, ": qzeros must be int32, got ",
                   qzeros.scalar_type());
  const int64_t zero_words = n * bits / 32;
  GPTQ_CHECK_VALUE(qzeros.dim() == 2 && qzeros.size(0) == groups &&
                        qzeros.size(1) == zero_words,
                    op, ": qzeros must be [G=", groups, ", N*bits/32=", zero_words,
                    "], got shape ", qzeros.sizes());
  GPTQ_CHECK_VALUE(qzeros.is_contiguous(), op, ": qzeros must be contiguous");

  check_index_tensor(op, "a_perm", a_perm, k, a);
  check_index_tensor(op, "group_index", group_index, k, a);
  if (group_index.numel() == 0) {
    if (group_size < 0) {  // vLLM: derive from G
      GPTQ_CHECK_VALUE(k % groups == 0, op, ": K=", k, " is not divisible by G=", groups,
                        " (scales.size(0)) and no g_idx was given");
      group_size = k / groups;
    }
    GPTQ_CHECK_VALUE(group_size > 0 && group_size * groups == k, op,
                      ": without group_index, G (scales.size(0)=", groups,
                      ") must equal K / group_size = ", k, " / ", group_size);
  }

  gptq_problem p{};
  p.a = a.data_ptr();
  p.qweight = qweight.data_ptr<int32_t>();
  p.qzeros = qzeros.data_ptr<int32_t>();
  p.scales = scales.data_ptr();
  p.a_perm = a_perm.numel() ? a_perm.data_ptr<int32_t>() : nullptr;
  p.group_index = group_index.numel() ? group_index.data_ptr<int32_t>() : nullptr;
  p.m = a.size(0);
  p.n = n;
  p.k = k;
  p.lda = a.size(0) ? a.stride(0) : k;
  p.groups = groups;
  p.group_size = group_size > 0 ? group_size : k;
  p.bits = static_cast<int>(bits);
  p.zero_offset = v2_zeros ? 0 : 1;
  p.a_dtype = to_gptq_dtype(a.scalar_type());
  p.scale_dtype = to_gptq_dtype(scales.scalar_type());
  return p;
}

void check_layout(const char* op, int64_t layout) {
  GPTQ_CHECK_VALUE(layout == GPTQ_LAYOUT_VERSION, op, ": weights prepared for layout ",
                    layout, " but this build consumes layout ", GPTQ_LAYOUT_VERSION,
                    "; run gptq_mi100.prepare() on the checkpoint tensors again");
}

void check_out(const char* op, const at::Tensor& out, const at::Tensor& a, int64_t n) {
  GPTQ_CHECK_TYPE(out.scalar_type() == a.scalar_type(), op, ": out must have a's dtype ",
                   a.scalar_type(), ", got ", out.scalar_type());
  GPTQ_CHECK_VALUE(out.dim() == 2 && out.size(0) == a.size(0) && out.size(1) == n, op,
                    ": out must be [M=", a.size(0), ", N=", n, "], got shape ",
                    out.sizes());
  GPTQ_CHECK_VALUE(out.numel() == 0 || out.stride(1) == 1, op,
                    ": out must have unit stride along N, got strides ", out.strides());
  GPTQ_CHECK_VALUE(out.device() == a.device(), op, ": out is on ", out.device(),
                    " but a is on ", a.device());
}

void check_status(const char* op, gptq_status status, const gptq_problem* p) {
  if (status == GPTQ_OK) return;
  const char* why = "GPU launch failed";
  switch (status) {
    case GPTQ_ERR_BITS: why = "unsupported bit width"; break;
    case GPTQ_ERR_SHAPE: why = "shapes inconsistent with the packing"; break;
    case GPTQ_ERR_GROUP_SIZE: why = "group size inconsistent with K and G"; break;
    case GPTQ_ERR_DTYPE: why = "unsupported dtype"; break;
    case GPTQ_ERR_ALIGNMENT: why = "a tensor is not aligned for vector loads"; break;
    default: break;
  }
  std::string detail = why;
  if (status == GPTQ_ERR_NO_KERNEL)
    detail = msg("this extension was not built for the running GPU's architecture (",
                 build_info(), "); rebuild with TORCH_CUDA_ARCH_LIST / PYTORCH_ROCM_ARCH ",
                 "naming it");
  GPTQ_CHECK(false, op, ": kernel refused the problem (m=", p->m, ", n=", p->n, ", k=",
             p->k, ", groups=", p->groups, ", bits=", p->bits, "): ", detail);
}

void check_permutation(const char* op, const at::Tensor& perm, int64_t k) {
  GPTQ_CHECK_TYPE(perm.scalar_type() == at::kInt || perm.scalar_type() == at::kLong, op,
                   ": q_perm must be int32 (or int64), got ", perm.scalar_type());
  GPTQ_CHECK_VALUE(perm.dim() == 1 && perm.size(0) == k, op,
                    ": q_perm must be 1-D of length K=", k, ", got shape ", perm.sizes());
  // Load time: reading back to the host is allowed here.
  auto sorted = std::get<0>(perm.to(at::kCPU, at::kLong).sort());
  bool ok = at::equal(sorted, at::arange(k, sorted.options()));
  GPTQ_CHECK_VALUE(ok, op, ": q_perm must be a permutation of 0..K-1 (K=", k, ")");
}

void check_g_idx(const char* op, const at::Tensor& g_idx, int64_t k, int64_t groups) {
  GPTQ_CHECK_TYPE(g_idx.scalar_type() == at::kInt || g_idx.scalar_type() == at::kLong, op,
                   ": g_idx must be int32 (or int64), got ", g_idx.scalar_type());
  GPTQ_CHECK_VALUE(g_idx.dim() == 1 && g_idx.size(0) == k, op,
                    ": g_idx must be 1-D of length K=", k, ", got shape ", g_idx.sizes());
  auto host = g_idx.to(at::kCPU, at::kLong);
  const int64_t lo = host.min().item<int64_t>(), hi = host.max().item<int64_t>();
  GPTQ_CHECK_VALUE(lo >= 0 && hi < groups, op, ": g_idx values must lie in [0, G=", groups,
                    "), got min ", lo, " max ", hi);
}

// ---------------------------------------------------------------- prepare / shuffle

std::tuple<at::Tensor, at::Tensor, at::Tensor> prepare_common(
    const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
    const at::Tensor& g_idx, int64_t bits, PermuteRowsFn permute_rows) {
  const char* op = "prepare";
  const int64_t k = checked_k(op, qweight, bits);
  GPTQ_CHECK_VALUE(scales.dim() == 2, op, ": scales must be [G, N], got shape ",
                   scales.sizes());  // before g_idx's range check, which needs G
  const int64_t groups = scales.size(0);
  auto empty_index = at::empty({0}, qweight.options());
  auto a = at::empty({0, k}, scales.options().dtype(at::kHalf));
  if (g_idx.numel() == 0) {
    make_problem(op, a, qweight, qzeros, scales, empty_index, empty_index, bits, -1, true);
    return {qweight.clone(), empty_index, empty_index.clone()};
  }
  GPTQ_CHECK_VALUE(g_idx.device() == qweight.device(), op, ": g_idx is on ",
                    g_idx.device(), " but qweight is on ", qweight.device());
  check_g_idx(op, g_idx, k, groups);
  auto gi = g_idx.to(at::kInt).contiguous();
  make_problem(op, a, qweight, qzeros, scales, empty_index, gi, bits, -1, true);
  if (k % groups == 0) {
    auto trivial = at::arange(k, gi.options()).div(k / groups, "floor");
    if (at::equal(trivial, gi)) return {qweight.clone(), empty_index, empty_index.clone()};
  }
  const bool sorted = (gi.slice(0, 1) >= gi.slice(0, 0, k - 1)).all().item<bool>();
  if (sorted) return {qweight.clone(), empty_index, gi.clone()};
  // Act-order: rows sorted by group so each group's rows are contiguous (one scale
  // reload per group); the activation is gathered through a_perm instead.
  auto perm = std::get<1>(gi.sort(/*stable=*/true, 0, false)).to(at::kInt).contiguous();
  auto group_index = gi.index_select(0, perm).contiguous();
  return {permute_rows(qweight, perm, bits), perm, group_index};
}

void shuffle_common(at::Tensor& q_weight, const at::Tensor& q_perm, int64_t bits,
                    PermuteRowsFn permute_rows) {
  const char* op = "gptq_shuffle";
  const int64_t k = checked_k(op, q_weight, bits);
  // Our kernels consume checkpoint bit order: without act-order there is nothing to do.
  if (q_perm.numel() == 0) return;
  GPTQ_CHECK_VALUE(q_perm.device() == q_weight.device(), op, ": q_perm is on ",
                    q_perm.device(), " but q_weight is on ", q_weight.device());
  check_permutation(op, q_perm, k);
  auto perm = q_perm.to(at::kInt).contiguous();
  q_weight.copy_(permute_rows(q_weight, perm, bits));
}

at::Tensor gemm_common(const char* op, const at::Tensor& a, const at::Tensor& qweight,
                       const at::Tensor& qzeros, const at::Tensor& scales,
                       const at::Tensor& a_perm, const at::Tensor& group_index,
                       int64_t bits, int64_t group_size, bool v2_zeros,
                       const std::string& kernel, at::Tensor out, const Backend& backend) {
  gptq_problem p = make_problem(op, a, qweight, qzeros, scales, a_perm, group_index, bits,
                                group_size, v2_zeros);
  Kernel choice = parse_kernel(kernel, a.device());
  if (out.defined())
    check_out(op, out, a, p.n);
  else
    out = at::empty({p.m, p.n}, a.options());
  if (p.m == 0) return out;
  p.c = out.data_ptr();
  p.ldc = out.stride(0);
  if (choice == Kernel::Auto)
    choice = p.m >= large_m_threshold(a.device(), bits) ? Kernel::DequantMatmul
                                                        : backend.native_kernel;
  if (choice == Kernel::DequantMatmul) {
    count_path(Path::DequantMatmul);
    if (backend.large_m_in_fp32) {
      // Peak extra memory: W, A and the product in fp32.
      out.copy_(at::mm(a.to(at::kFloat), backend.dequantize(p, at::kFloat, a)));
    } else {
      // Peak extra memory: one [K, N] weight in the activation dtype.
      at::mm_out(out, a, backend.dequantize(p, a.scalar_type(), a));
    }
  } else {
    count_path(backend.native_path);
    backend.run_native(p, a);
  }
  return out;
}

at::Tensor vllm_gptq_gemm(const at::Tensor& a, const at::Tensor& b_q_weight,
                          const at::Tensor& b_gptq_qzeros, const at::Tensor& b_gptq_scales,
                          const at::Tensor& b_g_idx, bool use_exllama, bool use_v2_format,
                          int64_t bit, const Backend& backend) {
  auto none = at::empty({0}, b_q_weight.options());
  // use_exllama: weights went through gptq_shuffle, b_g_idx is the perm (or empty) and
  // groups are K / G rows each. Otherwise b_g_idx is the raw per-row group (row-parallel
  // act-order shards), read per row and clamped in the kernel.
  const at::Tensor& a_perm = use_exllama ? b_g_idx : none;
  const at::Tensor& group_index = use_exllama ? none : b_g_idx;
  // A process default for the other device type (e.g. exllama on CPU tensors) means auto,
  // as in the Python wrappers (gptq_mi100/kernels.py).
  std::string kernel = default_kernel_name();
  const auto valid = kernel_names(a.device().is_cuda() ? "cuda" : "cpu");
  if (std::find(valid.begin(), valid.end(), kernel) == valid.end()) kernel = "auto";
  return gemm_common("gptq_gemm", a, b_q_weight, b_gptq_qzeros, b_gptq_scales, a_perm,
                     group_index, bit, /*group_size=*/-1, use_v2_format, kernel, at::Tensor(),
                     backend);
}

at::Tensor dequantize_common(const at::Tensor& qweight, const at::Tensor& qzeros,
                             const at::Tensor& scales, const at::Tensor& a_perm,
                             const at::Tensor& group_index, int64_t bits,
                             int64_t group_size, bool v2_zeros, int64_t layout,
                             at::ScalarType dtype, const Backend& backend) {
  const char* op = "dequantize";
  check_layout(op, layout);
  GPTQ_CHECK_TYPE(dtype == at::kHalf || dtype == at::kBFloat16, op,
                   ": dtype must be float16 or bfloat16, got ", dtype);
  const int64_t k = checked_k(op, qweight, bits);
  auto a = at::empty({0, k}, qweight.options().dtype(dtype));
  gptq_problem p = make_problem(op, a, qweight, qzeros, scales, a_perm, group_index, bits,
                                group_size, v2_zeros);
  return backend.dequantize(p, dtype, a);
}

}  // namespace gptq_mi100

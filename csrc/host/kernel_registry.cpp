// The kernel table and the rules that choose among its entries.
#include "kernel_registry.h"

#include <atomic>
#include <cstdlib>

#include "errors.h"
#include "validate.h"

#ifdef GPTQ_MI100_WITH_GPU
#include "../gpu/gptq_gpu.h"
#endif

namespace gptq_mi100 {

namespace {

constexpr unsigned kCpu = 1u << static_cast<int>(BackendKind::Cpu);
constexpr unsigned kGpu = 1u << static_cast<int>(BackendKind::Gpu);
constexpr unsigned kLayoutCheckpoint = 1u << GPTQ_LAYOUT_CHECKPOINT;
constexpr unsigned kLayoutTiled = 1u << GPTQ_LAYOUT_TILED;
constexpr unsigned kAllBits = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 8);
constexpr unsigned kTiledBits = (1u << 2) | (1u << 4) | (1u << 8);

// CPU: the C kernel beat dequantize + fp32 matmul up to M = 64 and tied at 128 on the
// 2-core development machine (K = N = 2048, 4-bit; benchmarks/NOTES.md).
constexpr int64_t kCpuLargeM = 128;

const char* any_problem(const gptq_problem&) { return nullptr; }

// The kernels state their own requirements (csrc/gpu/gptq_transposed.cu).
#ifdef GPTQ_MI100_WITH_GPU
const char* transposed_can_implement(const gptq_problem& p) {
  return gptq_gpu_transposed_unsupported(&p, GPTQ_GPU_KERNEL_TRANSPOSED);
}
const char* transposed_mma_can_implement(const gptq_problem& p) {
  return gptq_gpu_transposed_unsupported(&p, GPTQ_GPU_KERNEL_TRANSPOSED_MMA);
}
// mma.sync exists in NVIDIA builds only (compat.h); a HIP build does not list the kernel.
bool transposed_mma_compiled() { return gptq_gpu_transposed_mma_compiled() != 0; }
#else
bool transposed_mma_compiled() { return false; }
const char* transposed_can_implement(const gptq_problem&) { return "not in this build"; }
const char* transposed_mma_can_implement(const gptq_problem&) { return "not in this build"; }
#endif

const std::vector<KernelEntry> kTable = {
    {"cpu_c", KernelId::CpuC, kCpu, 0, kLayoutCheckpoint, kAllBits, AutoRange::BelowLargeM,
     "C99 CPU kernel, fp32 accumulation", &any_problem},
    {"exllama", KernelId::Exllama, kGpu, kLayoutCheckpoint, 0, kAllBits, AutoRange::BelowLargeM,
     "GPU baseline: exllama decomposition, split-K with a fixed-order reduce", &any_problem},
    // Before "transposed": auto takes the first entry that can run the problem.
    {"transposed_mma", KernelId::TransposedMma, kGpu, kLayoutTiled, 0, kTiledBits,
     AutoRange::BelowLargeM,
     "GPU decode kernel on the tiled layout with the inner product on NVIDIA tensor cores "
     "(mma.sync): one weight pass, M <= 8 at the cost of M = 1",
     &transposed_mma_can_implement, &transposed_mma_compiled},
    {"transposed", KernelId::Transposed, kGpu, kLayoutTiled, 0, kTiledBits, AutoRange::BelowLargeM,
     "GPU decode kernel on the tiled layout: one weight pass for every M, in-launch "
     "split-K reduction, inner product on the vector units (v_dot2 on gfx908)",
     &transposed_can_implement},
    {"dequant_matmul", KernelId::DequantMatmul, kCpu | kGpu, kLayoutCheckpoint | kLayoutTiled,
     kLayoutCheckpoint, kAllBits, AutoRange::FromLargeM, "dequantize to the activation dtype, then torch's matmul",
     &any_problem},
};

bool bit_set(unsigned mask, int64_t v) { return v >= 0 && v < 32 && (mask >> v) & 1u; }

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}

std::vector<std::string> all_names() {
  std::vector<std::string> v = {"auto"};
  for (const auto& e : kTable) v.push_back(e.name);
  return v;
}

std::atomic<unsigned> g_excluded[2] = {{0u}, {0u}};  // bit (1 << KernelId) per backend
std::atomic<int> g_fault{static_cast<int>(KernelId::Count)};

}  // namespace

const std::vector<KernelEntry>& kernel_table() { return kTable; }

void set_kernel_excluded(BackendKind backend, KernelId id, bool excluded) {
  const unsigned bit = 1u << static_cast<int>(id);
  auto& mask = g_excluded[static_cast<int>(backend)];
  if (excluded) mask.fetch_or(bit);
  else mask.fetch_and(~bit);
}

bool kernel_excluded(BackendKind backend, KernelId id) {
  return (g_excluded[static_cast<int>(backend)].load(std::memory_order_relaxed) >>
          static_cast<int>(id)) & 1u;
}

void set_fault_kernel(KernelId id) { g_fault.store(static_cast<int>(id)); }

KernelId fault_kernel() { return static_cast<KernelId>(g_fault.load(std::memory_order_relaxed)); }

const KernelEntry* find_kernel(const std::string& name) {
  for (const auto& e : kTable)
    if (name == e.name) return &e;
  return nullptr;
}

const KernelEntry& kernel_entry(KernelId id) { return kTable[static_cast<int>(id)]; }

const char* layout_name(int64_t layout) {
  return layout == GPTQ_LAYOUT_CHECKPOINT ? "checkpoint"
         : layout == GPTQ_LAYOUT_TILED    ? "tiled"
                                          : "unknown";
}

bool kernel_in_build(const KernelEntry& e, BackendKind backend) {
  if (!bit_set(e.backends, static_cast<int>(backend))) return false;
  if (e.compiled && !e.compiled()) return false;
#ifdef GPTQ_MI100_WITH_GPU
  return true;
#else
  return backend == BackendKind::Cpu;
#endif
}

bool reads_layout(const KernelEntry& e, BackendKind backend, int64_t layout) {
  return bit_set(backend == BackendKind::Cpu ? e.cpu_layouts : e.layouts, layout);
}

static int64_t first_layout(const KernelEntry& e, BackendKind backend) {
  const unsigned m = backend == BackendKind::Cpu ? e.cpu_layouts : e.layouts;
  return m ? __builtin_ctz(m) : 0;
}

BackendKind backend_of(const at::Device& device) {
  return device.is_cuda() ? BackendKind::Gpu : BackendKind::Cpu;
}

const char* device_type_name(BackendKind backend) {
  return backend == BackendKind::Gpu ? "cuda" : "cpu";
}

std::vector<std::string> kernel_names_for(BackendKind backend) {
  std::vector<std::string> v = {"auto"};
  for (const auto& e : kTable)
    if (kernel_in_build(e, backend)) v.push_back(e.name);
  return v;
}

const std::string& process_default_kernel() {
  // Read once: the process default must not change under a captured graph.
  static const std::string name = [] {
    const char* env = std::getenv("GPTQ_MI100_KERNEL");
    std::string v = env ? env : "auto";
    const auto all = all_names();
    for (const auto& n : all)
      if (n == v) return v;
    GPTQ_CHECK_VALUE(false, "GPTQ_MI100_KERNEL must be one of ", join(all), ", got '", v, "'");
  }();
  return name;
}

int64_t large_m_threshold(BackendKind backend, int64_t bits) {
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
  if (backend == BackendKind::Cpu) return kCpuLargeM;
#ifdef GPTQ_MI100_WITH_GPU
  return gptq_gpu_large_m_threshold(static_cast<int>(bits));
#else
  (void)bits;
  GPTQ_CHECK(false, "this gptq_mi100 build has no GPU support");
#endif
}

// The layout prepare / gptq_shuffle produce by default: layout 2 wherever a kernel of this
// build that reads it can run the shape (the table's order: transposed_mma first).
// NVIDIA: transposed_mma beat exllama at every decode M on the H200
// (benchmarks/results/nvidia-h200-issue10/). gfx908: `transposed`, reasoned, not measured:
// per 4-bit pair one v_and_or + one v_pk_add + one v_dot2 per row, at <= 64 VGPRs (4 waves
// per SIMD), against exllama's 92-128 VGPRs (2 waves); it lost to exllama only on NVIDIA,
// where no fp32-accumulating dot2 exists (4 converts + 2 FMAs per pair per row).
int64_t preferred_layout(BackendKind backend, int64_t bits, int64_t k, int64_t n) {
  gptq_problem p{};
  p.bits = static_cast<int>(bits);
  p.k = k;
  p.n = n;
  p.group_size = 16;  // the layout itself does not depend on groups
  for (const auto& e : kTable)
    if (kernel_in_build(e, backend) && !kernel_excluded(backend, e.id) &&
        reads_layout(e, backend, GPTQ_LAYOUT_TILED) && e.auto_range == AutoRange::BelowLargeM &&
        !e.can_implement(p))
      return GPTQ_LAYOUT_TILED;
  return GPTQ_LAYOUT_CHECKPOINT;
}

void check_layout(const char* op, BackendKind backend, int64_t layout, int64_t bits) {
  check_bits(op, bits);
  GPTQ_CHECK_VALUE(layout == GPTQ_LAYOUT_CHECKPOINT || layout == GPTQ_LAYOUT_TILED, op,
                   ": unknown weight layout ", layout, " (known: 1 checkpoint, 2 tiled); run ",
                   "gptq_mi100.prepare() on the checkpoint tensors again");
  GPTQ_CHECK_VALUE(layout != GPTQ_LAYOUT_TILED || bits == 2 || bits == 4 || bits == 8, op,
                   ": the tiled layout exists for bits 2, 4 and 8, got bits=", bits);
  bool readable = false;
  for (const auto& e : kTable)
    readable = readable || (kernel_in_build(e, backend) && reads_layout(e, backend, layout));
  GPTQ_CHECK_VALUE(readable, op, ": no ", device_type_name(backend), " kernel of this build ",
                   "reads layout ", layout, " (", layout_name(layout), ")");
}

const KernelEntry& choose_kernel(const char* op, const c10::optional<c10::string_view>& requested,
                                 BackendKind backend, int64_t layout, const gptq_problem& p) {
  const auto valid = kernel_names_for(backend);
  std::string name = requested.has_value() ? std::string(*requested) : process_default_kernel();
  bool known = false;
  for (const auto& v : valid) known = known || v == name;
  if (!requested.has_value() && !known) name = "auto";  // a default for the other device
  GPTQ_CHECK_VALUE(known || name == "auto", op, ": kernel must be one of ", join(valid), " for ",
                   device_type_name(backend), " tensors, got '", name, "'");

  if (name != "auto") {
    for (const auto& e : kTable) {
      if (name != e.name) continue;
      const int64_t reads = first_layout(e, backend);
      GPTQ_CHECK_VALUE(reads_layout(e, backend, layout), op, ": kernel '", e.name,
                       "' reads layout ", reads, " (", layout_name(reads),
                       ") but the weight is in layout ", layout, " (", layout_name(layout),
                       "); prepare it with layout=", reads, " or choose another kernel");
      GPTQ_CHECK_VALUE(bit_set(e.bits, p.bits), op, ": kernel '", e.name,
                       "' does not cover bits=", p.bits);
      GPTQ_CHECK_VALUE(!kernel_excluded(backend, e.id), op, ": kernel '", e.name,
                       "' gave wrong results in this process's load-time self-check on ",
                       device_type_name(backend), " and is disabled; run `python -m ",
                       "gptq_mi100 selftest` and report its table");
      const char* why = e.can_implement(p);
      GPTQ_CHECK_VALUE(why == nullptr, op, ": kernel '", e.name, "' cannot run this problem: ",
                       why ? why : "");
      return e;
    }
  }
  const AutoRange range = p.m >= large_m_threshold(backend, p.bits) ? AutoRange::FromLargeM
                                                                     : AutoRange::BelowLargeM;
  const KernelEntry* fallback = nullptr;
  for (const auto& e : kTable) {
    if (!kernel_in_build(e, backend) || kernel_excluded(backend, e.id) ||
        !reads_layout(e, backend, layout) || !bit_set(e.bits, p.bits) ||
        e.can_implement(p) != nullptr)
      continue;
    if (e.auto_range == range) return e;
    if (!fallback) fallback = &e;
  }
  GPTQ_CHECK(fallback != nullptr, op, ": no ", device_type_name(backend), " kernel reads layout ",
             layout, " at bits=", p.bits, " (or every one failed the load-time self-check)");
  return *fallback;
}

}  // namespace gptq_mi100

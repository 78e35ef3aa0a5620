// The kernel table and the rules that choose among its entries.
#include "kernel_registry.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>

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
template <gptq_gpu_kernel K>
const char* layout2_can_implement(const gptq_problem& p) {
  return gptq_gpu_transposed_unsupported(&p, K);
}
template <gptq_gpu_kernel K>
const char* layout2_tile_unsupported(const TileChoice& t) {
  gptq_gpu_tile g{t.mt, t.splits, t.load, t.kslices, t.sw};
  return gptq_gpu_tile_unsupported(K, &g);
}
template <gptq_gpu_kernel K>
const char* layout2_tile_problem_unsupported(const TileChoice& t, const gptq_problem& p) {
  gptq_gpu_tile g{t.mt, t.splits, t.load, t.kslices, t.sw};
  return gptq_gpu_tile_problem_unsupported(&p, K, &g);
}
// Matrix instructions: mma.sync on NVIDIA, MFMA on gfx908 (compat.h's islands).
bool transposed_mma_compiled() { return gptq_gpu_transposed_mma_compiled() != 0; }
int64_t transposed_mma_auto_min_m() { return gptq_gpu_mma_auto_min_m(); }
#define GPTQ_LAYOUT2(K) &layout2_can_implement<K>
#define GPTQ_LAYOUT2_TILES(K) &layout2_tile_unsupported<K>
#define GPTQ_LAYOUT2_TILE_PROBLEM(K) &layout2_tile_problem_unsupported<K>
#else
bool transposed_mma_compiled() { return false; }
int64_t transposed_mma_auto_min_m() { return 1; }
const char* not_in_build(const gptq_problem&) { return "not in this build"; }
const char* tiles_not_in_build(const TileChoice&) { return "not in this build"; }
#define GPTQ_LAYOUT2(K) &not_in_build
#define GPTQ_LAYOUT2_TILES(K) &tiles_not_in_build
#define GPTQ_LAYOUT2_TILE_PROBLEM(K) nullptr
#endif

// Tile values the tuner tries; the launchers accept any value their checks allow.
#define GPTQ_SPLITS "splits=1,2,4,8,16,32"

const std::vector<KernelEntry> kTable = {
    {"cpu_c", KernelId::CpuC, kCpu, 0, kLayoutCheckpoint, kAllBits, AutoRange::BelowLargeM,
     "C99 CPU kernel, fp32 accumulation", &any_problem},
    {"exllama", KernelId::Exllama, kGpu, kLayoutCheckpoint, 0, kAllBits, AutoRange::BelowLargeM,
     "GPU baseline: exllama decomposition, split-K with a fixed-order reduce", &any_problem},
    // Before "transposed": auto takes the first entry that can run the problem.
    {"transposed_mma", KernelId::TransposedMma, kGpu, kLayoutTiled, 0, kTiledBits,
     AutoRange::BelowLargeM,
     "GPU kernel on the tiled layout with the inner product on matrix instructions "
     "(mma.sync m16n8k16 on NVIDIA, v_mfma_f32_16x16x16f16 on gfx908): one weight pass for "
     "M <= 64 on NVIDIA (row tiles 8, 16, 32, 64), per 16 rows on gfx908; M <= 8 (NVIDIA) / "
     "16 (gfx908) at the cost of M = 1",
     GPTQ_LAYOUT2(GPTQ_GPU_KERNEL_TRANSPOSED_MMA), &transposed_mma_compiled,
     "mt=8,16,32,64;" GPTQ_SPLITS ";kslices=1,2,4,8,16;sw=1,2,4", GPTQ_LAYOUT2_TILES(GPTQ_GPU_KERNEL_TRANSPOSED_MMA),
     &transposed_mma_auto_min_m, GPTQ_LAYOUT2_TILE_PROBLEM(GPTQ_GPU_KERNEL_TRANSPOSED_MMA)},
    {"transposed", KernelId::Transposed, kGpu, kLayoutTiled, 0, kTiledBits, AutoRange::BelowLargeM,
     "GPU decode kernel on the tiled layout: one weight pass for every M, in-launch "
     "split-K reduction, inner product on the vector units (v_dot2 on gfx908)",
     GPTQ_LAYOUT2(GPTQ_GPU_KERNEL_TRANSPOSED), nullptr, "mt=1,2,4,8,16;" GPTQ_SPLITS,
     GPTQ_LAYOUT2_TILES(GPTQ_GPU_KERNEL_TRANSPOSED)},
    // The planned variants of `transposed` (issue 12): after it, so auto reaches them only
    // through the tuned table (or when the ones before are excluded or cannot run).
    {"vectorized", KernelId::Vectorized, kGpu, kLayoutTiled, 0, kTiledBits, AutoRange::BelowLargeM,
     "transposed with weight loads of a chosen width per lane (load=8: two 64-bit loads, "
     "load=16: one 128-bit load)",
     GPTQ_LAYOUT2(GPTQ_GPU_KERNEL_VECTORIZED), nullptr, "load=8,16;mt=1,2,4,8;" GPTQ_SPLITS,
     GPTQ_LAYOUT2_TILES(GPTQ_GPU_KERNEL_VECTORIZED)},
    {"coalesced", KernelId::Coalesced, kGpu, kLayoutTiled, 0, kTiledBits, AutoRange::BelowLargeM,
     "transposed with each block's weight tiles staged through shared memory (LDS) by "
     "wave-contiguous loads, then read by the lanes that multiply them",
     GPTQ_LAYOUT2(GPTQ_GPU_KERNEL_COALESCED), nullptr, "mt=1,2,4,8;" GPTQ_SPLITS,
     GPTQ_LAYOUT2_TILES(GPTQ_GPU_KERNEL_COALESCED)},
    {"warp_shuffle", KernelId::WarpShuffle, kGpu, kLayoutTiled, 0, kTiledBits,
     AutoRange::BelowLargeM,
     "transposed with activations broadcast and partial sums reduced by cross-lane "
     "shuffles (ds_bpermute on gfx908) instead of shared memory",
     GPTQ_LAYOUT2(GPTQ_GPU_KERNEL_WARP_SHUFFLE), nullptr, "mt=1,2,4,8;" GPTQ_SPLITS,
     GPTQ_LAYOUT2_TILES(GPTQ_GPU_KERNEL_WARP_SHUFFLE)},
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

// Per backend, replaced whole at load / prepare time, read per call without a lock held
// across the read (std::atomic_load of the snapshot).
struct ParsedRow {
  TunedRow row;
  KernelChoice choice;
};
using TunedSnapshot = std::shared_ptr<const std::vector<ParsedRow>>;
TunedSnapshot g_tuned[2];

// The keys an entry's tile string names ("mt=1,2;splits=1" -> mt, splits).
std::vector<std::string> tile_keys(const KernelEntry& e) {
  std::vector<std::string> keys;
  std::string t = e.tiles;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t end = t.find(';', pos);
    if (end == std::string::npos) end = t.size();
    keys.push_back(t.substr(pos, t.find('=', pos) - pos));
    pos = end + 1;
  }
  return keys;
}

}  // namespace

KernelChoice parse_kernel_spec(const char* op, const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  KernelChoice c{find_kernel(name), TileChoice{}};
  if (!c.entry || colon == std::string::npos) return c;
  const auto keys = tile_keys(*c.entry);
  GPTQ_CHECK_VALUE(!keys.empty(), op, ": kernel '", name, "' takes no tile parameters, got '",
                   spec, "'");
  std::string rest = spec.substr(colon + 1);
  size_t pos = 0;
  GPTQ_CHECK_VALUE(!rest.empty(), op, ": kernel spec '", spec, "' has no tile after ':'");
  while (pos <= rest.size()) {
    size_t end = rest.find(',', pos);
    if (end == std::string::npos) end = rest.size();
    const std::string item = rest.substr(pos, end - pos);
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    bool known = false;
    for (const auto& k : keys) known = known || k == key;
    GPTQ_CHECK_VALUE(eq != std::string::npos && known, op, ": kernel '", name,
                     "' takes tile parameters ", c.entry->tiles, " (key=value, comma-separated), got '",
                     item, "' in '", spec, "'");
    const std::string text = item.substr(eq + 1);
    char* stop = nullptr;
    const long v = std::strtol(text.c_str(), &stop, 10);
    GPTQ_CHECK_VALUE(!text.empty() && *stop == '\0' && v >= 1 && v <= 65535, op, ": tile ", key,
                     " of kernel '", name, "' must be a positive integer, got '", text, "'");
    *c.tile.field(key) = static_cast<int>(v);
    pos = end + 1;
  }
  const char* why = c.entry->tile_unsupported ? c.entry->tile_unsupported(c.tile) : nullptr;
  GPTQ_CHECK_VALUE(why == nullptr, op, ": kernel spec '", spec, "': ", why ? why : "");
  return c;
}

void set_tuned_rows(BackendKind backend, const std::vector<TunedRow>& rows) {
  auto parsed = std::make_shared<std::vector<ParsedRow>>();
  for (const auto& r : rows) {
    GPTQ_CHECK_VALUE(r.bits == 2 || r.bits == 3 || r.bits == 4 || r.bits == 8,
                     "set_tuned_table: bits must be 2, 3, 4 or 8, got ", r.bits);
    GPTQ_CHECK_VALUE(r.k > 0 && r.n > 0 && r.m_lo >= 1 && r.m_hi >= r.m_lo,
                     "set_tuned_table: need k, n > 0 and 1 <= m_lo <= m_hi, got k=", r.k, " n=",
                     r.n, " m_lo=", r.m_lo, " m_hi=", r.m_hi);
    const KernelChoice c = parse_kernel_spec("set_tuned_table", r.spec);
    GPTQ_CHECK_VALUE(c.entry && bit_set(c.entry->backends, static_cast<int>(backend)),
                     "set_tuned_table: '", r.spec, "' names no ", device_type_name(backend),
                     " kernel");
    parsed->push_back({r, c});
  }
  std::atomic_store(&g_tuned[static_cast<int>(backend)], TunedSnapshot(std::move(parsed)));
}

std::vector<TunedRow> tuned_rows(BackendKind backend) {
  std::vector<TunedRow> v;
  const TunedSnapshot snap = std::atomic_load(&g_tuned[static_cast<int>(backend)]);
  if (snap)
    for (const auto& r : *snap) v.push_back(r.row);
  return v;
}

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

int64_t auto_min_m(const KernelEntry& e) { return e.auto_min_m ? e.auto_min_m() : 1; }

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
    GPTQ_CHECK_VALUE(parse_kernel_spec("GPTQ_MI100_KERNEL", v).entry != nullptr,
                     "GPTQ_MI100_KERNEL must be one of ", join(all),
                     " (optionally with tiles, name:key=value,...), got '", v, "'");
    return v;
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

// Whether `auto` may run entry e on p in `layout` (build, self-check, layout, bits, shape).
static bool auto_can_run(const KernelEntry& e, BackendKind backend, int64_t layout,
                         const gptq_problem& p) {
  return kernel_in_build(e, backend) && !kernel_excluded(backend, e.id) &&
         reads_layout(e, backend, layout) && bit_set(e.bits, p.bits) && e.can_implement(p) == nullptr;
}

KernelChoice choose_kernel(const char* op, const c10::optional<c10::string_view>& requested,
                           BackendKind backend, int64_t layout, const gptq_problem& p) {
  const auto valid = kernel_names_for(backend);
  std::string spec = requested.has_value() ? std::string(*requested) : process_default_kernel();
  const std::string name = spec.substr(0, spec.find(':'));
  bool known = false;
  for (const auto& v : valid) known = known || v == name;
  if (!requested.has_value() && !known) spec = "auto";  // a default for the other device
  GPTQ_CHECK_VALUE(known || spec == "auto", op, ": kernel must be one of ", join(valid), " for ",
                   device_type_name(backend), " tensors, got '",
                   spec, "' (a name, optionally with tiles: name:key=value,...)");

  if (spec != "auto" && !requested.has_value()) {
    // The process default is a preference: where its kernel cannot run this weight (layout,
    // bits, shape, self-check) auto decides; a kernel asked for per call must run or raise.
    const KernelChoice c = parse_kernel_spec(op, spec);
    if (!auto_can_run(*c.entry, backend, layout, p)) spec = "auto";
  }
  if (spec != "auto") {
    const KernelChoice c = parse_kernel_spec(op, spec);
    const KernelEntry& e = *c.entry;
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
    why = e.tile_problem_unsupported ? e.tile_problem_unsupported(c.tile, p) : nullptr;
    GPTQ_CHECK_VALUE(why == nullptr, op, ": kernel spec '", spec, "' cannot run this problem: ", why ? why : "");
    return c;
  }
  // The tuned table first (rows were validated when installed).
  const TunedSnapshot tuned = std::atomic_load(&g_tuned[static_cast<int>(backend)]);
  if (tuned)
    for (const auto& r : *tuned)
      if (r.row.bits == p.bits && r.row.k == p.k && r.row.n == p.n && r.row.m_lo <= p.m &&
          p.m <= r.row.m_hi && auto_can_run(*r.choice.entry, backend, layout, p) &&
          !(r.choice.entry->tile_problem_unsupported && r.choice.entry->tile_problem_unsupported(r.choice.tile, p)))
        return r.choice;
  const AutoRange range = p.m >= large_m_threshold(backend, p.bits) ? AutoRange::FromLargeM
                                                                     : AutoRange::BelowLargeM;
  const KernelEntry* fallback = nullptr;
  for (const auto& e : kTable) {
    if (!auto_can_run(e, backend, layout, p)) continue;
    if (e.auto_range == range && p.m >= auto_min_m(e)) return {&e, TileChoice{}};
    if (!fallback) fallback = &e;
  }
  GPTQ_CHECK(fallback != nullptr, op, ": no ", device_type_name(backend), " kernel reads layout ",
             layout, " at bits=", p.bits, " (or every one failed the load-time self-check)");
  return {fallback, TileChoice{}};
}

}  // namespace gptq_mi100

// Counters and introspection: everything Python asks the C++ side, in one place.
#include "introspection.h"

#include <array>
#include <atomic>
#include <cstdlib>

#include "errors.h"
#include "validate.h"

#ifdef GPTQ_MI100_WITH_GPU
#include "../gpu/gptq_gpu.h"
#endif

#ifndef GPTQ_MI100_TORCH_VERSION
#define GPTQ_MI100_TORCH_VERSION "unknown"
#endif
#ifndef GPTQ_MI100_BACKEND
#define GPTQ_MI100_BACKEND "cpu"
#endif

namespace gptq_mi100 {

namespace {

std::array<std::atomic<int64_t>, static_cast<int>(KernelId::Count)> g_kernel_counts{};
std::atomic<int64_t> g_cpu_index_errors{0};

BackendKind parse_device_type(const char* op, const std::string& device_type) {
  if (device_type == "cpu") return BackendKind::Cpu;
  GPTQ_CHECK_VALUE(device_type == "cuda", op, ": device_type must be 'cpu' or 'cuda', got '",
                   device_type, "'");
  return BackendKind::Gpu;
}

std::string join_bits(unsigned mask) {
  std::string s;
  for (int b = 0; b < 32; ++b)
    if ((mask >> b) & 1u) s += (s.empty() ? "" : ",") + std::to_string(b);
  return s;
}

// The entry's tile candidates as "key=v,v|key=v", keeping only the values this build's
// kernel accepts (e.g. no 8-row tile for gfx908's 16-row MFMA).
std::string tiles_in_build(const KernelEntry& e, BackendKind backend) {
  std::string out, t = e.tiles;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t end = t.find(';', pos);
    if (end == std::string::npos) end = t.size();
    const std::string item = t.substr(pos, end - pos), key = item.substr(0, item.find('='));
    std::string values;
    size_t v = item.find('=') + 1;
    while (v <= item.size()) {
      size_t comma = item.find(',', v);
      if (comma == std::string::npos) comma = item.size();
      const std::string value = item.substr(v, comma - v);
      TileChoice tc;
      if (int* f = tc.field(key)) *f = std::atoi(value.c_str());
      if (!kernel_in_build(e, backend) || !e.tile_unsupported || !e.tile_unsupported(tc))
        values += (values.empty() ? "" : ",") + value;
      v = comma + 1;
    }
    out += (out.empty() ? "" : "|") + key + "=" + values;
    pos = end + 1;
  }
  return out;
}

}  // namespace

void count_kernel(KernelId id) { g_kernel_counts[static_cast<int>(id)].fetch_add(1); }

void add_cpu_index_errors(int64_t count) {
  if (count) g_cpu_index_errors.fetch_add(count);
}

std::string build_info() {
  std::string s = msg("torch ", GPTQ_MI100_TORCH_VERSION, "; backend ", GPTQ_MI100_BACKEND);
#ifdef GPTQ_MI100_WITH_GPU
  s += msg("; ", gptq_gpu_arch_config());
#endif
  return s;
}

std::vector<int64_t> path_counts() {
  std::vector<int64_t> v;
  for (auto& c : g_kernel_counts) v.push_back(c.load());
  return v;
}

void reset_path_counts() {
  for (auto& c : g_kernel_counts) c.store(0);
}

std::vector<std::string> kernel_table_rows(const std::string& device_type) {
  const BackendKind backend = parse_device_type("kernel_table", device_type);
  static const char* kRange[] = {"below_large_m", "from_large_m", "never"};
  std::vector<std::string> rows;
  for (const auto& e : kernel_table()) {
    std::string backends = (e.backends & 1u) ? "cpu" : "";
    if (e.backends & 2u) backends += backends.empty() ? "cuda" : ",cuda";
    const std::string tiles = tiles_in_build(e, backend);
    rows.push_back(msg(e.name, ";", backends, ";",
                       join_bits(backend == BackendKind::Cpu ? e.cpu_layouts : e.layouts), ";",
                       join_bits(e.bits), ";", kRange[static_cast<int>(e.auto_range)], ";",
                       kernel_in_build(e, backend) ? "1" : "0", ";", tiles, ";",
                       kernel_in_build(e, backend) ? auto_min_m(e) : 1, ";", e.summary));
  }
  return rows;
}

std::vector<std::string> kernel_names(const std::string& device_type) {
  return kernel_names_for(parse_device_type("kernel_names", device_type));
}

std::string default_kernel() { return process_default_kernel(); }

int64_t large_m_threshold_for(const std::string& device_type, int64_t bits) {
  check_bits("large_m_threshold", bits);
  return large_m_threshold(parse_device_type("large_m_threshold", device_type), bits);
}

int64_t preferred_layout_for(const std::string& device_type, int64_t bits, int64_t k, int64_t n) {
  check_bits("preferred_layout", bits);
  return preferred_layout(parse_device_type("preferred_layout", device_type), bits, k, n);
}

int64_t take_index_errors(const std::string& device_type, int64_t device_index) {
  if (parse_device_type("take_index_errors", device_type) == BackendKind::Cpu)
    return g_cpu_index_errors.exchange(0);
#ifdef GPTQ_MI100_WITH_GPU
  int64_t count = 0;
  gptq_problem none{};
  check_status("take_index_errors",
               gptq_gpu_take_index_errors(static_cast<int>(device_index), &count), &none);
  return count;
#else
  (void)device_index;
  GPTQ_CHECK(false, "this gptq_mi100 build has no GPU support");
#endif
}

static const KernelEntry& named_kernel(const char* op, const std::string& kernel) {
  const KernelEntry* e = find_kernel(kernel);
  if (!e) {
    std::string names;
    for (const auto& k : kernel_table()) names += (names.empty() ? "" : ", ") + std::string(k.name);
    GPTQ_CHECK_VALUE(false, op, ": kernel must be one of ", names, ", got '", kernel, "'");
  }
  return *e;
}

void set_kernel_excluded_op(const std::string& device_type, const std::string& kernel, bool excluded) {
  const BackendKind backend = parse_device_type("set_kernel_excluded", device_type);
  set_kernel_excluded(backend, named_kernel("set_kernel_excluded", kernel).id, excluded);
}

std::vector<std::string> excluded_kernels(const std::string& device_type) {
  const BackendKind backend = parse_device_type("excluded_kernels", device_type);
  std::vector<std::string> v;
  for (const auto& e : kernel_table())
    if (kernel_excluded(backend, e.id)) v.push_back(e.name);
  return v;
}

void check_kernel_spec(const std::string& device_type, const std::string& spec) {
  const BackendKind backend = parse_device_type("check_kernel_spec", device_type);
  if (spec == "auto") return;
  const KernelChoice c = parse_kernel_spec("gemm", spec);
  std::string names;
  for (const auto& n : kernel_names_for(backend)) names += (names.empty() ? "" : ", ") + n;
  bool known = false;
  for (const auto& n : kernel_names_for(backend)) known = known || (c.entry && n == c.entry->name);
  GPTQ_CHECK_VALUE(known, "gemm: kernel must be one of ", names, " for ", device_type,
                   " tensors, got '", spec, "' (a name, optionally with tiles: name:key=value,...)");
}

void set_tuned_table(const std::string& device_type, const std::vector<std::string>& rows) {
  const BackendKind backend = parse_device_type("set_tuned_table", device_type);
  std::vector<TunedRow> parsed;
  for (const auto& line : rows) {
    TunedRow r{};
    int64_t* fields[] = {&r.bits, &r.k, &r.n, &r.m_lo, &r.m_hi};
    size_t pos = 0;
    bool ok = true;
    for (int64_t* f : fields) {
      const size_t end = line.find(';', pos);
      ok = ok && end != std::string::npos;
      if (!ok) break;
      const std::string text = line.substr(pos, end - pos);
      char* stop = nullptr;
      *f = std::strtoll(text.c_str(), &stop, 10);
      ok = !text.empty() && *stop == '\0';
      pos = end + 1;
    }
    GPTQ_CHECK_VALUE(ok && pos < line.size(), "set_tuned_table: a row must be "
                     "'bits;k;n;m_lo;m_hi;kernel_spec', got '", line, "'");
    r.spec = line.substr(pos);
    parsed.push_back(r);
  }
  set_tuned_rows(backend, parsed);
}

std::vector<std::string> tuned_table(const std::string& device_type) {
  std::vector<std::string> v;
  for (const auto& r : tuned_rows(parse_device_type("tuned_table", device_type)))
    v.push_back(msg(r.bits, ";", r.k, ";", r.n, ";", r.m_lo, ";", r.m_hi, ";", r.spec));
  return v;
}

void inject_fault(const std::string& kernel) {
  set_fault_kernel(kernel.empty() ? KernelId::Count : named_kernel("_inject_fault", kernel).id);
}

}  // namespace gptq_mi100

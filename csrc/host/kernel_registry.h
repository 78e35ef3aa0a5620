// The kernel registry: one table of every GEMM kernel of every backend, and the rules
// that choose among them. Kernel names, the layout each reads, the bits it covers, the
// M it serves under "auto", GPTQ_MI100_KERNEL's parsing and the large-M threshold live
// here and nowhere else; Python asks through the introspection ops (kernel_table, ...).
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "../gptq_kernels.h"

namespace gptq_mi100 {

enum class BackendKind : int { Cpu = 0, Gpu = 1 };

// Index into the registry table (and into path_counts()).
enum class KernelId : int {
  CpuC = 0,
  Exllama = 1,
  TransposedMma = 2,
  Transposed = 3,
  Vectorized = 4,
  Coalesced = 5,
  WarpShuffle = 6,
  DequantMatmul = 7,
  Count = 8
};

// Which M "auto" sends to a kernel: native kernels below the large-M threshold,
// dequantize + matmul at or above it.
enum class AutoRange : int { BelowLargeM = 0, FromLargeM = 1, Never = 2 };

// Tile choices of one call, from a kernel spec "name:mt=4,splits=8,load=8" (0 = the
// launcher's own plan). GPU launchers take them as gptq_gpu_tile (csrc/gpu/gptq_gpu.h).
struct TileChoice {
  int mt = 0;       // activation rows per weight pass
  int splits = 0;   // K splits of the launch
  int load = 0;     // bytes per lane per weight load (vectorized)
  int kslices = 0;  // waves per strip, each a slice of a split's K tiles (transposed_mma)
  int sw = 0;       // strips per wave of the wide row tiles (transposed_mma)
  // The field a spec key names ("mt", "splits", "load", "kslices", "sw"); nullptr for another key.
  int* field(const std::string& key) {
    return key == "mt" ? &mt : key == "splits" ? &splits : key == "load" ? &load : key == "kslices" ? &kslices
           : key == "sw" ? &sw : nullptr;
  }
};

struct KernelEntry {
  const char* name;
  KernelId id;
  unsigned backends;  // bit (1 << BackendKind)
  unsigned layouts;   // bit (1 << layout version) of each layout it reads on the GPU
  unsigned cpu_layouts;  // the same on the CPU (CPU kernels read layout 1 only)
  unsigned bits;      // bit (1 << bits) of each bit width it covers
  AutoRange auto_range;
  const char* summary;
  // nullptr when the kernel can run p (shapes already validated), else the reason.
  const char* (*can_implement)(const gptq_problem& p);
  // Whether this build compiled the kernel (nullptr: whenever its backend is built).
  bool (*compiled)() = nullptr;
  // Tile keys it takes, each with the values the tuner tries ("mt=1,2;splits=1,2,4"); ""
  // for none. A spec may give any value its kernel accepts (tile_unsupported).
  const char* tiles = "";
  // nullptr when the kernel accepts the tile, else the reason.
  const char* (*tile_unsupported)(const TileChoice& t) = nullptr;
  // Smallest M the built-in auto rule gives it on this build (nullptr: 1). The tuned
  // table and explicit choices are not bound by it.
  int64_t (*auto_min_m)() = nullptr;
  // nullptr when the tile can run p (tile and p each valid alone), else the reason.
  const char* (*tile_problem_unsupported)(const TileChoice& t, const gptq_problem& p) = nullptr;
};
int64_t auto_min_m(const KernelEntry& e);

// A kernel with its tile choices.
struct KernelChoice {
  const KernelEntry* entry;
  TileChoice tile;
};

// "name" or "name:key=value,...": the entry and validated tiles (ValueError naming `op`,
// the kernel and what is allowed). Unknown names: nullptr entry, for the caller's message.
KernelChoice parse_kernel_spec(const char* op, const std::string& spec);

// Tuned table (gptq_mi100/tuner.py, installed at load / prepare time, read per call): under
// "auto", the first row matching (bits, K, N, m_lo <= M <= m_hi) whose kernel can run the
// problem on the weight's layout wins over the built-in rule.
struct TunedRow {
  int64_t bits, k, n, m_lo, m_hi;
  std::string spec;
};
void set_tuned_rows(BackendKind backend, const std::vector<TunedRow>& rows);  // validates
std::vector<TunedRow> tuned_rows(BackendKind backend);

const std::vector<KernelEntry>& kernel_table();  // in KernelId order
const KernelEntry& kernel_entry(KernelId id);
const char* layout_name(int64_t layout);         // "checkpoint", "tiled"
bool kernel_in_build(const KernelEntry& e, BackendKind backend);
bool reads_layout(const KernelEntry& e, BackendKind backend, int64_t layout);
BackendKind backend_of(const at::Device& device);
const char* device_type_name(BackendKind backend);  // "cpu" / "cuda"

// "auto" plus the kernels of this backend in the build, in preference order.
std::vector<std::string> kernel_names_for(BackendKind backend);
// GPTQ_MI100_KERNEL, validated once ("auto" when unset).
const std::string& process_default_kernel();
// Smallest M that "auto" sends to dequantize + matmul.
int64_t large_m_threshold(BackendKind backend, int64_t bits);
// The layout gptq_shuffle and prepare produce by default for this backend and shape.
int64_t preferred_layout(BackendKind backend, int64_t bits, int64_t k, int64_t n);
// Layout check of a prepared weight: known version, and one the backend's build reads.
void check_layout(const char* op, BackendKind backend, int64_t layout, int64_t bits);

// Load-time self-check results (gptq_mi100/selfcheck.py): a kernel that gave wrong results
// on this process's devices of a backend is skipped by auto and by preferred_layout, and
// refused when asked for by name. Set at load time, read per call (atomics).
void set_kernel_excluded(BackendKind backend, KernelId id, bool excluded);
bool kernel_excluded(BackendKind backend, KernelId id);
// Test hook for the self-check: the ops hand this kernel a zero offset off by one, so it
// returns wrong results on purpose (KernelId::Count: none).
void set_fault_kernel(KernelId id);
KernelId fault_kernel();
// The entry of that name (nullptr if none).
const KernelEntry* find_kernel(const std::string& name);

// requested: a kernel spec, or nullopt for the process default (a default naming
// another backend's kernel means auto). Explicit choices that cannot run p raise.
KernelChoice choose_kernel(const char* op, const c10::optional<c10::string_view>& requested,
                                 BackendKind backend, int64_t layout, const gptq_problem& p);

}  // namespace gptq_mi100

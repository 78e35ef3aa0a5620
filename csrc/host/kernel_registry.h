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
  DequantMatmul = 4,
  Count = 5
};

// Which M "auto" sends to a kernel: native kernels below the large-M threshold,
// dequantize + matmul at or above it.
enum class AutoRange : int { BelowLargeM = 0, FromLargeM = 1, Never = 2 };

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
};

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

// requested: a kernel name, or nullopt for the process default (a default naming
// another backend's kernel means auto). Explicit choices that cannot run p raise.
const KernelEntry& choose_kernel(const char* op, const c10::optional<c10::string_view>& requested,
                                 BackendKind backend, int64_t layout, const gptq_problem& p);

}  // namespace gptq_mi100

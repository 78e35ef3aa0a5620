// Process-wide counters and the tensor-free introspection ops (registered once for every
// backend in ops_schema.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernel_registry.h"

namespace gptq_mi100 {

// Which kernel ran; counted per op call on the host (graph replays are not counted).
void count_kernel(KernelId id);
void add_cpu_index_errors(int64_t count);
std::string build_info();

// ---- the ops (schemas in ops_schema.cpp)
std::vector<int64_t> path_counts();  // KernelId order, as kernel_table()
void reset_path_counts();
// One line per registry entry:
// "name;backends;layouts;bits;auto_range;in_build;tiles;auto_min_m;summary"
// (tiles: "mt=1,2|splits=1,2", the tuner's candidate values per tile key)
std::vector<std::string> kernel_table_rows(const std::string& device_type);
std::vector<std::string> kernel_names(const std::string& device_type);
std::string default_kernel();
int64_t large_m_threshold_for(const std::string& device_type, int64_t bits);
int64_t preferred_layout_for(const std::string& device_type, int64_t bits, int64_t k, int64_t n);
int64_t take_index_errors(const std::string& device_type, int64_t device_index);
void set_kernel_excluded_op(const std::string& device_type, const std::string& kernel, bool excluded);
std::vector<std::string> excluded_kernels(const std::string& device_type);
void inject_fault(const std::string& kernel);  // "" clears
// Raises what gemm raises for this kernel spec on that device type (fake kernels).
void check_kernel_spec(const std::string& device_type, const std::string& spec);
// Tuned table rows "bits;k;n;m_lo;m_hi;spec" (kernel_registry.h, TunedRow).
void set_tuned_table(const std::string& device_type, const std::vector<std::string>& rows);
std::vector<std::string> tuned_table(const std::string& device_type);

}  // namespace gptq_mi100

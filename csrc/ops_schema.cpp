// Every schema of torch.ops.gptq_mi100 lives here; backends register implementations in
// their own TORCH_LIBRARY_IMPL blocks (csrc/cpu/ops_cpu.cpp, csrc/gpu/ops_gpu.cpp, both
// through host/op_impls.h), gptq_shuffle in Python (gptq_mi100/ops.py: its layout-2
// repack is torch code). Importing gptq_mi100._C runs these registrations.
#include <Python.h>

#include <torch/library.h>

#include "host/introspection.h"

extern "C" {
// No pybind11: an empty module whose import dlopens this library (abi3-compatible).
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1,
                                          nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(gptq_mi100, m) {
  // Prepared-weight GEMM. a [M, K] fp16/bf16; qweight int32 [K*bits/32, N] in `layout`
  // (1 checkpoint packing in kernel-row order, 2 tiled); a_perm / group_index int32 [K]
  // (csrc/gptq_kernels.h). kernel: a name from kernel_names(), optionally with tiles
  // ("vectorized:load=8,mt=4", kernel_registry.h), None = process default.
  m.def(
      "gemm(Tensor a, Tensor qweight, Tensor qzeros, Tensor scales, Tensor? a_perm, "
      "Tensor? group_index, int bits, int group_size, bool v2_zeros, int layout, "
      "str? kernel) -> Tensor");
  // Same, writing into a caller-provided out [M, N] (tests poison it first).
  m.def(
      "gemm_out(Tensor a, Tensor qweight, Tensor qzeros, Tensor scales, Tensor? a_perm, "
      "Tensor? group_index, int bits, int group_size, bool v2_zeros, int layout, "
      "str? kernel, Tensor(a!) out) -> ()");
  // Checkpoint tensors -> (qweight in kernel-row order (layout 1), a_perm, group_index),
  // the indices empty when not needed (decided by g_idx's values). Reads g_idx back to
  // the host to validate it: load time only. gptq_mi100.prepare builds layout 2 from it.
  m.def(
      "prepare(Tensor qweight, Tensor qzeros, Tensor scales, Tensor? g_idx, int bits) "
      "-> (Tensor, Tensor, Tensor)");
  // Prepared weight -> W [K, N] in checkpoint K order, dtype fp16 or bf16.
  m.def(
      "dequantize(Tensor qweight, Tensor qzeros, Tensor scales, Tensor? a_perm, "
      "Tensor? group_index, int bits, int group_size, bool v2_zeros, int layout, "
      "ScalarType dtype) -> Tensor");
  // Kernel rows reordered in place: q_weight row r <- row q_perm[r] (layout 1).
  m.def("shuffle_rows(Tensor(a!) q_weight, Tensor q_perm, int bit) -> ()");
  // vLLM drop-ins: vLLM's exact schemas and semantics (csrc/torch_bindings.cpp there).
  m.def(
      "gptq_gemm(Tensor a, Tensor b_q_weight, Tensor b_gptq_qzeros, Tensor b_gptq_scales, "
      "Tensor b_g_idx, bool use_exllama, bool use_v2_format, int bit) -> Tensor");
  m.def("gptq_shuffle(Tensor! q_weight, Tensor q_perm, int bit) -> ()");

  // Introspection, no tensors: implemented once for every backend (host/introspection.h).
  m.def("kernel_table(str device_type) -> str[]", &gptq_mi100::kernel_table_rows);
  m.def("kernel_names(str device_type) -> str[]", &gptq_mi100::kernel_names);
  m.def("default_kernel() -> str", &gptq_mi100::default_kernel);
  m.def("large_m_threshold(str device_type, int bits) -> int",
        &gptq_mi100::large_m_threshold_for);
  m.def("preferred_layout(str device_type, int bits, int k, int n) -> int",
        &gptq_mi100::preferred_layout_for);
  m.def("path_counts() -> int[]", &gptq_mi100::path_counts);
  m.def("reset_path_counts() -> ()", &gptq_mi100::reset_path_counts);
  m.def("take_index_errors(str device_type, int device_index) -> int",
        &gptq_mi100::take_index_errors);
  m.def("build_info() -> str", &gptq_mi100::build_info);
  // Load-time self-check (gptq_mi100/selfcheck.py): kernels auto must skip on a backend.
  m.def("set_kernel_excluded(str device_type, str kernel, bool excluded) -> ()",
        &gptq_mi100::set_kernel_excluded_op);
  m.def("excluded_kernels(str device_type) -> str[]", &gptq_mi100::excluded_kernels);
  m.def("check_kernel_spec(str device_type, str spec) -> ()", &gptq_mi100::check_kernel_spec);
  // Tuned table (gptq_mi100/tuner.py): rows "bits;k;n;m_lo;m_hi;kernel_spec" that auto
  // follows first; set at load / prepare time, never per call. [] clears.
  m.def("set_tuned_table(str device_type, str[] rows) -> ()", &gptq_mi100::set_tuned_table);
  m.def("tuned_table(str device_type) -> str[]", &gptq_mi100::tuned_table);
  // Test-only: the named kernel gets a wrong zero offset ("" clears).
  m.def("_inject_fault(str kernel) -> ()", &gptq_mi100::inject_fault);
}

"""GPTQ inference kernels for AMD Instinct MI100 (gfx908), as torch custom ops.

    import gptq_mi100
    w = gptq_mi100.prepare(qweight, qzeros, scales, g_idx, bits=4, group_size=128)
    y = gptq_mi100.gemm(x, w)                       # x [..., K] fp16/bf16 -> [..., N]

`torch.ops.gptq_mi100.gptq_gemm` / `gptq_shuffle` are drop-ins for vLLM's ops. The pure
modules (formats, layouts, reference, quantize, kernels) import without the compiled extension;
everything in `ops` loads it on first use.
"""

_OPS_NAMES = ("PreparedGPTQ", "prepare", "gemm", "dequantize", "gptq_gemm", "gptq_shuffle",
              "path_counts", "reset_path_counts", "take_index_errors", "build_info")

__all__ = list(_OPS_NAMES) + ["ops", "formats", "layouts", "reference", "quantize",
                              "kernels", "use_kernel"]


def __getattr__(name):
    # Lazy: `python -m gptq_mi100` must be able to build the extension before loading it.
    import importlib
    if name in _OPS_NAMES or name == "ops":
        ops = importlib.import_module(f"{__name__}.ops")
        return ops if name == "ops" else getattr(ops, name)
    if name == "use_kernel":
        return importlib.import_module(f"{__name__}.kernels").use_kernel
    if name in ("formats", "layouts", "reference", "quantize", "kernels"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'gptq_mi100' has no attribute {name!r}")

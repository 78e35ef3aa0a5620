"""GPTQ inference kernels for AMD Instinct MI100 (gfx908), as torch custom ops.

    import gptq_mi100
    w = gptq_mi100.prepare(qweight, qzeros, scales, g_idx, bits=4, group_size=128)
    y = gptq_mi100.gemm(x, w)                       # x [..., K] fp16/bf16 -> [..., N]

`torch.ops.gptq_mi100.gptq_gemm` / `gptq_shuffle` are drop-ins for vLLM's ops. The pure
modules (formats, layouts, reference, quantize) import without the compiled extension;
importing the package loads it and registers every op (a missing build is reported on first
use of an op name, so `python -m gptq_mi100` can still build it).
"""

_OPS_NAMES = ("PreparedGPTQ", "prepare", "gemm", "dequantize", "gptq_gemm", "gptq_shuffle",
              "path_counts", "reset_path_counts", "take_index_errors", "build_info",
              "preferred_layout", "large_m_threshold")

__all__ = list(_OPS_NAMES) + ["ops", "formats", "layouts", "reference", "quantize",
                              "kernels", "use_kernel", "nn", "checkpoint"]

try:
    import torch as _torch  # noqa: E402, F401
except ImportError:
    _NO_TORCH = ("gptq_mi100 needs torch, and torch is not importable here: install torch "
                 "first (your ROCm, CUDA or CPU build, e.g. pip install torch==2.13.0), then "
                 "pip install --no-build-isolation .")
    import sys as _sys
    if _sys.argv[:1] == ["-m"]:  # `python -m gptq_mi100`: one line, not a traceback
        raise SystemExit(_NO_TORCH) from None
    raise ImportError(_NO_TORCH) from None

from . import formats, layouts, quantize, reference  # noqa: E402  (pure torch)
from ._loader import ExtensionNotBuiltError  # noqa: E402

try:
    # Importing the package registers every op (torch.ops.gptq_mi100.*), as vLLM needs.
    from . import checkpoint, kernels, nn, ops  # noqa: E402
    from .kernels import use_kernel  # noqa: E402
    from .ops import (PreparedGPTQ, build_info, dequantize, gemm, gptq_gemm,  # noqa: E402
                      gptq_shuffle, large_m_threshold, path_counts, preferred_layout,
                      prepare, reset_path_counts, take_index_errors)
except ExtensionNotBuiltError as _missing:
    # Not built yet: `python -m gptq_mi100` builds it; everything else says how.
    _not_built = _missing

    def __getattr__(name):
        if name in _OPS_NAMES or name in ("ops", "kernels", "use_kernel"):
            raise _not_built
        raise AttributeError(f"module 'gptq_mi100' has no attribute {name!r}")

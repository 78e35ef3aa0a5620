"""Kernel choice.

`GPTQ_MI100_KERNEL` sets the process default (read once, at import; an unknown value is
an error). Tests, benchmarks and the self-check choose per call with the `kernel=`
argument of `gptq_mi100.gemm`, or for a block of code with `use_kernel(name)`. Either way
the choice is resolved to a plain string before the op runs, so `torch.compile` sees a
constant. The vLLM drop-in `gptq_gemm` (no kernel argument) uses the process default,
which the C++ side reads from the same variable.

Kernels:
  auto            native kernel for M below the large-M threshold, else dequant_matmul
  cpu_c           the C99 CPU kernel (CPU tensors)
  exllama         the GPU baseline kernel (CUDA/HIP tensors)
  dequant_matmul  dequantize to the activation dtype, then torch's matmul
"""

import contextlib
import os

ALL_KERNELS = ("auto", "cpu_c", "exllama", "dequant_matmul")
KERNELS_BY_DEVICE = {
    "cpu": ("auto", "cpu_c", "dequant_matmul"),
    "cuda": ("auto", "exllama", "dequant_matmul"),
}


def _validated(name, device_type=None):
    valid = ALL_KERNELS if device_type is None else KERNELS_BY_DEVICE[device_type]
    if name not in valid:
        where = "" if device_type is None else f" for {device_type} tensors"
        raise ValueError(f"kernel must be one of {', '.join(valid)}{where}, got {name!r}")
    return name


def _read_env():
    value = os.environ.get("GPTQ_MI100_KERNEL", "auto")
    try:
        return _validated(value)
    except ValueError:
        raise ValueError(f"GPTQ_MI100_KERNEL must be one of {', '.join(ALL_KERNELS)}, "
                         f"got {value!r}") from None


DEFAULT_KERNEL = _read_env()
_override_stack = []


@contextlib.contextmanager
def use_kernel(name):
    """Within the block, gemm calls without `kernel=` use `name`."""
    _override_stack.append(_validated(name))
    try:
        yield
    finally:
        _override_stack.pop()


def resolve_kernel(kernel, device):
    """The kernel name an op call will get: explicit > use_kernel block > default."""
    device_type = "cuda" if torch_device_type(device) == "cuda" else "cpu"
    if kernel is None:
        kernel = _override_stack[-1] if _override_stack else DEFAULT_KERNEL
        if kernel not in KERNELS_BY_DEVICE[device_type]:
            kernel = "auto"  # a GPU-only default does not break CPU calls, and vice versa
    return _validated(kernel, device_type)


def torch_device_type(device):
    return getattr(device, "type", str(device).split(":")[0])

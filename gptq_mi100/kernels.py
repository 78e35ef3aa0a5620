"""Kernel choice, as the C++ kernel registry (csrc/host/kernel_registry.cpp) defines it.

The registry is the one home of kernel names, the layout each kernel reads, the bits it
covers, the M that `auto` sends it, and `GPTQ_MI100_KERNEL`'s parsing (read once, by the
extension; an unknown value is an error at import). This module asks it.

Per call: the `kernel=` argument of `gptq_mi100.gemm`, or for a block of code
`use_kernel(name)` (per thread and per asyncio task: a `contextvars` variable). Without
either, the process default applies, and a default naming another device's kernel means
`auto` for this device. Names are checked by the op itself, so torch.compile sees a
constant string.
"""

import contextlib
import contextvars
from typing import NamedTuple, Optional, Tuple

import torch

from ._loader import load_extension

_C = load_extension()  # the registrations behind torch.ops.gptq_mi100
_ops = torch.ops.gptq_mi100


class KernelInfo(NamedTuple):
    name: str
    devices: Tuple[str, ...]   # "cpu", "cuda"
    layouts: Tuple[int, ...]   # layout versions it reads on the device asked about
    bits: Tuple[int, ...]
    auto_range: str            # "below_large_m" or "from_large_m"
    in_build: bool             # compiled into this build for that device
    summary: str


def kernel_table(device_type: str = "cuda"):
    """Every registry entry, in preference order, as seen for `device_type`."""
    rows = []
    for line in _ops.kernel_table(device_type):
        name, devices, layouts, bits, auto_range, in_build, summary = line.split(";", 6)
        ints = lambda s: tuple(int(v) for v in s.split(",") if v)  # noqa: E731
        rows.append(KernelInfo(name, tuple(devices.split(",")), ints(layouts), ints(bits),
                               auto_range, in_build == "1", summary))
    return rows


def kernel_names(device_type: str):
    """'auto' plus the kernels this build has for `device_type` ('cpu' or 'cuda')."""
    return tuple(_ops.kernel_names(device_type))


def default_kernel() -> str:
    """The process default (GPTQ_MI100_KERNEL, 'auto' when unset)."""
    return _ops.default_kernel()


DEFAULT_KERNEL = default_kernel()  # validates GPTQ_MI100_KERNEL at import
_block_kernel: contextvars.ContextVar = contextvars.ContextVar("gptq_mi100_kernel",
                                                              default=None)


@contextlib.contextmanager
def use_kernel(name: str):
    """Within the block (this thread / task only), gemm calls without `kernel=` use it."""
    known = {n for d in ("cpu", "cuda") for n in kernel_names(d)}
    known.update(info.name for info in kernel_table())
    if name not in known:
        raise ValueError(f"kernel must be one of {', '.join(sorted(known))}, got {name!r}")
    token = _block_kernel.set(name)
    try:
        yield
    finally:
        _block_kernel.reset(token)


@torch._dynamo.assume_constant_result
def _current_block_kernel() -> Optional[str]:
    # torch.compile reads the block once, at trace time (it cannot trace ContextVar.get).
    return _block_kernel.get()


def resolve_kernel(kernel: Optional[str]) -> Optional[str]:
    """The kernel argument an op call gets: explicit > use_kernel block > None (default)."""
    return kernel if kernel is not None else _current_block_kernel()

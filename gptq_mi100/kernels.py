"""Kernel choice, as the C++ kernel registry (csrc/host/kernel_registry.cpp) defines it.

The registry is the one home of kernel names, the layout each kernel reads, the bits it
covers, the M that `auto` sends it, and `GPTQ_MI100_KERNEL`'s parsing (read once, by the
extension; an unknown value is an error at import). This module asks it.

A kernel is named by a spec: its name, optionally with tile choices the registry validates,
"name:key=value,...": `mt` (activation rows per weight pass), `splits` (K splits of the GPU
launch), `load` (bytes per lane per weight load, `vectorized`). The tuner (tuner.py) installs
a table of specs that `auto` follows first (set_tuned_table), at load or prepare time.

Per call: the `kernel=` argument of `gptq_mi100.gemm`, or for a block of code
`use_kernel(name)` (per thread and per asyncio task: a `contextvars` variable). Without
either, the process default applies, and a default naming another device's kernel means
`auto` for this device. Names are checked by the op itself, so torch.compile sees a
constant string.
"""

import contextlib
import contextvars
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

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
    tiles: Dict[str, Tuple[int, ...]]  # tile key -> the values the tuner tries ({}: none)
    auto_min_m: int            # smallest M the built-in auto rule gives it on this build
    summary: str


def _ints(text):
    return tuple(int(v) for v in text.split(",") if v)


def kernel_table(device_type: str = "cuda"):
    """Every registry entry, in preference order, as seen for `device_type`."""
    rows = []
    for line in _ops.kernel_table(device_type):
        name, devices, layouts, bits, auto_range, in_build, tiles, min_m, summary = \
            line.split(";", 8)
        tile_values = {key: _ints(values) for key, values in
                       (item.split("=", 1) for item in tiles.split("|") if item)}
        rows.append(KernelInfo(name, tuple(devices.split(",")), _ints(layouts), _ints(bits),
                               auto_range, in_build == "1", tile_values, int(min_m), summary))
    return rows


def kernel_spec(name: str, **tiles: int) -> str:
    """'name:key=value,...' (keys sorted), or the bare name without tiles."""
    items = ",".join(f"{k}={int(v)}" for k, v in sorted(tiles.items()))
    return f"{name}:{items}" if items else name


class TunedRow(NamedTuple):
    """Under `auto`, weights of (bits, k, n) at m_lo <= M <= m_hi run `spec`."""
    bits: int
    k: int
    n: int
    m_lo: int
    m_hi: int
    spec: str


def set_tuned_table(device_type: str, rows: Sequence[TunedRow]) -> None:
    """Install the rows `auto` follows first on `device_type` (validated; [] clears)."""
    _ops.set_tuned_table(device_type, [";".join(str(v) for v in TunedRow(*r)) for r in rows])


def tuned_table(device_type: str) -> List[TunedRow]:
    rows = []
    for line in _ops.tuned_table(device_type):
        bits, k, n, m_lo, m_hi, spec = line.split(";", 5)
        rows.append(TunedRow(int(bits), int(k), int(n), int(m_lo), int(m_hi), spec))
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
    """Within the block (this thread / task only), gemm calls without `kernel=` use it
    (a kernel spec: a name, optionally with tiles)."""
    known = {n for d in ("cpu", "cuda") for n in kernel_names(d)}
    known.update(info.name for info in kernel_table())
    if name.split(":", 1)[0] not in known:
        raise ValueError(f"kernel must be one of {', '.join(sorted(known))}, got {name!r}")
    if name != "auto":  # tiles checked now, not at the first call inside the block
        device_type = "cuda" if name.split(":", 1)[0] in kernel_names("cuda") else "cpu"
        _ops.check_kernel_spec(device_type, name)
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

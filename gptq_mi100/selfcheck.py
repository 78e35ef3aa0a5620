"""Load-time self-check: every kernel `auto` may pick on a device runs once there against the
fp32 reference, and a kernel that is wrong is kept away from `auto`.

No GPU this project runs on is an MI100: every gfx908 path is compiled and reasoned, never run.
So on a user's GPU, `prepare` first runs each kernel `auto` may pick on small problems with the
weight's bit width, group size and act-order, in fp16 and bf16 (a few milliseconds, once per
process and device for each such combination, never inside `gemm` or a graph capture). A kernel
whose output leaves the error bound is excluded from `auto` for the process's devices of that
type (the registry's exclusion set, `torch.ops.gptq_mi100.set_kernel_excluded`), with one
warning naming it; asking for it by name then raises. `python -m gptq_mi100 selftest` runs every
combination and prints the table. GPTQ_MI100_SELFCHECK=off skips the load-time check (profilers
and sanitizers would otherwise instrument its launches too); `auto` then trusts every kernel.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch

from . import kernels, quantize, reference

__all__ = ["CheckResult", "run", "ensure_checked", "excluded_kernels", "format_table",
           "SelfCheckWarning"]

_ops = torch.ops.gptq_mi100

# Shapes: K holds a whole tile at every bit width (512 / bits rows) and several groups; N ends
# in a partial 16-column strip where the layout allows it (layout 2 at 2 bits needs N % 16 == 0).
_K = 512
_N = {2: 272, 3: 288, 4: 264, 8: 264}  # N packs whole words at each width
_DTYPES = (torch.float16, torch.bfloat16)
_inside = threading.local()  # the check's own prepare calls must not start another check


class SelfCheckWarning(UserWarning):
    """A kernel gave wrong results on this device and was excluded from `auto`."""


class CheckResult(NamedTuple):
    kernel: str
    device: str
    bits: int
    group_size: int
    act_order: bool
    dtype: str
    m: int
    ok: bool
    detail: str      # "" when ok; else the worst element or the error raised


def _candidates(device_type: str) -> List[kernels.KernelInfo]:
    """The kernels auto may pick for this device type (in the build, in an auto range)."""
    return [r for r in kernels.kernel_table(device_type)
            if r.in_build and device_type in r.devices
            and r.auto_range in ("below_large_m", "from_large_m")]


def _ms_for(info: kernels.KernelInfo, device_type: str, bits: int) -> Tuple[int, ...]:
    threshold = _ops.large_m_threshold(device_type, bits)
    if info.auto_range == "from_large_m":
        return (threshold,)
    # 16: a whole pass of the 16-row tiles (gfx908's MFMA), where the threshold allows it
    return tuple(sorted({1, min(5, threshold - 1), min(16, threshold - 1)}))


def _check_one(info, w, a, w_ref, ref) -> str:
    from . import ops
    try:
        out = ops.gemm(a, w, kernel=info.name)
    except ValueError as e:  # this kernel does not take this problem: not a failure
        return "n/a: " + str(e).splitlines()[0]
    except RuntimeError as e:  # a launch or runtime failure is a failure
        return "raised: " + str(e).splitlines()[0][:200]
    o = out.float().cpu()
    if not torch.isfinite(o).all():
        return f"{int((~torch.isfinite(o)).sum())} non-finite outputs"
    bound = reference.error_bound(a.cpu(), w_ref, ref, a.dtype)
    bad = (o - ref).abs() > bound
    if bad.any():
        i = tuple(bad.nonzero()[0].tolist())
        return (f"{int(bad.sum())} of {o.numel()} outside the bound; first {i}: got "
                f"{o[i].item():.5g}, want {ref[i].item():.5g}")
    return ""


def run(device, *, bits=(2, 3, 4, 8), group_sizes=(32, 128, -1), act_orders=(False, True),
        kernel_names: Optional[List[str]] = None) -> List[CheckResult]:
    """Run the candidate kernels of `device` on every combination asked; no side effects.

    Results whose detail starts with "n/a" are problems the kernel does not take (ok=True).
    """
    outer = getattr(_inside, "on", False)
    _inside.on = True
    try:
        return _run(device, bits, group_sizes, act_orders, kernel_names)
    finally:
        _inside.on = outer


def _run(device, bits, group_sizes, act_orders, kernel_names) -> List[CheckResult]:
    from . import ops
    device = torch.device(device)
    dtype_name = {torch.float16: "fp16", torch.bfloat16: "bf16"}
    cands = [c for c in _candidates(device.type)
             if kernel_names is None or c.name in kernel_names]
    results: List[CheckResult] = []
    for b in bits:
        n = _N[b]
        for gs in group_sizes:
            for act in act_orders:
                seed = 1000 * b + 10 * (gs % 997) + act
                t = quantize.random_gptq(_K, n, b, gs, symmetric=False, act_order=act,
                                         v2_zeros=False, seed=seed)
                w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx,
                                                       b, False)
                dev_args = (t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                            t.g_idx.to(device) if act else None)
                for info in cands:
                    try:
                        w = ops.prepare(*dev_args, bits=b, group_size=gs, layout=info.layouts[0])
                    except ValueError:  # the weight cannot be in this kernel's layout
                        continue
                    for m in _ms_for(info, device.type, b):
                        for dt in _DTYPES:
                            gen = torch.Generator().manual_seed(seed + m)
                            a = torch.randn(m, _K, generator=gen).to(dt)
                            ref = reference.gemm_reference(a, t.qweight, t.qzeros, t.scales,
                                                           t.g_idx, b, False)
                            detail = _check_one(info, w, a.to(device), w_ref, ref)
                            results.append(CheckResult(info.name, str(device), b, gs, act,
                                                       dtype_name[dt], m,
                                                       detail == "" or detail.startswith("n/a"),
                                                       detail))
    return results


_lock = threading.Lock()
_checked: Dict[tuple, List[CheckResult]] = {}


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def _enabled() -> bool:
    """GPTQ_MI100_SELFCHECK: unset, "on" or "1" runs the check; "off" or "0" skips it."""
    raw = os.environ.get("GPTQ_MI100_SELFCHECK", "")
    value = raw.strip().lower() or "on"
    if value not in ("on", "1", "off", "0"):
        raise ValueError(f"GPTQ_MI100_SELFCHECK must be one of on, 1, off, 0 (or unset), "
                         f"got {raw!r}")
    return value in ("on", "1")


def ensure_checked(device, bits: int, group_size: int, act_order: bool) -> List[CheckResult]:
    """The prepare hook: check this combination once per process and device; exclude failures.

    Returns the results (cached). Does nothing (returns []) with GPTQ_MI100_SELFCHECK=off, on
    the meta device, or while a graph is being captured (a check synchronizes; it runs at the
    next prepare outside capture).
    """
    if not _enabled():  # read per call: a script may set it after importing the package
        return []
    device = torch.device(device)
    if device.type not in ("cuda", "cpu") or _capturing(device) or getattr(_inside, "on", False):
        return []
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (str(device), bits, group_size, bool(act_order))
    with _lock:
        if key in _checked:
            return _checked[key]
        gs = group_size if 0 < group_size <= _K and _K % group_size == 0 else -1
        results = run(device, bits=(bits,), group_sizes=(gs,), act_orders=(act_order,))
        _checked[key] = results
        _apply(device.type, results)
    return results


def _apply(device_type: str, results: List[CheckResult]) -> None:
    for r in results:
        if r.ok or r.kernel in excluded_kernels(device_type):
            continue
        _ops.set_kernel_excluded(device_type, r.kernel, True)
        warnings.warn(
            f"gptq_mi100: kernel '{r.kernel}' gave wrong results on {r.device} in the load-time "
            f"self-check ({r.bits}-bit, group {r.group_size}, act-order {r.act_order}, {r.dtype},"
            f" M = {r.m}: {r.detail}); `auto` will not use it in this process. Please run "
            f"`python -m gptq_mi100 selftest` and report its output at the project's issue "
            f"tracker.", SelfCheckWarning, stacklevel=3)


def excluded_kernels(device_type: str) -> Tuple[str, ...]:
    """Kernels the self-check excluded on this device type in this process."""
    return tuple(_ops.excluded_kernels(device_type))


def _reset_for_tests() -> None:
    """Forget cached results and exclusions (tests only)."""
    with _lock:
        _checked.clear()
        for d in ("cpu", "cuda"):
            for name in excluded_kernels(d):
                _ops.set_kernel_excluded(d, name, False)


def format_table(results: List[CheckResult]) -> str:
    """One line per (kernel, bits, group, act-order, dtype, M); failures say why."""
    lines = [f"{'kernel':16s} {'device':8s} bits {'group':>5s} act  dtype    M  result"]
    for r in results:
        status = "ok" if r.detail == "" else ("n/a" if r.ok else "WRONG")
        extra = "" if r.detail == "" or status == "n/a" else "  " + r.detail
        lines.append(f"{r.kernel:16s} {r.device:8s} {r.bits:4d} {r.group_size:5d} "
                     f"{'yes' if r.act_order else 'no ':3s}  {r.dtype:5s} {r.m:4d}  {status}{extra}")
    return "\n".join(lines)

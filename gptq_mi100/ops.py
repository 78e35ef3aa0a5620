"""Typed wrappers of torch.ops.gptq_mi100.* and their fake (meta) kernels.

Contract (see also README.md, "Ops"):
- Checkpoint tensors: qweight int32 [K*bits/32, N] (packed along K), qzeros int32
  [G, N*bits/32] (packed along N), scales fp16 (or bf16) [G, N], g_idx int32 [K] or None.
- `prepare` returns a PreparedGPTQ: qweight with its K rows in kernel order (act-order
  rows sorted by group; bit order unchanged), a_perm (kernel row r multiplies activation
  column a_perm[r]; empty = identity), group_index (group of kernel row r; empty = r //
  group_size), and a record of the layout, bits, group size and zero convention.
- The v1/v2 zero convention is resolved at the kernel: qzeros stay packed as stored and
  `v2_zeros` picks zero = stored + 1 (v1, AutoGPTQ) or zero = stored (v2, GPTQModel).
  Stored v1 zeros of 2**bits - 1 mean 2**bits, which no packed field could hold.
- `gemm(a, w)`: a [..., K] fp16 or bf16 -> a @ W [..., N] in a's dtype, fp32 math.
- `dequantize(w, dtype)`: W [K, N] in checkpoint K order.
"""

from typing import NamedTuple, Optional

import torch

from . import layouts
from .kernels import _C, kernel_table, resolve_kernel  # noqa: F401 (_C: the registrations)

_ops = torch.ops.gptq_mi100

# Layout versions (their home: csrc/gptq_kernels.h; the tiled format: layouts.py).
LAYOUT_CHECKPOINT = 1
LAYOUT_TILED = 2
PATH_NAMES = tuple(info.name for info in kernel_table())  # order of path_counts()


def _device_type(device):
    return "cuda" if torch.device(device).type == "cuda" else "cpu"


class PreparedGPTQ(NamedTuple):
    """What `gemm` consumes. Build it with `prepare`, never by hand."""
    qweight: torch.Tensor                # int32 [K*bits/32, N] in `layout`, kernel row order
    qzeros: torch.Tensor                 # int32 [G, N*bits/32], as stored in the checkpoint
    scales: torch.Tensor                 # fp16/bf16 [G, N]
    a_perm: Optional[torch.Tensor]       # int32 [K]: kernel row r reads a[:, a_perm[r]]
    group_index: Optional[torch.Tensor]  # int32 [K]: group of kernel row r (else r // gs)
    bits: int
    group_size: int                      # K for group_size -1 (one group)
    v2_zeros: bool
    layout: int                          # LAYOUT_CHECKPOINT or LAYOUT_TILED

    @property
    def in_features(self):
        return _k_from_qweight(self.qweight, self.bits)

    @property
    def out_features(self):
        return self.qweight.shape[1]

    def to(self, device):
        """The same weight on `device`, in the layout `prepare` would choose there
        (repacked exactly; no checkpoint round trip needed)."""
        device = torch.device(device)
        rows = self.qweight
        if self.layout == LAYOUT_TILED:
            rows = layouts.from_tiled(rows, self.bits)
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        layout = _default_layout(device, self.bits, self.in_features, self.out_features,
                                 self.group_index)
        rows = rows.to(device)
        if layout == LAYOUT_TILED:
            rows = layouts.to_tiled(rows, self.bits)
        return self._replace(qweight=rows, qzeros=move(self.qzeros), scales=move(self.scales),
                             a_perm=move(self.a_perm), group_index=move(self.group_index),
                             layout=layout)


def _k_from_qweight(qweight, bits):
    rows = qweight.shape[0]
    return rows // 3 * 32 if bits == 3 else rows * (32 // bits)


def _default_layout(device, bits, k, n, group_index):
    if group_index is not None:  # uneven groups: only layout 1 kernels read them
        return LAYOUT_CHECKPOINT
    return _ops.preferred_layout(_device_type(device), bits, k, n)


def prepare(qweight, qzeros, scales, g_idx=None, *, bits, group_size, v2_zeros=False,
            layout=None):
    """Checkpoint tensors -> PreparedGPTQ (new tensors; the inputs are not modified).

    Validates shapes, dtypes and g_idx values (reads g_idx back to the host: load time
    only). group_size -1 means one group over all K. layout: None picks the layout the
    fastest kernel for these tensors' device reads (`preferred_layout`); 1 (checkpoint
    packing) or 2 (tiled, GPU kernels, bits 2/4/8) force one.
    """
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits must be one of 2, 3, 4, 8, got {bits}")
    if isinstance(v2_zeros, (str, bytes)) or v2_zeros not in (False, True):
        raise TypeError(f"v2_zeros must be a bool (False: GPTQ v1 zeros, stored + 1; True: v2),"
                        f" got {v2_zeros!r}")
    _check_same_device("prepare", qweight=qweight, qzeros=qzeros, scales=scales, g_idx=g_idx)
    if isinstance(g_idx, torch.Tensor) and g_idx.is_meta:
        raise ValueError("prepare: g_idx is on the meta device, but prepare reads its values "
                         "(load time); pass the real tensor")
    if isinstance(qweight, torch.Tensor) and qweight.is_meta:
        raise ValueError("prepare: qweight is on the meta device, but prepare runs on real "
                         "tensors (load time: the sizes of its outputs depend on g_idx's "
                         "values); pass the real tensors")
    if not isinstance(qweight, torch.Tensor) or qweight.dim() != 2:
        got = (f"shape {tuple(qweight.shape)}" if isinstance(qweight, torch.Tensor)
               else type(qweight).__name__)
        raise ValueError(f"prepare: qweight must be 2-D [K * bits / 32, N], got {got}")
    k = _k_from_qweight(qweight, bits)
    if k == 0:
        raise ValueError(f"prepare: qweight has no rows (K = 0); a GPTQ layer needs K >= 1 "
                         f"(qweight is [K * bits / 32, N], got shape {tuple(qweight.shape)}; "
                         f"group_size={group_size})")
    requested = group_size
    if group_size == -1:
        group_size = k
    if not isinstance(group_size, int) or group_size <= 0 or group_size % 32 or k % group_size:
        raise ValueError(f"group_size must be -1 or a positive multiple of 32 dividing "
                         f"K={k}, got {requested}")
    if g_idx is None:
        groups = scales.shape[0] if scales.dim() == 2 else None
        if groups != k // group_size:
            raise ValueError(f"without g_idx, scales.shape[0] (G) must equal K / group_size"
                             f" = {k} / {group_size}, got shape {tuple(scales.shape)}")
    rows, a_perm, group_index = _ops.prepare(qweight, qzeros, scales, g_idx, bits)
    a_perm = a_perm if a_perm.numel() else None
    group_index = group_index if group_index.numel() else None
    if group_index is None:
        # g_idx was None or sorted into r // (K / G): rows map to groups by K / G, which
        # for a tensor-parallel shard can differ from the checkpoint's group_size.
        group_size = k // scales.shape[0]
    n = rows.shape[1]
    if rows.device.type == "cuda":
        # Load time, once per process, device and (bits, group size, act-order): kernels that
        # are wrong on this GPU leave auto before the layout is chosen (selfcheck.py).
        from . import selfcheck
        selfcheck.ensure_checked(rows.device, bits, group_size, a_perm is not None)
    from . import tuner  # load time, once per process: the tuned table auto follows first
    tuner.ensure_applied(rows.device)
    if layout is None:
        layout = _default_layout(rows.device, bits, k, n, group_index)
    elif layout == LAYOUT_TILED and group_index is not None:
        raise ValueError("layout=2 (tiled) needs groups of group_size consecutive rows; "
                         "this g_idx has uneven groups: use layout=1")
    elif layout not in (LAYOUT_CHECKPOINT, LAYOUT_TILED):
        raise ValueError(f"layout must be None, 1 (checkpoint) or 2 (tiled), got {layout!r}")
    if layout == LAYOUT_TILED:
        rows = layouts.to_tiled(rows, bits)  # raises ValueError for bits or K it cannot hold
    return PreparedGPTQ(rows, qzeros.contiguous(), scales.contiguous(), a_perm, group_index,
                        bits, group_size, bool(v2_zeros), layout)


def gemm(a, w: PreparedGPTQ, *, kernel: Optional[str] = None, out=None):
    """a [..., K] (fp16 or bf16) @ W -> [..., N] in a's dtype (fp32 accumulation).

    kernel: None (use_kernel block, else GPTQ_MI100_KERNEL), or one of
    gptq_mi100.kernels.kernel_names(device type) that reads w.layout. out: optional
    [..., N] tensor written in place (tests poison it first)."""
    if not isinstance(w, PreparedGPTQ):
        raise TypeError(f"w must be a PreparedGPTQ from gptq_mi100.prepare, got {type(w)}")
    if not isinstance(a, torch.Tensor) or a.dim() < 1:
        raise ValueError("a must be a tensor of shape [..., K]")
    name = resolve_kernel(kernel)
    lead = a.shape[:-1]
    a2 = a.reshape(-1, a.shape[-1])
    args = (a2, w.qweight, w.qzeros, w.scales, w.a_perm, w.group_index, w.bits,
            w.group_size, w.v2_zeros, w.layout, name)
    if out is None:
        return _ops.gemm(*args).reshape(*lead, w.qweight.shape[1])
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a tensor or None, got {type(out).__name__}")
    if out.shape != (*lead, w.qweight.shape[1]):
        raise ValueError(f"out must have shape {(*lead, w.qweight.shape[1])}, got "
                         f"{tuple(out.shape)}")
    try:  # written in place: out's own memory must hold the [M, N] rows
        out2 = out.view(-1, w.qweight.shape[1])
    except RuntimeError:
        raise ValueError(f"out must be viewable as [M, N] rows (unit stride along N, the "
                         f"leading dims mergeable), got strides {out.stride()} for shape "
                         f"{tuple(out.shape)}; pass a contiguous out") from None
    _ops.gemm_out(*args, out2)
    return out


def dequantize(w: PreparedGPTQ, dtype=torch.float16):
    """W [K, N] in checkpoint K order, in fp16 or bf16."""
    return _ops.dequantize(w.qweight, w.qzeros, w.scales, w.a_perm, w.group_index, w.bits,
                           w.group_size, w.v2_zeros, w.layout, dtype)


def gptq_gemm(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
              use_v2_format, bit):
    """vLLM's gptq_gemm: same schema and semantics (torch.ops.gptq_mi100.gptq_gemm)."""
    return _ops.gptq_gemm(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
                          use_v2_format, bit)


def gptq_shuffle(q_weight, q_perm, bit):
    """vLLM's gptq_shuffle: in place; act-order rows into kernel order, then (GPU, bits
    2/4/8, K a multiple of 512 / bits) the tiled layout, which gptq_gemm with
    use_exllama=True then reads (both decide the layout with `preferred_layout`)."""
    _ops.gptq_shuffle(q_weight, q_perm, bit)


def preferred_layout(device, bits, k, n):
    """The layout prepare (without g_idx groups) and gptq_shuffle produce on `device`."""
    return _ops.preferred_layout(_device_type(device), bits, k, n)


def _gptq_shuffle_impl(q_weight, q_perm, bit):
    _ops.shuffle_rows(q_weight, q_perm, bit)  # validates q_weight and q_perm
    k, n = _k_from_qweight(q_weight, bit), q_weight.shape[1]
    if q_weight.device.type == "cuda":  # vLLM's load step: the self-check, as in prepare
        from . import selfcheck            # (the group size is not passed here: GPTQ's usual 128)
        selfcheck.ensure_checked(q_weight.device, bit, 128, q_perm.numel() > 0)
    from . import tuner
    tuner.ensure_applied(q_weight.device)
    if _ops.preferred_layout(_device_type(q_weight.device), bit, k, n) == LAYOUT_TILED:
        q_weight.copy_(layouts.to_tiled(q_weight, bit))


torch.library.impl("gptq_mi100::gptq_shuffle", "cpu")(_gptq_shuffle_impl)
torch.library.impl("gptq_mi100::gptq_shuffle", "cuda")(_gptq_shuffle_impl)


def path_counts():
    """{kernel name: calls} counted on the host per op call (graph replays not counted)."""
    return dict(zip(PATH_NAMES, _ops.path_counts()))


def reset_path_counts():
    _ops.reset_path_counts()


def take_index_errors(device="cpu"):
    """Read and reset the count of out-of-range a_perm / g_idx entries the kernels clamped
    on `device`. Synchronizes that device: call it outside graphs, e.g. after a test."""
    device = torch.device(device)
    index = (device.index or 0) if device.type == "cuda" else 0
    if device.type == "cuda" and torch.cuda.is_available() and not (
            0 <= index < torch.cuda.device_count()):
        raise ValueError(f"take_index_errors: device {device} does not exist (this process "
                         f"sees {torch.cuda.device_count()} GPU(s))")
    return _ops.take_index_errors(device.type, index)


def build_info():
    return _ops.build_info()


def large_m_threshold(device, bits):
    """Smallest M that kernel 'auto' sends to dequantize + matmul on this device."""
    return _ops.large_m_threshold(_device_type(device), bits)


# ------------------------------------------------------------------ fake kernels
# Fakes check what the real ops check without reading data (devices, dtypes, ranks, K):
# a fake runs for every call with a meta tensor among its arguments, so without these a
# meta tensor mixed with real ones would return an unwritten output instead of an error.

def _check_same_device(op, **tensors):
    """Every tensor argument on one device; the error names the first that is not."""
    items = [(name, t) for name, t in tensors.items() if isinstance(t, torch.Tensor)]
    if not items:
        return
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.device != first.device:
            raise ValueError(f"{op}: {name} is on {t.device} but {first_name} is on "
                             f"{first.device}; all tensor arguments must be on one device")


class _Names(NamedTuple):
    """How an op's schema spells its arguments (for messages), as csrc/host/validate.h."""
    a: str = "a"
    qweight: str = "qweight"
    qzeros: str = "qzeros"
    scales: str = "scales"
    a_perm: str = "a_perm"
    group_index: str = "group_index"


_GEMM_NAMES = _Names()
_VLLM_NAMES = _Names("a", "b_q_weight", "b_gptq_qzeros", "b_gptq_scales", "b_g_idx", "b_g_idx")
_HALVES = (torch.float16, torch.bfloat16)


def _fake_n_k(op, qweight, bits, name="qweight"):
    """(N, K) from qweight's shape, with the real ops' checks of bits and qweight."""
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"{op}: bits must be one of 2, 3, 4, 8, got {bits}")
    if qweight.dtype != torch.int32 or qweight.dim() != 2:
        raise TypeError(f"{op}: {name} must be a 2-D int32 tensor [K * bits / 32, N], got "
                        f"{qweight.dtype} of shape {tuple(qweight.shape)}")
    if not qweight.is_contiguous():
        raise ValueError(f"{op}: {name} must be contiguous")
    if qweight.shape[0] == 0:
        raise ValueError(f"{op}: {name} has no rows (K = 0, shape {tuple(qweight.shape)}); K "
                         f"must be a positive multiple of 32")
    if bits == 3 and qweight.shape[0] % 3:
        raise ValueError(f"{op}: for bits=3 {name}.size(0) must be a multiple of 3, got "
                         f"{qweight.shape[0]}")
    return qweight.shape[1], _k_from_qweight(qweight, bits)


def _fake_index(op, name, t, k, dtypes=(torch.int32,)):
    if t is None:
        return
    if t.dtype not in dtypes:
        raise TypeError(f"{op}: {name} must be int32, got {t.dtype}")
    if t.dim() != 1 or t.shape[0] != k:
        raise ValueError(f"{op}: {name} must be None or 1-D of length K={k}, got shape "
                         f"{tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{op}: {name} must be contiguous")


def _fake_problem(op, a, qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                  names=_GEMM_NAMES):
    """What csrc/host/validate.cpp make_problem checks without reading data (a None: the
    weight alone, as dequantize and prepare). Returns N."""
    n, k = _fake_n_k(op, qweight, bits, names.qweight)
    if a is not None:
        if a.dtype not in _HALVES:
            raise TypeError(f"{op}: a must be float16 or bfloat16, got {a.dtype}")
        if a.dim() != 2 or a.shape[1] != k:
            raise ValueError(f"{op}: a must be [M, K] with K = {k} (from {names.qweight}), got "
                             f"shape {tuple(a.shape)}")
    if k % 32:
        raise ValueError(f"{op}: K must be a multiple of 32, got {k} (from {names.qweight}"
                         f".size(0)={qweight.shape[0]} and bits={bits})")
    align = 32 if bits == 3 else 32 // bits
    if n <= 0 or n % align:
        raise ValueError(f"{op}: N ({names.qweight}.size(1)) must be a positive multiple of "
                         f"{align} for bits={bits}, got {n}")
    if scales.dtype not in _HALVES:
        raise TypeError(f"{op}: {names.scales} must be float16 or bfloat16, got {scales.dtype}")
    if scales.dim() != 2 or scales.shape[1] != n or scales.shape[0] < 1:
        raise ValueError(f"{op}: {names.scales} must be [G, N={n}], got shape "
                         f"{tuple(scales.shape)}")
    groups = scales.shape[0]
    if qzeros.dtype != torch.int32:
        raise TypeError(f"{op}: {names.qzeros} must be int32, got {qzeros.dtype}")
    if qzeros.dim() != 2 or tuple(qzeros.shape) != (groups, n * bits // 32):
        raise ValueError(f"{op}: {names.qzeros} must be [G={groups}, N*bits/32="
                         f"{n * bits // 32}], got shape {tuple(qzeros.shape)}")
    for name, t in ((names.scales, scales), (names.qzeros, qzeros)):
        if not t.is_contiguous():
            raise ValueError(f"{op}: {name} must be contiguous")
    _fake_index(op, names.a_perm, a_perm, k)
    _fake_index(op, names.group_index, group_index, k)
    if group_index is None:
        if group_size < 0 and k % groups:
            raise ValueError(f"{op}: K={k} is not divisible by G={groups} ({names.scales}"
                             f".size(0)) and no g_idx was given")
        gs = k // groups if group_size < 0 else group_size
        if gs <= 0 or k % gs or k // gs != groups:
            raise ValueError(f"{op}: without group_index, G ({names.scales}.size(0)={groups}) "
                             f"must equal K / group_size = {k} / {group_size}")
    return n


def _fake_layout_and_kernel(op, device, layout, bits, kernel=None):
    if layout not in (LAYOUT_CHECKPOINT, LAYOUT_TILED):
        raise ValueError(f"{op}: unknown weight layout {layout} (known: 1 checkpoint, 2 tiled)")
    if layout == LAYOUT_TILED and bits not in (2, 4, 8):
        raise ValueError(f"{op}: the tiled layout exists for bits 2, 4 and 8, got bits={bits}")
    if kernel is None:
        return
    types = [device.type] if device.type in ("cpu", "cuda") else ["cpu", "cuda"]
    valid = {name for t in types for name in _ops.kernel_names(t)}
    if kernel.split(":", 1)[0] not in valid:
        raise ValueError(f"{op}: kernel must be one of {', '.join(sorted(valid))}, got "
                         f"{kernel!r}")
    if kernel != "auto":  # tiles: the real op's own check
        _ops.check_kernel_spec(next(t for t in types if kernel.split(":", 1)[0] in
                                    _ops.kernel_names(t)), kernel)


@torch.library.register_fake("gptq_mi100::gemm")
def _gemm_fake(a, qweight, qzeros, scales, a_perm, group_index, bits, group_size, v2_zeros,
               layout, kernel):
    _check_same_device("gemm", a=a, qweight=qweight, qzeros=qzeros, scales=scales,
                       a_perm=a_perm, group_index=group_index)
    _fake_layout_and_kernel("gemm", a.device, layout, bits, kernel)
    n = _fake_problem("gemm", a, qweight, qzeros, scales, a_perm, group_index, bits, group_size)
    return a.new_empty((a.shape[0], n))


@torch.library.register_fake("gptq_mi100::gemm_out")
def _gemm_out_fake(a, qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                   v2_zeros, layout, kernel, out):
    _check_same_device("gemm_out", a=a, qweight=qweight, qzeros=qzeros, scales=scales,
                       a_perm=a_perm, group_index=group_index, out=out)
    _fake_layout_and_kernel("gemm_out", a.device, layout, bits, kernel)
    n = _fake_problem("gemm_out", a, qweight, qzeros, scales, a_perm, group_index, bits,
                      group_size)
    if out.dtype != a.dtype:
        raise TypeError(f"gemm_out: out must have a's dtype {a.dtype}, got {out.dtype}")
    if out.dim() != 2 or out.shape[0] != a.shape[0] or out.shape[1] != n:
        raise ValueError(f"gemm_out: out must be [M={a.shape[0]}, N={n}], got shape "
                         f"{tuple(out.shape)}")
    return None


@torch.library.register_fake("gptq_mi100::prepare")
def _prepare_fake(qweight, qzeros, scales, g_idx, bits):
    _check_same_device("prepare", qweight=qweight, qzeros=qzeros, scales=scales, g_idx=g_idx)
    _fake_n_k("prepare", qweight, bits)
    if scales.dim() != 2:
        raise ValueError(f"prepare: scales must be [G, N], got shape {tuple(scales.shape)}")
    if g_idx is not None:
        if g_idx.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"prepare: g_idx must be int32 (or int64), got {g_idx.dtype}")
        k = _k_from_qweight(qweight, bits)
        if g_idx.dim() != 1 or g_idx.shape[0] != k:
            raise ValueError(f"prepare: g_idx must be 1-D of length K={k}, got shape "
                             f"{tuple(g_idx.shape)}")
    _fake_problem("prepare", None, qweight, qzeros, scales, None,
                  None if g_idx is None else g_idx.to(torch.int32).contiguous(), bits, -1)
    ctx = torch.library.get_ctx()
    perm_len = ctx.new_dynamic_size()  # empty or K: decided by g_idx's values
    index_len = ctx.new_dynamic_size()
    return (torch.empty_like(qweight), qweight.new_empty((perm_len,)),
            qweight.new_empty((index_len,)))


@torch.library.register_fake("gptq_mi100::dequantize")
def _dequantize_fake(qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                     v2_zeros, layout, dtype):
    _check_same_device("dequantize", qweight=qweight, qzeros=qzeros, scales=scales,
                       a_perm=a_perm, group_index=group_index)
    _fake_layout_and_kernel("dequantize", qweight.device, layout, bits)
    if dtype not in _HALVES:
        raise TypeError(f"dequantize: dtype must be float16 or bfloat16, got {dtype}")
    n = _fake_problem("dequantize", None, qweight, qzeros, scales, a_perm, group_index, bits,
                      group_size)
    return qweight.new_empty((_k_from_qweight(qweight, bits), n), dtype=dtype)


def _fake_perm(op, q_weight, q_perm, bit):
    _check_same_device(op, q_weight=q_weight, q_perm=q_perm)
    _fake_n_k(op, q_weight, bit, "q_weight")
    if q_perm.numel() == 0:
        return
    if q_perm.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{op}: q_perm must be int32 (or int64), got {q_perm.dtype}")
    k = _k_from_qweight(q_weight, bit)
    if q_perm.dim() != 1 or q_perm.shape[0] != k:
        raise ValueError(f"{op}: q_perm must be 1-D of length K={k}, got shape "
                         f"{tuple(q_perm.shape)}")


@torch.library.register_fake("gptq_mi100::shuffle_rows")
def _shuffle_rows_fake(q_weight, q_perm, bit):
    _fake_perm("gptq_shuffle", q_weight, q_perm, bit)
    return None


@torch.library.register_fake("gptq_mi100::gptq_gemm")
def _gptq_gemm_fake(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
                    use_v2_format, bit):
    _check_same_device("gptq_gemm", a=a, b_q_weight=b_q_weight, b_gptq_qzeros=b_gptq_qzeros,
                       b_gptq_scales=b_gptq_scales, b_g_idx=b_g_idx)
    index = b_g_idx if b_g_idx.numel() > 0 else None
    n = _fake_problem("gptq_gemm", a, b_q_weight, b_gptq_qzeros, b_gptq_scales,
                      index if use_exllama else None, None if use_exllama else index, bit, -1,
                      _VLLM_NAMES)
    return a.new_empty((a.shape[0], n))


@torch.library.register_fake("gptq_mi100::gptq_shuffle")
def _gptq_shuffle_fake(q_weight, q_perm, bit):
    _fake_perm("gptq_shuffle", q_weight, q_perm, bit)
    return None

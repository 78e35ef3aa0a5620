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

from ._loader import load_extension
from .kernels import resolve_kernel

_C = load_extension()  # runs the TORCH_LIBRARY registrations
_ops = torch.ops.gptq_mi100

LAYOUT_VERSION = 1
PATH_NAMES = ("cpu_c", "exllama", "dequant_matmul")


class PreparedGPTQ(NamedTuple):
    """What `gemm` consumes. Build it with `prepare`, never by hand."""
    qweight: torch.Tensor      # int32 [K*bits/32, N], K rows in kernel order
    qzeros: torch.Tensor       # int32 [G, N*bits/32], as stored in the checkpoint
    scales: torch.Tensor       # fp16/bf16 [G, N]
    a_perm: torch.Tensor       # int32 [K] or empty
    group_index: torch.Tensor  # int32 [K] or empty
    bits: int
    group_size: int            # K for group_size -1 (one group)
    v2_zeros: bool
    layout: int                # LAYOUT_VERSION at prepare time

    @property
    def in_features(self):
        return _k_from_qweight(self.qweight, self.bits)

    @property
    def out_features(self):
        return self.qweight.shape[1]


def _k_from_qweight(qweight, bits):
    rows = qweight.shape[0]
    return rows // 3 * 32 if bits == 3 else rows * (32 // bits)


def _empty_index(like):
    return torch.empty(0, dtype=torch.int32, device=like.device)


def prepare(qweight, qzeros, scales, g_idx=None, *, bits, group_size, v2_zeros=False):
    """Checkpoint tensors -> PreparedGPTQ (new tensors; the inputs are not modified).

    Validates shapes, dtypes and g_idx values (reads g_idx back to the host: load time
    only). group_size -1 means one group over all K.
    """
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits must be one of 2, 3, 4, 8, got {bits}")
    k = _k_from_qweight(qweight, bits)
    if group_size == -1:
        group_size = k
    if not isinstance(group_size, int) or group_size <= 0 or group_size % 32 or k % group_size:
        raise ValueError(f"group_size must be -1 or a positive multiple of 32 dividing "
                         f"K={k}, got {group_size}")
    if g_idx is None:
        g_idx = _empty_index(qweight)
        groups = scales.shape[0] if scales.dim() == 2 else None
        if groups != k // group_size:
            raise ValueError(f"without g_idx, scales.shape[0] (G) must equal K / group_size"
                             f" = {k} / {group_size}, got shape {tuple(scales.shape)}")
    qweight_k, a_perm, group_index = _ops.prepare(qweight, qzeros, scales, g_idx, bits)
    if group_index.numel() == 0:
        # g_idx was None or equal to k // (K / G): rows map to groups by K / G, which for a
        # tensor-parallel shard can differ from the checkpoint's group_size.
        group_size = k // scales.shape[0]
    return PreparedGPTQ(qweight_k, qzeros.contiguous(), scales.contiguous(), a_perm,
                        group_index, bits, group_size, bool(v2_zeros), LAYOUT_VERSION)


def gemm(a, w: PreparedGPTQ, *, kernel: Optional[str] = None, out=None):
    """a [..., K] (fp16 or bf16) @ W -> [..., N] in a's dtype (fp32 accumulation).

    kernel: None (use_kernel block, else GPTQ_MI100_KERNEL), or one of
    gptq_mi100.kernels.KERNELS_BY_DEVICE[device]. out: optional [..., N] tensor written in
    place (tests poison it first)."""
    if not isinstance(w, PreparedGPTQ):
        raise TypeError(f"w must be a PreparedGPTQ from gptq_mi100.prepare, got {type(w)}")
    if not isinstance(a, torch.Tensor) or a.dim() < 1:
        raise ValueError("a must be a tensor of shape [..., K]")
    name = resolve_kernel(kernel, a.device)
    lead = a.shape[:-1]
    a2 = a.reshape(-1, a.shape[-1])
    args = (a2, w.qweight, w.qzeros, w.scales, w.a_perm, w.group_index, w.bits,
            w.group_size, w.v2_zeros, w.layout, name)
    if out is None:
        return _ops.gemm(*args).reshape(*lead, w.qweight.shape[1])
    if out.shape != (*lead, w.qweight.shape[1]):
        raise ValueError(f"out must have shape {(*lead, w.qweight.shape[1])}, got "
                         f"{tuple(out.shape)}")
    _ops.gemm_out(*args, out.view(-1, w.qweight.shape[1]))
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
    """vLLM's gptq_shuffle: in place; applies the act-order permutation to K rows."""
    _ops.gptq_shuffle(q_weight, q_perm, bit)


def path_counts():
    """{path name: calls} counted on the host per op call (graph replays not counted)."""
    return dict(zip(PATH_NAMES, _ops.path_counts()))


def reset_path_counts():
    _ops.reset_path_counts()


def take_index_errors(device="cpu"):
    """Read and reset the count of out-of-range a_perm / g_idx entries the kernels clamped
    on `device`. Synchronizes that device: call it outside graphs, e.g. after a test."""
    device = torch.device(device)
    return _ops.take_index_errors(device.type, device.index or 0 if device.type == "cuda" else 0)


def build_info():
    return _ops.build_info()


def large_m_threshold(device, bits):
    """Smallest M that kernel 'auto' sends to dequantize + matmul on this device."""
    device = torch.device(device)
    return _ops.large_m_threshold("cuda" if device.type == "cuda" else "cpu", bits)


# ------------------------------------------------------------------ fake kernels

def _fake_n_k(qweight, bits):
    return qweight.shape[1], _k_from_qweight(qweight, bits)


@torch.library.register_fake("gptq_mi100::gemm")
def _gemm_fake(a, qweight, qzeros, scales, a_perm, group_index, bits, group_size, v2_zeros,
               layout, kernel):
    n, k = _fake_n_k(qweight, bits)
    torch._check(a.dim() == 2 and a.shape[1] == k, lambda: "a must be [M, K]")
    torch._check(a.dtype in (torch.float16, torch.bfloat16),
                 lambda: "a must be float16 or bfloat16")
    return a.new_empty((a.shape[0], n))


@torch.library.register_fake("gptq_mi100::gemm_out")
def _gemm_out_fake(a, qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                   v2_zeros, layout, kernel, out):
    return None


@torch.library.register_fake("gptq_mi100::prepare")
def _prepare_fake(qweight, qzeros, scales, g_idx, bits):
    ctx = torch.library.get_ctx()
    perm_len = ctx.new_dynamic_size()  # empty or K: decided by g_idx's values
    index_len = ctx.new_dynamic_size()
    return (torch.empty_like(qweight), qweight.new_empty((perm_len,)),
            qweight.new_empty((index_len,)))


@torch.library.register_fake("gptq_mi100::dequantize")
def _dequantize_fake(qweight, qzeros, scales, a_perm, group_index, bits, group_size,
                     v2_zeros, layout, dtype):
    n, k = _fake_n_k(qweight, bits)
    return qweight.new_empty((k, n), dtype=dtype)


@torch.library.register_fake("gptq_mi100::gptq_gemm")
def _gptq_gemm_fake(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
                    use_v2_format, bit):
    return a.new_empty((a.shape[0], b_q_weight.shape[1]))


@torch.library.register_fake("gptq_mi100::gptq_shuffle")
def _gptq_shuffle_fake(q_weight, q_perm, bit):
    return None

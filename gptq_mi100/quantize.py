"""Round-to-nearest (RTN) GPTQ-format quantization for tests and benchmarks (pure torch).

Produces checkpoint-format tensors (see :mod:`gptq_mi100.formats`): K = in_features,
N = out_features, G = K // group_size groups.

Every element is guaranteed to dequantize within half a step of the input:
``|w[k, n] - scales[g, n] * (q[k, n] - zero[g, n])| <= scales[g, n] / 2`` with ``g = g_idx[k]``
(up to one fp32 rounding). Scales are chosen in fp32 and rounded *up* to fp16, so the fp16 grid
still covers each group's range.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch

from . import formats

__all__ = ["GPTQTensors", "quantize_rtn", "random_gptq"]

# Smallest normal fp16: scales are kept normal so rounding them up to fp16 stays relative.
_MIN_SCALE = 2.0**-14
_FP16_MAX = 65504.0
_ROUND_UP = 1.0 + 2.0**-10


class GPTQTensors(NamedTuple):
    """GPTQ checkpoint tensors.

    Fields:
        qweight: int32 ``[K * bits / 32, N]``, packed along K.
        qzeros: int32 ``[G, N * bits / 32]``, packed along N; stored zero = true zero - 1 (v1)
            or true zero (v2).
        scales: fp16 ``[G, N]``, positive.
        g_idx: int32 ``[K]``, group of each input row (sorted unless act-order).
        bits: 2, 3, 4 or 8.
        group_size: as requested (-1 means one group over all of K).
        v2_zeros: whether ``qzeros`` uses the GPTQ v2 convention.
    """

    qweight: torch.Tensor
    qzeros: torch.Tensor
    scales: torch.Tensor
    g_idx: torch.Tensor
    bits: int
    group_size: int
    v2_zeros: bool

    @property
    def k(self) -> int:
        """in_features K."""
        return self.g_idx.shape[0]

    @property
    def n(self) -> int:
        """out_features N."""
        return self.scales.shape[1]


def _round_up_fp16(s: torch.Tensor) -> torch.Tensor:
    """fp32 scales (normal fp16 range) -> fp16 values >= s."""
    return (s * _ROUND_UP).to(torch.float16)


def _check_group_size(group_size, k: int) -> int:
    group_size = formats._as_int("group_size", group_size)
    if group_size != -1 and group_size <= 0:
        raise ValueError(f"group_size must be -1 (one group) or a positive int, got {group_size}")
    gs = k if group_size == -1 else group_size
    if k % gs != 0:
        raise ValueError(f"group_size {group_size} must divide K={k}")
    return gs


def _act_order_group_index(k: int, gs: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """int64 [k]: group of row k = position of k in a random permutation // gs."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(k, generator=generator, device=gen_device)
    g_idx = torch.empty(k, dtype=torch.int64, device=gen_device)
    g_idx[perm] = torch.div(
        torch.arange(k, dtype=torch.int64, device=gen_device), gs, rounding_mode="floor"
    )
    return g_idx


def quantize_rtn(
    weight: torch.Tensor,
    bits: int,
    group_size: int = 128,
    symmetric: bool = True,
    act_order: bool = False,
    v2_zeros: bool = False,
    generator: Optional[torch.Generator] = None,
) -> GPTQTensors:
    """Round-to-nearest quantize ``weight`` floating ``[K, N]`` (in_features x out_features).

    Args:
        weight: floating ``[K, N]``, finite. K and N must be multiples of
            :func:`formats.pack_multiple` (32 for 3-bit, ``32 // bits`` otherwise).
        bits: 2, 3, 4 or 8.
        group_size: rows per group; must divide K. -1 means one group over all of K.
        symmetric: True: zero fixed at ``2**(bits-1)`` (v1 stores ``2**(bits-1) - 1``: 7 for 4-bit,
            127 for 8-bit), scale = ``max|w| / (2**(bits-1) - 0.5)`` as GPTQ does.
            False: per group/column min-max, zero chosen by rounding and clamped to what the
            zero convention can store (v2: ``[0, 2**bits - 1]``, v1: ``[1, 2**bits]``), the scale
            widened when the zero was clamped.
        act_order: like GPTQ ``desc_act``: a random permutation (from ``generator``) decides which
            rows form each group, ``g_idx[k] = position of k in perm // group_size``. g_idx is then
            not sorted, and every group still has ``group_size`` members.
        v2_zeros: store zeros in the GPTQ v2 convention (stored = zero) instead of v1 (zero - 1).
        generator: torch.Generator for the act-order permutation (its device is used).

    Returns:
        :class:`GPTQTensors` on ``weight``'s device: qweight int32 ``[K*bits/32, N]``, qzeros int32
        ``[G, N*bits/32]``, scales fp16 ``[G, N]``, g_idx int32 ``[K]``.
    """
    bits = formats._check_bits(bits)
    for name, flag in (("symmetric", symmetric), ("act_order", act_order), ("v2_zeros", v2_zeros)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__} {flag!r}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if not weight.dtype.is_floating_point:
        raise TypeError(f"weight must have a floating dtype, got {weight.dtype}")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D [K, N], got shape {tuple(weight.shape)}")
    k, n = weight.shape
    unit = formats.pack_multiple(bits)
    if k == 0 or k % unit != 0:
        raise ValueError(f"K (weight.shape[0]) must be a positive multiple of {unit} for {bits}-bit, got {k}")
    if n == 0 or n % unit != 0:
        raise ValueError(f"N (weight.shape[1]) must be a positive multiple of {unit} for {bits}-bit, got {n}")
    gs = _check_group_size(group_size, k)
    groups = k // gs
    device = weight.device

    w = weight.to(torch.float32)
    if not bool(torch.isfinite(w).all()):
        raise ValueError("weight must be finite, got inf or nan")

    if act_order:
        g_idx = _act_order_group_index(k, gs, generator).to(device)
    else:
        g_idx = formats.group_index_default(k, gs, device=device).to(torch.int64)

    index = g_idx[:, None].expand(k, n)
    lo = torch.full((groups, n), math.inf, device=device).scatter_reduce(0, index, w, "amin")
    hi = torch.full((groups, n), -math.inf, device=device).scatter_reduce(0, index, w, "amax")

    maxq = (1 << bits) - 1
    if symmetric:
        zero = torch.full((groups, n), 1 << (bits - 1), dtype=torch.float32, device=device)
        scale = torch.maximum(lo.abs(), hi.abs()) / ((1 << (bits - 1)) - 0.5)
    else:
        # Ideal min-max grid, then clamp the zero into the storable range [0, maxq] and take the
        # smallest scale that covers [lo, hi] to within half a step around that zero.
        s0 = ((hi - lo) / maxq).clamp_min(_MIN_SCALE)
        z0 = torch.round(-lo / s0)
        zmin = 0 if v2_zeros else 1
        zero = z0.clamp(zmin, maxq)
        scale = torch.maximum(-lo / (zero + 0.5), hi / (maxq - zero + 0.5))
        if not v2_zeros:
            # v1 can also store zero = maxq + 1 (grid -scale*(maxq+1) .. -scale), which suits
            # groups lying entirely below zero; it needs hi <= -scale / 2.
            s_top = (-lo / (maxq + 1.5)).clamp_min(_MIN_SCALE)
            use_top = (z0 >= maxq + 1) & (_round_up_fp16(s_top).float() <= -2.0 * hi)
            zero = torch.where(use_top, torch.full_like(zero, maxq + 1), zero)
            scale = torch.where(use_top, s_top, scale)
    scale = scale.clamp_min(_MIN_SCALE)
    if float(scale.max()) * _ROUND_UP > _FP16_MAX:
        raise ValueError(
            f"weight magnitude too large: a scale of {float(scale.max()):.6g} does not fit in fp16"
        )
    scales = _round_up_fp16(scale)

    s_rows = scales.float()[g_idx]
    z_rows = zero[g_idx]
    q = torch.clamp(torch.round(w / s_rows) + z_rows, 0, maxq).to(torch.int32)
    stored = zero.to(torch.int64) - (0 if v2_zeros else 1)

    return GPTQTensors(
        qweight=formats.pack_rows(q, bits),
        qzeros=formats.pack_columns(stored, bits),
        scales=scales,
        g_idx=g_idx.to(torch.int32),
        bits=bits,
        group_size=formats._as_int("group_size", group_size),
        v2_zeros=v2_zeros,
    )


def random_gptq(
    k: int,
    n: int,
    bits: int,
    group_size: int,
    *,
    symmetric: bool,
    act_order: bool,
    v2_zeros: bool,
    seed: int,
    device: Union[str, torch.device] = "cpu",
) -> GPTQTensors:
    """Random GPTQ tensors: normal weights ``[k, n]`` quantized with :func:`quantize_rtn`.

    Weights are drawn on the CPU from ``seed`` (deterministic across devices), with a per-column
    standard deviation log-uniform in [0.005, 0.05]. For asymmetric quantization each
    (group, column) gets a random offset, and about 10% of them are made entirely non-negative
    and 10% entirely negative, so that stored zeros vary across columns and groups and reach
    both 0 and ``2**bits - 1`` (in the v1 and the v2 convention alike). Scales are positive fp16.
    Result tensors are on ``device``; shapes and dtypes as in :class:`GPTQTensors`.
    """
    bits = formats._check_bits(bits)
    k = formats._as_int("k", k)
    n = formats._as_int("n", n)
    seed = formats._as_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    col_std = torch.exp(
        torch.empty(n).uniform_(math.log(0.005), math.log(0.05), generator=gen)
    )
    w = torch.randn(k, n, generator=gen) * col_std

    perm_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    if not symmetric:
        gs = _check_group_size(group_size, k) if k > 0 else 1
        groups = k // gs if k > 0 else 0
        if act_order:
            g_idx = _act_order_group_index(k, gs, torch.Generator().manual_seed(perm_seed))
        else:
            g_idx = formats.group_index_default(k, gs).to(torch.int64)
        u = torch.rand(groups, n, generator=gen)
        offset = torch.empty(groups, n).uniform_(-1.5, 1.5, generator=gen) * col_std
        positive = (u < 0.1)[g_idx]
        negative = ((u >= 0.1) & (u < 0.2))[g_idx]
        w = torch.where(positive, w.abs(), w + offset[g_idx])
        w = torch.where(negative, -(w.abs() + 3.0 * col_std), w)

    return quantize_rtn(
        w.to(device),
        bits,
        group_size=group_size,
        symmetric=symmetric,
        act_order=act_order,
        v2_zeros=v2_zeros,
        generator=torch.Generator().manual_seed(perm_seed),
    )

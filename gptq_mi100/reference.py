"""fp32 reference dequantization and GEMM for GPTQ tensors (pure torch, never the extension).

Shapes (K = in_features, N = out_features, G = groups):
``qweight`` int32 ``[K * bits / 32, N]``, ``qzeros`` int32 ``[G, N * bits / 32]``,
``scales`` float (fp16 in checkpoints) ``[G, N]``, ``g_idx`` integer ``[K]`` or None.

``w[k, n] = scales[g_idx[k], n] * (q[k, n] - z[g_idx[k], n])`` with ``z = stored + 1`` for GPTQ v1
zeros (``v2_zeros=False``) and ``z = stored`` for v2 zeros. Rows stay in checkpoint K order.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import formats

__all__ = ["dequantize_reference", "gemm_reference", "error_bound"]

_REFERENCE_DTYPES = (torch.float32, torch.float64)


def _check_dtype(dtype) -> None:
    if dtype not in _REFERENCE_DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")


def _check_int_tensor(name: str, t, dims: int, shape_doc: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must have an integer dtype, got {t.dtype}")
    if t.dim() != dims:
        raise ValueError(f"{name} must be {dims}-D {shape_doc}, got shape {tuple(t.shape)}")


def dequantize_reference(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: Optional[torch.Tensor],
    bits: int,
    v2_zeros: bool,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Dequantize GPTQ checkpoint tensors -> ``dtype`` (fp32 or fp64) ``[K, N]``, checkpoint K order.

    Args:
        qweight: int32 ``[K * bits / 32, N]``.
        qzeros: int32 ``[G, N * bits / 32]``.
        scales: floating ``[G, N]`` (fp16 in checkpoints; converted exactly to ``dtype``).
        g_idx: integer ``[K]`` with values in ``[0, G)``, or None for the default grouping
            ``k // (K // G)`` (then K must be divisible by G).
        bits: 2, 3, 4 or 8.
        v2_zeros: False for GPTQ v1 zeros (true zero = stored + 1), True for v2 (= stored).
        dtype: torch.float32 (default) or torch.float64.

    The result is on ``qweight``'s device.
    """
    bits = formats._check_bits(bits)
    if not isinstance(v2_zeros, bool):
        raise TypeError(f"v2_zeros must be a bool, got {type(v2_zeros).__name__} {v2_zeros!r}")
    _check_dtype(dtype)
    _check_int_tensor("qweight", qweight, 2, "[K*bits/32, N]")
    _check_int_tensor("qzeros", qzeros, 2, "[G, N*bits/32]")
    if not isinstance(scales, torch.Tensor):
        raise TypeError(f"scales must be a torch.Tensor, got {type(scales).__name__}")
    if not scales.dtype.is_floating_point:
        raise TypeError(f"scales must have a floating dtype, got {scales.dtype}")
    if scales.dim() != 2:
        raise ValueError(f"scales must be 2-D [G, N], got shape {tuple(scales.shape)}")

    rows, n = qweight.shape
    if (rows * 32) % bits != 0:
        raise ValueError(
            f"qweight has {rows} rows, not a multiple of {bits} as {bits}-bit packing needs"
        )
    k = rows * 32 // bits
    groups = scales.shape[0]
    if scales.shape[1] != n:
        raise ValueError(
            f"scales has shape {tuple(scales.shape)} but qweight has N={n} columns; expected [G, {n}]"
        )
    if groups < 1:
        raise ValueError(f"scales must have at least one group (row), got shape {tuple(scales.shape)}")
    unit = formats.pack_multiple(bits)
    if n % unit != 0:
        raise ValueError(
            f"N={n} must be a multiple of {unit} for {bits}-bit packed qzeros"
        )
    zcols = n * bits // 32
    if tuple(qzeros.shape) != (groups, zcols):
        raise ValueError(
            f"qzeros has shape {tuple(qzeros.shape)} but G={groups} (scales.shape[0]) and N={n} at "
            f"{bits} bits need ({groups}, {zcols})"
        )

    device = qweight.device
    if g_idx is None:
        if k % groups != 0:
            raise ValueError(
                f"g_idx is None, so K={k} must be divisible by the number of groups G={groups} "
                f"(scales.shape[0])"
            )
        g = formats.group_index_default(k, k // groups, device=device).to(torch.int64)
    else:
        _check_int_tensor("g_idx", g_idx, 1, "[K]")
        if g_idx.shape[0] != k:
            raise ValueError(f"g_idx has length {g_idx.shape[0]}, but qweight encodes K={k}")
        g = g_idx.to(device=device, dtype=torch.int64)
        if k > 0:
            lo, hi = int(g.min()), int(g.max())
            if lo < 0 or hi >= groups:
                raise ValueError(
                    f"g_idx values must lie in [0, {groups}) (G = scales.shape[0]), got min {lo}, max {hi}"
                )

    q = formats.unpack_rows(qweight.to(torch.int32), bits, k).to(device)
    z = formats.unpack_columns(qzeros.to(torch.int32), bits, n).to(device=device, dtype=torch.int64)
    if not v2_zeros:
        z = z + 1
    s = scales.to(device=device, dtype=dtype)
    return s[g] * (q.to(torch.int64) - z[g]).to(dtype)


def gemm_reference(
    a: torch.Tensor,
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: Optional[torch.Tensor],
    bits: int,
    v2_zeros: bool,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Reference ``a @ W``: ``a`` floating ``[..., K]`` -> ``dtype`` ``[..., N]`` (fp32 by default).

    ``W`` is :func:`dequantize_reference` of the other arguments (see there for shapes). The product
    is accumulated in float64 (immune to TF32 / reduced-precision matmul settings) and rounded once
    to ``dtype`` (torch.float32 or torch.float64); callers round further as needed.
    """
    _check_dtype(dtype)
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"a must be a torch.Tensor, got {type(a).__name__}")
    if not a.dtype.is_floating_point:
        raise TypeError(f"a must have a floating dtype, got {a.dtype}")
    if a.dim() < 1:
        raise ValueError("a must have at least 1 dimension [..., K], got a scalar")
    w = dequantize_reference(qweight, qzeros, scales, g_idx, bits, v2_zeros, dtype=torch.float64)
    if a.shape[-1] != w.shape[0]:
        raise ValueError(
            f"a has last dimension {a.shape[-1]}, but qweight encodes K={w.shape[0]}"
        )
    out = a.to(device=w.device, dtype=torch.float64) @ w
    return out.to(dtype)


def error_bound(a: torch.Tensor, w_ref: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype):
    """Per-element bound of fp16-level error against the fp32 reference (README, "Accuracy").

    eps * |ref| for rounding the output to `dtype`, plus 4 * eps * sqrt((a^2) @ (w^2)): the
    spread of rounding each weight to `dtype` (what dequantize + matmul does) summed over K as
    a random walk. fp16 accumulation exceeds it by orders of magnitude; so does a wrong or
    unwritten element.
    """
    eps = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}[dtype]
    spread = (a.float().pow(2) @ w_ref.pow(2)).sqrt()
    return eps * ref.abs() + 4 * eps * spread + 1e-6

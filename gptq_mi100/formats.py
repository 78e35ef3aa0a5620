"""Exact packing of GPTQ checkpoint tensors (pure torch, no compiled extension).

Conventions (K = in_features, N = out_features, G = groups):

* ``qweight`` int32 ``[K * bits / 32, N]``: values packed along K, low bits first.
  For 2, 4 and 8 bits one int32 word holds ``32 / bits`` consecutive values, value ``i`` of the
  word at bit ``bits * i``. For 3 bits, 32 consecutive values form a 96-bit little-endian stream
  held in 3 consecutive words: value ``i`` starts at stream bit ``3 * i``, so values 10 (bits
  30..32) and 21 (bits 63..65) straddle two words.
* ``qzeros`` int32 ``[G, N * bits / 32]``: the same packing, along N.
* Zeros: GPTQ v1 (AutoGPTQ) stores ``true zero - 1``; GPTQ v2 (GPTQModel) stores the true zero.

The bit work is done in int64 and words are converted to int32 with two's-complement wraparound,
so values in the top bits give negative int32 words, exactly as in checkpoints.
"""

from __future__ import annotations

import operator
from typing import Optional, Union

import torch

__all__ = [
    "SUPPORTED_BITS",
    "pack_multiple",
    "pack_rows",
    "unpack_rows",
    "pack_columns",
    "unpack_columns",
    "zeros_v1_to_v2",
    "zeros_v2_to_v1",
    "group_index_default",
]

SUPPORTED_BITS = (2, 3, 4, 8)

_WORD_MASK = 0xFFFFFFFF


def _as_int(name: str, value) -> int:
    """``value`` as a Python int (bool rejected), or TypeError naming ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def _check_bits(bits) -> int:
    bits = _as_int("bits", bits)
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of 2, 3, 4, 8, got {bits}")
    return bits


def pack_multiple(bits: int) -> int:
    """Number of values in one packing block: 32 for 3-bit (3 words), ``32 // bits`` otherwise.

    The packed dimension (K for qweight, N for qzeros) must be a multiple of this.
    """
    bits = _check_bits(bits)
    return 32 if bits == 3 else 32 // bits


def _words_per_block(bits: int) -> int:
    return 3 if bits == 3 else 1


def _check_tensor(name: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def _check_values(values, bits: int, dim_name: str, axis: int) -> None:
    _check_tensor("values", values)
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise TypeError(f"values must have an integer dtype, got {values.dtype}")
    if values.dim() != 2:
        shape_doc = "[K, N]" if axis == 0 else "[G, N]"
        raise ValueError(f"values must be 2-D {shape_doc}, got shape {tuple(values.shape)}")
    length = values.shape[axis]
    unit = pack_multiple(bits)
    if length % unit != 0:
        raise ValueError(
            f"{dim_name} (values.shape[{axis}]) must be a multiple of {unit} for {bits}-bit packing, "
            f"got {length}"
        )
    if values.numel() > 0:
        lo = int(values.min())
        hi = int(values.max())
        if lo < 0 or hi >= (1 << bits):
            raise ValueError(
                f"values must lie in [0, {1 << bits}) for {bits}-bit packing, got min {lo}, max {hi}"
            )


def _to_int32_wrap(words64: torch.Tensor) -> torch.Tensor:
    """int64 words in [0, 2**32) -> int32 with two's-complement wraparound."""
    words64 = torch.where(words64 >= (1 << 31), words64 - (1 << 32), words64)
    return words64.to(torch.int32)


def _pack_dim0(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack validated values [L, M] along dim 0 -> int32 [L * bits / 32, M]."""
    unit = pack_multiple(bits)
    wpb = _words_per_block(bits)
    length, m = values.shape
    blocks = values.to(torch.int64).reshape(length // unit, unit, m)
    out = torch.zeros(length // unit, wpb, m, dtype=torch.int64, device=values.device)
    for i in range(unit):
        word, offset = divmod(bits * i, 32)
        val = blocks[:, i, :]
        out[:, word, :] |= (val << offset) & _WORD_MASK
        if offset + bits > 32:  # straddles into the next word (3-bit only)
            out[:, word + 1, :] |= val >> (32 - offset)
    return _to_int32_wrap(out.reshape(length // unit * wpb, m))


def _unpack_dim0(packed: torch.Tensor, bits: int, length: int) -> torch.Tensor:
    """Unpack validated int32 [length * bits / 32, M] along dim 0 -> int32 [length, M]."""
    unit = pack_multiple(bits)
    wpb = _words_per_block(bits)
    m = packed.shape[1]
    words = (packed.to(torch.int64) & _WORD_MASK).reshape(length // unit, wpb, m)
    out = torch.empty(length // unit, unit, m, dtype=torch.int64, device=packed.device)
    mask = (1 << bits) - 1
    for i in range(unit):
        word, offset = divmod(bits * i, 32)
        val = words[:, word, :] >> offset
        if offset + bits > 32:
            val = val | (words[:, word + 1, :] << (32 - offset))
        out[:, i, :] = val & mask
    return out.reshape(length, m).to(torch.int32)


def _check_packed(packed, bits: int, length, length_name: str, axis: int) -> int:
    _check_tensor("packed", packed)
    if packed.dtype != torch.int32:
        raise TypeError(f"packed must be an int32 tensor, got {packed.dtype}")
    if packed.dim() != 2:
        raise ValueError(f"packed must be 2-D, got shape {tuple(packed.shape)}")
    length = _as_int(length_name, length)
    unit = pack_multiple(bits)
    if length < 0 or length % unit != 0:
        raise ValueError(
            f"{length_name} must be a non-negative multiple of {unit} for {bits}-bit packing, got {length}"
        )
    need = length * bits // 32
    if packed.shape[axis] != need:
        what = "rows" if axis == 0 else "columns"
        raise ValueError(
            f"packed has {packed.shape[axis]} {what}, but {length_name}={length} at {bits} bits needs "
            f"{length_name}*bits/32 = {need}"
        )
    return length


def pack_rows(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack ``values`` int ``[K, N]`` along K (qweight layout) -> int32 ``[K * bits / 32, N]``.

    ``values`` may have any integer dtype and must lie in ``[0, 2**bits)``; K must be a multiple
    of :func:`pack_multiple` (32 for 3-bit, ``32 // bits`` otherwise). Result is on the input's device.
    """
    bits = _check_bits(bits)
    _check_values(values, bits, "K", 0)
    return _pack_dim0(values, bits)


def unpack_rows(packed: torch.Tensor, bits: int, k: int) -> torch.Tensor:
    """Inverse of :func:`pack_rows`: int32 ``[k * bits / 32, N]`` -> int32 ``[k, N]`` in ``[0, 2**bits)``."""
    bits = _check_bits(bits)
    k = _check_packed(packed, bits, k, "k", 0)
    return _unpack_dim0(packed, bits, k)


def pack_columns(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack ``values`` int ``[G, N]`` along N (qzeros layout) -> int32 ``[G, N * bits / 32]``.

    Same bit layout as :func:`pack_rows`, applied to each row; N must be a multiple of
    :func:`pack_multiple`.
    """
    bits = _check_bits(bits)
    _check_values(values, bits, "N", 1)
    return _pack_dim0(values.t(), bits).t().contiguous()


def unpack_columns(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_columns`: int32 ``[G, n * bits / 32]`` -> int32 ``[G, n]``."""
    bits = _check_bits(bits)
    n = _check_packed(packed, bits, n, "n", 1)
    return _unpack_dim0(packed.t(), bits, n).t().contiguous()


def _first_index(mask: torch.Tensor):
    idx = mask.nonzero()[0]
    return tuple(int(i) for i in idx)


def zeros_v1_to_v2(qzeros: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Packed GPTQ v1 zeros (stored = zero - 1) -> packed v2 zeros (stored = zero).

    ``qzeros`` int32 ``[G, n * bits / 32]`` -> int32 of the same shape. Raises ValueError if a
    stored v1 zero is ``2**bits - 1`` (its v2 value ``2**bits`` does not fit in ``bits`` bits).
    """
    bits = _check_bits(bits)
    z = unpack_columns(qzeros, bits, n).to(torch.int64) + 1
    bad = z > (1 << bits) - 1
    if bool(bad.any()):
        g, col = _first_index(bad)
        raise ValueError(
            f"zeros_v1_to_v2: stored v1 zero {int(z[g, col]) - 1} at [{g}, {col}] becomes v2 zero "
            f"{int(z[g, col])}, which does not fit in {bits} bits (max {(1 << bits) - 1})"
        )
    return pack_columns(z, bits)


def zeros_v2_to_v1(qzeros: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Packed GPTQ v2 zeros (stored = zero) -> packed v1 zeros (stored = zero - 1).

    ``qzeros`` int32 ``[G, n * bits / 32]`` -> int32 of the same shape. Raises ValueError if a
    stored v2 zero is 0 (its v1 value -1 does not fit).
    """
    bits = _check_bits(bits)
    z = unpack_columns(qzeros, bits, n).to(torch.int64) - 1
    bad = z < 0
    if bool(bad.any()):
        g, col = _first_index(bad)
        raise ValueError(
            f"zeros_v2_to_v1: stored v2 zero 0 at [{g}, {col}] becomes v1 zero -1, which does not "
            f"fit in {bits} bits (min 0)"
        )
    return pack_columns(z, bits)


def group_index_default(
    k: int, group_size: int, device: Optional[Union[str, torch.device]] = None
) -> torch.Tensor:
    """Default (no act-order) group index: int32 ``[k]`` with ``g_idx[i] = i // group_size``.

    ``group_size == -1`` means one group over all of K (all zeros).
    """
    k = _as_int("k", k)
    group_size = _as_int("group_size", group_size)
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    if group_size != -1 and group_size <= 0:
        raise ValueError(f"group_size must be -1 (one group) or a positive int, got {group_size}")
    if group_size == -1:
        return torch.zeros(k, dtype=torch.int32, device=device)
    return torch.div(
        torch.arange(k, dtype=torch.int64, device=device), group_size, rounding_mode="floor"
    ).to(torch.int32)

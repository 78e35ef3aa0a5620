"""Weight layouts read by the GPU kernels (pure torch; never imports the compiled extension).

Layout 1 is plain GPTQ packing (see :mod:`gptq_mi100.formats`) with the K rows in kernel order
(act-order already applied by ``prepare`` / ``gptq_shuffle``). Layout 2 ("tiled") repacks a
layout-1 ``qweight`` int32 ``[K * bits / 32, N]`` into a tensor of the same shape and dtype
(vLLM repacks in place, same size) whose memory is a flat buffer of 16-byte *chunks*
(4 int32 words each). It exists for bits 2, 4 and 8 only.

Parameters: ``TK = 512 // bits`` rows per tile (4-bit 128, 8-bit 64, 2-bit 256),
``S = TK // 16`` steps per chunk (4-bit 8, 8-bit 4, 2-bit 16), ``P = 16 // bits`` value pairs
per word (4-bit 4, 8-bit 2, 2-bit 8), ``R = K * bits / 32`` (qweight rows). Requires
``K % TK == 0`` and ``N % (32 // bits) == 0`` (what GPTQ's qzeros packing already requires;
it implies ``N % 4 == 0``).

The spec::

    flat int32 buffer (the output viewed as R*N words)
    +-------------------+-------------------+-----+----------------------+
    | strip 0           | strip 1           | ... | last strip (W cols)  |   strip s: columns
    | cols 0..15        | cols 16..31       |     | W = N - 16s in 4..16 |   16s .. 16s+W-1,
    +-------------------+-------------------+-----+----------------------+   base 16*s*R words
        |
        v  a strip = K/TK tiles, tile kt at strip_base + kt*16*W words (W cols x TK rows)
    +--------+--------+-----+
    | tile 0 | tile 1 | ... |
    +--------+--------+-----+
        |
        v  a tile = 4*W chunks, chunk c = q*W + col (q 0..3, col 0..W-1) at tile_base + 4*c
    +-------+-------+-----+---------+-------+-----+-----------+
    | q0 c0 | q0 c1 | ... | q0 cW-1 | q1 c0 | ... | q3 c W-1  |
    +-------+-------+-----+---------+-------+-----+-----------+
        |
        v  a chunk = 4 words = S steps x 4 values of ONE column n = 16s + col:
           value (st, j) is the weight at kernel row k = kt*TK + 16*st + 4*q + j, j 0..3.
           pairs t = 2*st + h (h 0: j 0,1; h 1: j 2,3), t in 0..2S-1
           pair t -> word w = t // P, position p = t % P:
           bit  31        16+bits*p      16  15          bits*p        0
               [ ... | value j=2h+1 | ... ] [ ... | value j=2h | ... ]
           so (word >> bits*p) & (mask | mask << 16) holds both values of the pair in the two
           16-bit halves (OR 0x64006400 -> two fp16 numbers 1024 + value).

    4-bit example, chunk (q, col): word 0 = pairs t 0..3 = steps 0,1:
        bits  0.. 3: k 4q+0      bits 16..19: k 4q+1        (t 0: st 0, h 0)
        bits  4.. 7: k 4q+2      bits 20..23: k 4q+3        (t 1: st 0, h 1)
        bits  8..11: k 16+4q+0   bits 24..27: k 16+4q+1     (t 2: st 1, h 0)
        bits 12..15: k 16+4q+2   bits 28..31: k 16+4q+3     (t 3: st 1, h 1)
        words 1, 2, 3: steps 2-3, 4-5, 6-7 the same way.

Why: a wave's lanes read consecutive 16-byte chunks, so a tile is one fully coalesced load.
Lane ``l`` of a 64-lane AMD wave holding chunk ``l`` (``q = l // 16``, ``col = l % 16``) has,
for each step, exactly the B operand of ``v_mfma_f32_16x16x16f16`` (4 consecutive k values of
one column). For NVIDIA ``mma.sync m16n8k16`` lane ``l`` takes chunks ``(q = l % 4, col = l // 4)``
and ``(q = l % 4, col = 8 + l // 4)``: its B fragment slots k = {2g, 2g+1, 2g+8, 2g+9} are
relabelled as logical k = 4g + {0, 1, 2, 3}, and the A fragment reads the activations with the
same relabelling. A vector (dot2) kernel lane owns one column and reads 32 k values (4-bit) per
chunk.

The conversions use uint8 values and int32 words (never int64 for the bulk data) and work on any
device; the result is on the input's device.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import formats

__all__ = [
    "TILED_BITS",
    "tile_rows",
    "tiled_applies",
    "to_tiled",
    "from_tiled",
    "unpack_tiled",
    "dequantize_tiled",
]

TILED_BITS = (2, 4, 8)
_STRIP = 16  # columns per strip
_WORDS_PER_CHUNK = 4


def _check_tiled_bits(bits) -> int:
    bits = formats._as_int("bits", bits)
    if bits not in TILED_BITS:
        raise ValueError(f"bits must be 2, 4 or 8 for layout 2 (tiled), got {bits}")
    return bits


def tile_rows(bits: int) -> int:
    """Rows per tile ``TK = 512 // bits`` of layout 2 (2-bit 256, 4-bit 128, 8-bit 64)."""
    return 512 // _check_tiled_bits(bits)


def tiled_applies(bits: int, k: int, n: int) -> bool:
    """Whether layout 2 exists for ``bits`` and a K x N weight.

    True iff bits is 2, 4 or 8, ``k`` is a non-negative multiple of :func:`tile_rows` and ``n``
    a non-negative multiple of ``32 // bits`` (hence of 4). 3-bit is always False.
    """
    bits = formats._as_int("bits", bits)
    k = formats._as_int("k", k)
    n = formats._as_int("n", n)
    if bits not in TILED_BITS:
        return False
    return k >= 0 and n >= 0 and k % (512 // bits) == 0 and n % 4 == 0 and n % (32 // bits) == 0


def _check_qweight(name: str, t, bits: int):
    """Validate a [K*bits/32, N] int32 tensor for layout 2; returns (K, N)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.int32:
        raise TypeError(f"{name} must be an int32 tensor [K*bits/32, N], got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D [K*bits/32, N], got shape {tuple(t.shape)}")
    rows, n = t.shape
    k = rows * 32 // bits
    tk = 512 // bits
    if k % tk != 0:
        raise ValueError(
            f"{name} has {rows} rows, i.e. K={k} at {bits} bits; layout 2 (tiled) needs K a "
            f"multiple of {tk} (512 // bits), i.e. {name}.shape[0] a multiple of {tk * bits // 32}"
        )
    unit = 32 // bits
    if n % unit != 0:
        raise ValueError(
            f"{name} has N={n} columns; layout 2 (tiled) at {bits} bits needs N a multiple of {unit}"
        )
    return k, n


def _join_halves(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """int32 lo, hi in [0, 2**16) -> int32 word lo | hi << 16 (two's complement, no overflow)."""
    hi = torch.where(hi >= 0x8000, hi - 0x10000, hi)
    return hi * 0x10000 + lo


def _unpack_layout1(qweight: torch.Tensor, bits: int, k: int) -> torch.Tensor:
    """int32 [K*bits/32, N] (GPTQ packing along K) -> uint8 values [K, N]."""
    rows, n = qweight.shape
    pf = 32 // bits
    mask = (1 << bits) - 1
    vals = torch.empty(rows, pf, n, dtype=torch.uint8, device=qweight.device)
    for i in range(pf):
        vals[:, i, :] = ((qweight >> (bits * i)) & mask).to(torch.uint8)
    return vals.reshape(k, n)


def _pack_layout1(vals: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 values [K, N] -> int32 [K*bits/32, N] (GPTQ packing along K, low bits first)."""
    k, n = vals.shape
    pf = 32 // bits
    v = vals.reshape(k // pf, pf, n)
    lo = torch.zeros(k // pf, n, dtype=torch.int32, device=vals.device)
    hi = torch.zeros_like(lo)
    for i in range(pf):
        shift = bits * i
        if shift < 16:
            lo |= v[:, i, :].to(torch.int32) << shift
        else:
            hi |= v[:, i, :].to(torch.int32) << (shift - 16)
    return _join_halves(lo, hi)


def _strips(n: int):
    """[(first column, width)] : full strips merged into one block, then the narrow one."""
    full = n // _STRIP * _STRIP
    out = []
    if full:
        out.append((0, full))
    if n > full:
        out.append((full, n - full))
    return out


def _block_to_words(v: torch.Tensor, bits: int, k: int, width: int) -> torch.Tensor:
    """uint8 values [K, width] of strips starting at column n0 -> flat int32 words."""
    tk = 512 // bits
    s_steps = tk // 16
    p_pairs = 16 // bits
    w = min(width, _STRIP)
    ns = width // w
    # k = kt*TK + 16*st + 4*q + j ; n = n0 + 16*s + col
    x = v.reshape(k // tk, s_steps, 4, 4, ns, w)          # kt, st, q, j, s, col
    x = x.permute(4, 0, 2, 5, 1, 3).contiguous()          # s, kt, q, col, st, j
    # (st, j) = (st, h, jj) -> pair t = 2*st + h, jj -> (word, p, jj)
    x = x.reshape(-1, _WORDS_PER_CHUNK, p_pairs, 2)
    lo = torch.zeros(x.shape[:2], dtype=torch.int32, device=v.device)
    hi = torch.zeros_like(lo)
    for p in range(p_pairs):
        lo |= x[:, :, p, 0].to(torch.int32) << (bits * p)
        hi |= x[:, :, p, 1].to(torch.int32) << (bits * p)
    return _join_halves(lo, hi).reshape(-1)


def _words_to_block(words: torch.Tensor, bits: int, k: int, width: int) -> torch.Tensor:
    """Flat int32 words of strips of total ``width`` columns -> uint8 values [K, width]."""
    tk = 512 // bits
    s_steps = tk // 16
    p_pairs = 16 // bits
    mask = (1 << bits) - 1
    w = min(width, _STRIP)
    ns = width // w
    wd = words.reshape(-1, _WORDS_PER_CHUNK)
    x = torch.empty(wd.shape[0], _WORDS_PER_CHUNK, p_pairs, 2, dtype=torch.uint8,
                    device=words.device)
    for p in range(p_pairs):
        x[:, :, p, 0] = ((wd >> (bits * p)) & mask).to(torch.uint8)
        x[:, :, p, 1] = ((wd >> (16 + bits * p)) & mask).to(torch.uint8)
    x = x.reshape(ns, k // tk, 4, w, s_steps, 4)          # s, kt, q, col, st, j
    x = x.permute(1, 4, 2, 5, 0, 3)                       # kt, st, q, j, s, col
    return x.reshape(k, width)


def to_tiled(qweight: torch.Tensor, bits: int) -> torch.Tensor:
    """Layout 1 -> layout 2: int32 ``[K*bits/32, N]`` (GPTQ packing, K in kernel order) -> a new
    int32 tensor of the same shape on the same device holding the tiled buffer (module docstring).

    Raises TypeError for a non-tensor or non-int32 ``qweight``, ValueError for bits other than
    2/4/8, a non-2-D ``qweight``, K not a multiple of ``512 // bits`` or N not a multiple of
    ``32 // bits``.
    """
    bits = _check_tiled_bits(bits)
    k, n = _check_qweight("qweight", qweight, bits)
    out = torch.empty_like(qweight, memory_format=torch.contiguous_format)
    if qweight.numel() == 0:
        return out
    vals = _unpack_layout1(qweight, bits, k)
    flat = out.view(-1)
    rows = qweight.shape[0]
    for n0, width in _strips(n):
        flat[n0 * rows:(n0 + width) * rows] = _block_to_words(
            vals[:, n0:n0 + width], bits, k, width)
    return out


def from_tiled(tiled: torch.Tensor, bits: int) -> torch.Tensor:
    """Exact inverse of :func:`to_tiled`: layout-2 int32 ``[K*bits/32, N]`` -> new layout-1 tensor
    (GPTQ packing along K, low bits first), same shape, dtype and device. Errors as in to_tiled."""
    bits = _check_tiled_bits(bits)
    k, n = _check_qweight("tiled", tiled, bits)
    if tiled.numel() == 0:
        return torch.empty_like(tiled, memory_format=torch.contiguous_format)
    flat = tiled.contiguous().view(-1)
    rows = tiled.shape[0]
    vals = torch.empty(k, n, dtype=torch.uint8, device=tiled.device)
    for n0, width in _strips(n):
        vals[:, n0:n0 + width] = _words_to_block(
            flat[n0 * rows:(n0 + width) * rows], bits, k, width)
    return _pack_layout1(vals, bits)


def unpack_tiled(tiled: torch.Tensor, bits: int) -> torch.Tensor:
    """Values of a layout-2 tensor: int32 ``[K*bits/32, N]`` -> int32 ``[K, N]`` (kernel K order).

    A reader written straight from the spec (per element: word index and bit offset by the
    formulas of the module docstring, then one gather), independent of :func:`from_tiled`, so
    that tests check the two against each other. It builds int64 index tensors [K, N]; it is
    meant for tests and load-time checks, not hot paths.
    """
    bits = _check_tiled_bits(bits)
    k, n = _check_qweight("tiled", tiled, bits)
    dev = tiled.device
    rows = tiled.shape[0]
    tk = 512 // bits
    p_pairs = 16 // bits
    mask = (1 << bits) - 1

    kk = torch.arange(k, dtype=torch.int64, device=dev)
    kt, kl = kk // tk, kk % tk
    st, q, j = kl // 16, (kl % 16) // 4, kl % 4
    t = 2 * st + j // 2
    word_in_chunk, p = t // p_pairs, t % p_pairs
    bit = bits * p + 16 * (j % 2)                                   # [K]

    nn = torch.arange(n, dtype=torch.int64, device=dev)
    s, col = nn // _STRIP, nn % _STRIP
    width = torch.clamp(n - _STRIP * s, max=_STRIP)                 # W of n's strip
    strip_base = _STRIP * s * rows                                  # [N]

    index = (strip_base[None, :] + kt[:, None] * 16 * width[None, :]
             + 4 * (q[:, None] * width[None, :] + col[None, :]) + word_in_chunk[:, None])
    words = tiled.contiguous().view(-1)[index]                      # int32 [K, N]
    return (words >> bit[:, None].to(torch.int32)) & mask


def dequantize_tiled(
    tiled: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    group_index: Optional[torch.Tensor],
    bits: int,
    group_size: int,
    v2_zeros: bool,
) -> torch.Tensor:
    """Pure-torch reader of layout 2: fp32 ``W [K, N]`` in kernel K order.

    ``w[k, n] = scales[g(k), n] * (q[k, n] - zero[g(k), n])`` with q from :func:`unpack_tiled`,
    ``g(k) = group_index[k]`` if given, else ``k // group_size`` (``group_size == -1``: one
    group), ``zero = stored + 1`` for GPTQ v1 (``v2_zeros=False``) and ``stored`` for v2.
    ``qzeros`` int32 ``[G, N*bits/32]`` (packed along N as stored), ``scales`` floating ``[G, N]``.
    Same fp32 arithmetic as :func:`gptq_mi100.reference.dequantize_reference` (bitwise equal).
    """
    bits = _check_tiled_bits(bits)
    if not isinstance(v2_zeros, bool):
        raise TypeError(f"v2_zeros must be a bool, got {type(v2_zeros).__name__} {v2_zeros!r}")
    k, n = _check_qweight("tiled", tiled, bits)
    if not isinstance(scales, torch.Tensor):
        raise TypeError(f"scales must be a torch.Tensor, got {type(scales).__name__}")
    if not scales.dtype.is_floating_point:
        raise TypeError(f"scales must have a floating dtype, got {scales.dtype}")
    if scales.dim() != 2 or scales.shape[1] != n or scales.shape[0] < 1:
        raise ValueError(f"scales must be [G, N] with G >= 1, N={n}, got shape {tuple(scales.shape)}")
    groups = scales.shape[0]
    dev = tiled.device
    if group_index is None:
        group_size = formats._as_int("group_size", group_size)
        if group_size == -1:
            group_size = max(k, 1)
        if group_size <= 0:
            raise ValueError(f"group_size must be -1 or positive, got {group_size}")
        g = torch.arange(k, dtype=torch.int64, device=dev) // group_size
    else:
        if not isinstance(group_index, torch.Tensor) or group_index.dim() != 1 \
                or group_index.shape[0] != k:
            raise ValueError(f"group_index must be a 1-D tensor of length K={k} or None")
        g = group_index.to(device=dev, dtype=torch.int64)
    if k > 0 and (int(g.min()) < 0 or int(g.max()) >= groups):
        raise ValueError(f"group of some row outside [0, {groups}) (G = scales.shape[0])")
    q = unpack_tiled(tiled, bits)
    z = formats.unpack_columns(qzeros, bits, n).to(dev)
    if not v2_zeros:
        z = z + 1
    return scales.to(device=dev, dtype=torch.float32)[g] * (q - z[g]).to(torch.float32)

"""Tests for gptq_mi100.formats, .reference and .quantize (pure torch, no compiled extension)."""

import os
import re
import subprocess
import sys
import zlib

import pytest
import torch

from gptq_mi100 import formats, quantize, reference

BITS = (2, 3, 4, 8)


def _seed(*parts) -> int:
    """Fixed seed derived from the test parameters (differs between parametrized cases)."""
    return zlib.crc32(repr(parts).encode())


def _gen(*parts) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(*parts))


def _random_values(shape, bits, gen):
    """Random values in [0, 2**bits) with 0 and 2**bits - 1 forced in."""
    v = torch.randint(0, 1 << bits, shape, generator=gen, dtype=torch.int64)
    v.view(-1)[0] = 0
    v.view(-1)[-1] = (1 << bits) - 1
    return v


def _u32(x: int) -> int:
    """Unsigned 32-bit word -> the int32 value a checkpoint holds."""
    return x - (1 << 32) if x >= (1 << 31) else x


# --------------------------------------------------------------------------------------------
# pack / unpack


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("size", ["min", "realistic"])
def test_pack_rows_roundtrip(bits, size):
    unit = formats.pack_multiple(bits)
    k, n = (unit, 1) if size == "min" else (512, 96)
    values = _random_values((k, n), bits, _gen("rows", bits, size))
    packed = formats.pack_rows(values, bits)
    assert packed.dtype == torch.int32
    assert packed.shape == (k * bits // 32, n)
    out = formats.unpack_rows(packed, bits, k)
    assert out.dtype == torch.int32
    assert torch.equal(out.long(), values)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("size", ["min", "realistic"])
def test_pack_columns_roundtrip(bits, size):
    unit = formats.pack_multiple(bits)
    g, n = (1, unit) if size == "min" else (40, 384)
    values = _random_values((g, n), bits, _gen("cols", bits, size))
    packed = formats.pack_columns(values, bits)
    assert packed.dtype == torch.int32
    assert packed.shape == (g, n * bits // 32)
    assert packed.is_contiguous()
    # Same bit layout as pack_rows, along the other dimension.
    assert torch.equal(packed, formats.pack_rows(values.t(), bits).t())
    out = formats.unpack_columns(packed, bits, n)
    assert out.dtype == torch.int32
    assert torch.equal(out.long(), values)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_pack_accepts_integer_dtypes(dtype):
    values = _random_values((16, 4), 4, _gen("dtype", str(dtype)))
    assert torch.equal(formats.pack_rows(values.to(dtype), 4), formats.pack_rows(values, 4))


def test_pack_rows_hand_example_4bit():
    values = torch.tensor(
        [[1, 15, 0], [2, 15, 0], [3, 15, 0], [4, 15, 0], [5, 15, 0], [6, 15, 0], [7, 15, 0], [8, 15, 7]]
    )
    # Column 0: 0x87654321; column 1: all ones; column 2: 7 in the top nibble = 0x70000000.
    expected = torch.tensor([[_u32(0x87654321), -1, 0x70000000]], dtype=torch.int32)
    assert expected[0, 0] == -2023406815
    assert torch.equal(formats.pack_rows(values, 4), expected)
    # 16 rows: two words.
    values16 = torch.arange(16).remainder(16).reshape(16, 1)
    expected16 = torch.tensor([[0x76543210], [_u32(0xFEDCBA98)]], dtype=torch.int32)
    assert torch.equal(formats.pack_rows(values16, 4), expected16)


def test_pack_rows_hand_example_8bit():
    values = torch.tensor([[0x01, 0xFF], [0x02, 0x00], [0x03, 0x00], [0xFF, 0x80]])
    expected = torch.tensor([[_u32(0xFF030201), _u32(0x800000FF)]], dtype=torch.int32)
    assert expected[0, 0] == -16580095 and expected[0, 1] == -2147483393
    assert torch.equal(formats.pack_rows(values, 8), expected)


def test_pack_rows_hand_example_2bit():
    col0 = [0, 1, 2, 3] * 4  # each byte 0b11100100
    col1 = [3] + [0] * 15
    col2 = [0] * 15 + [3]  # top two bits
    values = torch.tensor([col0, col1, col2]).t()
    expected = torch.tensor([[_u32(0xE4E4E4E4), 3, _u32(0xC0000000)]], dtype=torch.int32)
    assert expected[0, 2] == -1073741824
    assert torch.equal(formats.pack_rows(values, 2), expected)


def test_pack_rows_hand_example_3bit_straddle():
    # Value i sits at bits 3i..3i+2 of a 96-bit stream held in 3 words.
    cols = []
    c = [0] * 32
    c[10] = 5  # 0b101: stream bit 30 = 1, bit 31 = 0, bit 32 (word1 bit0) = 1
    c[21] = 6  # 0b110: stream bit 63 = 0, bits 64, 65 (word2 bits 0, 1) = 1
    cols.append(c)
    c = [0] * 32
    c[10] = 7
    c[21] = 7
    cols.append(c)
    c = [0] * 32
    c[0] = 1
    c[31] = 7  # stream bits 93..95 = word2 bits 29..31
    cols.append(c)
    c = [0] * 32
    c[1] = 2  # bit 4
    c[11] = 3  # bits 33, 34 of stream = word1 bits 1, 2
    c[22] = 1  # bit 66 = word2 bit 2
    cols.append(c)
    values = torch.tensor(cols).t()
    expected = torch.tensor(
        [
            [0x40000000, _u32(0xC0000000), 1, 0x10],
            [1, _u32(0x80000001), 0, 0x6],
            [3, 3, _u32(0xE0000000), 0x4],
        ],
        dtype=torch.int32,
    )
    assert torch.equal(formats.pack_rows(values, 3), expected)
    assert torch.equal(formats.unpack_rows(expected, 3, 32).long(), values)


def test_pack_columns_hand_example():
    values = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [15, 0, 0, 0, 0, 0, 0, 0]])
    expected = torch.tensor([[_u32(0x87654321)], [15]], dtype=torch.int32)
    assert torch.equal(formats.pack_columns(values, 4), expected)
    assert torch.equal(formats.unpack_columns(expected, 4, 8).long(), values)


def _naive_unpack(packed: torch.Tensor, bits: int, k: int):
    """Independent Python-int decoder of one packed column stream per column."""
    rows, n = packed.shape
    out = [[0] * n for _ in range(k)]
    for col in range(n):
        stream = 0
        for r in range(rows):
            stream |= (int(packed[r, col]) & 0xFFFFFFFF) << (32 * r)
        for i in range(k):
            out[i][col] = (stream >> (bits * i)) & ((1 << bits) - 1)
    return torch.tensor(out)


@pytest.mark.parametrize("bits", BITS)
def test_unpack_matches_bit_stream(bits):
    packed = torch.randint(-(2**31), 2**31, (3 * bits, 3), generator=_gen("stream", bits), dtype=torch.int64)
    packed = packed.to(torch.int32)
    k = 3 * 32
    assert torch.equal(formats.unpack_rows(packed, bits, k).long(), _naive_unpack(packed, bits, k))
    # And packing gives the words back, sign bit included.
    assert torch.equal(formats.pack_rows(formats.unpack_rows(packed, bits, k), bits), packed)


def test_pack_empty():
    assert formats.pack_rows(torch.zeros(0, 5, dtype=torch.int64), 4).shape == (0, 5)
    assert formats.unpack_rows(torch.zeros(0, 5, dtype=torch.int32), 4, 0).shape == (0, 5)


# --------------------------------------------------------------------------------------------
# argument validation


def test_bits_errors():
    v = torch.zeros(32, 1, dtype=torch.int32)
    with pytest.raises(ValueError, match="bits must be one of 2, 3, 4, 8, got 5"):
        formats.pack_rows(v, 5)
    with pytest.raises(ValueError, match="bits must be one of 2, 3, 4, 8, got 16"):
        formats.unpack_rows(v, 16, 32)
    with pytest.raises(TypeError, match="bits must be an int, got str '4'"):
        formats.pack_columns(v, "4")
    with pytest.raises(TypeError, match="bits must be an int, got bool True"):
        formats.pack_multiple(True)


def test_pack_values_errors():
    with pytest.raises(ValueError, match=re.escape("K (values.shape[0]) must be a multiple of 32 for 3-bit packing, got 16")):
        formats.pack_rows(torch.zeros(16, 2, dtype=torch.int32), 3)
    with pytest.raises(ValueError, match=re.escape("K (values.shape[0]) must be a multiple of 8 for 4-bit packing, got 12")):
        formats.pack_rows(torch.zeros(12, 2, dtype=torch.int32), 4)
    with pytest.raises(ValueError, match=re.escape("N (values.shape[1]) must be a multiple of 4 for 8-bit packing, got 6")):
        formats.pack_columns(torch.zeros(1, 6, dtype=torch.int32), 8)
    with pytest.raises(ValueError, match=re.escape("values must lie in [0, 16) for 4-bit packing, got min 0, max 16")):
        formats.pack_rows(torch.tensor([[16]] + [[0]] * 7), 4)
    with pytest.raises(ValueError, match=re.escape("values must lie in [0, 4) for 2-bit packing, got min -1, max 0")):
        formats.pack_columns(torch.tensor([[-1] + [0] * 15]), 2)
    with pytest.raises(TypeError, match="values must have an integer dtype, got torch.float32"):
        formats.pack_rows(torch.zeros(8, 1), 4)
    with pytest.raises(TypeError, match="values must be a torch.Tensor, got list"):
        formats.pack_rows([[0]] * 8, 4)
    with pytest.raises(ValueError, match=re.escape("values must be 2-D [K, N], got shape (8,)")):
        formats.pack_rows(torch.zeros(8, dtype=torch.int32), 4)
    with pytest.raises(ValueError, match=re.escape("values must be 2-D [G, N], got shape (1, 1, 8)")):
        formats.pack_columns(torch.zeros(1, 1, 8, dtype=torch.int32), 4)


def test_unpack_errors():
    packed = torch.zeros(4, 3, dtype=torch.int32)
    with pytest.raises(ValueError, match=re.escape("packed has 4 rows, but k=40 at 4 bits needs k*bits/32 = 5")):
        formats.unpack_rows(packed, 4, 40)
    with pytest.raises(ValueError, match="k must be a non-negative multiple of 8 for 4-bit packing, got 12"):
        formats.unpack_rows(packed, 4, 12)
    with pytest.raises(ValueError, match="k must be a non-negative multiple of 32 for 3-bit packing, got 8"):
        formats.unpack_rows(packed, 3, 8)
    with pytest.raises(ValueError, match=re.escape("packed has 3 columns, but n=32 at 8 bits needs n*bits/32 = 8")):
        formats.unpack_columns(packed, 8, 32)
    with pytest.raises(TypeError, match="packed must be an int32 tensor, got torch.int64"):
        formats.unpack_rows(packed.long(), 4, 32)
    with pytest.raises(ValueError, match=re.escape("packed must be 2-D, got shape (4,)")):
        formats.unpack_rows(packed[:, 0], 4, 32)
    with pytest.raises(TypeError, match="k must be an int, got float 32.0"):
        formats.unpack_rows(packed, 4, 32.0)


# --------------------------------------------------------------------------------------------
# zeros conventions and group index


@pytest.mark.parametrize("bits", BITS)
def test_zeros_v1_v2_roundtrip(bits):
    unit = formats.pack_multiple(bits)
    n = 2 * unit
    maxq = (1 << bits) - 1
    gen = _gen("zeros", bits)
    v1 = torch.randint(0, maxq, (5, n), generator=gen)  # [0, maxq - 1]
    v1[0, 0], v1[-1, -1] = 0, maxq - 1
    packed_v1 = formats.pack_columns(v1, bits)
    packed_v2 = formats.zeros_v1_to_v2(packed_v1, bits, n)
    assert packed_v2.dtype == torch.int32 and packed_v2.shape == packed_v1.shape
    assert torch.equal(formats.unpack_columns(packed_v2, bits, n).long(), v1 + 1)
    assert torch.equal(formats.zeros_v2_to_v1(packed_v2, bits, n), packed_v1)


@pytest.mark.parametrize("bits", BITS)
def test_zeros_conversion_overflow(bits):
    unit = formats.pack_multiple(bits)
    maxq = (1 << bits) - 1
    v = torch.full((3, unit), 1)
    v[2, unit - 1] = maxq
    msg = (
        f"zeros_v1_to_v2: stored v1 zero {maxq} at [2, {unit - 1}] becomes v2 zero {maxq + 1}, "
        f"which does not fit in {bits} bits (max {maxq})"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        formats.zeros_v1_to_v2(formats.pack_columns(v, bits), bits, unit)
    v = torch.full((3, unit), 1)
    v[1, 2] = 0
    msg = f"zeros_v2_to_v1: stored v2 zero 0 at [1, 2] becomes v1 zero -1, which does not fit in {bits} bits"
    with pytest.raises(ValueError, match=re.escape(msg)):
        formats.zeros_v2_to_v1(formats.pack_columns(v, bits), bits, unit)


def test_group_index_default():
    g = formats.group_index_default(10, 4)
    assert g.dtype == torch.int32
    assert g.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert formats.group_index_default(6, -1).tolist() == [0] * 6
    assert formats.group_index_default(0, 128).shape == (0,)
    with pytest.raises(ValueError, match="group_size must be -1 \\(one group\\) or a positive int, got 0"):
        formats.group_index_default(8, 0)
    with pytest.raises(ValueError, match="group_size must be -1 \\(one group\\) or a positive int, got -2"):
        formats.group_index_default(8, -2)
    with pytest.raises(ValueError, match="k must be non-negative, got -1"):
        formats.group_index_default(-1, 4)


# --------------------------------------------------------------------------------------------
# reference


def _naive_dequant(qweight, qzeros, scales, g_idx, bits, v2_zeros):
    """Triple-loop style dequantization from the raw bit streams (no formats code)."""
    rows, n = qweight.shape
    k = rows * 32 // bits
    groups = scales.shape[0]
    q = _naive_unpack(qweight, bits, k)
    z = _naive_unpack(qzeros.t().contiguous(), bits, n).t()
    w = torch.empty(k, n, dtype=torch.float64)
    for kk in range(k):
        g = int(g_idx[kk]) if g_idx is not None else kk // (k // groups)
        for nn in range(n):
            zero = int(z[g, nn]) + (0 if v2_zeros else 1)
            w[kk, nn] = float(scales[g, nn]) * (int(q[kk, nn]) - zero)
    return w


def _naive_gemm(a, w):
    m, k = a.shape
    n = w.shape[1]
    out = torch.zeros(m, n, dtype=torch.float64)
    for i in range(m):
        for j in range(n):
            acc = 0.0
            for kk in range(k):
                acc += float(a[i, kk]) * float(w[kk, j])
            out[i, j] = acc
    return out


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("v2_zeros", [False, True])
@pytest.mark.parametrize("grouping", ["none", "g_idx", "act_order"])
def test_reference_matches_naive_loop(bits, v2_zeros, grouping):
    unit = formats.pack_multiple(bits)
    k, n, groups = 2 * unit, unit, 2
    gen = _gen("naive", bits, v2_zeros, grouping)
    maxq = (1 << bits) - 1
    q = torch.randint(0, maxq + 1, (k, n), generator=gen)
    z = torch.randint(0, maxq + 1, (groups, n), generator=gen)
    scales = (torch.rand(groups, n, generator=gen) * 0.1 + 0.001).half()
    if grouping == "none":
        g_idx = None
    elif grouping == "g_idx":
        g_idx = formats.group_index_default(k, k // groups)
    else:
        g_idx = torch.randperm(k, generator=gen).remainder(groups).to(torch.int32)
    qweight = formats.pack_rows(q, bits)
    qzeros = formats.pack_columns(z, bits)
    w = reference.dequantize_reference(qweight, qzeros, scales, g_idx, bits, v2_zeros)
    assert w.dtype == torch.float32 and w.shape == (k, n)
    w_naive = _naive_dequant(qweight, qzeros, scales, g_idx, bits, v2_zeros)
    assert torch.equal(w.double(), w_naive)  # fp16 scale times small int is exact in fp32
    w64 = reference.dequantize_reference(qweight, qzeros, scales, g_idx, bits, v2_zeros, dtype=torch.float64)
    assert w64.dtype == torch.float64 and torch.equal(w64, w_naive)

    a = torch.randn(3, k, generator=gen).half()
    out = reference.gemm_reference(a, qweight, qzeros, scales, g_idx, bits, v2_zeros)
    assert out.dtype == torch.float32 and out.shape == (3, n)
    expected = _naive_gemm(a, w_naive)
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)
    out64 = reference.gemm_reference(a, qweight, qzeros, scales, g_idx, bits, v2_zeros, dtype=torch.float64)
    torch.testing.assert_close(out64, expected, rtol=1e-12, atol=1e-12)


def test_reference_v1_equals_converted_v2():
    t = quantize.random_gptq(256, 64, 4, 64, symmetric=False, act_order=False, v2_zeros=False, seed=11)
    w1 = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, 4, False)
    z = formats.unpack_columns(t.qzeros, 4, 64)
    keep = z < 15  # v1 stored 15 cannot be converted: replace those with 14 on both sides
    z = torch.where(keep, z, torch.full_like(z, 14))
    qz1 = formats.pack_columns(z, 4)
    qz2 = formats.zeros_v1_to_v2(qz1, 4, 64)
    assert torch.equal(
        reference.dequantize_reference(t.qweight, qz1, t.scales, t.g_idx, 4, False),
        reference.dequantize_reference(t.qweight, qz2, t.scales, t.g_idx, 4, True),
    )
    assert w1.shape == (256, 64)


def test_gemm_reference_batched_shape():
    t = quantize.random_gptq(64, 16, 4, 32, symmetric=True, act_order=False, v2_zeros=False, seed=3)
    a = torch.randn(2, 3, 64, generator=_gen("batched")).half()
    out = reference.gemm_reference(a, t.qweight, t.qzeros, t.scales, t.g_idx, 4, False)
    assert out.shape == (2, 3, 16)
    flat = reference.gemm_reference(a.reshape(6, 64), t.qweight, t.qzeros, t.scales, None, 4, False)
    assert torch.equal(out.reshape(6, 16), flat)


def test_reference_errors():
    t = quantize.random_gptq(64, 16, 4, 32, symmetric=True, act_order=False, v2_zeros=False, seed=5)
    args = (t.qweight, t.qzeros, t.scales)
    with pytest.raises(ValueError, match=re.escape("a has last dimension 63, but qweight encodes K=64")):
        reference.gemm_reference(torch.zeros(1, 63), *args, t.g_idx, 4, False)
    with pytest.raises(TypeError, match="a must have a floating dtype, got torch.int32"):
        reference.gemm_reference(torch.zeros(1, 64, dtype=torch.int32), *args, t.g_idx, 4, False)
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64, got torch.float16"):
        reference.dequantize_reference(*args, t.g_idx, 4, False, dtype=torch.float16)
    with pytest.raises(ValueError, match=re.escape("g_idx values must lie in [0, 2) (G = scales.shape[0]), got min 0, max 2")):
        reference.dequantize_reference(*args, t.g_idx + (torch.arange(64) == 63).int(), 4, False)
    with pytest.raises(ValueError, match="g_idx has length 32, but qweight encodes K=64"):
        reference.dequantize_reference(*args, t.g_idx[:32], 4, False)
    with pytest.raises(TypeError, match="g_idx must have an integer dtype, got torch.float32"):
        reference.dequantize_reference(*args, t.g_idx.float(), 4, False)
    with pytest.raises(ValueError, match=re.escape("g_idx is None, so K=64 must be divisible by the number of groups G=3")):
        reference.dequantize_reference(t.qweight, torch.cat([t.qzeros, t.qzeros[:1]]),
                                       torch.cat([t.scales, t.scales[:1]]), None, 4, False)
    with pytest.raises(ValueError, match=re.escape("qzeros has shape (2, 1) but G=2 (scales.shape[0]) and N=16 at 4 bits need (2, 2)")):
        reference.dequantize_reference(t.qweight, t.qzeros[:, :1], t.scales, t.g_idx, 4, False)
    with pytest.raises(ValueError, match=re.escape("scales has shape (2, 8) but qweight has N=16 columns; expected [G, 16]")):
        reference.dequantize_reference(t.qweight, t.qzeros, t.scales[:, :8], t.g_idx, 4, False)
    with pytest.raises(ValueError, match="qweight has 4 rows, not a multiple of 3 as 3-bit packing needs"):
        reference.dequantize_reference(torch.zeros(4, 32, dtype=torch.int32), torch.zeros(1, 3, dtype=torch.int32),
                                       torch.ones(1, 32).half(), None, 3, False)
    with pytest.raises(TypeError, match="v2_zeros must be a bool, got int 1"):
        reference.dequantize_reference(*args, t.g_idx, 4, 1)
    with pytest.raises(TypeError, match="scales must have a floating dtype, got torch.int32"):
        reference.dequantize_reference(t.qweight, t.qzeros, t.scales.int(), t.g_idx, 4, False)


# --------------------------------------------------------------------------------------------
# quantize


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("v2_zeros", [False, True])
@pytest.mark.parametrize("group_size,act_order", [(32, False), (64, True), (-1, False)])
def test_quantize_rtn_error_bound(bits, symmetric, v2_zeros, group_size, act_order):
    k, n = 256, 64
    gen = _gen("rtn", bits, symmetric, v2_zeros, group_size, act_order)
    w = torch.randn(k, n, generator=gen) * 0.02
    w[:, :8] += 0.05  # a few columns well off-centre
    w[:, 8:16] = -w[:, 8:16].abs() - 0.03  # and entirely negative ones
    t = quantize.quantize_rtn(
        w, bits, group_size=group_size, symmetric=symmetric, act_order=act_order,
        v2_zeros=v2_zeros, generator=_gen("perm", bits, symmetric, v2_zeros, group_size),
    )
    groups = 1 if group_size == -1 else k // group_size
    assert t.qweight.dtype == torch.int32 and t.qweight.shape == (k * bits // 32, n)
    assert t.qzeros.dtype == torch.int32 and t.qzeros.shape == (groups, n * bits // 32)
    assert t.scales.dtype == torch.float16 and t.scales.shape == (groups, n)
    assert t.g_idx.dtype == torch.int32 and t.g_idx.shape == (k,)
    assert (t.bits, t.group_size, t.v2_zeros) == (bits, group_size, v2_zeros)
    assert (t.k, t.n) == (k, n)
    assert bool((t.scales > 0).all()) and bool(torch.isfinite(t.scales).all())

    deq = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, bits, v2_zeros)
    half_step = t.scales.float()[t.g_idx.long()] / 2
    err = (w - deq).abs()
    assert bool((err <= half_step * (1 + 1e-5)).all()), float((err / half_step).max())

    stored = formats.unpack_columns(t.qzeros, bits, n)
    if symmetric:
        expected = (1 << (bits - 1)) - (0 if v2_zeros else 1)  # v1: 7 for 4-bit, 127 for 8-bit
        assert bool((stored == expected).all())
    else:
        assert stored.unique().numel() > 1


def test_quantize_symmetric_matches_checkpoint_zeros():
    w = torch.randn(128, 32, generator=_gen("sym"))
    for bits, stored in ((4, 7), (8, 127)):
        t = quantize.quantize_rtn(w, bits)
        assert formats.unpack_columns(t.qzeros, bits, 32).unique().tolist() == [stored]


@pytest.mark.parametrize("group_size", [32, 128])
def test_act_order_g_idx(group_size):
    k, n = 512, 32
    w = torch.randn(k, n, generator=_gen("ao-w", group_size)) * 0.02
    t = quantize.quantize_rtn(w, 4, group_size, act_order=True, generator=_gen("ao", group_size))
    g = t.g_idx.long()
    assert torch.equal(torch.bincount(g, minlength=k // group_size), torch.full((k // group_size,), group_size))
    assert not bool((g[1:] >= g[:-1]).all())  # not sorted
    # Deterministic for a given generator seed, different for another.
    t2 = quantize.quantize_rtn(w, 4, group_size, act_order=True, generator=_gen("ao", group_size))
    assert all(torch.equal(x, y) for x, y in zip(t[:4], t2[:4]))
    t3 = quantize.quantize_rtn(w, 4, group_size, act_order=True, generator=_gen("ao-other", group_size))
    assert not torch.equal(t.g_idx, t3.g_idx)
    # Without act-order the groups are contiguous.
    t4 = quantize.quantize_rtn(w, 4, group_size)
    assert torch.equal(t4.g_idx, formats.group_index_default(k, group_size))


def test_group_size_minus_one_is_one_group():
    w = torch.randn(96, 32, generator=_gen("g-1"))
    t = quantize.quantize_rtn(w, 3, -1, symmetric=False)
    assert t.scales.shape == (1, 32) and t.qzeros.shape == (1, 3)
    assert bool((t.g_idx == 0).all()) and t.group_size == -1


def test_quantize_errors():
    w = torch.randn(256, 64, generator=_gen("qerr"))
    with pytest.raises(ValueError, match="group_size 96 must divide K=256"):
        quantize.quantize_rtn(w, 4, 96)
    with pytest.raises(ValueError, match=re.escape("group_size must be -1 (one group) or a positive int, got 0")):
        quantize.quantize_rtn(w, 4, 0)
    with pytest.raises(ValueError, match=re.escape("K (weight.shape[0]) must be a positive multiple of 32 for 3-bit, got 48")):
        quantize.quantize_rtn(w[:48], 3, 16)
    with pytest.raises(ValueError, match=re.escape("N (weight.shape[1]) must be a positive multiple of 8 for 4-bit, got 12")):
        quantize.quantize_rtn(w[:, :12], 4)
    with pytest.raises(ValueError, match=re.escape("weight must be 2-D [K, N], got shape (256,)")):
        quantize.quantize_rtn(w[:, 0], 4)
    with pytest.raises(TypeError, match="weight must have a floating dtype, got torch.int64"):
        quantize.quantize_rtn(w.long(), 4)
    with pytest.raises(ValueError, match="bits must be one of 2, 3, 4, 8, got 6"):
        quantize.quantize_rtn(w, 6)
    with pytest.raises(ValueError, match="weight must be finite, got inf or nan"):
        quantize.quantize_rtn(w / 0.0, 4)
    with pytest.raises(ValueError, match="weight magnitude too large: a scale of .* does not fit in fp16"):
        quantize.quantize_rtn(w * 1e7, 4)
    with pytest.raises(TypeError, match="act_order must be a bool, got int 1"):
        quantize.quantize_rtn(w, 4, act_order=1)


def test_quantize_rtn_half_input_and_zero_weights():
    w = torch.zeros(64, 16)
    w[:, 3] = torch.linspace(-1, 1, 64)
    for symmetric in (True, False):
        t = quantize.quantize_rtn(w.half(), 4, 32, symmetric=symmetric)
        deq = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, 4, False)
        half_step = t.scales.float()[t.g_idx.long()] / 2
        assert bool(((w.half().float() - deq).abs() <= half_step * (1 + 1e-5)).all())
        assert bool((t.scales > 0).all())


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("v2_zeros", [False, True])
def test_random_gptq_asymmetric_zeros_cover_edges(bits, v2_zeros):
    k, n, gs = 512, 128, 64
    t = quantize.random_gptq(k, n, bits, gs, symmetric=False, act_order=False, v2_zeros=v2_zeros,
                             seed=_seed("rand", bits, v2_zeros))
    maxq = (1 << bits) - 1
    z = formats.unpack_columns(t.qzeros, bits, n).long()
    assert int(z.min()) == 0 and int(z.max()) == maxq
    # Zeros vary along columns within a group and along groups within a column.
    assert bool((z.max(dim=1).values != z.min(dim=1).values).all())
    assert int((z.max(dim=0).values != z.min(dim=0).values).sum()) > n // 2
    assert t.scales.dtype == torch.float16 and bool((t.scales > 0).all())
    q = formats.unpack_rows(t.qweight, bits, k)
    assert int(q.min()) == 0 and int(q.max()) == maxq


def test_random_gptq_deterministic_and_act_order():
    kw = dict(symmetric=False, act_order=True, v2_zeros=True)
    t1 = quantize.random_gptq(256, 64, 4, 32, seed=7, **kw)
    t2 = quantize.random_gptq(256, 64, 4, 32, seed=7, **kw)
    t3 = quantize.random_gptq(256, 64, 4, 32, seed=8, **kw)
    assert all(torch.equal(x, y) for x, y in zip(t1[:4], t2[:4]))
    assert not torch.equal(t1.qweight, t3.qweight)
    g = t1.g_idx.long()
    assert torch.equal(torch.bincount(g), torch.full((8,), 32))
    assert not bool((g[1:] >= g[:-1]).all())
    s = quantize.random_gptq(256, 64, 8, 128, symmetric=True, act_order=False, v2_zeros=False, seed=9)
    assert formats.unpack_columns(s.qzeros, 8, 64).unique().tolist() == [127]
    assert s.scales.dtype == torch.float16 and bool((s.scales > 0).all())


def test_modules_import_without_extension():
    """Importing the three modules must work when the compiled extension is unavailable."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'gptq_mi100._C':\n"
        "            raise ImportError('extension blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from gptq_mi100 import formats, quantize, reference\n"
        "t = quantize.random_gptq(32, 32, 3, -1, symmetric=False, act_order=False, v2_zeros=True, seed=1)\n"
        "reference.dequantize_reference(t.qweight, t.qzeros, t.scales, None, 3, True)\n"
        "assert 'gptq_mi100._C' not in sys.modules\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)

"""Tests for gptq_mi100.layouts (layout 2, "tiled"): pure torch, no compiled extension."""

import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import seed_of
from gptq_mi100 import formats, layouts, quantize, reference


def _gen(*parts) -> torch.Generator:
    return torch.Generator().manual_seed(seed_of(*parts))


def _random_words(k, n, bits, gen):
    """Random full-range int32 qweight [K*bits/32, N] (every bit pattern, negatives included)."""
    return torch.randint(-(2**31), 2**31, (k * bits // 32, n), generator=gen, dtype=torch.int32)


def _u32(x: int) -> int:
    return x - (1 << 32) if x >= (1 << 31) else x


def _spec_tiled(values, bits):
    """Layout 2 written out with Python ints, straight from the spec (values int [K, N])."""
    v = values.tolist()
    k, n = values.shape
    rows = k * bits // 32
    tk, p_pairs = 512 // bits, 16 // bits
    s_steps = tk // 16
    buf = [0] * (rows * n)
    for s in range((n + 15) // 16):
        width = min(16, n - 16 * s)
        strip_base = 16 * s * rows
        for kt in range(k // tk):
            tile_base = strip_base + kt * 16 * width
            for q in range(4):
                for col in range(width):
                    chunk = tile_base + 4 * (q * width + col)
                    for t in range(2 * s_steps):
                        st, h = divmod(t, 2)
                        w, p = divmod(t, p_pairs)
                        for jj in range(2):
                            row = kt * tk + 16 * st + 4 * q + 2 * h + jj
                            buf[chunk + w] |= v[row][16 * s + col] << (bits * p + 16 * jj)
    return torch.tensor([_u32(x) for x in buf], dtype=torch.int32).reshape(rows, n)


# --------------------------------------------------------------------------------------------
# applicability


def test_tile_rows_and_applies():
    assert [layouts.tile_rows(b) for b in (2, 4, 8)] == [256, 128, 64]
    assert layouts.tiled_applies(4, 128, 8)
    assert layouts.tiled_applies(4, 5120, 12800)
    assert layouts.tiled_applies(8, 64, 4)
    assert layouts.tiled_applies(2, 256, 16)
    assert not layouts.tiled_applies(3, 384, 32)      # 3-bit: never
    assert not layouts.tiled_applies(4, 64, 8)        # K not a multiple of TK = 128
    assert not layouts.tiled_applies(8, 96, 8)        # TK = 64
    assert not layouts.tiled_applies(2, 128, 16)      # TK = 256
    assert not layouts.tiled_applies(4, 128, 4)       # N not a multiple of 32 // bits
    assert not layouts.tiled_applies(8, 64, 6)
    assert not layouts.tiled_applies(2, 256, 8)
    with pytest.raises(ValueError, match="bits must be 2, 4 or 8"):
        layouts.tile_rows(3)


# --------------------------------------------------------------------------------------------
# round trip

ROUNDTRIP_CASES = [
    # (bits, K, N): K = TK and larger multiples; N full strips, ragged (4/8/12 wide last strip)
    # and narrower than one strip.
    (2, 256, 16), (2, 512, 48), (2, 768, 32),
    (4, 128, 8), (4, 128, 16), (4, 256, 24), (4, 384, 56), (4, 256, 136),
    (8, 64, 4), (8, 64, 12), (8, 128, 20), (8, 192, 36), (8, 128, 64), (8, 320, 44),
]


@pytest.mark.parametrize("bits,k,n", ROUNDTRIP_CASES)
def test_roundtrip_bitwise(bits, k, n):
    x = _random_words(k, n, bits, _gen("roundtrip", bits, k, n))
    keep = x.clone()
    t = layouts.to_tiled(x, bits)
    assert t.dtype == torch.int32 and t.shape == x.shape and t.device == x.device
    assert t.is_contiguous()
    assert t.data_ptr() != x.data_ptr()
    assert torch.equal(x, keep), "to_tiled modified its input"
    assert (t < 0).any(), "negative words expected from full-range input"
    back = layouts.from_tiled(t, bits)
    assert back.dtype == torch.int32 and back.shape == x.shape
    assert torch.equal(back, x)
    # The spec reader sees the same values as the layout-1 unpacker.
    assert torch.equal(layouts.unpack_tiled(t, bits), formats.unpack_rows(x, bits, k))
    # A real repacking, not a copy (N < 16 with K = TK can coincide only by chance).
    if n >= 16:
        assert not torch.equal(t, x)


def test_roundtrip_non_contiguous_input():
    x = _random_words(256, 40, 4, _gen("noncontig"))
    xt = x.t().contiguous().t()
    assert not xt.is_contiguous()
    assert torch.equal(layouts.to_tiled(xt, 4), layouts.to_tiled(x, 4))
    assert torch.equal(layouts.from_tiled(layouts.to_tiled(x, 4).t().contiguous().t(), 4), x)


def test_large_weight_is_fast():
    """gate_up of Qwen3-32B TP=4: 5120 x 12800 4-bit repacks in well under a few seconds."""
    x = _random_words(5120, 12800, 4, _gen("large"))
    t0 = time.perf_counter()
    t = layouts.to_tiled(x, 4)
    back = layouts.from_tiled(t, 4)
    elapsed = time.perf_counter() - t0
    assert torch.equal(back, x)
    assert elapsed < 10.0, f"to_tiled + from_tiled took {elapsed:.2f} s"


# --------------------------------------------------------------------------------------------
# the spec, pinned


@pytest.mark.parametrize("bits,k,n", [(2, 512, 32), (4, 256, 40), (4, 128, 8), (8, 64, 12), (8, 128, 36)])
def test_matches_python_spec(bits, k, n):
    """Every word against a per-element Python implementation of the spec."""
    values = torch.randint(0, 1 << bits, (k, n), generator=_gen("spec", bits, k, n))
    qweight = formats.pack_rows(values, bits)
    assert torch.equal(layouts.to_tiled(qweight, bits), _spec_tiled(values, bits))


def test_hand_example_8bit():
    # value(k, n) = (k + n) mod 256; K = 128 (2 tiles of 64), N = 20: strip 0 full, strip 1
    # 4 columns wide. R = 32 rows, so strip 1 starts at word 16*1*32 = 512, its tile 1 at
    # 512 + 1*16*4 = 576.
    k, n = 128, 20
    values = (torch.arange(k)[:, None] + torch.arange(n)[None, :]) % 256
    flat = layouts.to_tiled(formats.pack_rows(values, 8), 8).view(-1)
    # chunk (q 0, col 0) of tile 1 of strip 1 = column 16, rows 64 + 16*st + j:
    # word st: pair (j0, j1) at p 0, pair (j2, j3) at p 1; low values in bits 0..15.
    # st 0: rows 64..67 -> values 80..83 -> 80 | 82 << 8 | 81 << 16 | 83 << 24
    assert flat[576:580].tolist() == [0x53515250, 0x63616260, 0x73717270, _u32(0x83818280)]
    # chunk (q 1, col 2) = c 1*4 + 2 = 6 at 576 + 24: column 18, rows 64 + 4 + j -> 86..89
    assert flat[600].item() == 0x59575856
    # the first chunk of the whole buffer: strip 0, tile 0, q 0, col 0: rows 0..3 of column 0
    assert flat[0].item() == 0x03010200
    # strip 0, tile 0, q 3, col 15 (c 63, words 252..255): column 15, rows 12..15 (+16 st)
    assert flat[252].item() == (27 | 29 << 8 | 28 << 16 | 30 << 24)


def test_hand_example_4bit():
    # value(k, n) = k mod 16 in column 0, 15 - (k mod 16) in column 1, ...; check one chunk of
    # the narrow last strip: K = 256 (tiles of 128), N = 24 -> strip 1 is 8 wide, R = 32, strip 1
    # at word 16*32 = 512, its tile 1 at 512 + 16*8 = 640. Chunk (q 1, col 0) = c 8 at 672.
    k, n = 256, 24
    kk = torch.arange(k)[:, None] % 16
    values = torch.where(torch.arange(n)[None, :] % 2 == 0, kk, 15 - kk).expand(k, n)
    flat = layouts.to_tiled(formats.pack_rows(values, 4), 4).view(-1)
    # column 16 (even: k mod 16), rows 128 + 16*st + 4 + j -> values 4, 5, 6, 7 at every step:
    # word = pairs t 0..3 = (4,5) (6,7) (4,5) (6,7): low nibbles 4 6 4 6, high 5 7 5 7
    assert flat[672:676].tolist() == [0x75756464] * 4
    # chunk (q 3, col 7) = c 31 at 640 + 124: column 23 (odd: 15 - k mod 16), rows 12..15
    # -> values 3, 2, 1, 0: low nibbles 3 1 3 1, high 2 0 2 0
    assert flat[764:768].tolist() == [0x02021313] * 4


# --------------------------------------------------------------------------------------------
# the reader against the fp32 reference

READER_CASES = [
    # (bits, K, N, group_size, act_order)
    (2, 512, 48, 32, False), (2, 512, 32, 128, True), (2, 512, 16, -1, False),
    (4, 256, 40, 32, False), (4, 256, 24, 128, False), (4, 384, 56, -1, False),
    (4, 256, 40, 32, True), (4, 512, 72, 128, True),
    (8, 128, 36, 32, False), (8, 128, 20, 128, False), (8, 192, 12, -1, False),
    (8, 256, 44, 32, True),
]


@pytest.mark.parametrize("v2_zeros", [False, True])
@pytest.mark.parametrize("bits,k,n,group_size,act_order", READER_CASES)
def test_dequantize_tiled_matches_reference(bits, k, n, group_size, act_order, v2_zeros):
    g = quantize.random_gptq(k, n, bits, group_size, symmetric=False, act_order=act_order,
                             v2_zeros=v2_zeros,
                             seed=seed_of("reader", bits, k, n, group_size, act_order, v2_zeros))
    ref = reference.dequantize_reference(g.qweight, g.qzeros, g.scales, g.g_idx, bits, v2_zeros)
    if act_order:
        # Kernel order: rows sorted by group (what prepare / gptq_shuffle do).
        perm = torch.argsort(g.g_idx.long(), stable=True)
        q = formats.unpack_rows(g.qweight, bits, k)
        qweight = formats.pack_rows(q[perm], bits)
        group_index = g.g_idx[perm]
        assert not torch.equal(perm, torch.arange(k))
        ref = ref[perm]
    else:
        qweight, group_index = g.qweight, None
    tiled = layouts.to_tiled(qweight, bits)
    w = layouts.dequantize_tiled(tiled, g.qzeros, g.scales, group_index, bits, group_size,
                                 v2_zeros)
    assert w.dtype == torch.float32 and w.shape == (k, n)
    assert torch.equal(w, ref)
    if not act_order:
        # Explicit default group index gives the same.
        gi = formats.group_index_default(k, group_size)
        assert torch.equal(
            layouts.dequantize_tiled(tiled, g.qzeros, g.scales, gi, bits, group_size, v2_zeros), ref)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_dequantize_tiled_uneven_sorted_groups(bits):
    """A sorted but uneven group index (tensor-parallel shard of an act-order layer)."""
    k, n = 512, 48
    gen = _gen("uneven", bits)
    sizes = [37, 160, 3, 200, 112]
    g_idx = torch.cat([torch.full((s,), i, dtype=torch.int32) for i, s in enumerate(sizes)])
    values = torch.randint(0, 1 << bits, (k, n), generator=gen)
    zeros = torch.randint(0, 1 << bits, (len(sizes), n), generator=gen)
    scales = (torch.rand(len(sizes), n, generator=gen) * 0.1 + 0.001).to(torch.float16)
    qweight = formats.pack_rows(values, bits)
    qzeros = formats.pack_columns(zeros, bits)
    for v2 in (False, True):
        ref = reference.dequantize_reference(qweight, qzeros, scales, g_idx, bits, v2)
        w = layouts.dequantize_tiled(layouts.to_tiled(qweight, bits), qzeros, scales, g_idx,
                                     bits, -1, v2)
        assert torch.equal(w, ref)


def test_reader_detects_wrong_layout():
    """The reader is not fooled by layout-1 data (the two layouts differ)."""
    values = torch.randint(0, 16, (256, 40), generator=_gen("wrong"))
    qweight = formats.pack_rows(values, 4)
    assert not torch.equal(layouts.unpack_tiled(qweight, 4), values.to(torch.int32))
    assert torch.equal(layouts.unpack_tiled(layouts.to_tiled(qweight, 4), 4), values.to(torch.int32))


# --------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("fn", ["to_tiled", "from_tiled", "unpack_tiled"])
def test_errors(fn):
    f = getattr(layouts, fn)
    arg = "qweight" if fn == "to_tiled" else "tiled"
    ok = torch.zeros(16, 8, dtype=torch.int32)  # 4-bit K = 128, N = 8
    f(ok, 4)
    with pytest.raises(ValueError, match=r"bits must be 2, 4 or 8.*got 3"):
        f(torch.zeros(12, 32, dtype=torch.int32), 3)
    with pytest.raises(ValueError, match=r"bits must be 2, 4 or 8.*got 16"):
        f(ok, 16)
    with pytest.raises(TypeError, match="bits must be an int"):
        f(ok, 4.0)
    with pytest.raises(ValueError, match=rf"{arg} has 8 rows, i.e. K=64 .* multiple of 128"):
        f(torch.zeros(8, 8, dtype=torch.int32), 4)
    with pytest.raises(ValueError, match=rf"{arg} .*K=128 .* multiple of 256"):
        f(torch.zeros(8, 16, dtype=torch.int32), 2)
    with pytest.raises(ValueError, match=rf"{arg} has N=4 columns.* multiple of 8"):
        f(torch.zeros(16, 4, dtype=torch.int32), 4)
    with pytest.raises(TypeError, match=rf"{arg} must be an int32 tensor.*torch.int64"):
        f(ok.long(), 4)
    with pytest.raises(TypeError, match=rf"{arg} must be an int32 tensor.*torch.float32"):
        f(ok.float(), 4)
    with pytest.raises(TypeError, match=rf"{arg} must be a torch.Tensor"):
        f(ok.tolist(), 4)
    with pytest.raises(ValueError, match=rf"{arg} must be 2-D .*\(16, 8, 1\)"):
        f(ok[..., None], 4)
    with pytest.raises(ValueError, match=rf"{arg} must be 2-D .*\(128,\)"):
        f(ok.view(-1), 4)


def test_dequantize_tiled_errors():
    tiled = torch.zeros(16, 8, dtype=torch.int32)
    qzeros = torch.zeros(1, 1, dtype=torch.int32)
    scales = torch.ones(1, 8, dtype=torch.float16)
    layouts.dequantize_tiled(tiled, qzeros, scales, None, 4, -1, False)
    with pytest.raises(TypeError, match="v2_zeros must be a bool"):
        layouts.dequantize_tiled(tiled, qzeros, scales, None, 4, -1, 0)
    with pytest.raises(ValueError, match="scales must be"):
        layouts.dequantize_tiled(tiled, qzeros, torch.ones(1, 16), None, 4, -1, False)
    with pytest.raises(ValueError, match="group_index must be"):
        layouts.dequantize_tiled(tiled, qzeros, scales, torch.zeros(64, dtype=torch.int32), 4,
                                 -1, False)
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        layouts.dequantize_tiled(tiled, qzeros, scales, None, 4, 32, False)


# --------------------------------------------------------------------------------------------
# devices and imports


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA/HIP GPU present")
@pytest.mark.parametrize("bits,k,n", [(2, 512, 48), (4, 256, 40), (8, 192, 36), (4, 5120, 12800)])
def test_roundtrip_cuda(bits, k, n):
    x = _random_words(k, n, bits, _gen("cuda", bits, k, n))
    xc = x.cuda()
    t = layouts.to_tiled(xc, bits)
    assert t.device == xc.device
    assert torch.equal(t.cpu(), layouts.to_tiled(x, bits))
    assert torch.equal(layouts.from_tiled(t, bits).cpu(), x)
    if k * n <= 1 << 16:
        assert torch.equal(layouts.unpack_tiled(t, bits).cpu(), formats.unpack_rows(x, bits, k))


def test_imports_without_extension(tmp_path):
    """layouts.py (and formats.py) work with no compiled extension present at all."""
    import gptq_mi100
    pkg = tmp_path / "gptq_mi100"
    pkg.mkdir()
    src = os.path.dirname(gptq_mi100.__file__)
    for name in ("formats.py", "layouts.py"):
        (pkg / name).write_text(open(os.path.join(src, name)).read())
    (pkg / "__init__.py").write_text("")
    code = ("import sys, gptq_mi100.layouts as L, torch; "
            "q = torch.arange(64 * 16, dtype=torch.int32).reshape(64, 16); "
            "assert torch.equal(L.from_tiled(L.to_tiled(q, 4), 4), q); "
            "assert 'gptq_mi100._C' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(tmp_path))

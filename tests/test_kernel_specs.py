"""Kernel specs ("name:key=value,...") and the tuned table that `auto` follows first.

CPU: parsing, validation, the table's install / replace / clear, auto following it. GPU: every
tile value of every kernel that takes tiles, against the fp32 reference on a ragged shape with
a poisoned output (the variants of issue 12 under every tile the tuner may choose)."""

import pytest
import torch

import gptq_mi100
from gptq_mi100 import kernels, ops, quantize, reference
from conftest import assert_gemm_close, seed_of

_ops = torch.ops.gptq_mi100


@pytest.fixture
def clean_table():
    saved = {d: kernels.tuned_table(d) for d in ("cpu", "cuda")}
    yield
    for d, rows in saved.items():
        kernels.set_tuned_table(d, rows)


def cpu_case(k=256, n=264, bits=4, seed=None):
    t = quantize.random_gptq(k, n, bits, 64, symmetric=False, act_order=False, v2_zeros=False, seed=seed or seed_of("specs", k, n, bits))
    w = ops.prepare(t.qweight, t.qzeros, t.scales, bits=bits, group_size=64)
    return t, w


@pytest.mark.parametrize("spec, match", [
    ("cpu_c:mt=4", "takes no tile parameters"),
    ("dequant_matmul:splits=2", "takes no tile parameters"),
    ("cpu_c:", "takes no tile parameters"),
    ("fastest:mt=1", "kernel must be one of"),
])
def test_bad_specs_on_cpu_name_the_kernel(spec, match):
    t, w = cpu_case()
    a = torch.randn(2, 256).half()
    with pytest.raises(ValueError, match=match):
        ops.gemm(a, w, kernel=spec)
    with pytest.raises(ValueError, match=match):
        with gptq_mi100.use_kernel(spec):
            pass


def test_spec_tiles_are_validated_against_the_kernel():
    """Key and value checks come from the registry, whatever the build holds."""
    for spec, match in [("transposed:mt=3", "mt must be|not in this build"),
                        ("transposed:tile=4", "takes tile parameters"),
                        ("transposed:mt", "takes tile parameters"),
                        ("transposed:mt=0", "positive integer"),
                        ("transposed:mt=x", "positive integer"),
                        ("warp_shuffle:load=8", "takes tile parameters mt="),
                        ("vectorized:load=4", "load must be 8 or 16|not in this build"),
                        ("coalesced:mt=16", "mt must be 1, 2, 4 or 8|not in this build"),
                        ("transposed:kslices=2", "takes tile parameters mt="),
                        ("transposed_mma:kslices=3", "kslices must be 1|not in this build"),
                        ("transposed_mma:kslices=32", "kslices must be 1|not in this build"),
                        ("transposed_mma:kslices=16,mt=16", "kslices=16 needs mt=8|kslices must be 1|"
                         "not in this build"),
                        ("transposed:sw=2", "takes tile parameters mt="),
                        ("transposed_mma:sw=3,mt=32", "sw must be 1, 2 or 4|not in this build"),
                        ("transposed_mma:sw=2", "sw=2 needs mt=32 or mt=64|not in this build"),
                        ("transposed_mma:mt=64,sw=4", "sw=4 needs mt=32|not in this build"),
                        ("transposed_mma:kslices=2,mt=32,sw=2", "one K slice|not in this build")]:
        with pytest.raises(ValueError, match=match):
            kernels.set_tuned_table("cuda", [kernels.TunedRow(4, 256, 256, 1, 1, spec)])


def test_kernel_table_lists_tiles():
    rows = {r.name: r for r in kernels.kernel_table("cuda")}
    assert rows["vectorized"].tiles["load"] == (8, 16)
    assert rows["transposed"].tiles["mt"] == (1, 2, 4, 8, 16)
    for name in ("coalesced", "warp_shuffle", "vectorized"):
        assert rows[name].tiles["mt"] == (1, 2, 4, 8) and rows[name].layouts == (2,)
        assert rows[name].auto_range == "below_large_m"
    assert rows["exllama"].tiles == {} and rows["dequant_matmul"].tiles == {}
    assert rows["transposed_mma"].tiles["kslices"] in ((1, 2, 4, 8, 16), (1,))  # NVIDIA / gfx908
    # a GPU build lists the values valid alone: sw > 1 needs mt=32 or 64 with it
    assert rows["transposed_mma"].tiles["sw"] in ((1, 2, 4), (1,))
    assert kernels.kernel_spec("vectorized", mt=4, load=8) == "vectorized:load=8,mt=4"
    assert kernels.kernel_spec("cpu_c") == "cpu_c"


def test_tuned_table_roundtrip_replace_and_clear(clean_table):
    rows = [kernels.TunedRow(4, 256, 264, 1, 4, "dequant_matmul"),
            kernels.TunedRow(8, 512, 512, 5, 64, "cpu_c")]
    kernels.set_tuned_table("cpu", rows)
    assert kernels.tuned_table("cpu") == rows
    # an invalid row rejects the whole new table and keeps the installed one
    for bad, match in [(kernels.TunedRow(5, 256, 264, 1, 4, "cpu_c"), "bits"),
                       (kernels.TunedRow(4, 256, 264, 4, 1, "cpu_c"), "m_lo"),
                       (kernels.TunedRow(4, 0, 264, 1, 4, "cpu_c"), "k, n > 0"),
                       (kernels.TunedRow(4, 256, 264, 1, 4, "exllama"), "names no cpu kernel"),
                       (kernels.TunedRow(4, 256, 264, 1, 4, "nope"), "names no cpu kernel")]:
        with pytest.raises(ValueError, match=match):
            kernels.set_tuned_table("cpu", rows + [bad])
        assert kernels.tuned_table("cpu") == rows
    with pytest.raises(ValueError, match="bits;k;n;m_lo;m_hi;kernel_spec"):
        _ops.set_tuned_table("cpu", ["4;256;264;1;cpu_c"])
    kernels.set_tuned_table("cpu", [])
    assert kernels.tuned_table("cpu") == []


def test_auto_follows_the_tuned_table_on_cpu(clean_table):
    t, w = cpu_case()
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, None, 4, False)
    kernels.set_tuned_table("cpu", [kernels.TunedRow(4, 256, 264, 2, 3, "dequant_matmul"),
                                    kernels.TunedRow(4, 256, 999, 1, 64, "dequant_matmul")])
    for m, want in [(1, "cpu_c"), (2, "dequant_matmul"), (3, "dequant_matmul"), (4, "cpu_c")]:
        a = torch.randn(m, 256, generator=torch.Generator().manual_seed(m)).half()
        ops.reset_path_counts()
        out = ops.gemm(a, w)
        counts = ops.path_counts()
        assert counts[want] == 1 and sum(counts.values()) == 1, (m, counts)
        assert_gemm_close(out, a, w_ref, a.float() @ w_ref, f"tuned m={m}")
    # an explicit kernel and a use_kernel block still win over the table
    a = torch.randn(2, 256).half()
    ops.reset_path_counts()
    ops.gemm(a, w, kernel="cpu_c")
    with gptq_mi100.use_kernel("cpu_c"):
        ops.gemm(a, w)
    assert ops.path_counts()["cpu_c"] == 2


def test_tuned_row_of_an_excluded_kernel_is_skipped(clean_table):
    """The self-check's exclusion beats the table: auto falls back to its built-in rule."""
    t, w = cpu_case()
    kernels.set_tuned_table("cpu", [kernels.TunedRow(4, 256, 264, 1, 8, "dequant_matmul")])
    _ops.set_kernel_excluded("cpu", "dequant_matmul", True)
    try:
        ops.reset_path_counts()
        ops.gemm(torch.randn(1, 256).half(), w)
        assert ops.path_counts()["cpu_c"] == 1
    finally:
        _ops.set_kernel_excluded("cpu", "dequant_matmul", False)


def test_fake_kernel_checks_specs_like_the_real_op():
    from torch._subclasses.fake_tensor import FakeTensorMode
    t, w = cpu_case()
    with FakeTensorMode() as mode:
        a = mode.from_tensor(torch.randn(2, 256).half())
        qw, qz, sc = (mode.from_tensor(x) for x in (w.qweight, w.qzeros, w.scales))
        out = _ops.gemm(a, qw, qz, sc, None, None, 4, 64, False, w.layout, "cpu_c")
        assert out.shape == (2, 264)
        with pytest.raises(ValueError, match="takes no tile parameters"):
            _ops.gemm(a, qw, qz, sc, None, None, 4, 64, False, w.layout, "cpu_c:mt=2")


# ---- GPU: every tile value of every kernel that takes tiles --------------------------------

def _tile_specs(device_type):
    specs = []
    for info in kernels.kernel_table(device_type):
        if not info.in_build or not info.tiles:
            continue
        for key, values in info.tiles.items():
            specs += [kernels.kernel_spec(info.name, **{key: v}) for v in values]
        if "load" in info.tiles:  # load crossed with the row tiles (two feeds)
            specs += [kernels.kernel_spec(info.name, load=ld, mt=mt)
                      for ld in info.tiles["load"] for mt in info.tiles["mt"]]
    return specs


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_every_tile_matches_the_reference(device, bits):
    if device.type != "cuda":
        pytest.skip("tiles are GPU launch choices")
    k, n = 1024, 264 if bits != 2 else 272
    seed = seed_of("tiles", bits)
    t = quantize.random_gptq(k, n, bits, 128, symmetric=False, act_order=True, v2_zeros=False, seed=seed)
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, bits, False)
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                    t.g_idx.to(device), bits=bits, group_size=128, layout=2)
    specs = [s for s in _tile_specs("cuda") if w.layout in
             {i.name: i.layouts for i in kernels.kernel_table("cuda")}[s.split(":")[0]]]
    assert specs
    for m in (1, 3, 8, 13, 40):
        for dtype in (torch.float16, torch.bfloat16):
            a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).to(dtype)
            ref = a.float() @ w_ref
            for spec in specs:
                out = torch.full((m, n), float("nan"), dtype=dtype, device=device)
                if spec.endswith("kslices=16") and (bits == 2 or m > 8):  # row tile 8, 4/8-bit only
                    with pytest.raises(ValueError, match="kslices=16 needs row tile 8"):
                        ops.gemm(a.to(device), w, kernel=spec, out=out)
                    continue
                ops.gemm(a.to(device), w, kernel=spec, out=out)
                assert_gemm_close(out, a, w_ref, ref, f"{spec} m={m} {dtype}")
                again = ops.gemm(a.to(device), w, kernel=spec)
                assert torch.equal(again, out), f"{spec} m={m}: not reproducible"


@pytest.mark.parametrize("bits, group_size, act_order", [(4, 128, True), (8, 32, False),
                                                          (2, 64, False)])
def test_wide_row_tiles_on_a_realistic_layer(device, bits, group_size, act_order):
    """transposed_mma's 32/64-row tiles (activations read in B-fragment order from a copy of a):
    a Llama-3-8B TP=4 o_proj-like slice, M across row-tile edges and passes, K split or sliced
    or not, one strip per warp or 2-4 (scales folded)."""
    if device.type != "cuda" or "transposed_mma" not in kernels.kernel_names("cuda"):
        pytest.skip("GPU matrix kernel")
    k, n = 1024 * (2 if bits == 4 else 1), 1040
    seed = seed_of("wide", bits, group_size, act_order)
    t = quantize.random_gptq(k, n, bits, group_size, symmetric=False, act_order=act_order,
                             v2_zeros=True, seed=seed)
    g_idx = t.g_idx if act_order else None
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, g_idx, bits, True)
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                    None if g_idx is None else g_idx.to(device), bits=bits,
                    group_size=group_size, v2_zeros=True, layout=2)
    for m in (17, 33, 64, 100):
        a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).half()
        ref = a.float() @ w_ref
        for spec in ("transposed_mma:mt=32", "transposed_mma:mt=64",
                     "transposed_mma:mt=64,splits=1", "transposed_mma:mt=32,splits=4",
                     "transposed_mma:kslices=2,mt=32,splits=3", "transposed_mma:kslices=4,mt=16") + (
                     ("transposed_mma:mt=32,sw=2", "transposed_mma:mt=32,splits=3,sw=4",
                      "transposed_mma:mt=64,sw=2", "transposed_mma:mt=64,splits=2,sw=2") if bits >= 4 else ()):
            out = torch.full((m, n), float("nan"), dtype=a.dtype, device=device)
            ops.gemm(a.to(device), w, kernel=spec, out=out)
            assert_gemm_close(out, a, w_ref, ref, f"{spec} m={m}")


def test_strips_per_warp_refuse_2_bit(device):
    """sw > 1 is compiled for 4- and 8-bit weights only: a 2-bit weight asking for it gets a
    ValueError naming the spec, never another launch."""
    if device.type != "cuda" or "transposed_mma" not in kernels.kernel_names("cuda"):
        pytest.skip("GPU matrix kernel")
    t = quantize.random_gptq(512, 64, 2, 128, symmetric=False, act_order=False, v2_zeros=True,
                             seed=seed_of("sw-2bit"))
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device), None, bits=2,
                    group_size=128, v2_zeros=True, layout=2)
    a = torch.randn(40, 512, device=device).half()
    with pytest.raises(ValueError, match="transposed_mma:mt=32,sw=2.*4- or 8-bit"):
        ops.gemm(a, w, kernel="transposed_mma:mt=32,sw=2")


@pytest.mark.parametrize("bits, act_order, dtype", [(4, False, torch.float16), (4, True, torch.bfloat16),
                                                    (8, False, torch.float16)])
def test_sixteen_k_slices(device, bits, act_order, dtype):
    """kslices=16: a 512-thread block per strip (row tile 8), on a qkv-length K with a ragged
    last strip, with and without K splits, one and two passes of 8 rows: right, and the same
    run to run. Another row tile or 2-bit weights get a ValueError naming the spec."""
    if device.type != "cuda" or "transposed_mma" not in kernels.kernel_names("cuda"):
        pytest.skip("GPU matrix kernel")
    k, n = 5120, 1000
    seed = seed_of("kslices16", bits, act_order)
    t = quantize.random_gptq(k, n, bits, 128, symmetric=False, act_order=act_order, v2_zeros=False,
                             seed=seed)
    g_idx = t.g_idx if act_order else None
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, g_idx, bits, False)
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                    None if g_idx is None else g_idx.to(device), bits=bits, group_size=128, layout=2)
    for m, spec in ((1, "transposed_mma:kslices=16"), (5, "transposed_mma:kslices=16,splits=2"),
                    (8, "transposed_mma:kslices=16,splits=1"), (13, "transposed_mma:kslices=16,mt=8")):
        a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).to(dtype)
        ref = a.float() @ w_ref
        out = torch.full((m, n), float("nan"), dtype=dtype, device=device)
        ops.gemm(a.to(device), w, kernel=spec, out=out)
        assert_gemm_close(out, a, w_ref, ref, f"{spec} m={m}")
        assert torch.equal(ops.gemm(a.to(device), w, kernel=spec), out), f"{spec} m={m}"
    a = torch.randn(9, k, device=device).to(dtype)
    with pytest.raises(ValueError, match="transposed_mma:kslices=16.*row tile 8"):
        ops.gemm(a, w, kernel="transposed_mma:kslices=16")
    t2 = quantize.random_gptq(512, 64, 2, 128, symmetric=False, act_order=False, v2_zeros=True,
                              seed=seed_of("kslices16-2bit"))
    w2 = ops.prepare(t2.qweight.to(device), t2.qzeros.to(device), t2.scales.to(device), None, bits=2,
                     group_size=128, v2_zeros=True, layout=2)
    with pytest.raises(ValueError, match="transposed_mma:kslices=16.*4- or 8-bit"):
        ops.gemm(torch.randn(1, 512, device=device).half(), w2, kernel="transposed_mma:kslices=16")


@pytest.mark.parametrize("bits, splits", [(8, 32), (4, 20)])
def test_many_k_splits(device, bits, splits):
    """Many K splits (20, 32: more than any decode plan picks), every layout-2 kernel: the
    split-K tail's sum in split order is right and the same run to run."""
    if device.type != "cuda":
        pytest.skip("tiles are GPU launch choices")
    k, n = 2048 if bits == 8 else 2560, 328
    seed = seed_of("splits", bits, splits)
    t = quantize.random_gptq(k, n, bits, 128, symmetric=False, act_order=False, v2_zeros=False, seed=seed)
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, None, bits, False)
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device), None,
                    bits=bits, group_size=128, layout=2)
    names = [i.name for i in kernels.kernel_table("cuda") if w.layout in i.layouts and i.tiles.get("splits")]
    assert names
    for m in (1, 5):
        a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).half()
        ref = a.float() @ w_ref
        for name in names:
            spec = f"{name}:splits={splits}"
            out = torch.full((m, n), float("nan"), dtype=a.dtype, device=device)
            ops.gemm(a.to(device), w, kernel=spec, out=out)
            assert_gemm_close(out, a, w_ref, ref, f"{spec} m={m}")
            assert torch.equal(ops.gemm(a.to(device), w, kernel=spec), out), f"{spec} m={m}"

"""Bad input raises a clear exception naming the argument and what was expected."""

import pytest
import torch

from gptq_mi100 import ops, quantize
from conftest import seed_of

K, N, BITS, GS = 256, 264, 4, 64


@pytest.fixture
def case(device):
    t = quantize.random_gptq(K, N, BITS, GS, symmetric=False, act_order=True, v2_zeros=False,
                             seed=seed_of("validation"))
    dev = {name: getattr(t, name).to(device) for name in ("qweight", "qzeros", "scales", "g_idx")}
    w = ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], dev["g_idx"], bits=BITS,
                    group_size=GS)
    a = torch.randn(3, K).half().to(device)
    return t, dev, w, a


def raw_gemm(a_, w, **override):
    args = dict(a=a_, qweight=w.qweight, qzeros=w.qzeros, scales=w.scales, a_perm=w.a_perm,
                group_index=w.group_index, bits=w.bits, group_size=w.group_size,
                v2_zeros=w.v2_zeros, layout=w.layout, kernel="auto")
    args.update(override)
    return torch.ops.gptq_mi100.gemm(*args.values())


BAD_GEMM_ARGS = [
    # (override builder, exception, message)
    (lambda a, w: dict(bits=5), ValueError, "bits must be one of 2, 3, 4, 8, got 5"),
    (lambda a, w: dict(a=a.float()), TypeError, "a must be float16 or bfloat16, got Float"),
    (lambda a, w: dict(a=a[:, :128]), ValueError, r"a.size\(1\) must equal K=256"),
    (lambda a, w: dict(a=a[0]), ValueError, "a must be 2-D"),
    (lambda a, w: dict(a=a.t().contiguous().t()), ValueError, "a must have unit stride"),
    (lambda a, w: dict(qweight=w.qweight.float()), TypeError, "qweight must be int32"),
    (lambda a, w: dict(qweight=w.qweight.t()), ValueError, "qweight must be contiguous"),
    (lambda a, w: dict(qweight=w.qweight[:, :260].contiguous()), ValueError,
     "N \\(qweight.size\\(1\\)\\) must be a positive multiple of 8 for bits=4, got 260"),
    (lambda a, w: dict(qweight=w.qweight[:3].contiguous(), a=a[:, :24]), ValueError,
     "K must be a multiple of 32, got 24"),
    (lambda a, w: dict(scales=w.scales.float()), TypeError,
     "scales must be float16 or bfloat16, got Float"),
    (lambda a, w: dict(scales=w.scales[:, :8].contiguous()), ValueError,
     r"scales must be \[G, N=264\]"),
    (lambda a, w: dict(qzeros=w.qzeros[:, :8].contiguous()), ValueError,
     r"qzeros must be \[G=4, N\*bits/32=33\]"),
    (lambda a, w: dict(qzeros=w.qzeros.short()), TypeError, "qzeros must be int32"),
    (lambda a, w: dict(a_perm=w.a_perm.long()), TypeError, "a_perm must be int32, got Long"),
    (lambda a, w: dict(group_index=(torch.arange(K, device=a.device) // GS).int()[:10]),
     ValueError, "group_index must be None or 1-D of length K=256"),
    (lambda a, w: dict(group_index=None, group_size=32), ValueError,
     r"without group_index, G \(scales.size\(0\)=4\) must equal K / group_size = 256 / 32"),
    (lambda a, w: dict(layout=7), ValueError, "unknown weight layout 7"),
    (lambda a, w: dict(a=a[:1].expand(3, K)), ValueError, "a's rows overlap in memory"),
    (lambda a, w: dict(kernel="fast"), ValueError, "kernel must be one of"),
]


@pytest.mark.parametrize("i", range(len(BAD_GEMM_ARGS)))
def test_gemm_rejects(case, i):
    t, dev, w, a = case
    build, exc, msg = BAD_GEMM_ARGS[i]
    with pytest.raises(exc, match=msg):
        raw_gemm(a, w, **build(a, w))


def test_gemm_out_rejects_wrong_out(case):
    t, dev, w, a = case
    with pytest.raises(TypeError, match="out must have a's dtype"):
        ops.gemm(a, w, out=torch.empty(3, N, dtype=torch.bfloat16, device=a.device))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 264\)"):
        ops.gemm(a, w, out=torch.empty(3, N + 8, dtype=a.dtype, device=a.device))


def test_gemm_out_refuses_out_sharing_memory_with_a(case):
    """The kernels read a while writing out: an out over a's memory would read its own
    partial results (silently wrong), so it is refused by name."""
    t, dev, w, a = case
    buf = torch.randn(3 * N, device=a.device).half()
    a_in_buf = buf[:3 * K].view(3, K)
    out = buf.view(3, N)
    with pytest.raises(ValueError, match="out shares memory with a"):
        torch.ops.gptq_mi100.gemm_out(a_in_buf, w.qweight, w.qzeros, w.scales, w.a_perm,
                                      w.group_index, w.bits, w.group_size, w.v2_zeros,
                                      w.layout, "auto", out)
    separate = torch.empty(3, N, dtype=a.dtype, device=a.device)
    torch.ops.gptq_mi100.gemm_out(a_in_buf, w.qweight, w.qzeros, w.scales, w.a_perm,
                                  w.group_index, w.bits, w.group_size, w.v2_zeros, w.layout,
                                  "auto", separate)
    assert torch.isfinite(separate).all()


def test_python_wrappers_reject(case):
    t, dev, w, a = case
    with pytest.raises(TypeError, match="w must be a PreparedGPTQ"):
        ops.gemm(a, (w.qweight, w.qzeros))
    with pytest.raises(ValueError, match="group_size must be -1 or a positive multiple of 32"):
        ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], None, bits=4, group_size=48)
    with pytest.raises(ValueError, match=r"without g_idx, scales.shape\[0\] \(G\) must equal"):
        ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], None, bits=4, group_size=128)
    with pytest.raises(ValueError, match="bits must be one of"):
        ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], None, bits=6, group_size=64)
    with pytest.raises(TypeError, match="dtype must be float16 or bfloat16"):
        ops.dequantize(w, torch.float32)


def test_prepare_rejects_bad_g_idx(case):
    t, dev, w, a = case
    g = dev["g_idx"].clone()
    g[5] = 4  # G = 4 groups: 4 is out of range
    with pytest.raises(ValueError, match=r"g_idx values must lie in \[0, G=4\), got min 0 max 4"):
        ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], g, bits=4, group_size=GS)
    with pytest.raises(ValueError, match="g_idx must be 1-D of length K=256"):
        ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], g[:100], bits=4,
                    group_size=GS)
    with pytest.raises(TypeError, match="g_idx must be int32"):
        ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], g.float(), bits=4,
                    group_size=GS)


def test_tensor_parallel_g_idx_needs_only_range(case):
    """Row-parallel shards keep all G groups: prepare accepts any g_idx with max < G."""
    t, dev, w, a = case
    g = torch.full((K,), 3, dtype=torch.int32, device=a.device)  # every row in group 3
    prepared = ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], g, bits=4,
                           group_size=GS)
    assert prepared.group_index.numel() == K


def test_vllm_gptq_gemm_validates(case):
    t, dev, w, a = case
    with pytest.raises(TypeError, match="gptq_gemm: a must be float16 or bfloat16"):
        ops.gptq_gemm(a.float(), dev["qweight"], dev["qzeros"], dev["scales"], dev["g_idx"],
                      False, False, 4)
    with pytest.raises(ValueError, match="gptq_gemm: bits must be one of"):
        ops.gptq_gemm(a, dev["qweight"], dev["qzeros"], dev["scales"], dev["g_idx"], False,
                      False, 7)


def test_devices_must_match(case):
    t, dev, w, a = case
    if a.device.type != "cuda":
        pytest.skip("needs a GPU to have two devices")
    with pytest.raises(ValueError, match="qweight is on cpu but a is on cuda"):
        raw_gemm(a, w, qweight=w.qweight.cpu())


@pytest.mark.parametrize("bits, bad_n, multiple", [(2, 264, 16), (3, 272, 32), (4, 260, 8),
                                                   (8, 262, 4)])
def test_invalid_n_per_bit_width(device, bits, bad_n, multiple):
    """N must keep qzeros packable: a multiple of 32/bits (32 for 3-bit)."""
    k = 256
    rows = k // 32 * 3 if bits == 3 else k * bits // 32
    qweight = torch.zeros(rows, bad_n, dtype=torch.int32, device=device)
    qzeros = torch.zeros(1, max(1, bad_n * bits // 32), dtype=torch.int32, device=device)
    scales = torch.ones(1, bad_n, dtype=torch.float16, device=device)
    a = torch.randn(2, k, device=device).half()
    none = torch.empty(0, dtype=torch.int32, device=device)
    msg = rf"must be a positive multiple of {multiple} for bits={bits}, got {bad_n}"
    with pytest.raises(ValueError, match=msg):
        ops.gptq_gemm(a, qweight, qzeros, scales, none, True, False, bits)
    with pytest.raises(ValueError, match=msg):
        ops.prepare(qweight, qzeros, scales, None, bits=bits, group_size=-1)


# ---- per-call indices are never trusted: every path clamps, counts, writes every element

def _bad_perms(a_perm):
    dup, oob, neg = a_perm.clone(), a_perm.clone(), a_perm.clone()
    dup[0] = dup[1]
    oob[3] = 1 << 20
    neg[5] = -7
    return {"duplicate": dup, "out_of_range": oob, "negative": neg}


def test_bad_a_perm_same_result_on_every_path(case):
    """Poisoned outputs, a bad a_perm: every kernel choice writes every element, agrees
    with the native kernel's clamped sum and repeats bitwise; dequantize is deterministic."""
    from conftest import native_kernel
    t, dev, w, a = case
    ops.take_index_errors(a.device.type)
    for label, perm in _bad_perms(w.a_perm).items():
        wb = w._replace(a_perm=perm)
        native = ops.gemm(a, wb, kernel=native_kernel(a.device) if w.layout == 1 else "auto")
        for kernel in ("auto", "dequant_matmul"):
            outs = []
            for _ in range(2):
                out = torch.full((a.shape[0], N), float("nan"), dtype=a.dtype, device=a.device)
                outs.append(ops.gemm(a, wb, kernel=kernel, out=out))
            assert torch.isfinite(outs[0]).all(), (label, kernel)
            assert torch.equal(outs[0], outs[1]), (label, kernel)
            torch.testing.assert_close(outs[0].float(), native.float(), atol=3e-2, rtol=1e-2)
        d1, d2 = ops.dequantize(wb, torch.float16), ops.dequantize(wb, torch.float16)
        assert torch.isfinite(d1).all() and torch.equal(d1, d2), label
    assert ops.take_index_errors(a.device.type) > 0  # out-of-range entries were counted


# ---- meta tensors: the fakes check devices, dtypes and K as the real ops do

def test_meta_mixed_with_real_tensors_is_an_error(case):
    t, dev, w, a = case
    meta = lambda x: x.to("meta")  # noqa: E731
    with pytest.raises(ValueError, match="b_q_weight is on meta"):
        ops.gptq_gemm(a, meta(dev["qweight"]), dev["qzeros"], dev["scales"], dev["g_idx"],
                      False, False, BITS)
    with pytest.raises(ValueError, match="scales is on meta"):
        ops.gemm(a, w._replace(scales=meta(w.scales)))
    with pytest.raises(ValueError, match="q_perm is on meta"):
        ops.gptq_shuffle(dev["qweight"].clone(), meta(dev["g_idx"]), BITS)
    with pytest.raises(ValueError, match="g_idx is on meta"):
        ops.prepare(dev["qweight"], dev["qzeros"], dev["scales"], meta(dev["g_idx"]),
                    bits=BITS, group_size=GS)


BAD_FOR_FAKE_AND_REAL = [  # (label, override of raw gemm arguments, exception)
    ("float_qweight", dict(qweight="float"), TypeError),
    ("a_wrong_K", dict(a="short"), ValueError),
    ("a_float32", dict(a="float32"), TypeError),
    ("bits_5", dict(bits=5), ValueError),
]


@pytest.mark.parametrize("label, override, exc", BAD_FOR_FAKE_AND_REAL,
                         ids=[c[0] for c in BAD_FOR_FAKE_AND_REAL])
def test_fake_rejects_what_the_real_op_rejects(case, label, override, exc):
    t, dev, w, a = case
    for on_meta in (False, True):
        move = (lambda x: x.to("meta")) if on_meta else (lambda x: x)
        args = dict(a=move(a), qweight=move(w.qweight))
        if override.get("qweight") == "float":
            args["qweight"] = args["qweight"].float()
        if override.get("a") == "short":
            args["a"] = args["a"][:, :-32]
        if override.get("a") == "float32":
            args["a"] = args["a"].float()
        extra = {k: v for k, v in override.items() if k not in ("a", "qweight")}
        wm = w._replace(qzeros=move(w.qzeros), scales=move(w.scales),
                        a_perm=None if w.a_perm is None else move(w.a_perm),
                        group_index=None if w.group_index is None else move(w.group_index))
        with pytest.raises(exc):
            raw_gemm(args["a"], wm._replace(qweight=args["qweight"]), **extra)


def test_prepare_messages_for_empty_k():
    q = torch.zeros(0, 64, dtype=torch.int32)
    with pytest.raises(ValueError, match="K = 0"):
        ops.prepare(q, torch.zeros(0, 8, dtype=torch.int32), torch.zeros(0, 64).half(), None,
                    bits=4, group_size=-1)
    t = quantize.random_gptq(256, 64, 4, 64, symmetric=False, act_order=False, v2_zeros=False,
                             seed=3)
    with pytest.raises(ValueError, match="got 48"):
        ops.prepare(t.qweight, t.qzeros, t.scales, None, bits=4, group_size=48)

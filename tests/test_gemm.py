"""gemm / dequantize / prepare against the pure-torch fp32 reference, on every device."""

import pytest
import torch

import gptq_mi100
from gptq_mi100 import ops, quantize, reference
from conftest import assert_gemm_close, native_kernel, prepare_variants, seed_of

M_VALUES = (0, 1, 2, 3, 8, 16, 33, 64, 128)
SMALLEST_RAGGED_N = {2: 272, 3: 288, 4: 264, 8: 264}


def make_case(k, n, bits, group_size, act_order, v2, seed, device, symmetric=False):
    """(tensors, [(kernel, prepared weight)] for every kernel, fp32 reference W)."""
    t = quantize.random_gptq(k, n, bits, group_size, symmetric=symmetric, act_order=act_order,
                             v2_zeros=v2, seed=seed, device="cpu")
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, bits, v2)
    ws = prepare_variants(t.qweight, t.qzeros, t.scales, t.g_idx if act_order else None,
                          bits, group_size, v2, device)
    return t, ws, w_ref


def default_weight(ws):
    return dict(ws)["auto"]


def activations(m, k, dtype, seed, device):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=g).to(dtype).to(device)


def run_poisoned(a, w, kernel):
    """gemm into an output filled with NaN: any element the kernel skips stays NaN."""
    out = torch.full((a.shape[0], w.out_features), float("nan"), dtype=a.dtype,
                     device=a.device)
    return ops.gemm(a, w, kernel=kernel, out=out)


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("act_order", [False, True], ids=["plain", "actorder"])
@pytest.mark.parametrize("group_size", [-1, 32, 64, 128])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_gemm_small_all_formats(device, bits, group_size, act_order, v2):
    if act_order and group_size == -1:
        pytest.skip("act-order with a single group is the plain case")
    k, n = 256, SMALLEST_RAGGED_N[bits]
    seed = seed_of("small", bits, group_size, act_order, v2)
    t, ws, w_ref = make_case(k, n, bits, group_size, act_order, v2, seed, device)
    for m in M_VALUES:
        a = activations(m, k, torch.float16, seed + m, device)
        ref = a.float().cpu() @ w_ref
        for kernel, w in ws:
            out = run_poisoned(a, w, kernel)
            assert_gemm_close(out, a, w_ref, ref, f"m={m} kernel={kernel}")


# Realistic layers, sampled rather than crossed with everything (K x N = in x out).
LARGE_CASES = [
    # (name, K, N, bits, group_size, act_order, v2, m)
    ("qwen3-32b-tp4-qkv", 5120, 2560, 4, 128, False, False, 1),
    ("qwen3-32b-tp4-qkv", 5120, 2560, 8, 128, True, False, 16),
    ("qwen3-32b-tp4-o", 2048, 5120, 4, 32, True, True, 3),
    ("qwen3-32b-tp4-o", 2048, 5120, 8, -1, False, True, 64),
    ("qwen3-32b-tp4-gate_up", 5120, 12800, 4, 128, True, False, 2),
    ("qwen3-32b-tp4-down", 6400, 5120, 4, 128, False, True, 8),
    ("qwen3-32b-tp4-down", 6400, 5120, 3, 128, True, False, 1),
    ("llama3-8b-qkv", 4096, 6144, 4, 128, True, False, 33),
    ("llama3-8b-down", 14336, 4096, 8, 128, False, False, 2),
    ("llama3-8b-o", 4096, 4096, 2, 64, False, True, 4),
    ("wide-8192", 8192, 1024, 4, 64, True, True, 128),
    ("ragged-8192", 8192, 264, 4, 128, False, False, 7),
]


@pytest.mark.parametrize("case", LARGE_CASES, ids=lambda c: f"{c[0]}-w{c[3]}g{c[4]}"
                         f"{'-act' if c[5] else ''}{'-v2' if c[6] else ''}-m{c[7]}")
def test_gemm_realistic_shapes(device, case):
    name, k, n, bits, group_size, act_order, v2, m = case
    seed = seed_of("large", case)
    t, ws, w_ref = make_case(k, n, bits, group_size, act_order, v2, seed, device)
    a = activations(m, k, torch.float16, seed + 1, device)
    ref = a.float().cpu() @ w_ref
    for kernel, w in ws[:-1]:
        out = run_poisoned(a, w, kernel)
        assert_gemm_close(out, a, w_ref, ref, f"{name} kernel={kernel}")


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.bfloat16])
def test_gemm_bf16_activations(device, bits, scale_dtype):
    k, n = 512, 264
    seed = seed_of("bf16", bits, scale_dtype)
    t = quantize.random_gptq(k, n, bits, 128, symmetric=False, act_order=True, v2_zeros=False,
                             seed=seed)
    scales = t.scales.to(scale_dtype)
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, scales.float(), t.g_idx, bits,
                                           False)
    ws = prepare_variants(t.qweight, t.qzeros, scales, t.g_idx, bits, 128, False, device)
    for m in (1, 5, 40):
        a = activations(m, k, torch.bfloat16, seed + m, device)
        ref = a.float().cpu() @ w_ref
        for kernel, w in ws[:-1]:
            out = run_poisoned(a, w, kernel)
            assert out.dtype == torch.bfloat16
            assert_gemm_close(out, a, w_ref, ref, f"bf16 m={m} {kernel}")


def test_gemm_batched_leading_dims_and_strided_rows(device):
    k, n = 256, 264
    t, ws, w_ref = make_case(k, n, 4, 64, False, False, seed_of("lead"), device)
    a = activations(6, k, torch.float16, 5, device).reshape(2, 3, k)
    out = ops.gemm(a, default_weight(ws))
    assert out.shape == (2, 3, n)
    ref = a.reshape(6, k).float().cpu() @ w_ref
    assert_gemm_close(out.reshape(6, n), a.reshape(6, k), w_ref, ref, "leading dims")
    wide = activations(4, 2 * k, torch.float16, 6, device)[:, :k]  # row stride 2K
    for kernel, w in ws:
        out2 = ops.gemm(wide, w, kernel=kernel)
        assert_gemm_close(out2, wide, w_ref, wide.float().cpu() @ w_ref, f"strided {kernel}")
    expanded = activations(1, k, torch.float16, 7, device).expand(3, k)  # row stride 0
    with pytest.raises(ValueError, match="a's rows overlap in memory"):
        ops.gemm(expanded, default_weight(ws))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("act_order", [False, True])
def test_dequantize_is_exact(device, bits, act_order):
    """dequantize computes in fp32 and rounds once: equal to the reference rounded."""
    k, n = 512, SMALLEST_RAGGED_N[bits]
    t, ws, w_ref = make_case(k, n, bits, 64, act_order, True, seed_of("dq", bits, act_order),
                             device)
    for kernel, w in ws:  # every layout
        for dtype in (torch.float16, torch.bfloat16):
            got = ops.dequantize(w, dtype)
            assert got.dtype == dtype and got.shape == (k, n)
            assert torch.equal(got.cpu(), w_ref.to(dtype)), (kernel, w.layout)


def test_prepare_does_not_modify_inputs_and_resolves_act_order(device):
    k, n, bits = 512, 264, 4
    t = quantize.random_gptq(k, n, bits, 128, symmetric=True, act_order=True, v2_zeros=False,
                             seed=seed_of("prep"))
    q0 = t.qweight.clone()
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                    t.g_idx.to(device), bits=bits, group_size=128)
    assert torch.equal(t.qweight, q0)
    assert w.a_perm.numel() == k
    assert torch.equal(w.a_perm.cpu().sort().values, torch.arange(k, dtype=torch.int32))
    # act-order groups of equal size, once sorted, are r // group_size: no group_index
    assert w.group_index is None and w.group_size == 128 and w.bits == bits
    assert torch.equal(t.g_idx[w.a_perm.cpu().long()].sort().values, t.g_idx.sort().values)
    assert w.layout == ops.preferred_layout(device, bits, k, n)
    plain = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                        torch.arange(k, dtype=torch.int32, device=device) // 128, bits=bits,
                        group_size=128, layout=1)
    assert plain.a_perm is None and plain.group_index is None and plain.layout == 1
    assert torch.equal(plain.qweight.cpu(), t.qweight)
    uneven = torch.arange(k, dtype=torch.int32) * 4 // k  # sorted, groups of 128
    uneven[100:128] = 1  # group 0 now has 100 rows, group 1 156
    odd = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                      uneven.to(device), bits=bits, group_size=128)
    assert odd.a_perm is None and odd.group_index is not None and odd.layout == 1


def test_act_order_perm_at_any_offset(device):
    """act-order with its a_perm at every 4-byte offset matches the reference: no kernel
    may assume more alignment of a_perm than its int32 elements give."""
    k, n = 512, 264
    t, ws, w_ref = make_case(k, n, 4, 64, True, False, seed_of("perm-offset"), device)
    w = default_weight(ws)
    for offset in range(4):
        buf = torch.zeros(k + 4, dtype=torch.int32, device=w.a_perm.device)
        buf[offset:offset + k] = w.a_perm
        shifted = w._replace(a_perm=buf[offset:offset + k])
        for m in (1, 8, 11):
            a = activations(m, k, torch.float16, seed_of("perm-offset", offset, m), device)
            out = run_poisoned(a, shifted, "auto")
            assert_gemm_close(out, a, w_ref, a.float().cpu() @ w_ref, f"offset={offset} m={m}")


def test_deterministic_run_to_run(device):
    k, n = 5120, 2560
    t, ws, w_ref = make_case(k, n, 4, 128, True, False, seed_of("det"), device)
    for kernel, w in ws:
        for m in (1, 16):
            a = activations(m, k, torch.float16, m, device)
            first = ops.gemm(a, w, kernel=kernel)
            for _ in range(20):
                assert torch.equal(ops.gemm(a, w, kernel=kernel), first), (kernel, m)


def test_fp16_overflow_of_partial_sums_is_avoided(device):
    """Partial sums reach 128 * 1000 > 65504 (fp16 max) before cancelling to a result
    that fits: fp32 accumulation gives it, fp16 accumulation gives inf."""
    k, n, bits = 256, 264, 4
    # Every weight = scale * (q - z) = 1 * (9 - 8) = 1 (v2 zeros).
    qweight = torch.full((k // 8, n), 0, dtype=torch.int32)
    from gptq_mi100 import formats
    qweight = formats.pack_rows(torch.full((k, n), 9, dtype=torch.int32), bits)
    qzeros = formats.pack_columns(torch.full((1, n), 8, dtype=torch.int32), bits)
    scales = torch.ones(1, n, dtype=torch.float16)
    w_ref = reference.dequantize_reference(qweight, qzeros, scales, None, bits, True)
    a = torch.cat([torch.full((1, 128), 1000.0), torch.full((1, 128), -1000.0)], 1)
    a[0, 0] = 1001.0
    a = torch.cat([a, a * 0.5, -a], 0).half()
    ref = a.float() @ w_ref
    assert torch.equal(ref[:, 0], torch.tensor([1.0, 0.5, -1.0]))

    def fp16_accumulating_gemm(a, w):  # what exllama's half2 accumulators do
        acc = torch.zeros(a.shape[0], w.shape[1], dtype=torch.float16)
        for kk in range(a.shape[1]):
            acc = acc + a[:, kk:kk + 1].half() * w[kk:kk + 1].half()
        return acc

    with pytest.raises(AssertionError):
        assert_gemm_close(fp16_accumulating_gemm(a, w_ref), a, w_ref, ref, "fp16 acc")

    for kernel, w in prepare_variants(qweight, qzeros, scales, None, bits, -1, True, device):
        out = ops.gemm(a.to(device), w, kernel=kernel)
        assert torch.isfinite(out).all()
        assert torch.equal(out.float().cpu(), ref), kernel


def test_diversity_check_catches_degenerate_output():
    from conftest import assert_diverse
    with pytest.raises(AssertionError, match="distinct rows"):
        assert_diverse(torch.ones(8, 16).cumsum(1))  # every row the same
    with pytest.raises(AssertionError, match="constant"):
        assert_diverse(torch.full((1, 16), 33.0))  # "!!!!": one token repeated
    assert_diverse(torch.randn(8, 16))


def test_auto_chooses_by_large_m_threshold(device):
    k, n, bits = 256, 264, 4
    t, ws, w_ref = make_case(k, n, bits, 128, False, False, seed_of("auto"), device)
    w = default_weight(ws)
    threshold = ops.large_m_threshold(device, bits)
    assert threshold >= 1
    native = next(name for name, wk in ws[:-2] if wk.layout == w.layout)  # registry order
    for m, path in ((threshold - 1, native), (threshold, "dequant_matmul")):
        if m == 0:
            continue
        ops.reset_path_counts()
        ops.gemm(activations(m, k, torch.float16, m, device), w, kernel="auto")
        counts = ops.path_counts()
        assert counts[path] == 1 and sum(counts.values()) == 1, (m, counts)


def test_use_kernel_block_and_explicit_choice(device):
    k, n = 256, 264
    t, ws, w_ref = make_case(k, n, 4, 128, False, False, seed_of("choice"), device)
    w = dict(ws)[native_kernel(device)]
    a = activations(2, k, torch.float16, 1, device)
    ops.reset_path_counts()
    with gptq_mi100.use_kernel("dequant_matmul"):
        ops.gemm(a, w)
    ops.gemm(a, w, kernel=native_kernel(device))
    counts = ops.path_counts()
    assert counts["dequant_matmul"] == 1 and counts[native_kernel(device)] == 1
    other = "exllama" if device.type == "cpu" else "cpu_c"
    with pytest.raises(ValueError, match="kernel must be one of"):
        ops.gemm(a, w, kernel=other)
    with pytest.raises(ValueError, match="kernel must be one of"):
        ops.gemm(a, w, kernel="fastest")


def test_transposed_refusal_falls_back_under_auto(device):
    """The kernel's own requirements decide: N past its split-K counters (131072 columns)
    makes auto take dequant_matmul, and an explicit request say why."""
    if "transposed" not in gptq_mi100.kernels.kernel_names(device.type):
        pytest.skip("no transposed kernel for this device")
    k, n, bits = 128, 131072 + 16, 4
    t = quantize.random_gptq(k, n, bits, 128, symmetric=True, act_order=False, v2_zeros=False,
                             seed=seed_of("wide-n"), device=device)
    w = ops.prepare(t.qweight, t.qzeros, t.scales, None, bits=bits, group_size=128, layout=2)
    a = activations(1, k, torch.float16, 3, device)
    ops.reset_path_counts()
    out = ops.gemm(a, w, kernel="auto")
    assert ops.path_counts()["dequant_matmul"] == 1
    w_ref = reference.dequantize_reference(t.qweight.cpu(), t.qzeros.cpu(), t.scales.cpu(),
                                           None, bits, False)
    assert_gemm_close(out, a, w_ref, a.float().cpu() @ w_ref, "wide N auto")
    with pytest.raises(ValueError, match="N must be at most 131072"):
        ops.gemm(a, w, kernel="transposed")

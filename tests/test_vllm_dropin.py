"""vLLM's call sequence (BACKGROUND.md section 3) through gptq_shuffle + gptq_gemm."""

import pytest
import torch

from gptq_mi100 import ops, quantize, reference
from conftest import assert_gemm_close, seed_of


def checkpoint(k, n, bits, group_size, act_order, v2, seed):
    t = quantize.random_gptq(k, n, bits, group_size, symmetric=False, act_order=act_order,
                             v2_zeros=v2, seed=seed)
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, bits, v2)
    return t, w_ref


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("act_order", [False, True], ids=["plain", "actorder"])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_vllm_exllama_sequence(device, bits, act_order, v2):
    """GPTQLinearMethod: perm = argsort(g_idx) (act-order) or empty; gptq_shuffle in place;
    gptq_gemm(x.reshape(-1, K), ..., perm, True, v2, bits)."""
    k, n, gs = 1024, 512, 128
    seed = seed_of("vllm", bits, act_order, v2)
    t, w_ref = checkpoint(k, n, bits, gs, act_order, v2, seed)
    qweight = t.qweight.clone().to(device)
    if act_order:
        perm = torch.argsort(t.g_idx).to(torch.int).to(device)
    else:
        perm = torch.empty((0,), dtype=torch.int, device=device)
    ops.gptq_shuffle(qweight, perm, bits)
    assert qweight.shape == t.qweight.shape
    for m in (1, 4, 70):
        x = torch.randn(2, m, k, generator=torch.Generator().manual_seed(seed + m)).half()
        out = ops.gptq_gemm(x.to(device).reshape(-1, k), qweight, t.qzeros.to(device),
                            t.scales.to(device), perm, True, v2, bits)
        ref = x.reshape(-1, k).float() @ w_ref  # (vLLM then adds the bias itself)
        assert_gemm_close(out, x.reshape(-1, k), w_ref, ref, f"m={m}")


@pytest.mark.parametrize("bits", [4, 8])
def test_vllm_row_parallel_act_order_alt_path(device, bits):
    """Row-parallel act-order shards: unshuffled weights, the rank's real g_idx slice (any
    values < G, scales/zeros kept whole), use_exllama=False."""
    k, n, gs = 1024, 264, 128
    seed = seed_of("alt", bits)
    t, w_ref = checkpoint(k, n, bits, gs, True, False, seed)
    pf = 32 // bits
    half = k // 2  # rank 1 of 2
    q_shard = t.qweight[half // pf:].contiguous().to(device)
    g_shard = t.g_idx[half:].contiguous().to(device)
    x = torch.randn(5, half, generator=torch.Generator().manual_seed(seed)).half()
    out = ops.gptq_gemm(x.to(device), q_shard, t.qzeros.to(device), t.scales.to(device),
                        g_shard, False, False, bits)
    ref = x.float() @ w_ref[half:]
    assert_gemm_close(out, x, w_ref[half:], ref, "row-parallel shard")


def test_out_of_range_g_idx_is_clamped_and_reported(device):
    """Per-call raw g_idx cannot make a kernel read out of bounds: entries are clamped in
    the kernel and counted; the count is read explicitly (no sync inside the op)."""
    k, n, bits = 256, 264, 4
    t, w_ref = checkpoint(k, n, bits, 128, True, False, seed_of("clamp"))
    g_bad = t.g_idx.clone()
    g_bad[3] = 1 << 20
    g_bad[200] = -5
    ops.take_index_errors(device)
    x = torch.randn(3, k, generator=torch.Generator().manual_seed(1)).half()
    out = ops.gptq_gemm(x.to(device), t.qweight.to(device), t.qzeros.to(device),
                        t.scales.to(device), g_bad.to(device), False, False, bits)
    assert torch.isfinite(out).all()
    assert ops.take_index_errors(device) > 0
    assert ops.take_index_errors(device) == 0  # read and reset
    # the clamped groups are what the kernel used
    g_clamped = g_bad.clamp(0, t.scales.shape[0] - 1)
    w_clamped = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, g_clamped, bits,
                                               False)
    assert_gemm_close(out, x, w_clamped, x.float() @ w_clamped, "clamped")


def test_gptq_shuffle_rejects_bad_perm(device):
    k, n, bits = 256, 264, 4
    t, _ = checkpoint(k, n, bits, 128, True, False, seed_of("badperm"))
    q = t.qweight.clone().to(device)
    bad = torch.arange(k, dtype=torch.int32).flip(0)
    bad[0] = 7  # duplicate
    with pytest.raises(ValueError, match="permutation"):
        ops.gptq_shuffle(q, bad.to(device), bits)
    with pytest.raises(ValueError, match="length K=256"):
        ops.gptq_shuffle(q, torch.arange(10, dtype=torch.int32, device=device), bits)
    assert torch.equal(q.cpu(), t.qweight), "a rejected shuffle must not touch q_weight"

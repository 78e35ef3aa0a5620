"""opcheck on every op, torch.compile(fullgraph=True), CUDA graph capture."""

import pytest
import torch
from torch.library import opcheck

from gptq_mi100 import ops, quantize, reference
from conftest import assert_gemm_close, prepare_variants, seed_of

K, N = 256, 264


def tensors(device, bits=4, act_order=True, seed=0):
    t = quantize.random_gptq(K, N, bits, 64, symmetric=False, act_order=act_order,
                             v2_zeros=False, seed=seed)
    return [x.to(device) for x in (t.qweight, t.qzeros, t.scales, t.g_idx)], t


def test_opcheck_all_ops(device):
    (qweight, qzeros, scales, g_idx), t = tensors(device, seed=seed_of("opcheck"))
    a = torch.randn(3, K, dtype=torch.float16, device=device)
    for kernel, w in prepare_variants(qweight, qzeros, scales, g_idx, 4, 64, False, device):
        gemm_args = (a, w.qweight, w.qzeros, w.scales, w.a_perm, w.group_index, 4, 64, False,
                     w.layout)
        opcheck(torch.ops.gptq_mi100.gemm.default, gemm_args + (kernel,))
        out = torch.empty(3, N, dtype=torch.float16, device=device)
        opcheck(torch.ops.gptq_mi100.gemm_out.default, gemm_args + (kernel, out))
        opcheck(torch.ops.gptq_mi100.dequantize.default,
                (w.qweight, w.qzeros, w.scales, w.a_perm, w.group_index, 4, 64, False,
                 w.layout, torch.bfloat16))
    opcheck(torch.ops.gptq_mi100.prepare.default, (qweight, qzeros, scales, g_idx, 4))
    perm = torch.argsort(g_idx).to(torch.int32)
    opcheck(torch.ops.gptq_mi100.gptq_gemm.default,
            (a, qweight, qzeros, scales, g_idx, False, False, 4))
    opcheck(torch.ops.gptq_mi100.gptq_shuffle.default, (qweight.clone(), perm, 4))
    q = qweight.clone()
    ops.gptq_shuffle(q, perm, 4)
    opcheck(torch.ops.gptq_mi100.gptq_gemm.default, (a, q, qzeros, scales, perm, True, True, 4))


class QuantLinear(torch.nn.Module):
    def __init__(self, w, bias):
        super().__init__()
        self.w = w
        self.bias = torch.nn.Parameter(bias, requires_grad=False)

    def forward(self, x):
        return torch.relu(ops.gemm(x, self.w) + self.bias)


def test_torch_compile_fullgraph(device):
    (qweight, qzeros, scales, g_idx), t = tensors(device, seed=seed_of("compile"))
    w = ops.prepare(qweight, qzeros, scales, g_idx, bits=4, group_size=64)
    bias = torch.randn(N, dtype=torch.float16, device=device)
    mod = QuantLinear(w, bias)
    compiled = torch.compile(mod, fullgraph=True, dynamic=False)
    for m in (1, 4):
        x = torch.randn(2, m, K, dtype=torch.float16, device=device)
        assert torch.equal(compiled(x), mod(x))


def test_cuda_graph_capture_and_replay(device):
    if device.type != "cuda":
        pytest.skip("graph capture needs a GPU")
    (qweight, qzeros, scales, g_idx), t = tensors(device, seed=seed_of("graph"))
    w = ops.prepare(qweight, qzeros, scales, g_idx, bits=4, group_size=64, layout=1)
    w2 = ops.prepare(qweight, qzeros, scales, g_idx, bits=4, group_size=64, layout=2)
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, 4, False)
    x = torch.randn(5, K, dtype=torch.float16, device=device)
    perm = torch.argsort(g_idx).to(torch.int32)
    q = qweight.clone()
    ops.gptq_shuffle(q, perm, 4)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside capture, as torch requires
        for _ in range(2):
            ops.gemm(x, w, kernel="exllama")
            ops.gemm(x, w2, kernel="transposed")
            ops.gptq_gemm(x, q, qzeros, scales, perm, True, False, 4)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y1 = ops.gemm(x, w, kernel="exllama")
        y2 = ops.gptq_gemm(x, q, qzeros, scales, perm, True, False, 4)
        y3 = ops.gemm(x, w2, kernel="transposed")  # split-K: in-launch counters replayed
    for m_seed in range(3):
        x.copy_(torch.randn(5, K, generator=torch.Generator().manual_seed(m_seed)).half())
        for y in (y1, y2, y3):
            y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        ref = x.float().cpu() @ w_ref
        assert_gemm_close(y1, x, w_ref, ref, "graph gemm")
        assert_gemm_close(y2, x, w_ref, ref, "graph gptq_gemm")
        assert_gemm_close(y3, x, w_ref, ref, "graph transposed")
        assert torch.equal(y3, ops.gemm(x, w2, kernel="transposed"))
        assert torch.equal(y1, ops.gemm(x, w, kernel="exllama"))

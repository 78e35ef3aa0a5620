"""gptq_mi100.nn: GPTQLinear against the fp32 reference, module behaviour, replace_linears."""

import pytest
import torch

from conftest import assert_gemm_close, seed_of
from gptq_mi100 import quantize, reference
from gptq_mi100.nn import GPTQLinear, quantizable, replace_linears

K, N = 256, 96


def _layer(bits, group_size, act_order, v2, seed, bias=False, k=K, n=N):
    t = quantize.random_gptq(k, n, bits, group_size, symmetric=False, act_order=act_order,
                             v2_zeros=v2, seed=seed)
    b = torch.randn(n, generator=torch.Generator().manual_seed(seed)).half() if bias else None
    m = GPTQLinear.from_checkpoint(t.qweight, t.qzeros, t.scales, t.g_idx, b, bits=bits,
                                   group_size=group_size, v2_zeros=v2)
    return t, m


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("v2", [False, True])
def test_matches_reference(device, bits, act_order, v2):
    seed = seed_of("nn", bits, act_order, v2)
    t, m = _layer(bits, 64, act_order, v2, seed)
    m = m.to(device)
    x = torch.randn(2, 3, K, generator=torch.Generator().manual_seed(seed)).half().to(device)
    y = m(x)
    assert y.shape == (2, 3, N) and y.dtype == torch.float16
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, bits, v2)
    x2 = x.reshape(-1, K).cpu()
    assert_gemm_close(y.reshape(-1, N), x2, w_ref, x2.float() @ w_ref,
                      what=f"bits={bits} act_order={act_order} v2={v2}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_bias_and_leading_dims(dtype):
    _, m = _layer(4, 128, True, False, seed_of("bias", dtype), bias=True)
    x = torch.randn(4, 1, 5, K, generator=torch.Generator().manual_seed(3)).to(dtype)
    y = m(x)
    assert y.shape == (4, 1, 5, N) and y.dtype == dtype
    m_nobias = GPTQLinear.from_checkpoint(m.qweight, m.qzeros, m.scales, m.g_idx, None,
                                          bits=4, group_size=128)
    assert torch.equal(y, m_nobias(x) + m.bias.to(dtype))
    assert m(torch.empty(0, K, dtype=dtype)).shape == (0, N)


def test_no_act_order_keeps_one_qweight():
    _, m = _layer(4, 64, False, False, 1)
    assert m.prepared().qweight is m.qweight
    assert not m.act_order
    _, m = _layer(4, 64, True, False, 1)
    assert m.act_order and m.prepared().qweight is not m.qweight


def test_dtype_cast_keeps_scales_and_state_dict_round_trip():
    t, m = _layer(3, 64, True, True, 7, bias=True)
    x = torch.randn(3, K, generator=torch.Generator().manual_seed(1)).half()
    m.to(torch.bfloat16)
    assert m.scales.dtype == torch.float16 and m.bias.dtype == torch.bfloat16
    assert torch.equal(m.scales, t.scales)
    m.half()                                       # bias went through bf16
    y = m(x)
    sd = m.state_dict()
    assert set(sd) == {"qweight", "qzeros", "scales", "g_idx", "bias"}
    empty = GPTQLinear(K, N, 3, 64, bias=True, v2_zeros=True)
    assert not torch.equal(empty(x), y)
    empty.load_state_dict(sd)
    assert torch.equal(empty(x), y)


def test_group_size_minus_one_and_errors():
    t, m = _layer(8, -1, False, False, 5)
    assert m.scales.shape[0] == 1
    x = torch.randn(2, K, generator=torch.Generator().manual_seed(2)).half()
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, 8, False)
    assert_gemm_close(m(x), x, w_ref, x.float() @ w_ref, "group -1")
    with pytest.raises(ValueError, match="groups"):
        GPTQLinear.from_checkpoint(t.qweight, t.qzeros, t.scales, None, bits=8, group_size=64)
    with pytest.raises(ValueError, match="group_size"):
        GPTQLinear(K, N, 4, 100)
    with pytest.raises(TypeError, match="nn.Linear"):
        GPTQLinear.from_linear(torch.nn.Conv1d(2, 2, 1), 4)


@pytest.mark.parametrize("bits,sym,act_order", [(4, True, False), (8, False, True),
                                               (2, False, False), (3, True, True)])
def test_from_linear(bits, sym, act_order):
    gen = torch.Generator().manual_seed(seed_of("lin", bits, sym, act_order))
    lin = torch.nn.Linear(K, N)
    with torch.no_grad():
        lin.weight.normal_(0, 0.05, generator=gen)
        lin.bias.normal_(0, 0.1, generator=gen)
    m = GPTQLinear.from_linear(lin, bits, 32, act_order=act_order, sym=sym,
                               generator=torch.Generator().manual_seed(1))
    assert m.act_order == act_order and m.sym == sym
    t = quantize.quantize_rtn(lin.weight.detach().t(), bits, 32, symmetric=sym,
                              act_order=act_order, generator=torch.Generator().manual_seed(1))
    assert torch.equal(m.qweight, t.qweight) and torch.equal(m.g_idx, t.g_idx)
    x = torch.randn(5, K, generator=gen)
    y = m(x.half()).float()
    y_float = lin(x).detach()
    # RTN error: within half a step per weight; a loose check that it is the same function.
    rel = (y - y_float).norm() / y_float.norm()
    assert rel < {2: 0.7, 3: 0.3, 4: 0.15, 8: 0.01}[bits], rel


def test_replace_linears():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 128), torch.nn.GELU(),
        torch.nn.Sequential(torch.nn.Linear(128, 64, bias=False), torch.nn.Linear(64, 30)))
    x = torch.randn(7, 64)
    ref = model(x).detach()
    names = replace_linears(model, bits=8, group_size=32, progress=False)
    assert names == ["0", "2.0"]                  # 2.1: N=30 is not a multiple of 4
    assert isinstance(model[0], GPTQLinear) and isinstance(model[2][0], GPTQLinear)
    assert type(model[2][1]) is torch.nn.Linear
    model.half()
    y = model(x.half()).float()
    assert (y - ref).norm() / ref.norm() < 0.02
    assert replace_linears(model, bits=8, group_size=32) == []   # nothing left to replace

    model2 = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 64))
    assert replace_linears(model2, "^1$", bits=4, group_size=64, progress=False) == ["1"]
    assert replace_linears(model2, lambda name, mod: False, bits=4) == []
    with pytest.raises(ValueError, match="multiple of 4"):
        replace_linears(torch.nn.Sequential(torch.nn.Linear(64, 30)), bits=8,
                        skip_incompatible=False)
    assert quantizable(torch.nn.Linear(48, 64), 4, 128) is not None


def test_graph_capture_needs_prepared_weight():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA/HIP GPU present")
    from conftest import has_gpu_ops
    if not has_gpu_ops():
        pytest.skip("gptq_mi100 was built without GPU support")
    _, m = _layer(4, 64, True, False, 3)
    m = m.cuda()
    x = torch.randn(4, K, device="cuda").half()
    y = m(x)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = m(x)
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, y)
    m._prepared = {}
    with pytest.raises(RuntimeError, match="before capturing"):
        with torch.cuda.graph(torch.cuda.CUDAGraph()):
            m(x)

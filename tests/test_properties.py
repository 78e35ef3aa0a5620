"""Property-based tests (hypothesis): random formats, shapes and strides against the fp32
reference. CPU: every kernel choice; GPU (same command on the GPU machine): every native
kernel on the layout it reads, with a smaller budget. Bounded: a few seconds on CPU."""

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from gptq_mi100 import ops, quantize, reference  # noqa: E402
from conftest import assert_gemm_close, prepare_variants  # noqa: E402


@st.composite
def gptq_cases(draw):
    bits = draw(st.sampled_from([2, 3, 4, 8]))
    group_size = draw(st.sampled_from([-1, 32, 64, 128]))
    k = draw(st.sampled_from([128, 256, 384, 512]))
    if group_size != -1 and k % group_size:
        group_size = 32
    unit = 32 if bits == 3 else 32 // bits          # N granularity of the zero packing
    n = unit * draw(st.integers(1, 320 // unit))    # ragged N, up to 320 columns
    act_order = draw(st.booleans()) and group_size != -1
    return dict(bits=bits, group_size=group_size, k=k, n=n, act_order=act_order,
                v2=draw(st.booleans()), symmetric=draw(st.booleans()),
                m=draw(st.integers(0, 9)), row_pad=draw(st.sampled_from([0, 8, 64])),
                dtype=draw(st.sampled_from([torch.float16, torch.bfloat16])),
                seed=draw(st.integers(0, 2**31 - 1)))


def _check(case, device):
    t = quantize.random_gptq(case["k"], case["n"], case["bits"], case["group_size"],
                             symmetric=case["symmetric"], act_order=case["act_order"],
                             v2_zeros=case["v2"], seed=case["seed"])
    g_idx = t.g_idx if case["act_order"] else None
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, g_idx, case["bits"],
                                           case["v2"])
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    wide = torch.randn(case["m"], case["k"] + case["row_pad"], generator=gen)
    a = wide.to(case["dtype"]).to(device)[:, :case["k"]]  # row stride K + pad
    ref = a.float().cpu() @ w_ref
    for kernel, w in prepare_variants(t.qweight, t.qzeros, t.scales, g_idx, case["bits"],
                                      case["group_size"], case["v2"], device):
        out = torch.full((case["m"], case["n"]), float("nan"), dtype=a.dtype, device=device)
        ops.gemm(a, w, kernel=kernel, out=out)
        assert_gemm_close(out, a, w_ref, ref, f"{kernel} {case}")


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=gptq_cases())
def test_gemm_matches_reference_on_random_formats(device, case):
    if device.type == "cuda" and case["seed"] % 3:  # smaller budget on the GPU machine
        return
    _check(case, device)

"""Shared test fixtures: the device parametrization and the accuracy checks.

GPU cases are the same tests parametrized by device. GPTQ_MI100_TEST_DEVICE selects:
"cpu", "cuda", or unset/"all" (cpu, plus cuda when a GPU is present). A requested but
missing GPU skips with a reason, never fails.
"""

import os
import zlib

import pytest
import torch

from gptq_mi100 import reference

# A user's tuned table (gptq_mi100/tuner.py) must not change what auto picks here: tests that
# need one set GPTQ_MI100_TUNE_FILE themselves or call tuner.apply with a path.
os.environ.setdefault("GPTQ_MI100_TUNE_FILE", "none")


def _devices():
    sel = os.environ.get("GPTQ_MI100_TEST_DEVICE", "all").strip().lower()
    if sel not in ("all", "cpu", "cuda"):
        raise ValueError(f"GPTQ_MI100_TEST_DEVICE must be cpu, cuda or all, got {sel!r}")
    return ["cpu", "cuda"] if sel == "all" else [sel]


def has_gpu_ops():
    if not torch.cuda.is_available():
        return False
    from gptq_mi100 import ops
    return "backend cpu" not in ops.build_info()


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", _devices(), indirect=True)


@pytest.fixture
def device(request):
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA/HIP GPU present")
        if not has_gpu_ops():
            pytest.skip("gptq_mi100 was built without GPU support")
    return torch.device(request.param)


def seed_of(*params):
    """A fixed seed per parametrized case, different across cases."""
    return zlib.crc32(repr(params).encode()) & 0x7FFFFFFF


def native_kernel(device):
    """The baseline native kernel of the device (reads layout 1)."""
    return "exllama" if torch.device(device).type == "cuda" else "cpu_c"


def native_kernels(device):
    """(name, layout) of every native kernel this build has for the device, from the
    kernel registry: tests run each kernel on the layout it reads."""
    from gptq_mi100 import kernels
    return [(info.name, info.layouts[0]) for info in kernels.kernel_table(torch.device(device).type)
            if info.in_build and info.auto_range == "below_large_m"]


def prepare_variants(qweight, qzeros, scales, g_idx, bits, group_size, v2_zeros, device):
    """[(kernel, PreparedGPTQ)] for every native kernel (on its layout, where the weight
    allows it), then dequant_matmul and auto on the default layout."""
    from gptq_mi100 import ops
    dev = lambda x: None if x is None else x.to(device)  # noqa: E731
    args = (dev(qweight), dev(qzeros), dev(scales), dev(g_idx))
    kw = dict(bits=bits, group_size=group_size, v2_zeros=v2_zeros)
    default = ops.prepare(*args, **kw)
    out = []
    for name, layout in native_kernels(device):
        try:
            out.append((name, default if layout == default.layout
                        else ops.prepare(*args, **kw, layout=layout)))
        except ValueError:  # this weight cannot be in that layout (bits, K, uneven groups)
            continue
    return out + [("dequant_matmul", default), ("auto", default)]


error_bound = reference.error_bound  # one home: gptq_mi100/reference.py


def assert_gemm_close(out, a, w_ref, ref, what=""):
    """out: kernel output (a's dtype); w_ref: fp32 [K, N]; ref: fp32 a @ w_ref."""
    assert out.dtype == a.dtype, f"{what}: output dtype {out.dtype} != {a.dtype}"
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    o = out.float().cpu()
    r = ref.cpu()
    assert torch.isfinite(o).all(), f"{what}: non-finite output elements"
    bound = error_bound(a.cpu(), w_ref.cpu(), r, a.dtype)
    err = (o - r).abs()
    bad = err > bound
    if bad.any():
        i = bad.nonzero()[0].tolist()
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {err.numel()} elements off; first at {i}: "
            f"got {o[tuple(i)].item()}, want {r[tuple(i)].item()}, bound "
            f"{bound[tuple(i)].item():.3g}")
    assert_diverse(o, what)


def assert_diverse(out, what=""):
    """The "!!!!" detector: distinct random input rows must give distinct output rows,
    and rows must not be constant."""
    o = out.float()
    m = o.shape[0]
    if m >= 2 and o.shape[1] >= 8:
        unique = torch.unique(o, dim=0).shape[0]
        assert unique >= max(2, m // 2), f"{what}: only {unique} distinct rows of {m}"
    if m >= 1 and o.shape[1] >= 8:
        assert (o.std(dim=1) > 0).all(), f"{what}: a constant output row"

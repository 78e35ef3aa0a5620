"""Load-time self-check (gptq_mi100/selfcheck.py): every kernel auto may pick runs against the
reference; a deliberately wrong kernel (the `_inject_fault` test hook: the op hands it a zero
offset off by one) is excluded from auto, named in one warning, and refused by name.
GPTQ_MI100_SELFCHECK=off skips the load-time check (tested on CPU)."""

import subprocess
import sys
import warnings

import pytest
import torch

from conftest import assert_gemm_close, has_gpu_ops, seed_of
from gptq_mi100 import kernels, ops, quantize, reference, selfcheck

_ops = torch.ops.gptq_mi100


@pytest.fixture
def clean_state(monkeypatch):
    monkeypatch.delenv("GPTQ_MI100_SELFCHECK", raising=False)  # these tests need the check on
    selfcheck._reset_for_tests()
    _ops._inject_fault("")
    yield
    _ops._inject_fault("")
    selfcheck._reset_for_tests()


def _auto_kernel(device, w, a):
    """The kernel auto runs for (a, w), from the path counters."""
    before = ops.path_counts()
    ops.gemm(a, w, kernel="auto")  # explicit: GPTQ_MI100_KERNEL may force another default
    after = ops.path_counts()
    ran = [n for n in after if after[n] > before[n]]
    assert len(ran) == 1, ran
    return ran[0]


def test_every_candidate_passes_on_this_device(device, clean_state):
    results = selfcheck.run(device, bits=(3, 4, 8), group_sizes=(32, -1),
                            act_orders=(False, True))
    assert results and all(r.ok for r in results), selfcheck.format_table(
        [r for r in results if not r.ok])
    checked = {r.kernel for r in results if r.detail == ""}
    auto_kernels = {r.name for r in selfcheck._candidates(device.type)}
    assert checked == auto_kernels  # every kernel auto may pick really ran
    assert {r.dtype for r in results} == {"fp16", "bf16"}
    assert not selfcheck.excluded_kernels(device.type)  # run() has no side effects


@pytest.mark.parametrize("act_order", [False, True])
def test_wrong_kernel_is_excluded_from_auto(device, clean_state, act_order):
    bits, gs, k, n = 4, 128, 512, 264
    t = quantize.random_gptq(k, n, bits, gs, symmetric=False, act_order=act_order,
                             v2_zeros=False, seed=seed_of("selfcheck", act_order))
    args = (t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
            t.g_idx.to(device) if act_order else None)
    w = ops.prepare(*args, bits=bits, group_size=gs)
    a = torch.randn(3, k, generator=torch.Generator().manual_seed(5)).half().to(device)
    victim = _auto_kernel(device, w, a)
    selfcheck._reset_for_tests()  # the GPU prepare above already checked: start again

    _ops._inject_fault(victim)
    with pytest.warns(selfcheck.SelfCheckWarning, match=f"kernel '{victim}' gave wrong results"):
        results = selfcheck.ensure_checked(device, bits, gs, act_order)
    assert any(r.kernel == victim and not r.ok for r in results)
    assert all(r.ok for r in results if r.kernel != victim)
    assert selfcheck.excluded_kernels(device.type) == (victim,)

    w = ops.prepare(*args, bits=bits, group_size=gs)  # the layout may move to another kernel
    replacement = _auto_kernel(device, w, a)
    assert replacement != victim
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, bits, False)
    out = ops.gemm(a, w)
    assert_gemm_close(out, a.cpu(), w_ref, a.cpu().float() @ w_ref, f"auto after excluding {victim}")
    victim_layout = next(r.layouts[0] for r in kernels.kernel_table(device.type)
                         if r.name == victim)
    wv = ops.prepare(*args, bits=bits, group_size=gs, layout=victim_layout)
    with pytest.raises(ValueError, match=f"kernel '{victim}' gave wrong results in this "
                                         "process's load-time self-check"):
        ops.gemm(a, wv, kernel=victim)

    # cached: the same combination is not checked again, and no second warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert selfcheck.ensure_checked(device, bits, gs, act_order) is results


def test_gpu_prepare_runs_the_check_once(clean_state, monkeypatch):
    if not has_gpu_ops():
        pytest.skip("no CUDA/HIP GPU present, or a build without GPU support")
    calls = []
    real = selfcheck.run
    monkeypatch.setattr(selfcheck, "run", lambda *a, **k: calls.append(k) or real(*a, **k))
    t = quantize.random_gptq(512, 264, 8, 64, symmetric=True, act_order=False, v2_zeros=True,
                             seed=seed_of("once"))
    for _ in range(3):
        ops.prepare(t.qweight.cuda(), t.qzeros.cuda(), t.scales.cuda(), None, bits=8,
                    group_size=64, v2_zeros=True)
    assert len(calls) == 1 and calls[0]["bits"] == (8,) and calls[0]["group_sizes"] == (64,)


def test_cpu_prepare_does_not_check(clean_state, monkeypatch):
    monkeypatch.setattr(selfcheck, "run", lambda *a, **k: pytest.fail("checked on CPU prepare"))
    t = quantize.random_gptq(256, 64, 4, 128, symmetric=True, act_order=False, v2_zeros=False,
                             seed=seed_of("cpu prepare"))
    ops.prepare(t.qweight, t.qzeros, t.scales, None, bits=4, group_size=128)


def test_fault_hook_and_exclusion_validate_names(clean_state):
    with pytest.raises(ValueError, match="_inject_fault: kernel must be one of .*got 'nope'"):
        _ops._inject_fault("nope")
    with pytest.raises(ValueError, match="set_kernel_excluded: kernel must be one of"):
        _ops.set_kernel_excluded("cpu", "nope", True)
    with pytest.raises(ValueError, match="device_type must be 'cpu' or 'cuda'"):
        _ops.excluded_kernels("tpu")


def test_selftest_command_prints_the_table():
    proc = subprocess.run([sys.executable, "-m", "gptq_mi100", "selftest", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cpu_c" in proc.stdout and "dequant_matmul" in proc.stdout
    assert "checks passed" in proc.stdout and "WRONG" not in proc.stdout


@pytest.mark.parametrize("value", ["off", "0", "OFF "])
def test_selfcheck_env_off_skips(clean_state, monkeypatch, value):
    monkeypatch.setenv("GPTQ_MI100_SELFCHECK", value)
    monkeypatch.setattr(selfcheck, "run", lambda *a, **k: pytest.fail("checked with the check off"))
    assert selfcheck.ensure_checked("cpu", 4, 128, False) == []
    assert not selfcheck._checked  # nothing cached: turning it on later still checks


@pytest.mark.parametrize("value", ["yes", "2", "false"])
def test_selfcheck_env_bad_value_raises(clean_state, monkeypatch, value):
    monkeypatch.setenv("GPTQ_MI100_SELFCHECK", value)
    with pytest.raises(ValueError, match=f"GPTQ_MI100_SELFCHECK must be one of on, 1, off, 0 "
                                         f".*got '{value}'"):
        selfcheck.ensure_checked("cpu", 4, 128, False)


@pytest.mark.parametrize("value", [None, "on", "1", ""])
def test_selfcheck_env_on_runs(clean_state, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("GPTQ_MI100_SELFCHECK", raising=False)
    else:
        monkeypatch.setenv("GPTQ_MI100_SELFCHECK", value)
    calls = []
    monkeypatch.setattr(selfcheck, "run", lambda *a, **k: calls.append(k) or [])
    results = selfcheck.ensure_checked("cpu", 4, 128, False)
    assert results == [] and len(calls) == 1 and calls[0]["bits"] == (4,)
    assert selfcheck._checked  # cached: a second call does not check again
    selfcheck.ensure_checked("cpu", 4, 128, False)
    assert len(calls) == 1


def test_selfcheck_env_on_checks_for_real(clean_state, monkeypatch):
    monkeypatch.setenv("GPTQ_MI100_SELFCHECK", "on")
    results = selfcheck.ensure_checked("cpu", 4, 128, False)
    assert results and all(r.ok for r in results), selfcheck.format_table(results)

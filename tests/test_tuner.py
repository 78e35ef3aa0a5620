"""The on-device tuner (gptq_mi100/tuner.py): a real tune writes a table that loads back and
that `auto` then follows; wrong or raising candidates are never chosen; a defective table is
ignored with exactly one TuneTableWarning; gemm does no file I/O; the CLI's user errors are
one line and exit status 2."""

import builtins
import io
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import assert_gemm_close, seed_of
from gptq_mi100 import __main__ as cli, kernels, ops, quantize, reference, tuner
from gptq_mi100.kernels import KernelInfo, TunedRow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` lives at the root
from benchmarks.shapes import SHAPE_SETS  # noqa: E402

_ops = torch.ops.gptq_mi100
SHAPES = [(256, 64), (512, 96)]
MS = (1, 3, 8)
GROUP = 64


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A private cache dir, no table file chosen, nothing installed or faulted; the same after."""
    monkeypatch.setenv("GPTQ_MI100_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GPTQ_MI100_TUNE_FILE", raising=False)
    tuner._reset_for_tests()
    _ops._inject_fault("")
    yield tmp_path
    _ops._inject_fault("")
    tuner._reset_for_tests()


def _weight(device, k, n):
    t = quantize.random_gptq(k, n, 4, GROUP, symmetric=False, act_order=False, v2_zeros=False,
                             seed=seed_of("tuner", k, n))
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device), None, bits=4,
                    group_size=GROUP)
    return t, w


def _auto_kernel(a, w):
    """The kernel `auto` runs for (a, w), from the path counters."""
    ops.reset_path_counts()
    out = ops.gemm(a, w, kernel="auto")  # explicit: GPTQ_MI100_KERNEL may force another default
    ran = [name for name, calls in ops.path_counts().items() if calls]
    assert len(ran) == 1, ran
    return ran[0], out


def _write_table(path, entries, text=None, **overrides):
    """A table as tune writes it for the CPU, with fields replaced (key: merged) by
    `overrides`, or `text` instead."""
    data = {"schema": tuner.SCHEMA, "key": tuner.device_key("cpu"),
            "rows": [r._asdict() if isinstance(r, TunedRow) else r for r in entries]}
    for name, value in overrides.items():
        data[name] = dict(data["key"], **value) if name == "key" and value else value
    Path(path).write_text(json.dumps(data) if text is None else text)
    return str(path)


def _tune_warnings(fn):
    """fn()'s result and the TuneTableWarnings it gave (every warning must be one)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = fn()
    assert all(issubclass(w.category, tuner.TuneTableWarning) for w in record), \
        [str(w.message) for w in record]
    return result, [str(w.message) for w in record]


def test_tune_writes_a_table_that_auto_follows(device, fresh, monkeypatch, capsys):
    if device.type == "cuda":  # tiny weights: a few copies suffice for this test's timings
        monkeypatch.setattr(tuner.timing, "n_copies", lambda *args: 2)
    result = tuner.tune(SHAPES, MS, device=device, group_size=GROUP)
    progress = capsys.readouterr().err
    assert progress.count("tune [") == len(SHAPES) * len(MS), progress
    assert not result.dropped and not result.skipped
    assert result.path == tuner.default_path(device)
    assert result.path.startswith(str(fresh / "cache"))
    data = json.loads(Path(result.path).read_text())
    assert data["schema"] == tuner.SCHEMA and data["key"] == tuner.device_key(device)
    assert [TunedRow(**{f: r[f] for f in TunedRow._fields}) for r in data["rows"]] == result.rows
    for k, n in SHAPES:  # M = 1..8 covered, ranges contiguous, neighbours differ
        rows = [r for r in result.rows if (r.k, r.n) == (k, n)]
        assert rows[0].m_lo == 1 and rows[-1].m_hi == MS[-1], rows
        assert all(a.m_hi + 1 == b.m_lo and a.spec != b.spec for a, b in zip(rows, rows[1:]))
    assert {(m.k, m.n, m.m) for m in result.measured} == {(k, n, m) for k, n in SHAPES
                                                          for m in MS}
    assert kernels.tuned_table(device.type) == result.rows  # tune installs what it chose

    tuner._reset_for_tests()
    assert kernels.tuned_table(device.type) == []
    assert tuner.apply(device) == result.rows == kernels.tuned_table(device.type)
    for row in result.rows:
        t, w = _weight(device, row.k, row.n)
        w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, None, 4, False)
        for m in sorted({row.m_lo, row.m_hi}):
            a = torch.randn(m, row.k, generator=torch.Generator().manual_seed(m)).half()
            ran, out = _auto_kernel(a.to(device), w)
            assert ran == row.spec.split(":")[0], (row, m)
            assert_gemm_close(out, a, w_ref, a.float() @ w_ref, f"tuned {row}, M={m}")


def test_auto_follows_a_table_against_its_built_in_rule(fresh):
    """prepare reads the table (GPTQ_MI100_TUNE_FILE); rows win over the built-in rule on CPU
    (cpu_c below M = 128, dequant_matmul from it), Ms and shapes without a row keep it."""
    path = _write_table(fresh / "t.json", [TunedRow(4, 256, 64, 1, 2, "dequant_matmul"),
                                           TunedRow(4, 256, 64, 200, 300, "cpu_c")])
    os.environ["GPTQ_MI100_TUNE_FILE"] = path  # the fixture's monkeypatch restores it
    _, w = _weight("cpu", 256, 64)
    _, other = _weight("cpu", 512, 64)
    assert kernels.tuned_table("cpu") == [TunedRow(4, 256, 64, 1, 2, "dequant_matmul"),
                                          TunedRow(4, 256, 64, 200, 300, "cpu_c")]
    for m, want in [(1, "dequant_matmul"), (2, "dequant_matmul"), (3, "cpu_c"),
                    (150, "dequant_matmul"), (250, "cpu_c"), (301, "dequant_matmul")]:
        assert _auto_kernel(torch.randn(m, 256).half(), w)[0] == want, m
    assert _auto_kernel(torch.randn(1, 512).half(), other)[0] == "cpu_c"
    ops.reset_path_counts()
    ops.gemm(torch.randn(1, 256).half(), w, kernel="cpu_c")  # an explicit kernel still wins
    assert ops.path_counts()["cpu_c"] == 1


def test_gptq_shuffle_reads_the_table_too(fresh):
    path = _write_table(fresh / "t.json", [TunedRow(4, 256, 64, 1, 2, "dequant_matmul")])
    os.environ["GPTQ_MI100_TUNE_FILE"] = path
    t = quantize.random_gptq(256, 64, 4, GROUP, symmetric=True, act_order=False, v2_zeros=False,
                             seed=seed_of("shuffle"))
    ops.gptq_shuffle(t.qweight, torch.empty(0, dtype=torch.int32), 4)
    assert kernels.tuned_table("cpu") == [TunedRow(4, 256, 64, 1, 2, "dequant_matmul")]


_GOOD = TunedRow(4, 256, 64, 1, 2, "dequant_matmul")


@pytest.mark.parametrize("overrides, rows, reason", [
    (dict(text="{not json"), [], "not valid JSON"),
    (dict(text="[]"), [], "not a JSON object"),
    (dict(schema=99), [_GOOD], "schema 99"),
    (dict(key={"gptq_mi100": "0.0.1"}), [_GOOD], "stale: measured with gptq_mi100 0.0.1"),
    (dict(key={"torch": "1.0.0"}), [_GOOD], "stale"),
    (dict(key={"device": "Another CPU"}), [_GOOD], "measured on another device: 'Another CPU'"),
    (dict(key={"units": 4096}), [_GOOD], "another device"),
    (dict(key=None), [_GOOD], "no key object"),
    (dict(rows={}), [], "rows are not a list"),
    ({}, [dict(_GOOD._asdict(), bits=5)], r"rows\[0\].bits must be 2, 3, 4 or 8"),
    ({}, [_GOOD, dict(_GOOD._asdict(), m_lo=0)], r"rows\[1\].m_lo must be a positive integer"),
    ({}, [dict(_GOOD._asdict(), m_lo=9)], "m_lo 9 > m_hi 2"),
    ({}, [dict(_GOOD._asdict(), k="256")], "k must be a positive integer, got '256'"),
    ({}, [dict(_GOOD._asdict(), m_hi=True)], "m_hi must be a positive integer, got True"),
    ({}, [dict(_GOOD._asdict(), k=100)], "k must be a multiple of 32"),
    ({}, [dict(_GOOD._asdict(), n=2**40)], "n must be a positive integer"),
    ({}, [dict(_GOOD._asdict(), spec=None)], "spec must be a kernel spec string"),
    ({}, [_GOOD, _GOOD._replace(spec="no_such_kernel")], "'no_such_kernel' names no cpu kernel"),
    ({}, [_GOOD._replace(spec="transposed")], "names no cpu kernel"),
    ({}, [_GOOD._replace(spec="cpu_c:mt=4")], "takes no tile parameters"),
    ({}, [_GOOD._replace(spec="auto")], "names no cpu kernel"),
])
def test_a_defective_table_is_ignored_with_one_warning(fresh, overrides, rows, reason):
    path = _write_table(fresh / "bad.json", rows, **overrides)
    os.environ["GPTQ_MI100_TUNE_FILE"] = path
    installed, messages = _tune_warnings(lambda: tuner.apply("cpu"))
    assert installed == [] and kernels.tuned_table("cpu") == []
    assert len(messages) == 1
    assert f"ignoring the tuned kernel table {path}" in messages[0]
    assert re.search(reason, messages[0]), messages[0]


def test_prepare_warns_once_per_process(fresh):
    os.environ["GPTQ_MI100_TUNE_FILE"] = _write_table(fresh / "bad.json", [], text="{")
    _, messages = _tune_warnings(lambda: [_weight("cpu", 256, 64) for _ in range(3)])
    assert len(messages) == 1 and kernels.tuned_table("cpu") == []


def test_no_table_or_none_reads_nothing_silently(fresh, monkeypatch):
    rows = [_GOOD]
    os.makedirs(tuner.cache_dir())
    _write_table(tuner.default_path("cpu"), rows)
    assert _tune_warnings(lambda: tuner.apply("cpu")) == (rows, [])  # the cache's table
    tuner._reset_for_tests()

    monkeypatch.setenv("GPTQ_MI100_TUNE_FILE", "none")

    def no_io(*args, **kwargs):
        raise AssertionError("file I/O under GPTQ_MI100_TUNE_FILE=none")
    with monkeypatch.context() as mp:
        for module, name in ((builtins, "open"), (io, "open"), (os, "open"), (os, "stat")):
            mp.setattr(module, name, no_io)
        assert _tune_warnings(lambda: tuner.apply("cpu")) == ([], [])
    assert kernels.tuned_table("cpu") == []

    monkeypatch.setenv("GPTQ_MI100_TUNE_FILE", str(fresh / "missing.json"))
    assert _tune_warnings(lambda: tuner.apply("cpu")) == ([], [])
    monkeypatch.delenv("GPTQ_MI100_TUNE_FILE")
    monkeypatch.setenv("GPTQ_MI100_CACHE_DIR", str(fresh / "empty"))
    assert _tune_warnings(lambda: tuner.apply("cpu")) == ([], [])


@pytest.mark.parametrize("victim", ["cpu_c", "dequant_matmul"])
def test_a_wrong_candidate_is_never_chosen(fresh, victim):
    _ops._inject_fault(victim)  # the op hands it a zero offset off by one
    result = tuner.tune([(256, 64)], (1, 8, 130), device="cpu", group_size=GROUP,
                        progress=False, path=str(fresh / "t.json"))
    assert result.rows and all(r.spec != victim for r in result.rows), result.rows
    assert (result.rows[0].m_lo, result.rows[-1].m_hi) == (1, 130)
    assert {d.m for d in result.dropped if d.spec == victim} == {1, 8, 130}
    assert all("outside the reference bound" in d.reason for d in result.dropped)


def test_a_raising_candidate_is_never_chosen(fresh, monkeypatch):
    real_gemm = ops.gemm

    def gemm(a, w, *, kernel=None, out=None):
        if kernel == "cpu_c":
            raise RuntimeError("launch failed")
        return real_gemm(a, w, kernel=kernel, out=out)
    monkeypatch.setattr(ops, "gemm", gemm)
    result = tuner.tune([(256, 64)], (1, 4), device="cpu", group_size=GROUP, progress=False,
                        path=str(fresh / "t.json"))
    assert [r.spec for r in result.rows] == ["dequant_matmul"]
    assert {(d.spec, d.m) for d in result.dropped} == {("cpu_c", 1), ("cpu_c", 4)}
    assert "RuntimeError: launch failed" in result.dropped[0].reason


def test_gemm_does_no_file_io(fresh, monkeypatch):
    path = _write_table(fresh / "t.json", [TunedRow(4, 256, 64, 1, 2, "dequant_matmul")])
    monkeypatch.setenv("GPTQ_MI100_TUNE_FILE", path)
    _, w = _weight("cpu", 256, 64)  # load time: the table is read here
    acts = [torch.randn(m, 256).half() for m in (1, 2, 3, 200)]

    def no_io(*args, **kwargs):
        raise AssertionError("file I/O during gemm")
    with monkeypatch.context() as mp:
        for module, name in ((builtins, "open"), (io, "open"), (os, "open"), (os, "stat"),
                             (os, "listdir"), (tuner, "_read_rows"), (tuner, "table_path"),
                             (tuner, "device_key")):
            mp.setattr(module, name, no_io)
        ops.reset_path_counts()
        outs = [ops.gemm(a, w) for a in acts]
    assert ops.path_counts()["dequant_matmul"] == 3 and ops.path_counts()["cpu_c"] == 1
    assert [tuple(o.shape) for o in outs] == [(1, 64), (2, 64), (3, 64), (200, 64)]


def test_tune_keeps_other_shapes_rows_and_replaces_its_own(fresh):
    path = str(fresh / "t.json")
    first = tuner.tune([(256, 64)], (1, 2), device="cpu", group_size=GROUP, progress=False,
                       path=path)
    second = tuner.tune([(512, 96)], (1,), device="cpu", group_size=GROUP, progress=False,
                        path=path)
    assert tuner.apply("cpu", path) == first.rows + second.rows
    third = tuner.tune([(256, 64)], (4,), device="cpu", group_size=GROUP, progress=False,
                       path=path)
    assert tuner.apply("cpu", path) == second.rows + third.rows
    assert third.rows[0][3:5] == (1, 4)
    Path(path).write_text("{corrupt")  # an unreadable table is replaced, not merged
    assert tuner.tune([(256, 64)], (1,), device="cpu", group_size=GROUP, progress=False,
                      path=path).rows == tuner.apply("cpu", path)


def test_an_exhausted_budget_skips_the_rest(fresh):
    result = tuner.tune([(256, 64)], (1, 2), device="cpu", group_size=GROUP, progress=False,
                        path=str(fresh / "t.json"), budget_s=0)
    assert result.rows == [] and result.skipped == [(256, 64, 1), (256, 64, 2)]


def test_cache_location_and_key(fresh, monkeypatch):
    monkeypatch.delenv("GPTQ_MI100_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(fresh / "xdg"))
    assert tuner.cache_dir() == str(fresh / "xdg" / "gptq_mi100")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(fresh / "home"))
    assert tuner.cache_dir() == str(fresh / "home" / ".cache" / "gptq_mi100")
    key = tuner.device_key("cpu")
    assert key["arch"].startswith("cpu-") and key["units"] == os.cpu_count()
    assert key["torch"] == torch.__version__ and key["gptq_mi100"]
    name = os.path.basename(tuner.default_path("cpu"))
    assert name.startswith("tune_") and name.endswith(".json") and "/" not in name
    assert f"torch-{torch.__version__}" in name
    monkeypatch.setenv("GPTQ_MI100_TUNE_FILE", "/some/table.json")
    assert tuner.table_path("cpu") == "/some/table.json"
    monkeypatch.setenv("GPTQ_MI100_TUNE_FILE", "None")
    assert tuner.table_path("cpu") is None


def test_shapes_from_config(tmp_path):
    for preset, set_name in (("qwen3-32b-tp4", "qwen3-32b-tp4"), ("llama-3-8b-tp1", "llama3-8b")):
        config, tp = tuner.PRESETS[preset]
        assert [tuple(s) for s in tuner.shapes_from_config(config, tp)] == \
            [(k, n, name) for name, k, n in SHAPE_SETS[set_name]]
    config, _ = tuner.PRESETS["qwen3-32b-tp4"]
    (tmp_path / "config.json").write_text(json.dumps({"text_config": dict(config,
                                                                          head_dim=None)}))
    # a checkpoint directory; a nested text_config; head_dim null: hidden / heads = 80
    assert tuner.shapes_from_config(tmp_path, tp=16)[0] == (5120, (4 + 2) * 80, "qkv")
    with pytest.raises(ValueError, match="tensor-parallel size 3 must divide"):
        tuner.shapes_from_config(config, tp=3)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got None"):
        tuner.shapes_from_config({"intermediate_size": 4})
    with pytest.raises(ValueError, match="cannot read the model config"):
        tuner.shapes_from_config(tmp_path / "missing.json")


def test_candidates_are_bounded():
    info = KernelInfo("vectorized", ("cuda",), (2,), (2, 4, 8), "below_large_m", True,
                      {"load": (8, 16), "mt": (1, 2, 4, 8), "splits": (1, 2, 4, 8, 16, 32)}, 1, "")
    assert tuner._first_specs(info, 1) == ["vectorized:load=8,mt=1", "vectorized:load=16,mt=1"]
    assert tuner._first_specs(info, 3) == [f"vectorized:load={b},mt={m}" for b in (8, 16)
                                           for m in (1, 2, 4)]
    assert tuner._first_specs(info, 64) == [f"vectorized:load={b},mt={m}" for b in (8, 16)
                                            for m in (2, 4, 8)]
    # K = 2048 at 4 bits is 16 layout-2 tiles: 32 splits would be the 16-split launch
    assert tuner._with_splits("vectorized:load=8,mt=1", info, 2048, 4, 2) == [
        f"vectorized:load=8,mt=1,splits={s}" for s in (1, 2, 4, 8, 16)]
    plain = KernelInfo("cpu_c", ("cpu",), (1,), (2, 3, 4, 8), "below_large_m", True, {}, 1, "")
    assert tuner._first_specs(plain, 64) == ["cpu_c"]
    assert [i.name for i in tuner._candidate_kernels("cpu", 4, 1)] == ["cpu_c", "dequant_matmul"]
    _ops.set_kernel_excluded("cpu", "cpu_c", True)
    try:
        assert [i.name for i in tuner._candidate_kernels("cpu", 4, 1)] == ["dequant_matmul"]
    finally:
        _ops.set_kernel_excluded("cpu", "cpu_c", False)


@pytest.mark.parametrize("argv, message", [
    (["--shape", "256,x"], "argument --shape: expected comma-separated integers"),
    (["--shape", "256"], "expected K,N"),
    (["--shape", "250,64"], "K must be a positive multiple of 32"),
    (["--m", "0"], "ms must be positive integers"),
    (["--m", "one"], "argument --m"),
    (["--config", "/no/such/config.json"], "cannot read the model config"),
    (["--tp", "2"], "--tp goes with --config"),
    (["--group-size", "100", "--shape", "256,64"], "group size must be -1 or a positive"),
    (["--shapes", "gpt-5"], "argument --shapes: invalid choice"),
    (["--shapes", "qwen3-32b-tp4", "--shape", "256,64"], "not allowed with"),
    (["--device", "tpu"], "argument --device: invalid choice"),
    (["--bits", "5"], "argument --bits: invalid choice"),
])
def test_cli_user_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tune", "--device", "cpu"] + argv if "--device" not in argv else ["tune"] + argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("python -m gptq_mi100 tune: ") and err.count("\n") == 1, err
    assert message in err


def test_cli_cuda_without_a_gpu_is_a_user_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tune", "--device", "cuda", "--shape", "256,64"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_tunes_and_prints_the_table(tmp_path):
    out = tmp_path / "table.json"
    proc = subprocess.run([sys.executable, "-m", "gptq_mi100", "tune", "--device", "cpu",
                           "--shape", "256,64", "--shape", "512,96", "--m", "1,2",
                           "--group-size", "64", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kernel spec" in proc.stdout and f"written to {out}" in proc.stdout
    assert proc.stderr.count("tune [") == 4
    rows = json.loads(out.read_text())["rows"]
    assert {(r["k"], r["n"]) for r in rows} == {(256, 64), (512, 96)}

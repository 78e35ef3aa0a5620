"""Build backend choice (fake torch.version), kernel-choice environment, import errors."""

import importlib.util
import os
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_build_config():
    spec = importlib.util.spec_from_file_location("build_config",
                                                  os.path.join(ROOT, "build_config.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bc = load_build_config()


def version(hip=None, cuda=None):
    return types.SimpleNamespace(hip=hip, cuda=cuda)


@pytest.mark.parametrize("tv, env, nvcc, want", [
    (version(hip="6.2.41133"), {}, None, "rocm"),
    (version(hip="5.2.0", cuda=None), {}, "/usr/bin/nvcc", "rocm"),
    (version(cuda="13.0"), {}, "/usr/local/cuda/bin/nvcc", "cuda"),
    (version(cuda="13.0"), {}, "", "cpu"),            # CUDA torch but no nvcc
    (version(), {}, "/usr/local/bin/nvcc", "cpu"),   # CPU torch: nvcc alone is not enough
    (version(cuda="12.4"), {"GPTQ_MI100_BUILD": "cpu"}, "/x/nvcc", "cpu"),
    (version(hip="6.2"), {"GPTQ_MI100_BUILD": "ROCM"}, None, "rocm"),
])
def test_choose_backend(tv, env, nvcc, want):
    backend, reason = bc.choose_backend(tv, env, nvcc_path=nvcc)
    assert backend == want and reason


@pytest.mark.parametrize("tv, env, msg", [
    (version(), {"GPTQ_MI100_BUILD": "rocm"}, "needs a ROCm build of torch"),
    (version(hip="6.2"), {"GPTQ_MI100_BUILD": "cuda"}, "needs a CUDA build of torch"),
    (version(), {"GPTQ_MI100_BUILD": "metal"}, "GPTQ_MI100_BUILD must be one of cpu, cuda, rocm"),
])
def test_choose_backend_rejects(tv, env, msg):
    with pytest.raises(ValueError, match=msg):
        bc.choose_backend(tv, env, nvcc_path="/x/nvcc")


def test_read_flags(tmp_path):
    p = tmp_path / "flags.txt"
    p.write_text("# comment\n-O3  # why\n\n-fno-gpu-rdc -DX=1\n")
    assert bc.read_flags(str(p)) == ["-O3", "-fno-gpu-rdc", "-DX=1"]
    assert bc.read_flags(str(tmp_path / "missing.txt")) == []


def run_python(code, **env):
    # a fresh process sees only the GPTQ_MI100_KERNEL a test gives (forced-variant runs set it)
    full = {k: v for k, v in os.environ.items() if k != "GPTQ_MI100_KERNEL"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, cwd=ROOT)


def test_invalid_kernel_env_is_an_error_listing_valid_ones():
    r = run_python("import gptq_mi100", GPTQ_MI100_KERNEL="fastest")
    assert r.returncode != 0
    assert ("GPTQ_MI100_KERNEL must be one of auto, cpu_c, exllama, transposed_mma, transposed, "
            "vectorized, coalesced, warp_shuffle, dequant_matmul"
            in r.stderr)


def path_count_after_gemm_and_gptq_gemm(kernel_env, path):
    """In a fresh process with GPTQ_MI100_KERNEL=kernel_env: one gemm (Python default) and
    one gptq_gemm (C++ default) on CPU tensors; returns how many took `path`."""
    code = ("import torch; from gptq_mi100 import ops, quantize;"
            "t = quantize.random_gptq(256, 264, 4, 128, symmetric=True, act_order=False,"
            " v2_zeros=False, seed=3);"
            "w = ops.prepare(t.qweight, t.qzeros, t.scales, None, bits=4, group_size=128);"
            "ops.gemm(torch.randn(1, 256).half(), w);"
            "ops.gptq_gemm(torch.randn(1, 256).half(), t.qweight, t.qzeros, t.scales,"
            " torch.empty(0, dtype=torch.int32), True, False, 4);"
            f"print(ops.path_counts()[{path!r}])")
    r = run_python(code, GPTQ_MI100_KERNEL=kernel_env)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def test_kernel_env_sets_process_default():
    assert path_count_after_gemm_and_gptq_gemm("dequant_matmul", "dequant_matmul") == 2


def test_default_for_the_other_device_means_auto():
    """GPTQ_MI100_KERNEL=exllama (a GPU kernel) does not break CPU calls, in Python or C++."""
    assert path_count_after_gemm_and_gptq_gemm("exllama", "cpu_c") == 2


def test_default_that_cannot_run_the_weight_means_auto():
    """GPTQ_MI100_KERNEL is a preference: a CPU default the self-check excluded leaves that
    call to auto; the same kernel asked for per call raises. (On a GPU the same rule covers
    a layout-2 default meeting a 3-bit, layout-1 weight.)"""
    code = ("import torch; from gptq_mi100 import ops, quantize;"
            "t = quantize.random_gptq(256, 264, 4, 128, symmetric=True, act_order=False,"
            " v2_zeros=False, seed=3);"
            "w = ops.prepare(t.qweight, t.qzeros, t.scales, None, bits=4, group_size=128);"
            "torch.ops.gptq_mi100.set_kernel_excluded('cpu', 'dequant_matmul', True);"
            "ops.gemm(torch.randn(1, 256).half(), w);"
            "print(ops.path_counts()['cpu_c']);"
            "ops.gemm(torch.randn(1, 256).half(), w, kernel='dequant_matmul')")
    r = run_python(code, GPTQ_MI100_KERNEL="dequant_matmul")
    assert r.stdout.strip() == "1", r.stdout + r.stderr
    assert r.returncode != 0 and "load-time self-check" in r.stderr


def test_kernel_registry_is_the_one_source_of_names():
    """Python asks the C++ registry: names per device come from the same table rows."""
    from gptq_mi100 import kernels
    for device_type in ("cpu", "cuda"):
        rows = kernels.kernel_table(device_type)
        names = kernels.kernel_names(device_type)
        assert names[0] == "auto"
        assert names[1:] == tuple(r.name for r in rows if r.in_build and device_type in r.devices)
    names = [r.name for r in kernels.kernel_table()]
    assert names == ["cpu_c", "exllama", "transposed_mma", "transposed", "vectorized",
                     "coalesced", "warp_shuffle", "dequant_matmul"]
    for row in kernels.kernel_table("cuda")[2:7]:
        assert row.layouts == (2,) and row.bits == (2, 4, 8)


def test_readme_vllm_snippet_runs_after_plain_import():
    """`import gptq_mi100` alone registers the ops (the README's vLLM routing snippet)."""
    code = ("import torch, gptq_mi100\n"
            "q = torch.zeros(256 // 8, 64, dtype=torch.int32)\n"
            "torch.ops.gptq_mi100.gptq_shuffle(q, torch.empty(0, dtype=torch.int), 4)\n"
            "print(callable(torch.ops.gptq_mi100.gptq_gemm), 'prepare' in dir(gptq_mi100))")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True True"


def test_torch_version_mismatch_message(tmp_path):
    """A build for another torch gives 'built against X, running Y', not a bare
    undefined-symbol error."""
    import gptq_mi100
    pkg = os.path.dirname(gptq_mi100.__file__)
    fake = tmp_path / "gptq_mi100"
    fake.mkdir()
    for name in ("__init__.py", "_loader.py", "kernels.py", "ops.py", "formats.py",
                 "layouts.py", "quantize.py", "reference.py"):
        (fake / name).write_text(open(os.path.join(pkg, name)).read())
    (fake / "_build_info.py").write_text("TORCH_VERSION = '1.0.0'\nBACKEND = 'cpu'\n")
    r = subprocess.run([sys.executable, "-c", "import gptq_mi100.ops"], capture_output=True,
                       text=True, cwd=str(tmp_path))
    assert r.returncode != 0
    assert "was built against torch 1.0.0 but torch" in r.stderr
    assert "pip install --no-build-isolation" in r.stderr


def test_build_info_names_backend():
    from gptq_mi100 import ops
    info = ops.build_info()
    assert "torch " in info and "backend " in info


def _without_torch(tmp_path):
    """An environment in which `import torch` fails (a shadowing module that raises)."""
    (tmp_path / "torch.py").write_text('raise ImportError("No module named torch (test)")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), ROOT])
    return env


def test_without_torch_every_entry_point_says_install_torch_first(tmp_path):
    env = _without_torch(tmp_path)
    main_job = subprocess.run([sys.executable, "-m", "gptq_mi100"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    assert main_job.returncode != 0 and "install torch first" in main_job.stderr
    assert "Traceback" not in main_job.stderr, main_job.stderr
    imp = subprocess.run([sys.executable, "-c", "import gptq_mi100"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert imp.returncode != 0 and "install torch first" in imp.stderr
    build = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert build.returncode != 0 and "--no-build-isolation" in build.stderr
    assert "Traceback" not in build.stderr, build.stderr

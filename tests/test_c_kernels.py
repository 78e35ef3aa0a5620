"""Runs the standalone C test of the CPU kernels (tests/c/test_cpu_kernels.c)."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_c_kernels_standalone(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "test_cpu_kernels"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-I" + os.path.join(ROOT, "csrc"),
                    os.path.join(ROOT, "csrc", "problem_check.c"),
                    os.path.join(ROOT, "csrc", "cpu", "gptq_cpu.c"),
                    os.path.join(ROOT, "tests", "c", "test_cpu_kernels.c"), "-lm",
                    "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " 0 failed" in r.stdout

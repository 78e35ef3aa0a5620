"""The main job (`python -m gptq_mi100`) and what `auto` does by default on each device."""

import subprocess
import sys

import pytest
import torch

import gptq_mi100
from gptq_mi100 import ops, quantize


def test_main_job_reports_graph_time_and_copy_fraction(device):
    out = subprocess.run([sys.executable, "-m", "gptq_mi100", "--device", device.type,
                          "--k", "512", "--n", "264", "--m", "3"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "copy bandwidth" in out.stdout and "% of copy" in out.stdout
    assert "WRONG" not in out.stdout
    timed = [line for line in out.stdout.splitlines() if "% of copy" in line]
    assert any(line.split()[0] == "auto" for line in timed)


def test_default_layout_and_auto_choice(device):
    """NVIDIA builds: layout 2 and transposed_mma for decode M; elsewhere layout 1."""
    from gptq_mi100.kernels import kernel_names
    t = quantize.random_gptq(512, 264, 4, 128, symmetric=False, act_order=False,
                             v2_zeros=False, seed=7)
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device), None,
                    bits=4, group_size=128)
    mma = "transposed_mma" in kernel_names(device.type)
    assert w.layout == (2 if mma else 1)
    threshold = gptq_mi100.large_m_threshold(device.type, 4)
    for m, want in ((1, "transposed_mma" if mma else None), (threshold, "dequant_matmul")):
        ops.reset_path_counts()
        ops.gemm(torch.randn(m, 512, device=device).half(), w, kernel="auto")
        took = [k for k, v in ops.path_counts().items() if v]
        if want:
            assert took == [want], (m, took)
    if mma:
        assert threshold == 65  # W4, measured at M = 32 (H200) and 64 (H100): NOTES 7, 38, 42


@pytest.mark.parametrize("args, says", [(["--k", "100"], "must divide K=100"),
                                        (["--k", "0"], "--k must be positive"),
                                        (["--device", "tpu"], "--device must be cpu or cuda")])
def test_main_job_bad_arguments_say_what_to_do(args, says):
    out = subprocess.run([sys.executable, "-m", "gptq_mi100", "--device", "cpu"] + args,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert says in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_main_job_finds_an_install_shadowed_by_the_source_tree(tmp_path, monkeypatch):
    """ensure_built refuses to rebuild an unbuilt source tree over a built install found
    elsewhere on sys.path (it would silently replace it with an editable one)."""
    from gptq_mi100.__main__ import _installed_elsewhere
    tree, site = tmp_path / "tree", tmp_path / "site"
    (tree / "gptq_mi100").mkdir(parents=True)
    (site / "gptq_mi100").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(tree), str(site)])
    assert _installed_elsewhere(str(tree)) is None  # nothing built anywhere else
    (site / "gptq_mi100" / "_C.abi3.so").write_bytes(b"")
    assert _installed_elsewhere(str(tree)) == str(site / "gptq_mi100")
    (tree / "gptq_mi100" / "_C.abi3.so").write_bytes(b"")  # the tree itself never counts
    monkeypatch.setattr(sys, "path", [str(tree)])
    assert _installed_elsewhere(str(tree)) is None

"""The CI checks of tools/device_report.py fire on what they must (synthetic compiler output)."""

import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("device_report",
                                              os.path.join(ROOT, "tools", "device_report.py"))
device_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_report)

KERNEL = "_Z16gptq_gemm_kernelILi4ELi0ELi1EEv9gemm_args"


def remarks(scratch=0, vgpr=84):
    lines = [f"Function Name: {KERNEL}", "SGPRs: 40", f"VGPRs: {vgpr}", "AGPRs: 0",
             f"ScratchSize [bytes/lane]: {scratch}", "Occupancy [waves/SIMD]: 2",
             "SGPRs Spill: 0", "VGPRs Spill: 0", "LDS Size [bytes/block]: 4096"]
    return "\n".join(f"gptq_gpu.cu:1:1: remark: {l} [-Rpass-analysis=kernel-resource-usage]"
                     for l in lines)


def ptxas(spill=0):
    return (f"ptxas info    : Compiling entry function '{KERNEL}' for 'sm_90'\n"
            f"ptxas info    : Function properties for {KERNEL}\n"
            f"    0 bytes stack frame, {spill} bytes spill stores, {spill} bytes spill loads\n"
            "ptxas info    : Used 70 registers, used 1 barriers, 4096 bytes smem\n")


def test_isa_checks_count_dot2_and_clamp():
    isa = "\n".join([
        "  v_dot2c_f32_f16_e32 v1, v2, v3",
        "  v_dot2_f32_f16 v4, v5, v6, v7 clamp",
        "  v_add_f32 v1, v2, v3 clamp",          # clamp on another instruction: fine
        "  v_dot2c_f32_f16 v1, v2, v3 ; clamp in a comment only",
    ])
    assert device_report.isa_checks(isa) == (3, 1, 0)
    assert device_report.isa_checks("s_call __ockl_fdot2")[2] == 1


def test_parsers_read_resources():
    hip = device_report.parse_hip_remarks(remarks(scratch=16, vgpr=99))
    assert hip[KERNEL]["vgpr"] == 99 and hip[KERNEL]["scratch"] == 16
    assert hip[KERNEL]["occupancy"] == 2 and hip[KERNEL]["lds"] == 4096
    sm90 = device_report.parse_ptxas(ptxas(spill=8))
    assert sm90[KERNEL] == {"stack": 0, "spill_st": 8, "spill_ld": 8, "regs": 70, "smem": 4096}


def run_report(tmp_path, isa, scratch=0, spill=0):
    files = {"remarks": remarks(scratch=scratch), "isa": isa, "ptxas": ptxas(spill=spill)}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "device_report.py"),
         "--hip-remarks", str(tmp_path / "remarks"), "--hip-isa", str(tmp_path / "isa"),
         "--ptxas", str(tmp_path / "ptxas"), "--out", str(tmp_path / "report.md")],
        capture_output=True, text=True)


def test_report_passes_clean_output_and_fails_each_planted_problem(tmp_path):
    good_isa = "  v_dot2c_f32_f16_e32 v1, v2, v3\n"
    ok = run_report(tmp_path, good_isa)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "gptq_gemm_kernel<4, 0, 1>" in (tmp_path / "report.md").read_text()
    for isa, scratch, spill, why in [
        ("  v_dot2_f32_f16 v1, v2, v3, v4 clamp\n", 0, 0, "clamp"),
        ("  v_fma_f32 v1, v2, v3, v4\n", 0, 0, "dot2"),
        (good_isa + "s_call __ockl_fdot2\n", 0, 0, "__ockl_fdot2"),
        (good_isa, 32, 0, "scratch"),
        (good_isa, 0, 8, "spill"),
    ]:
        r = run_report(tmp_path, isa, scratch, spill)
        assert r.returncode == 1, why
        assert why in (r.stdout + r.stderr), (why, r.stdout + r.stderr)

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


# ---- gfx908 decode target (issue 10): gptq_transposed_kernel<bits, act, M_TILE <= 8> ----

def tp_mangled(bits, act, mt, feed=0):
    return f"_Z22gptq_transposed_kernelILi{bits}ELi{act}ELi{mt}ELi{feed}EEv7tp_args"


def tp_remarks(name, vgpr=50, agpr=0, lds=8192, vspill=0, scratch=0):
    lines = [f"Function Name: {name}", "SGPRs: 88", f"VGPRs: {vgpr}", f"AGPRs: {agpr}",
             f"ScratchSize [bytes/lane]: {scratch}", "Occupancy [waves/SIMD]: 4",
             "SGPRs Spill: 0", f"VGPRs Spill: {vspill}", f"LDS Size [bytes/block]: {lds}"]
    return "\n".join(f"gptq_transposed.cu:1:1: remark: {l} [-Rpass-analysis=kernel-resource-usage]"
                     for l in lines)


def tp_isa(name, body):
    return f"{name}:  ; @{name}\n" + "".join(f"\t{i}\n" for i in body) + ".Lfunc_end0:\n"


# a split-K tail as gfx908 compiles it: partials stored and waited for, barrier, the counter add
ARRIVE = ["global_store_dword v[1:2], v3, off", "s_waitcnt vmcnt(0) lgkmcnt(0)", "s_barrier",
          "s_cbranch_execz .LBB0_2", "global_atomic_add v1, v2, v1, s[2:3] glc"]
GOOD_F16 = ["global_load_dwordx4 v[9:12], v[1:2], off", "v_dot2c_f32_f16_e32 v1, v2, v3",
            "v_fma_f32 v1, v2, v3, v1",
            "v_pk_fma_f16 v29, v29, s34, v22 op_sel_hi:[1,0,1]"]  # exact dequantization, not a sum
GOOD_BF16 = ["global_load_dwordx4 v[9:12], v[1:2], off", "v_fma_mix_f32 v33, v49, v33, 0",
             "v_fmac_f32_e32 v8, v33, v29"]


def run_decode(tmp_path, kernels, extra=()):
    """kernels: [(bits, act, mt, remark kwargs, isa body)] or with a 6th item, the FEED; one
    gemm kernel keeps the global dot2 check satisfied."""
    kernels = [k if len(k) == 6 else (*k, 0) for k in kernels]
    name = lambda b, a, mt, f: mma_mangled(b, a, mt) if f == "mma" else tp_mangled(b, a, mt, f)  # noqa: E731
    rem = [remarks()] + [tp_remarks(name(b, a, mt, f), **kw) for b, a, mt, kw, _, f in kernels]
    isa = ["  v_dot2c_f32_f16_e32 v1, v2, v3\n"] + [tp_isa(name(b, a, mt, f), body)
                                                     for b, a, mt, _, body, f in kernels]
    (tmp_path / "remarks").write_text("\n".join(rem))
    (tmp_path / "isa").write_text("".join(isa))
    (tmp_path / "ptxas").write_text(ptxas())
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "device_report.py"),
         "--hip-remarks", str(tmp_path / "remarks"), "--hip-isa", str(tmp_path / "isa"),
         "--ptxas", str(tmp_path / "ptxas"), "--out", str(tmp_path / "report.md"), *extra],
        capture_output=True, text=True)


def test_split_isa_separates_kernels():
    isa = tp_isa("_Za", ["v_mov_b32 v0, 0 ; comment"]) + "\t.section .AMDGPU\n" + tp_isa("_Zb", ["s_endpgm"])
    assert device_report.split_isa(isa) == {"_Za": ["v_mov_b32 v0, 0"], "_Zb": ["s_endpgm"]}


def test_decode_target_passes_and_fails_each_planted_problem(tmp_path):
    ok = run_decode(tmp_path, [(4, 0, 8, {}, GOOD_F16), (4, 1, 8, {}, GOOD_BF16),
                               (4, 0, 16, {"vgpr": 128, "lds": 24576}, GOOD_F16)])  # M_TILE 16: not checked
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 of 2 `gptq_transposed_kernel` instantiations" in (tmp_path / "report.md").read_text()
    no_x4 = [i for i in GOOD_F16 if "dwordx4" not in i] + ["global_load_dwordx2 v[1:2], v[3:4], off"]
    for act, kw, body, why in [
        (0, {"vgpr": 65}, GOOD_F16, "65 VGPRs"),
        (0, {"agpr": 4}, GOOD_F16, "AGPRs"),
        (0, {"vspill": 4, "agpr": 4}, GOOD_F16, "spills 4 VGPRs"),
        (0, {"scratch": 16}, GOOD_F16, "scratch 16"),
        (0, {"lds": 16388}, GOOD_F16, "LDS 16388"),
        (0, {}, no_x4, "dwordx4"),
        (0, {}, [i for i in GOOD_F16 if "dot2" not in i], "v_dot2"),
        (1, {}, [i for i in GOOD_BF16 if "f32" not in i], "fp32 FMA"),
        (0, {}, GOOD_F16 + ["v_pk_fma_f16 v1, v2, v3, v1"], "fp16 accumulation: v_pk_fma_f16"),
        (1, {}, GOOD_BF16 + ["v_fma_mixlo_f16 v1, v2, v3, v1"], "fp16 accumulation"),
        (0, {}, GOOD_F16 + ["v_pk_fmac_f16 v1, v2, v3"], "fp16 accumulation: v_pk_fmac_f16"),
    ]:
        r = run_decode(tmp_path, [(2, act, 4, kw, body)])
        assert r.returncode == 1, why
        out = r.stdout + r.stderr
        assert f"gptq_transposed_kernel<2, {act}, 4, 0>" in out and why in out, (why, out)


def test_decode_target_flag_requires_every_tile(tmp_path):
    r = run_decode(tmp_path, [(4, 0, 1, {}, GOOD_F16)], extra=["--decode-target"])
    assert r.returncode == 1
    assert "gptq_transposed_kernel<2, 1, 8> is not compiled" in r.stdout + r.stderr
    assert "gptq_transposed_kernel<4, 0, 1> is not compiled" not in r.stdout + r.stderr
    assert "gptq_transposed_kernel<4, 0, 1, 3> is not compiled" in r.stdout + r.stderr
    every = [(b, a, mt, {}, GOOD_F16 if a == 0 else GOOD_BF16)
             for b in (2, 4, 8) for a in (0, 1) for mt in (1, 2, 4, 8)]
    every += [(b, a, mt, {}, VARIANT_ISA[f], f) for b in (2, 4, 8) for a in (0, 1)
              for mt in (1, 2, 4, 8) for f in (1, 2, 3)]
    every += [(b, a, 16, {}, [["v_mfma_f32_16x16x16f16 a[0:3], v[0:1], v[2:3], a[0:3]"],
                              ["v_mfma_f32_16x16x8bf16 a[0:3], v0, v1, a[0:3]"]][a] + ARRIVE, "mma")
              for b in (2, 4, 8) for a in (0, 1)]
    r = run_decode(tmp_path, every, extra=["--decode-target"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vectorized (load=8) 24 / 24, coalesced 24 / 24, warp_shuffle 24 / 24" in \
        (tmp_path / "report.md").read_text()


# ---- issue-12 variants: each one's ISA shows what makes it that variant ----

VARIANT_ISA = {
    1: ["global_load_dwordx2 v[1:2], v[3:4], off", "global_load_dwordx2 v[5:6], v[3:4], off offset:8"],
    2: ["global_load_dwordx4 v[9:12], v[1:2], off", "ds_write_b128 v0, v[9:12]", "ds_read_b128 v[9:12], v1"],
    3: ["global_load_dwordx4 v[9:12], v[1:2], off", "ds_bpermute_b32 v1, v2, v3"],
}


def test_variant_isa_checks_pass_and_fail_each_planted_problem(tmp_path):
    ok = run_decode(tmp_path, [(4, 0, 8, {}, VARIANT_ISA[f], f) for f in (1, 2, 3)])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for feed, body, why in [
        (1, VARIANT_ISA[1] + ["global_load_dwordx4 v[9:12], v[1:2], off"], "were merged"),
        (1, ["global_load_dwordx4 v[9:12], v[1:2], off"], "no dwordx2"),
        (2, [i for i in VARIANT_ISA[2] if "ds_read" not in i], "not staged through LDS"),
        (2, [i for i in VARIANT_ISA[2] if "global" not in i], "no dwordx4 window loads"),
        (3, VARIANT_ISA[3][:1] + ["ds_read_b64 v[1:2], v3"], "shuffles not cross-lane"),
    ]:
        r = run_decode(tmp_path, [(2, 0, 4, {}, body, feed)])
        out = r.stdout + r.stderr
        assert r.returncode == 1 and f"gptq_transposed_kernel<2, 0, 4, {feed}>" in out and why in out, \
            (why, out)
    dpp = run_decode(tmp_path, [(2, 0, 4, {}, VARIANT_ISA[3][:1] +
                                 ["v_add_f32_dpp v1, v2, v3 row_shr:1 row_mask:0xf"], 3)])
    assert dpp.returncode == 0, dpp.stdout + dpp.stderr


# ---- issue 11: the gfx908 matrix kernel issues its MFMA ----

def mma_mangled(bits, act, mt, sw=1, waves=4):
    return f"_Z26gptq_transposed_mma_kernelILi{bits}ELi{act}ELi{mt}ELi{sw}ELi{waves}EEv7tp_args"


def test_mfma_check_passes_and_fails(tmp_path):
    def run(kernels, extra=()):
        rem = [remarks()] + [tp_remarks(mma_mangled(b, a, 16), agpr=5) for b, a, _ in kernels]
        isa = ["  v_dot2c_f32_f16_e32 v1, v2, v3\n"] + [tp_isa(mma_mangled(b, a, 16), body)
                                                         for b, a, body in kernels]
        (tmp_path / "remarks").write_text("\n".join(rem))
        (tmp_path / "isa").write_text("".join(isa))
        (tmp_path / "ptxas").write_text(ptxas())
        return subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", "device_report.py"),
             "--hip-remarks", str(tmp_path / "remarks"), "--hip-isa", str(tmp_path / "isa"),
             "--ptxas", str(tmp_path / "ptxas"), "--out", str(tmp_path / "report.md"), *extra],
            capture_output=True, text=True)
    f16 = ["v_mfma_f32_16x16x16f16 a[0:3], v[0:1], v[2:3], a[0:3]"]
    bf16 = ["v_mfma_f32_16x16x8bf16 a[0:3], v0, v1, a[0:3]"]
    ok = run([(4, 0, f16), (4, 1, bf16)])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 of 2 `gptq_transposed_mma_kernel` instantiations" in (tmp_path / "report.md").read_text()
    bad = run([(4, 0, ["v_fma_f32 v1, v2, v3, v1"]), (4, 1, f16)])
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1
    assert "gptq_transposed_mma_kernel<4, 0, 16, 1, 4>: no v_mfma_f32_16x16x16f16" in out
    assert "gptq_transposed_mma_kernel<4, 1, 16, 1, 4>: no v_mfma_f32_16x16x8bf16" in out
    missing = run([(4, 0, f16)], extra=["--decode-target"])
    assert "gptq_transposed_mma_kernel<8, 1, 16, 1, waves> is not compiled" in missing.stdout + missing.stderr


def test_arrival_check_needs_each_waves_stores_complete_before_the_barrier():
    """NOTES 53: the counter add is released by one thread after a barrier, so every wave must
    wait for its partials (vmcnt(0)) between its last store and that barrier."""
    name = device_report.demangle([tp_mangled(4, 0, 1)])[tp_mangled(4, 0, 1)]
    store, add, good = ARRIVE[0], ARRIVE[-1], ARRIVE
    fence_first = [store, "s_waitcnt vmcnt(0)", "buffer_wbinvl1_vol", "v_mov_b32 v1, 0",
                   "s_waitcnt lgkmcnt(0)", "s_barrier", add]  # __threadfence, then the barrier
    assert device_report.arrival_failures({name: good}) == ([], 1)
    assert device_report.arrival_failures({name: fence_first}) == ([], 1)
    for body in ([store, "s_waitcnt lgkmcnt(0)", "s_barrier", add],  # no wait for the store
                 ["s_waitcnt vmcnt(0)", store, "s_barrier", add],  # waited before the store
                 [store, "s_waitcnt vmcnt(0)", add]):  # no barrier: other waves not ordered
        failures, checked = device_report.arrival_failures({name: body})
        assert checked == 1 and len(failures) == 1, body
    # a non-returning add (the bad-index counter) is not an arrival; other kernels are not checked
    assert device_report.arrival_failures({name: [store, "s_barrier", "global_atomic_add v1, v2, s[2:3]"]}) == ([], 0)
    assert device_report.arrival_failures({"gptq_gemm_kernel<4, 0, 1>": [store, "s_barrier", add]}) == ([], 0)


def test_sm90_resident_blocks_follow_registers_and_shared_memory():
    """The occupancy rule the sm_90 table's blocks/SM column uses (256-thread blocks)."""
    blocks = device_report.sm90_resident_blocks
    # registers: 64 -> 4 blocks (row tile 8's launch bound), 80 -> 3, 96 -> 2 (NOTES 43), 255 -> 1
    assert [blocks(r, 0) for r in (64, 80, 81, 96, 128, 129, 255)] == [4, 3, 2, 2, 2, 1, 1]
    # shared memory: 100 KiB static leaves room for 2 blocks whatever the registers
    assert blocks(32, 100 * 1024) == 2
    # threads cap: 2048 per SM
    assert blocks(16, 0) == 8 and blocks(16, 0, threads=128) == 16
    # the mma kernel's block is its last template argument x 32 on sm_90: 16 waves at 64
    # registers hold 2 blocks (kslices=16, NOTES 54), 8 waves 4
    assert device_report.sm90_threads("gptq_transposed_mma_kernel<4, 0, 8, 1, 16>") == 512
    assert device_report.sm90_threads("gptq_transposed_mma_kernel<4, 0, 8, 1, 8>") == 256
    assert device_report.sm90_threads("gptq_transposed_kernel<4, 0, 8, 0>") == 256
    assert blocks(64, 8196, threads=512) == 2

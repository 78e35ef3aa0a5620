"""The layout-2 GPU kernels' own source, run on the CPU (tests/emulate/gpu_emulator.h).

csrc/gpu/gptq_transposed.cu is compiled by g++ with GPTQ_EMULATE = 32 (NVIDIA: warp32,
mma.sync fragments) and 64 (gfx908: wave64, AMD launch tables, MFMA fragments), one
std::thread per GPU thread, matrix instructions emulated from their documented fragment
layouts. Every kernel of the family (transposed, its issue-12 variants, transposed_mma with
its row tiles) runs against the fp32 reference with a poisoned output: index math, barriers,
cross-lane shuffles and fragment layouts are checked on every CI run, including the AMD wave
size no lent GPU has. Timing and the gfx908 v_dot2 island are not covered (see the header).
"""

import os
import shutil
import subprocess

import pytest
import torch

from gptq_mi100 import layouts, ops, quantize, reference
from conftest import assert_gemm_close, seed_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL = {"transposed": 1, "transposed_mma": 2, "vectorized": 3, "coalesced": 4,
          "warp_shuffle": 5, "dequantize": -1}  # -1: run_kernel calls the dequantize launcher


@pytest.fixture(scope="module", params=[32, 64], ids=["warp32", "wave64"])
def emulator(request, tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    wave = request.param
    exe = tmp_path_factory.mktemp("emu") / f"run_kernel_{wave}"
    cmd = [cxx, "-std=c++17", "-O1", "-pthread", f"-DGPTQ_EMULATE={wave}",
           "-I" + os.path.join(ROOT, "tests", "emulate"), "-I" + os.path.join(ROOT, "csrc", "gpu"),
           "-x", "c++", os.path.join(ROOT, "csrc", "gpu", "gptq_transposed.cu"),
           os.path.join(ROOT, "tests", "emulate", "run_kernel.cpp"),
           "-x", "c", os.path.join(ROOT, "csrc", "problem_check.c"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]
    return wave, exe


def _write(path, t):
    """Raw little-endian bytes of a CPU tensor (no numpy: CI installs only torch)."""
    path.write_bytes(bytes(t.contiguous().view(torch.uint8).flatten().tolist()))


def run_emulated(exe, tmp_path, a, w, tiled, kernel, mt=0, splits=0, load=0, scale_bf16=False, kslices=0,
                 sw=0):
    """One launch of `kernel` (a name in KERNEL) on the emulator; the output as a tensor."""
    d = tmp_path / f"{kernel}_{mt}_{splits}_{load}_{kslices}_{sw}_{a.shape[0]}_{a.dtype}".replace("torch.", "")
    d.mkdir()
    scales = w.scales.to(torch.bfloat16) if scale_bf16 else w.scales
    act_bf16 = a.dtype == torch.bfloat16
    for name, t in (("a", a.view(torch.int16)), ("qweight", tiled), ("qzeros", w.qzeros),
                    ("scales", scales.view(torch.int16))):
        _write(d / f"{name}.bin", t)
    if w.a_perm is not None:
        _write(d / "a_perm.bin", w.a_perm.to(torch.int32))
    m, k = a.shape
    (d / "params.txt").write_text(" ".join(str(v) for v in (
        m, w.out_features, k, k, w.group_size, w.bits, 0 if w.v2_zeros else 1, int(act_bf16),
        int(scale_bf16), int(w.a_perm is not None), KERNEL[kernel], mt, splits, load, kslices, sw)))
    r = subprocess.run([str(exe), str(d)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{kernel} mt={mt}: {r.stdout}{r.stderr}"
    out = torch.frombuffer(bytearray((d / "c.bin").read_bytes()), dtype=torch.int16)
    return out.view(a.dtype).view(k if kernel == "dequantize" else m, w.out_features)


def make_case(k, n, bits, gs, act_order, v2, seed):
    t = quantize.random_gptq(k, n, bits, gs, symmetric=False, act_order=act_order,
                             v2_zeros=v2, seed=seed)
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales,
                                           t.g_idx if act_order else None, bits, v2)
    w = ops.prepare(t.qweight, t.qzeros, t.scales, t.g_idx if act_order else None, bits=bits,
                    group_size=gs, v2_zeros=v2, layout=1)
    return t, w, layouts.to_tiled(w.qweight, bits), w_ref


# (bits, K, N, group size, act-order, v2): ragged last strips (N % 16 != 0 where the format
# allows it), groups shorter and longer than a tile, several K splits.
CASES = [(4, 512, 264, 32, True, False), (8, 256, 264, 128, False, True),
         (2, 512, 272, 128, True, False)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"w{c[0]}-g{c[3]}{'-ao' if c[4] else ''}")
def test_vector_family_matches_reference(emulator, tmp_path, case):
    """transposed and its three variants, fp16 and bf16, M across row tiles and passes."""
    wave, exe = emulator
    bits, k, n, gs, act, v2 = case
    seed = seed_of("emu-vec", wave, *case)
    _, w, tiled, w_ref = make_case(k, n, bits, gs, act, v2, seed)
    runs = [("transposed", {}), ("vectorized", {}), ("vectorized", {"load": 16}),
            ("coalesced", {}), ("warp_shuffle", {}), ("warp_shuffle", {"splits": 1})]
    for m, dtype in ((1, torch.float16), (3, torch.bfloat16), (11, torch.float16)):
        a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).to(dtype)
        ref = a.float() @ w_ref
        for kernel, tile in runs:
            out = run_emulated(exe, tmp_path, a, w, tiled, kernel, **tile)
            assert_gemm_close(out, a, w_ref, ref, f"wave{wave} {kernel} {tile} m={m} {dtype}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"w{c[0]}-g{c[3]}{'-ao' if c[4] else ''}")
def test_matrix_kernel_matches_reference(emulator, tmp_path, case):
    """transposed_mma through the emulated mma.sync (warp32) and MFMA (wave64) fragments, its
    row tiles (B staged in LDS: wave64's narrow tiles; B from global memory: warp32's and the
    wide tiles, a permuted a gathered first), the wide tiles with 2 and 4 strips per wave
    (4/8-bit; scales folded; N = 264: a ragged strip and strips past N in a wave), fp16 and bf16
    activations, bf16 scales."""
    wave, exe = emulator
    bits, k, n, gs, act, v2 = case
    seed = seed_of("emu-mma", wave, *case)
    t, w, tiled, w_ref = make_case(k, n, bits, gs, act, v2, seed)
    tiles = ([{}, {"mt": 16}] + ([{"mt": 8}] if wave == 32 else []) + [{"mt": 32}, {"mt": 64, "splits": 1}] +
             ([{"mt": 32, "sw": 2}, {"mt": 32, "sw": 4}, {"mt": 64, "sw": 2, "splits": 1}] if bits >= 4 else []))
    for m, dtype in ((1, torch.float16), (5, torch.bfloat16), (19, torch.float16)):
        a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).to(dtype)
        ref = a.float() @ w_ref
        for tile in tiles:
            out = run_emulated(exe, tmp_path, a, w, tiled, "transposed_mma", **tile)
            assert_gemm_close(out, a, w_ref, ref, f"wave{wave} mma {tile} m={m} {dtype}")
    # bf16 scales (values bf16 holds exactly, so the reference is the same weight)
    scales = t.scales.to(torch.bfloat16).to(torch.float16)
    w_bf = w._replace(scales=scales)
    ref_w = reference.dequantize_reference(t.qweight, t.qzeros, scales,
                                           t.g_idx if act else None, bits, v2)
    a = torch.randn(2, k, generator=torch.Generator().manual_seed(seed)).half()
    for tile in ({}, {"mt": 32, "sw": 2}) if bits >= 4 else ({},):
        out = run_emulated(exe, tmp_path, a, w_bf, tiled, "transposed_mma", scale_bf16=True, **tile)
        assert_gemm_close(out, a, ref_w, a.float() @ ref_w, f"wave{wave} mma bf16 scales {tile}")


def test_split_k_past_one_load_batch(emulator, tmp_path):
    """18 K splits, one tile each: the split-K tail's in-order sum over many partials, for the
    vector and the matrix kernel (narrow and 64-row tiles; the matrix kernel's tail spreads
    up to 2 outputs per thread over the block (m = 1, 3) and past that sums each lane's own
    outputs one split at a time (m = 16: 16 rows x 40 columns))."""
    wave, exe = emulator
    k, n, bits, gs = 1152, 40, 8, 64  # 18 tiles of 64 rows at 8 bits: 18 splits of one tile
    seed = seed_of("emu-splits", wave, k, n, bits, gs)
    _, w, tiled, w_ref = make_case(k, n, bits, gs, False, False, seed)
    for m in (1, 3, 16):
        a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).half()
        ref = a.float() @ w_ref
        slices = [("transposed_mma", {"kslices": 2})] if wave == 32 else []  # NVIDIA only
        wide = [("transposed_mma", {"mt": 64}), ("transposed_mma", {"mt": 64, "sw": 2}),
                ("transposed_mma", {"mt": 32, "sw": 4})]
        for kernel, tile in [("transposed", {}), ("transposed_mma", {})] + wide + slices:
            out = run_emulated(exe, tmp_path, a, w, tiled, kernel, splits=18, **tile)
            assert_gemm_close(out, a, w_ref, ref, f"wave{wave} {kernel} {tile} 18 splits m={m}")


def test_matrix_kernel_k_slices(emulator, tmp_path):
    """transposed_mma with several waves per strip, each summing a slice of the split's K
    tiles, the slices added in LDS: every slice count of the wave size and 16 (a 512-thread
    block), slices left empty
    (more slices than tiles), with and without K splits, narrow and wide row tiles, a ragged
    last strip and groups shorter than a tile."""
    wave, exe = emulator
    if wave == 64:
        pytest.skip("gfx908 builds transposed_mma without K slices (kMmaKSlices)")
    bits, k, n, gs, act, v2 = 4, 768, 200, 64, True, False  # 6 tiles of 128 rows
    seed = seed_of("emu-kslices", wave, bits, k, n, gs)
    _, w, tiled, w_ref = make_case(k, n, bits, gs, act, v2, seed)
    most = 256 // wave  # warps per block
    # 16: a block of 16 warps per strip (row tile 8; M = 13 runs two passes of it)
    tiles = [{"kslices": most}, {"kslices": 2, "splits": 2}, {"kslices": most, "splits": 3, "mt": 16},
             {"kslices": 2, "mt": 32}, {"kslices": 16, "mt": 8}, {"kslices": 16, "splits": 2, "mt": 8}]
    for m in (1, 13):
        a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed + m)).half()
        ref = a.float() @ w_ref
        for tile in tiles:
            out = run_emulated(exe, tmp_path, a, w, tiled, "transposed_mma", **tile)
            assert_gemm_close(out, a, w_ref, ref, f"wave{wave} mma {tile} m={m}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"w{c[0]}-g{c[3]}{'-ao' if c[4] else ''}")
def test_dequantize_kernel_matches_reference(emulator, tmp_path, case):
    """Layout 2's dequantize kernel (dequant_matmul's first half): every element of W, in the
    checkpoint's row order (act-order rows placed back through a_perm), fp16 and bf16."""
    wave, exe = emulator
    bits, k, n, gs, act, v2 = case
    _, w, tiled, w_ref = make_case(k, n, bits, gs, act, v2, seed_of("emu-deq", wave, *case))
    for dtype in (torch.float16, torch.bfloat16):
        out = run_emulated(exe, tmp_path, torch.zeros(1, k, dtype=dtype), w, tiled, "dequantize")
        assert torch.equal(out, w_ref.to(dtype)), f"wave{wave} dequantize {dtype}"

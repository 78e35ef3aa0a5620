#!/usr/bin/env python3
"""Per-kernel resource report of csrc/gpu/gptq_gpu.cu for gfx908 and sm_90.

Reads the hipcc -Rpass-analysis=kernel-resource-usage remarks, the gfx908 ISA and the
nvcc -Xptxas -v output, and writes a deterministic markdown report (sorted, no
timestamps, no paths). Also checks what CI must enforce and prints each failure.

usage: device_report.py --hip-remarks F --hip-isa F --ptxas F --out F [--decode-target]
                        [--hip-version S] [--nvcc-version S] [--hip-flags S] [--nvcc-flags S]
exit status: 0 ok, 1 a check failed (spill, clamp on dot2, dot2 missing, __ockl_fdot2,
a decode kernel off the gfx908 target below, a variant or matrix kernel missing its
instructions).

Matrix kernel of issue 11: every gptq_transposed_mma_kernel in the gfx908 code object issues
v_mfma_f32_16x16x16f16 (fp16) or v_mfma_f32_16x16x8bf16 (bf16); with --decode-target every
bits 2/4/8 x act 0/1 row tile 16 is compiled. AGPR use is reported.

gfx908 decode target (issue 10): every gptq_transposed_kernel<bits, act, M_TILE> with
M_TILE <= 8 has <= 64 VGPRs (4 waves/SIMD), no AGPRs, no VGPR/SGPR spills, no scratch,
<= 16 KiB LDS (4 blocks of 256 per CU), 16-byte weight loads (global/buffer_load_dwordx4)
and fp32 accumulation (act 0: v_dot2(c)_f32_f16; act 1: fp32 FMA; never an fp16 FMA).
--decode-target also fails when one of bits 2/4/8 x act 0/1 x M_TILE 1/2/4/8 is missing.

Variants of issue 12 (gptq_transposed_kernel<bits, act, M_TILE, FEED>, FEED 1 vectorized
load=8, 2 coalesced, 3 warp_shuffle): with --decode-target every bits 2/4/8 x act 0/1 x
M_TILE 1/2/4/8 compiled for gfx908; always, each compiled one's ISA shows the variant: 8-byte weight loads (global/buffer_load_dwordx2,
no dwordx4) for vectorized, 16-byte loads staged through LDS (ds_write_b128 and
ds_read_b128) for coalesced, cross-lane operations (ds_bpermute_b32, ds_swizzle or DPP) for
warp_shuffle.
"""
import argparse
import re
import subprocess
import sys

HIP_KEYS = {
    "SGPRs": "sgpr",
    "VGPRs": "vgpr",
    "AGPRs": "agpr",
    "ScratchSize [bytes/lane]": "scratch",
    "Occupancy [waves/SIMD]": "occupancy",
    "SGPRs Spill": "sgpr_spill",
    "VGPRs Spill": "vgpr_spill",
    "LDS Size [bytes/block]": "lds",
}


def demangle(names):
    """Itanium demangling through c++filt (binutils), then shortened to name<args>."""
    names = sorted(set(names))
    if not names:
        return {}
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names) + "\n", text=True,
                             capture_output=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"device_report: c++filt failed ({exc}); install binutils")
    return {m: shorten(d) for m, d in zip(names, out)}


def shorten(d):
    """'void gptq_gemm_kernel<4, 0, 8>(gemm_args)' -> 'gptq_gemm_kernel<4, 0, 8>'."""
    d = re.sub(r"^void ", "", d.strip())
    depth = 0
    for i, ch in enumerate(d):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            return d[:i]
    return d


def parse_hip_remarks(text):
    kernels = {}
    cur = None
    for line in text.splitlines():
        m = re.search(r"remark: (.*?) \[-Rpass-analysis=kernel-resource-usage\]", line)
        if not m:
            continue
        body = m.group(1).strip()
        if body.startswith("Function Name:"):
            cur = body.split(":", 1)[1].strip()
            kernels[cur] = {}
            continue
        key, _, val = body.rpartition(":")
        key = key.strip()
        if cur is not None and key in HIP_KEYS:
            kernels[cur][HIP_KEYS[key]] = int(val.strip())
    return kernels


def parse_ptxas(text):
    kernels = {}
    cur = None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'", line)
        if m:
            cur = m.group(1)
            kernels[cur] = {}
            continue
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            cur = m.group(1)
            kernels.setdefault(cur, {})
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      line)
        if m:
            kernels[cur].update(stack=int(m.group(1)), spill_st=int(m.group(2)),
                                spill_ld=int(m.group(3)))
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m:
            kernels[cur]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            kernels[cur]["smem"] = int(s.group(1)) if s else 0
    return {k: v for k, v in kernels.items() if "regs" in v}


def isa_checks(isa):
    """Count dot2 instructions, those with clamp, and __ockl_fdot2 references."""
    dot2 = clamp = 0
    for line in isa.splitlines():
        s = line.split(";")[0].strip()
        if re.match(r"v_dot2c?_f32_f16(_e32|_e64|_vop3|_sdwa|_dpp)?\b", s):
            dot2 += 1
            if re.search(r"\bclamp\b", s):
                clamp += 1
    ockl = isa.count("__ockl_fdot2")
    return dot2, clamp, ockl


def split_isa(isa):
    """Mangled kernel name -> its ISA lines (from its label to .Lfunc_endN)."""
    funcs, cur = {}, None
    for line in isa.splitlines():
        m = re.match(r"^(_Z\w+):", line)
        if m:
            cur = m.group(1)
            funcs[cur] = []
        elif re.match(r"^\.Lfunc_end\d+:", line):
            cur = None
        elif cur is not None:
            funcs[cur].append(line.split(";")[0].strip())
    return funcs


DECODE_KERNEL = re.compile(r"^gptq_transposed_kernel<(\d+), (\d+), (\d+), 0>$")
VARIANT_KERNEL = re.compile(r"^gptq_transposed_kernel<(\d+), (\d+), (\d+), ([123])>$")
VARIANT_NAMES = {1: "vectorized (load=8)", 2: "coalesced", 3: "warp_shuffle"}
# <bits, act, row tile, strips per wave>
MMA_KERNEL = re.compile(r"^gptq_transposed_mma_kernel<(\d+), (\d+), (\d+), (\d+), (\d+)>$")
MMA_TILES = [(b, a, 16, 1) for b in (2, 4, 8) for a in (0, 1)]
MFMA = {0: re.compile(r"^v_mfma_f32_16x16x16f16\b"), 1: re.compile(r"^v_mfma_f32_16x16x8bf16\b")}
LOAD_X2 = re.compile(r"^(global|buffer)_load_dwordx2\b")
LDS_W128 = re.compile(r"^ds_write_b128\b")
LDS_R128 = re.compile(r"^ds_read_b128\b")
CROSS_LANE = re.compile(r"^(ds_bpermute_b32|ds_swizzle_b32)\b|\b(quad_perm|row_shl|row_shr|row_ror|row_bcast|row_mirror|row_half_mirror)\b")
DECODE_TILES = [(b, a, mt) for b in (2, 4, 8) for a in (0, 1) for mt in (1, 2, 4, 8)]
MAX_VGPR, MAX_LDS = 64, 16384
LOAD_X4 = re.compile(r"^(global|buffer)_load_dwordx4\b")
DOT2 = re.compile(r"^v_dot2c?_f32_f16(_e32|_e64|_vop3|_sdwa|_dpp)?\b")
FMA_F32 = re.compile(r"^v_(fma|fmac|mac)_f32(_e32|_e64)?\b|^v_fma_mix_f32\b")
F16_MAC = re.compile(r"^v_(pk_)?(fmac|mac)_f16\b")
F16_FMA = re.compile(r"^v_(pk_)?(fma|mad)_f16\b|^v_(fma|mad)_mix(lo|hi)_f16\b")


def f16_accumulates(ins):
    """An fp16 multiply-add that accumulates: the mac forms always, fma/mad when the
    destination is also the addend. An exact dequantization step (x * 1/16 - (64 + z) into
    another register, `v_pk_fma_f16 v1, v1, s0, v2`) is not accumulation."""
    if F16_MAC.match(ins):
        return True
    if not F16_FMA.match(ins):
        return False
    ops = [o.strip() for o in ins.split(None, 1)[1].split(",")] if " " in ins.strip() else []
    return len(ops) >= 4 and ops[0] == ops[3].split()[0]


def decode_target_failures(hip, funcs, require_all):
    """(failures, kernels checked, kernels meeting it) of the gfx908 decode target.
    hip: short name -> resources; funcs: short name -> ISA lines."""
    failures, seen, ok = [], set(), 0
    for k, v in sorted(hip.items(), key=lambda kv: sort_key(kv[0])):
        m = DECODE_KERNEL.match(k)
        if not m or int(m.group(3)) > 8:
            continue
        bits, act, mt = (int(x) for x in m.groups())
        seen.add((bits, act, mt))
        why = []
        if v.get("vgpr", MAX_VGPR + 1) > MAX_VGPR:
            why.append(f"{v.get('vgpr', '?')} VGPRs > {MAX_VGPR} (fewer than 4 waves/SIMD)")
        if v.get("agpr", 1) != 0:
            why.append(f"{v.get('agpr', '?')} AGPRs (VGPRs moved to AGPRs)")
        if v.get("vgpr_spill", 1) != 0 or v.get("sgpr_spill", 1) != 0:
            why.append(f"spills {v.get('vgpr_spill', '?')} VGPRs, {v.get('sgpr_spill', '?')} SGPRs")
        if v.get("scratch", 1) != 0:
            why.append(f"scratch {v.get('scratch', '?')} B/lane")
        if v.get("lds", MAX_LDS + 1) > MAX_LDS:
            why.append(f"LDS {v.get('lds', '?')} B > {MAX_LDS} (fewer than 4 blocks/CU)")
        code = funcs.get(k)
        if code is None:
            why.append("no ISA found")
        else:
            if not any(LOAD_X4.match(i) for i in code):
                why.append("no global/buffer_load_dwordx4 (16-byte weight loads)")
            if act == 0 and not any(DOT2.match(i) for i in code):
                why.append("no v_dot2(c)_f32_f16 (fp16 pairs, fp32 accumulation)")
            if act == 1 and not any(FMA_F32.match(i) for i in code):
                why.append("no fp32 FMA (v_fma/fmac/mac_f32, v_fma_mix_f32)")
            f16 = sorted({i.split()[0] for i in code if f16_accumulates(i)})
            if f16:
                why.append("fp16 accumulation: " + ", ".join(f16))
        if why:
            failures.append(f"gfx908 decode target (issue 10): {k}: " + "; ".join(why))
        else:
            ok += 1
    if require_all:
        for b, a, mt in DECODE_TILES:
            if (b, a, mt) not in seen:
                failures.append(f"gfx908 decode target (issue 10): gptq_transposed_kernel<{b}, {a}, {mt}> "
                                "is not compiled")
    return failures, len(seen), ok


def variant_failures(hip, funcs, require_all):
    """(failures, {feed: (compiled, showing the variant)}) of the issue-12 ISA checks."""
    failures, counts = [], {}
    seen = set()
    for k in sorted(hip, key=sort_key):
        m = VARIANT_KERNEL.match(k)
        if not m:
            continue
        bits, act, mt, feed = (int(x) for x in m.groups())
        seen.add((bits, act, mt, feed))
        code = funcs.get(k) or []
        if feed == 1:
            why = [] if any(LOAD_X2.match(i) for i in code) else ["no dwordx2 weight loads"]
            if any(LOAD_X4.match(i) for i in code):
                why.append("dwordx4 loads (the two 8-byte loads were merged)")
        elif feed == 2:
            why = [] if any(LOAD_X4.match(i) for i in code) else ["no dwordx4 window loads"]
            if not (any(LDS_W128.match(i) for i in code) and any(LDS_R128.match(i) for i in code)):
                why.append("no ds_write_b128 / ds_read_b128 (weights not staged through LDS)")
        else:
            why = [] if any(CROSS_LANE.search(i) for i in code) else [
                "no ds_bpermute / ds_swizzle / DPP (shuffles not cross-lane)"]
        done, good = counts.get(feed, (0, 0))
        counts[feed] = (done + 1, good + (0 if why else 1))
        if why:
            failures.append(f"gfx908 variant (issue 12) {k}: " + "; ".join(why))
    for feed in VARIANT_NAMES if require_all else ():
        for b, a, mt in DECODE_TILES:
            if (b, a, mt, feed) not in seen:
                failures.append(f"gfx908 variant (issue 12): gptq_transposed_kernel<{b}, {a}, {mt}, {feed}> "
                                "is not compiled")
    return failures, counts


def mfma_failures(hip, funcs, require_all):
    """(failures, checked, AGPRs per kernel) of issue 11's gfx908 criteria: each
    gptq_transposed_mma_kernel has its MFMA (16x16x16f16 for fp16, 16x16x8bf16 for bf16) and no
    scratch (the global check); with require_all every bits 2/4/8 x act 0/1 tile is compiled."""
    failures, seen, agprs = [], set(), {}
    for k in sorted(hip, key=sort_key):
        m = MMA_KERNEL.match(k)
        if not m:
            continue
        bits, act, mt, sw, _waves = (int(x) for x in m.groups())
        seen.add((bits, act, mt, sw))
        agprs[k] = hip[k].get("agpr", "?")
        if not any(MFMA[act].match(i) for i in funcs.get(k) or []):
            failures.append(f"gfx908 matrix kernel (issue 11) {k}: no {MFMA[act].pattern[1:-2]}")
    for tile in MMA_TILES if require_all else ():
        if tile not in seen:
            failures.append("gfx908 matrix kernel (issue 11): gptq_transposed_mma_kernel<%d, %d, %d, %d, waves> "
                            "is not compiled" % tile)
    return failures, len(seen), agprs


# The split-K arrival's counter add (tp_arrive_last: one thread's returning atomic, glc)
ARRIVE_ATOMIC = re.compile(r"^global_atomic_add\b.*\bglc\b")
VMEM_STORE = re.compile(r"^(global|flat|buffer)_store_")


def arrival_failures(funcs):
    """(failures, checked) of the split-K arrival in the layout-2 GEMM kernels: the counter add,
    made by one thread after a block barrier, publishes every wave's partials only if each
    wave waited for its own stores (s_waitcnt vmcnt(0): on gfx9 a store leaves vmcnt once L2
    has it) between its last store and the barrier (a fence in every thread, or the barrier's
    own release; NOTES 53). Linear ISA order: the barrier is the last s_barrier before the
    add, the store the last vector store before that."""
    failures, checked = [], 0
    for k in sorted(funcs, key=sort_key):
        if not k.startswith(("gptq_transposed_kernel<", "gptq_transposed_mma_kernel<")):
            continue
        code = [i for i in funcs[k] if i and not i.startswith(".") and not i.endswith(":")]
        for at, ins in enumerate(code):
            if not ARRIVE_ATOMIC.match(ins):
                continue
            checked += 1
            bar = max((j for j in range(at) if code[j].startswith("s_barrier")), default=None)
            if bar is None:
                failures.append(f"gfx908 {k}: split-K counter add with no block barrier before it")
                continue
            waited = False
            for j in range(bar - 1, -1, -1):
                if code[j].startswith("s_waitcnt") and "vmcnt(0)" in code[j]:
                    waited = True
                    break
                if VMEM_STORE.match(code[j]):
                    break
            if not waited:
                failures.append(f"gfx908 {k}: a store reaches the barrier before the split-K counter "
                                "add without s_waitcnt vmcnt(0) (other waves' partials not published)")
    return failures, checked


SM90_THREADS_TRANSPOSED = 256  # kTpThreads: the gptq_transposed* kernels' block, but
SM90_WARP = 32                 # gptq_transposed_mma_kernel's, which is its last argument x 32


def sm90_threads(name):
    """Block size of a gptq_transposed* kernel on sm_90."""
    m = MMA_KERNEL.match(name)
    return int(m.group(5)) * SM90_WARP if m else SM90_THREADS_TRANSPOSED


def sm90_resident_blocks(regs, smem, threads=SM90_THREADS_TRANSPOSED):
    """Blocks of `threads` one sm_90 SM holds (the occupancy calculator's rule): registers per
    warp in units of 256 (per thread rounded to 8), each of the 4 sub-partitions' 16384
    registers holding whole warps; 228 KiB of shared memory with 1 KiB reserved per block;
    2048 threads and 32 blocks per SM. A drop here is a drop in warps per SM: entry 43's W8
    row tile 16 went from 80 to 96 registers, 3 to 2 blocks, and lost 28-47% (NOTES 43)."""
    def round_up(x, q):
        return -(-x // q) * q
    per_warp = round_up(round_up(max(regs, 1), 8) * 32, 256)
    by_regs = (16384 // per_warp) * 4 // (threads // 32)
    by_smem = (228 * 1024) // (smem + 1024)
    return min(by_regs, by_smem, 2048 // threads, 32)


def sort_key(name):
    # numeric-aware: gptq_gemm_kernel<4, 0, 8> sorts by the template numbers
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def gfx908_dispatch(hip):
    """Which kernel `auto` uses at each M on gfx908, from the row limits in the source
    (kCfgGfx908 in csrc/gpu/gptq_gpu.cu: the large-M threshold is limit + 1) and the
    `gptq_transposed_kernel` row tiles the build holds. Reasoned, not measured."""
    import pathlib
    src = (pathlib.Path(__file__).resolve().parent.parent / "csrc/gpu/gptq_gpu.cu").read_text()
    m = re.search(r"kCfgGfx908\s*=\s*\{([^}]*)\}", src)
    fields = [int(x) for x in m.group(1).split(",")] if m else []
    # ..., max_q_gemm_rows (2/3-bit), max_q_gemm_rows_4bit, max_q_gemm_rows_8bit
    if len(fields) != 8 or fields[5] != fields[6]:
        return ["- (kCfgGfx908 not found in csrc/gpu/gptq_gpu.cu, or its 2-bit and 4-bit row "
                "limits differ: dispatch not reported)"]
    limit, limit8 = fields[6], fields[7]
    tiles = sorted({int(t.group(1)) for k in hip
                    for t in [re.match(r"gptq_transposed_kernel<\d+, \d+, (\d+), 0>", k)] if t})
    tp_src = (pathlib.Path(__file__).resolve().parent.parent / "csrc/gpu/gptq_transposed.cu").read_text()
    mm = re.search(r"kMmaAutoMinMGfx908\s*=\s*(\d+)", tp_src)
    mma_min = int(mm.group(1)) if mm else None
    has_mma = any(MMA_KERNEL.match(k) for k in hip)
    if mma_min is None or not has_mma:
        return ["- (kMmaAutoMinMGfx908 or the gfx908 matrix kernel not found: dispatch not reported)"]
    low = mma_min - 1
    return [
        "## Which kernel `auto` uses on gfx908 (reasoned, not measured)",
        "",
        "Nothing here has run on an MI100: the choice follows benchmarks/NOTES.md entries 8, 9 "
        "and 11 (byte and issue arithmetic), and the load-time self-check (gptq_mi100/selfcheck.py) "
        "keeps any kernel that is wrong on the user's GPU out of `auto`; a table from "
        "`python -m gptq_mi100 tune` overrides it.",
        "",
        "| bits | layout | M | kernel |",
        "|---|---|---|---|",
        f"| 2, 4 / 8 | 2 (tiled) | 1 .. {low} | `gptq_transposed_kernel<.., FEED 0>` (`transposed`, v_dot2), "
        f"row tile = M rounded up to one of {', '.join(map(str, tiles))} |",
        f"| 2, 4 / 8 | 2 (tiled) | {mma_min} .. {limit} / {mma_min} .. {limit8} | "
        "`gptq_transposed_mma_kernel` (`transposed_mma`, one v_mfma_f32_16x16x16f16 per 16-row step, "
        "bf16: two 16x16x8bf16); passes of 16 rows |",
        f"| 2, 4 / 8 | 2 | >= {limit + 1} / >= {limit8 + 1} | `dequant_matmul` (dequantize, then torch's GEMM) |",
        f"| 3 | 1 (checkpoint) | 1 .. {limit} / >= {limit + 1} | `gptq_gemm_kernel` (exllama) / `dequant_matmul` |",
        "",
        "The issue-12 variants (`vectorized`, `coalesced`, `warp_shuffle`: FEED 1-3) serve no M "
        "by default: `auto` reaches them through a table the tuner measured on the user's GPU "
        "(`python -m gptq_mi100 tune`), or by name.",
        "",
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hip-remarks", required=True)
    ap.add_argument("--hip-isa", required=True)
    ap.add_argument("--ptxas", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hip-version", default="")
    ap.add_argument("--nvcc-version", default="")
    ap.add_argument("--hip-flags", default="")
    ap.add_argument("--nvcc-flags", default="")
    ap.add_argument("--decode-target", action="store_true",
                    help="also fail when a gfx908 decode tile or variant (bits 2/4/8, act 0/1, "
                         "M_TILE <= 8) is missing")
    args = ap.parse_args()
    args.hip_flags = " ".join(args.hip_flags.split())
    args.nvcc_flags = " ".join(args.nvcc_flags.split())

    hip = parse_hip_remarks(open(args.hip_remarks).read())
    ptx = parse_ptxas(open(args.ptxas).read())
    isa = open(args.hip_isa).read()
    dot2, clamp, ockl = isa_checks(isa)
    funcs = split_isa(isa)
    names = demangle(list(hip) + list(ptx) + list(funcs))
    hip = {names[k]: v for k, v in hip.items()}
    ptx = {names[k]: v for k, v in ptx.items()}
    funcs = {names[k]: v for k, v in funcs.items()}

    failures = []
    if not hip:
        failures.append("no gfx908 kernel-resource-usage remarks found")
    if not ptx:
        failures.append("no ptxas -v kernel entries found")
    for k, v in sorted(hip.items()):
        # VGPR spills into AGPRs (gfx908 has 256 of them) cost register moves, not memory:
        # only scratch (private memory) counts as a spill here.
        if v.get("scratch", 0) > 0:
            failures.append(f"gfx908 {k}: scratch {v['scratch']} B/lane (spill to memory)")
    for k, v in sorted(ptx.items()):
        if v.get("spill_st", 0) > 0 or v.get("spill_ld", 0) > 0:
            failures.append(f"sm_90 {k}: spill stores {v['spill_st']} B, spill loads {v['spill_ld']} B")
    if dot2 == 0:
        failures.append("gfx908 ISA has no v_dot2(c)_f32_f16: the fdot2 island is not used")
    if clamp > 0:
        failures.append(f"gfx908 ISA has {clamp} v_dot2(c)_f32_f16 with clamp (results clamped to [0,1])")
    if ockl > 0:
        failures.append(f"gfx908 ISA references __ockl_fdot2 {ockl} times (its clamp flag is ignored)")
    decode_failures, decode_checked, decode_ok = decode_target_failures(hip, funcs, args.decode_target)
    failures += decode_failures
    var_failures, var_counts = variant_failures(hip, funcs, args.decode_target)
    failures += var_failures
    mma_fail, mma_checked, mma_agprs = mfma_failures(hip, funcs, args.decode_target)
    failures += mma_fail
    arrive_fail, arrive_checked = arrival_failures(funcs)
    failures += arrive_fail
    if args.decode_target and not arrive_checked:
        failures.append("gfx908 ISA: no split-K counter add found in the layout-2 GEMM kernels "
                        "(the arrival check saw nothing)")

    lines = [
        "# Device code resources: csrc/gpu/gptq_gpu.cu",
        "",
        "Generated by `tools/check_device_code.sh` (do not edit; run it with `--update`).",
        "Static compiler output only: nothing here was run on a GPU.",
        "",
        f"- gfx908: {args.hip_version} `{args.hip_flags} --offload-arch=gfx908`",
        f"- sm_90: {args.nvcc_version} `{args.nvcc_flags} -arch=sm_90 -Xptxas -v`",
        f"- gfx908 ISA: {dot2} v_dot2(c)_f32_f16, {clamp} with clamp, "
        f"{ockl} __ockl_fdot2 references",
        f"- gfx908 decode target (issue 10: <= {MAX_VGPR} VGPRs, no AGPRs, spills or scratch, "
        f"<= {MAX_LDS} B LDS, dwordx4 weight loads, fp32 accumulation): "
        f"{decode_ok} of {decode_checked} `gptq_transposed_kernel` instantiations with M_TILE <= 8 meet it",
        "- issue-12 variants, compiled / showing the variant in their gfx908 ISA: "
        + ", ".join(f"{VARIANT_NAMES[f]} {var_counts.get(f, (0, 0))[0]} / {var_counts.get(f, (0, 0))[1]}"
                    for f in VARIANT_NAMES),
        f"- issue-11 matrix kernel on gfx908: {mma_checked - len(mma_fail)} of {mma_checked} "
        "`gptq_transposed_mma_kernel` instantiations issue v_mfma_f32_16x16x16f16 (fp16) / "
        "v_mfma_f32_16x16x8bf16 (bf16); AGPRs used: "
        + (", ".join(sorted({str(v) for v in mma_agprs.values()})) or "none"),
        f"- split-K arrival on gfx908: {arrive_checked - len(arrive_fail)} of {arrive_checked} "
        "counter adds in `gptq_transposed*` kernels follow a barrier that each wave reaches after "
        "s_waitcnt vmcnt(0) (its partials in L2)",
        f"- kernels in the module: {len(hip)} in the gfx908 code object, {len(ptx)} for sm_90 "
        "(one MI100 report saw small dispatches slow by 1.1-2.0 us as a code object grew; "
        "unverified here)",
        "",
        "Template arguments: gemm <bits, act (0 fp16, 1 bf16), M_TILE>; transposed "
        "<bits, act, M_TILE, FEED (0 transposed / vectorized load=16, 1 vectorized load=8, "
        "2 coalesced, 3 warp_shuffle)>; transposed_mma <bits, act, row tile, strips per wave, "
        "waves per block>; reduce <act>; dequant <bits, act>; permute <bits>.",
        "",
        "## gfx908 (MI100)",
        "",
        "Occupancy is waves per SIMD (max 10); 256 VGPRs per SIMD lane, so "
        "VGPRs <= 128 allow 2 waves, <= 84 three, <= 64 four. VGPR spills go to AGPRs "
        "(register moves); scratch is spilling to memory and fails the check.",
        "",
        "| kernel | VGPRs | SGPRs | AGPRs | LDS bytes | scratch bytes/lane | occupancy waves/SIMD "
        "| VGPR spills (to AGPR) | SGPR spills |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines[lines.index("## gfx908 (MI100)"):lines.index("## gfx908 (MI100)")] = gfx908_dispatch(hip)
    for k in sorted(hip, key=sort_key):
        v = hip[k]
        lines.append(f"| `{k}` | {v.get('vgpr', '?')} | {v.get('sgpr', '?')} | {v.get('agpr', '?')} | "
                     f"{v.get('lds', '?')} | {v.get('scratch', '?')} | {v.get('occupancy', '?')} | "
                     f"{v.get('vgpr_spill', '?')} | {v.get('sgpr_spill', '?')} |")
    lines += [
        "",
        "## sm_90 (H100)",
        "",
        f"Blocks/SM: resident blocks of the `gptq_transposed*` kernels ({SM90_THREADS_TRANSPOSED} threads; "
        "the mma kernel's last argument x 32) by registers and static shared memory "
        "(`sm90_resident_blocks`); other kernels -.",
        "",
        "| kernel | registers | spill stores bytes | spill loads bytes | stack bytes | static smem bytes | blocks/SM |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in sorted(ptx, key=sort_key):
        v = ptx[k]
        blocks = (sm90_resident_blocks(v["regs"], v.get("smem", 0), sm90_threads(k))
                  if k.startswith("gptq_transposed") and "regs" in v else "-")
        lines.append(f"| `{k}` | {v.get('regs', '?')} | {v.get('spill_st', '?')} | "
                     f"{v.get('spill_ld', '?')} | {v.get('stack', '?')} | {v.get('smem', '?')} | {blocks} |")
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))

    for msg in failures:
        print(f"device_report: FAIL: {msg}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

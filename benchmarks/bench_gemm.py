"""GEMM benchmark: every gptq_mi100 kernel against fp16 linear and torch's int4 kernel.

    python -m benchmarks.bench_gemm [--device cpu|cuda] [--shapes SET|KxN ...] [--m M ...]
        [--prefill] [--bits 4 8] [--group-size 128] [--kernels NAME ...] [--out-dir DIR]
        [--quick]

Shapes are K x N (in_features x out_features). Rows, per (shape, M, bits):
  - every gptq_mi100 kernel choice for the device (gptq_mi100.kernels.kernel_names),
    each timed twice ("<kernel>" and "<kernel> (repeat)", the repeat after all others) to
    show the run-to-run noise; dequant_matmul is the dequantize-then-matmul path;
  - "fp16 linear": torch.nn.functional.linear(a, W.T) on the dequantized weight (fp16 [N, K];
    timed once per (shape, M), with the weight of the first --bits value);
  - "torch int4pack (bf16)": torch.ops.aten._weight_int4pack_mm (bf16 activations, 4-bit
    rows only) built from the same quantized integers, or "n/a" with the reason.

GPU timing (BACKGROUND.md section 6): C copies of the weights, together >= max(256 MiB,
4 x L2) and C >= 24; one CUDA graph calls the kernel once per copy; >= 20 replays timed
one by one with CUDA events; median time per call. CPU: median of >= 5 wall-clock timings
(fewer for calls over 1 s), one copy of the weights (no rotation).

Writes results.json, results.md and results.png under --out-dir (default
benchmarks/results/<device-name-slug>[-prefill][-quick]/).
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

from gptq_mi100.timing import (COPY_BW_BYTES, MIN_CALLS, MIN_ROTATION_BYTES, Timer,
                               copy_bandwidth_gbps, launch_floor_us, n_copies)

from .shapes import (SHAPE_SETS, fp16_weight_bytes, gptq_weight_bytes,
                     int4pack_weight_bytes, parse_shapes)

DECODE_M = (1, 2, 4, 8, 16, 32, 64)
PREFILL_M = (128, 512, 2048)
QUICK_DECODE_M = (1, 16, 64)
QUICK_PREFILL_M = (128, 2048)
DEFAULT_SHAPES = ("qwen3-32b-tp4",)
BASELINES = ("fp16_linear", "int4pack")
LABELS = {"fp16_linear": "fp16 linear", "int4pack": "torch int4pack (bf16)"}
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ arguments

def _int_list(tokens):
    return [int(x) for t in tokens for x in str(t).split(",") if x.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_gemm",
        description="Time gptq_mi100 GEMM kernels against fp16 linear and torch int4 "
                    "(shapes K x N = in_features x out_features).")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda if available, else cpu")
    p.add_argument("--shapes", nargs="+", default=None,
                   help=f"shape sets ({', '.join(SHAPE_SETS)}, all) and/or explicit KxN "
                        f"(default: {' '.join(DEFAULT_SHAPES)})")
    p.add_argument("--m", nargs="+", default=None,
                   help=f"M values (rows of a); default decode {','.join(map(str, DECODE_M))}"
                        f", with --prefill {','.join(map(str, PREFILL_M))}")
    p.add_argument("--prefill", action="store_true", help="prefill M set (large-M path)")
    p.add_argument("--bits", nargs="+", type=int, default=[4, 8], choices=(2, 3, 4, 8))
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--act-order", action="store_true",
                   help="act-order weights (g_idx permuted rows) for the GPTQ kernels")
    p.add_argument("--activations", choices=("float16", "bfloat16"), default="float16",
                   help="activation dtype of the GPTQ kernels (fp16 linear stays fp16)")
    p.add_argument("--kernels", nargs="+", default=None,
                   help="gptq_mi100 kernel names for the device and/or baselines "
                        f"{', '.join(BASELINES)} (default: all)")
    p.add_argument("--out-dir", default=None)
    p.add_argument("--quick", action="store_true",
                   help=f"fewer M values (decode {','.join(map(str, QUICK_DECODE_M))}, prefill "
                        f"{','.join(map(str, QUICK_PREFILL_M))}); on CPU a 256 MiB copy test")
    p.add_argument("--replays", type=int, default=20, help="CUDA graph replays timed (>= 20)")
    p.add_argument("--repeats", type=int, default=5, help="CPU timings per row (>= 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False")
    if args.replays < 20 or args.repeats < 5:
        p.error("--replays must be >= 20 and --repeats >= 5")
    try:
        args.shape_list = parse_shapes(args.shapes or DEFAULT_SHAPES)
        args.m_list = (_int_list(args.m) if args.m else
                       list((QUICK_PREFILL_M if args.quick else PREFILL_M) if args.prefill else
                            (QUICK_DECODE_M if args.quick else DECODE_M)))
    except ValueError as e:
        p.error(str(e))
    if not args.m_list or min(args.m_list) < 1:
        p.error("--m values must be positive")
    from gptq_mi100.kernels import kernel_names
    gptq_kernels = list(kernel_names(args.device))
    known = gptq_kernels + list(BASELINES)
    chosen = args.kernels or known
    base = lambda k: k.split(":", 1)[0]  # noqa: E731  (a kernel spec: name:key=value,...)
    bad = [k for k in chosen if base(k) not in known or (":" in k and base(k) in BASELINES)]
    if bad:
        p.error(f"unknown kernel(s) {bad} for {args.device}: choose from {', '.join(known)} "
                "(gptq_mi100 kernels may carry tiles, e.g. transposed_mma:mt=64)")
    for k in chosen:
        if ":" in k:
            try:
                torch.ops.gptq_mi100.check_kernel_spec(args.device, k)
            except ValueError as e:
                p.error(str(e))
    args.gptq_kernels = ([k for k in chosen if base(k) in gptq_kernels] if args.kernels
                         else gptq_kernels)
    args.baselines = [k for k in BASELINES if k in chosen]
    for s in args.shape_list:
        gs = s.k if args.group_size == -1 else args.group_size
        if gs <= 0 or s.k % gs or s.k % 32 or s.n % 32:
            p.error(f"shape {s.kxn}: K and N must be multiples of 32 and group size "
                    f"{args.group_size} must divide K")
    return args


# ------------------------------------------------------------------ device helpers

def _slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {cpu_name()}"


def _git_commit():
    """GPTQ_MI100_GIT_COMMIT if set (device runs work on a copy of the tree whose .git may
    name another HEAD), else git's short HEAD."""
    if os.environ.get("GPTQ_MI100_GIT_COMMIT"):
        return os.environ["GPTQ_MI100_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except Exception:
        return None


def _nbytes(*tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


# ------------------------------------------------------------------ torch int4 (tinygemm)

def int4pack_ops(device):
    """(convert, mm) for the device, or raise RuntimeError with the reason."""
    aten = torch.ops.aten
    if device.type == "cuda":
        if torch.version.hip is None and torch.cuda.get_device_capability(device) < (8, 0):
            raise RuntimeError("needs sm_80+")
        if not hasattr(aten, "_weight_int4pack_mm"):
            raise RuntimeError("torch has no aten._weight_int4pack_mm")
        return aten._convert_weight_to_int4pack, aten._weight_int4pack_mm
    if not (hasattr(aten, "_weight_int4pack_mm_for_cpu")
            and hasattr(aten, "_convert_weight_to_int4pack_for_cpu")):
        raise RuntimeError(f"torch {torch.__version__} has no _weight_int4pack_mm_for_cpu")
    return aten._convert_weight_to_int4pack_for_cpu, aten._weight_int4pack_mm_for_cpu


def build_int4pack(t, group_size, device):
    """GPTQ 4-bit tensors -> (packed weight, bf16 scales_and_zeros [G, N, 2]).

    tinygemm dequantizes (q - 8) * scale + zero; GPTQ is scale * (q - z), so
    zero = scale * (8 - z) with z the true (v1: stored + 1) zero.
    """
    from gptq_mi100 import formats
    convert, _ = int4pack_ops(device)
    k, n = t.k, t.n
    gs = k if group_size == -1 else group_size
    if gs not in (32, 64, 128, 256):
        raise RuntimeError(f"group size {gs} not in tinygemm's 32/64/128/256")
    q = formats.unpack_rows(t.qweight, 4, k)                      # int32 [K, N]
    z = formats.unpack_columns(t.qzeros, 4, n).float() + (0 if t.v2_zeros else 1)
    s = t.scales.float()                                          # [G, N]
    sz = torch.stack([s, s * (8.0 - z)], dim=2).to(torch.bfloat16).contiguous()
    qt = q.t().contiguous()                                       # [N, K]
    inner = 8 if k % 128 == 0 else (4 if k % 64 == 0 else 2)
    if device.type == "cuda":
        packed_in = ((qt[:, ::2] << 4) | qt[:, 1::2]).to(torch.uint8).contiguous()
    else:
        packed_in = qt
    return convert(packed_in, inner), sz


# ------------------------------------------------------------------ benchmark

def _large_m_threshold(ops, device, bits):
    try:
        return ops.large_m_threshold(device, bits)
    except Exception as e:  # noqa: BLE001  (e.g. an extension built without this backend)
        return f"unknown ({type(e).__name__})"


def _seed_for(*parts):
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def _rel_err(out, ref64):
    return float((out.double() - ref64).norm() / ref64.norm().clamp_min(1e-300))


def _progress(total):
    try:
        from tqdm import tqdm
        return tqdm(total=total, file=sys.stderr, unit="row", dynamic_ncols=True)
    except ImportError:
        class Counter:
            def __init__(self):
                self.i = 0

            def update(self, k=1):
                self.i += k
                sys.stderr.write(f"\r[{self.i}/{total}] rows")
                sys.stderr.flush()

            def set_description(self, text):
                pass

            def close(self):
                sys.stderr.write("\n")
        return Counter()


def _jobs(args, bits_index, bits):
    jobs = []
    if "fp16_linear" in args.baselines and bits_index == 0:
        jobs.append(("fp16_linear", 0))
    jobs += [(k, 0) for k in args.gptq_kernels]
    if "int4pack" in args.baselines and bits == 4:
        jobs.append(("int4pack", 0))
    jobs += [(k, 1) for k in args.gptq_kernels]
    return jobs


def run(args, argv, checkpoint=None):
    """All rows of the sweep; checkpoint(partial_result) after each (shape, bits) block, so
    a sweep stopped by a time limit still leaves the blocks it finished."""
    from gptq_mi100 import ops, reference
    from gptq_mi100.quantize import random_gptq

    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" \
        else torch.device("cpu")
    cuda = device.type == "cuda"
    timer = Timer(device, args.replays, args.repeats)
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", None) if cuda \
        else None
    copy_bytes = COPY_BW_BYTES if (cuda or not args.quick) else 256 * 2**20
    copy_gbps = copy_bandwidth_gbps(device, copy_bytes)
    launch_us = launch_floor_us(timer) if cuda else None

    try:
        int4pack_ops(device)
        int4_status = "ok"
    except Exception as e:  # noqa: BLE001
        int4_status = f"n/a: {e}"

    meta = {
        "tool": "benchmarks.bench_gemm",
        "command": "python -m benchmarks.bench_gemm " + shlex.join(argv),
        "argv": list(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device.type,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_hip": getattr(torch.version, "hip", None),
        "gptq_mi100_build": ops.build_info(),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "l2_cache_bytes": l2,
        "copy_bandwidth_gbps": copy_gbps,
        "copy_bandwidth_method": f"dst.copy_(src) of {copy_bytes} bytes, bytes counted "
                                 f"{2 * copy_bytes} (read+write), median",
        "launch_floor_us": launch_us,
        "launch_floor_method": "1-element add_ called 24 times in one CUDA graph, median "
                               "of replays, per call" if cuda else None,
        "timing_method": (
            f"CUDA graph of C >= {MIN_CALLS} calls, one per weight copy (copies together >= "
            f"max({MIN_ROTATION_BYTES} B, 4 x L2)), side-stream warmup, {args.replays} "
            "replays timed one by one with CUDA events, median per call"
            if cuda else
            f"wall clock (time.perf_counter), median of {args.repeats} calls after one "
            "warmup (3 if a call takes > 1 s, 1 if > 10 s); one weight copy, no rotation "
            "(CPU caches are small against these weights only for the larger shapes)"),
        "rel_err_method": "||out - ref|| / ||ref||, ref = fp32 rounding of the float64 "
                          "product of the kernel's own input (bf16 for int4pack) with "
                          "gptq_mi100.reference.dequantize_reference (= gemm_reference), "
                          "one call outside the graph on weight copy 0",
        "extra_mem_method": ("torch.cuda.max_memory_allocated delta around that call, minus "
                             "the output size" if cuda else None),
        "bytes_counted": "weight + scales + zeros only: GPTQ K*N*bits/8 + G*N*2 + G*N*bits/8;"
                         " fp16 2*K*N; int4pack K*N/2 + G*N*4 (bf16 scale and zero)",
        "activations": (f"{'bf16' if args.activations == 'bfloat16' else 'fp16'} for the GPTQ "
                        "kernels, fp16 for fp16 linear, bf16 for int4pack; standard normal"),
        "quantization": ("gptq_mi100.quantize.random_gptq, asymmetric, "
                         f"{'act-order' if args.act_order else 'no act-order'}, v1 zeros"),
        "m_list": args.m_list,
        "bits": args.bits,
        "group_size": args.group_size,
        "shapes": [s._asdict() for s in args.shape_list],
        "kernels": args.gptq_kernels + args.baselines,
        "int4pack": int4_status,
        "large_m_threshold": {str(b): _large_m_threshold(ops, device, b) for b in args.bits},
        "quick": args.quick,
        "prefill": args.prefill,
    }

    total = sum(len(args.m_list) * len(_jobs(args, i, b))
                for _ in args.shape_list for i, b in enumerate(args.bits))
    bar = _progress(total)
    rows = []
    try:
        for shape in args.shape_list:
            for bits_index, bits in enumerate(args.bits):
                rows += _bench_shape_bits(args, shape, bits_index, bits, device, timer, l2,
                                          copy_gbps, int4_status, ops, reference,
                                          random_gptq, bar)
                if checkpoint is not None:
                    partial = [dict(r) for r in rows]
                    _add_speedups(partial)
                    checkpoint({"meta": dict(meta, partial=True), "rows": partial})
    finally:
        bar.close()
    _add_speedups(rows)
    return {"meta": dict(meta, partial=False), "rows": rows}


def _bench_shape_bits(args, shape, bits_index, bits, device, timer, l2, copy_gbps,
                      int4_status, ops, reference, random_gptq, bar):
    cuda = device.type == "cuda"
    k, n, gs = shape.k, shape.n, args.group_size
    bar.set_description(f"{shape.label} W{bits}")
    t = random_gptq(k, n, bits, gs, symmetric=False, act_order=args.act_order, v2_zeros=False,
                    seed=_seed_for(args.seed, k, n, bits, gs), device=device)
    g_idx = t.g_idx if args.act_order else None
    w64 = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, g_idx, bits,
                                         t.v2_zeros, dtype=torch.float64)
    jobs = _jobs(args, bits_index, bits)
    wcopies, prep_err, by_layout = {}, None, {}  # kernel -> copies in the layout it reads
    try:  # a broken or missing backend still leaves the baselines measured
        from gptq_mi100.kernels import kernel_table
        native_layout = {info.name: info.layouts[0] for info in kernel_table(device.type)
                         if info.auto_range == "below_large_m" and info.layouts}

        for kern, _ in jobs:
            if kern in ("fp16_linear", "int4pack"):
                continue
            layout = native_layout.get(kern.split(":", 1)[0])  # None: the default layout
            if layout not in by_layout:
                w = ops.prepare(t.qweight, t.qzeros, t.scales, g_idx, bits=bits, group_size=gs,
                                v2_zeros=t.v2_zeros, layout=layout)
                c = n_copies(device, _nbytes(w.qweight, w.qzeros, w.scales), l2)
                by_layout[layout] = [w] + [w._replace(
                    qweight=w.qweight.clone(), qzeros=w.qzeros.clone(),
                    scales=w.scales.clone()) for _ in range(c - 1)]
                del w
            wcopies[kern] = by_layout[layout]
    except Exception as e:  # noqa: BLE001
        wcopies, prep_err = None, f"prepare failed: {type(e).__name__}: {e}"[:300]
    kinds = {kern for kern, _ in jobs}

    fp16_copies = None
    if "fp16_linear" in kinds:
        wt = w64.t().to(torch.float16).contiguous()                  # [N, K]
        cf = n_copies(device, _nbytes(wt), l2)
        fp16_copies = [wt] + [wt.clone() for _ in range(cf - 1)]
    int4_copies, int4_err = None, None
    if "int4pack" in kinds:
        try:
            if int4_status != "ok":
                raise RuntimeError(int4_status[len("n/a: "):])
            packed, sz = build_int4pack(t, gs, device)
            ci = n_copies(device, _nbytes(packed, sz), l2)
            int4_copies = [(packed, sz)] + [(packed.clone(), sz.clone()) for _ in range(ci - 1)]
        except Exception as e:  # noqa: BLE001
            int4_err = f"{type(e).__name__}: {e}"[:300]
    _, int4_mm = int4pack_ops(device) if int4_copies else (None, None)
    gs_eff = k if gs == -1 else gs

    rows = []
    for m in args.m_list:
        gen = torch.Generator().manual_seed(_seed_for(args.seed, "a", k, m))
        a = torch.randn(m, k, generator=gen).to(device=device, dtype=torch.float16)
        a_bf16 = a.to(torch.bfloat16)
        ref16 = (a.double() @ w64).float().double()
        ref_bf = (a_bf16.double() @ w64).float().double()
        for kern, rep in jobs:
            row = {"shape_set": shape.set_name, "shape": shape.name, "k": k, "n": n, "m": m,
                   "bits": bits, "group_size": gs, "kernel_id": kern, "repeat": rep,
                   "kernel": (LABELS.get(kern, kern) + (" (repeat)" if rep else "")),
                   "act_out_bytes": 2 * m * k + 2 * m * n, "path": None,
                   "us_per_call": None, "samples_us": None, "calls_per_graph": None,
                   "weight_bytes": None, "gbps": None, "pct_copy_bw": None,
                   "rel_err": None, "extra_mem_bytes": None, "speedup_vs_fp16": None,
                   "status": "ok", "note": ""}
            ref = ref16
            if kern == "fp16_linear":
                row["bits"] = 16
                row["weight_bytes"] = fp16_weight_bytes(k, n)
                row["note"] = f"weight = dequantized W{bits} g{gs}"
                calls = [lambda wt=wt: F.linear(a, wt) for wt in fp16_copies]
            elif kern == "int4pack":
                row["weight_bytes"] = int4pack_weight_bytes(k, n, gs)
                if int4_copies is None:
                    row["status"], row["note"] = "n/a", int4_err
                    rows.append(row)
                    bar.update()
                    continue
                ref = ref_bf
                calls = [lambda p=p, s=s: int4_mm(a_bf16, p, gs_eff, s) for p, s in int4_copies]
            else:
                row["weight_bytes"] = gptq_weight_bytes(k, n, bits, gs)
                if wcopies is None or kern not in wcopies:
                    row["status"], row["note"] = "error", prep_err
                    rows.append(row)
                    bar.update()
                    continue
                a_q = a_bf16 if args.activations == "bfloat16" else a
                ref = ref_bf if args.activations == "bfloat16" else ref16
                calls = [lambda wc=wc, kern=kern: ops.gemm(a_q, wc, kernel=kern)
                         for wc in wcopies[kern]]
            try:
                _measure(row, calls, ref, timer, cuda, ops, copy_gbps)
            except Exception as e:  # noqa: BLE001
                row["status"], row["note"] = "error", f"{type(e).__name__}: {e}"[:300]
                try:
                    timer.sync()
                except Exception:  # noqa: BLE001
                    pass
            rows.append(row)
            bar.update()
    del wcopies, fp16_copies, int4_copies, w64, t, by_layout
    if cuda:
        torch.cuda.empty_cache()
    return rows


def _measure(row, calls, ref, timer, cuda, ops, copy_gbps):
    """Fill the row: one checked call (error, path, extra memory), then the timing."""
    timer.sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(timer.device)
        base = torch.cuda.memory_allocated(timer.device)
    ops.reset_path_counts()
    out = calls[0]()
    timer.sync()
    if cuda:
        peak = torch.cuda.max_memory_allocated(timer.device)
        row["extra_mem_bytes"] = int(peak - base - _nbytes(out))
    if row["kernel_id"] not in BASELINES:
        row["path"] = "+".join(p for p, c in ops.path_counts().items() if c) or None
    row["rel_err"] = _rel_err(out, ref)
    del out
    samples = timer.time_us(calls)
    row["samples_us"] = [round(s, 4) for s in samples]
    row["calls_per_graph"] = len(calls) if cuda else 1
    us = statistics.median(samples)
    row["us_per_call"] = us
    row["gbps"] = row["weight_bytes"] / (us * 1e-6) / 1e9
    row["pct_copy_bw"] = 100.0 * row["gbps"] / copy_gbps


def _add_speedups(rows):
    fp16 = {(r["shape_set"], r["shape"], r["k"], r["n"], r["m"]): r["us_per_call"]
            for r in rows if r["kernel_id"] == "fp16_linear" and r["us_per_call"]}
    for r in rows:
        base = fp16.get((r["shape_set"], r["shape"], r["k"], r["n"], r["m"]))
        if base and r["us_per_call"]:
            r["speedup_vs_fp16"] = base / r["us_per_call"]


# ------------------------------------------------------------------ output

def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def _fmt_gbps(v):
    if v is None:
        return "-"
    return format(v, ".0f" if v >= 100 else (".1f" if v >= 1 else ".3f"))


def shape_groups(rows):
    """[(key, rows)] in first-seen order; key = (shape_set, shape, k, n)."""
    out = {}
    for r in rows:
        out.setdefault((r["shape_set"], r["shape"], r["k"], r["n"]), []).append(r)
    return list(out.items())


def write_markdown(result, path):
    meta, rows = result["meta"], result["rows"]
    cuda = meta["device"] == "cuda"
    gbps = meta["copy_bandwidth_gbps"]
    lines = [f"# GEMM benchmark: {meta['device_name']}", "",
             f"Command: `{meta['command']}`", ""]
    if meta.get("partial"):
        lines += ["**Partial: the sweep stopped (time limit or error) before its last "
                  "(shape, bits) block; rows below are the blocks it finished.**", ""]
    lines += [f"- Date (UTC): {meta['date']}; git commit: {meta['git_commit'] or 'unknown'}",
              f"- torch {meta['torch_version']} (CUDA {meta['torch_cuda']}, HIP "
              f"{meta['torch_hip']}); gptq_mi100: {meta['gptq_mi100_build']}",
              f"- Copy bandwidth: **{gbps:.0f} GB/s** ({meta['copy_bandwidth_method']})"]
    if cuda:
        l2 = meta["l2_cache_bytes"]
        lines.append(f"- L2: {l2 / 2**20:.0f} MiB; launch floor: "
                     f"{_fmt(meta['launch_floor_us'], '.2f')} us per call "
                     f"({meta['launch_floor_method']})" if l2 else
                     "- L2 size unknown (rotation sized for 256 MiB)")
    else:
        lines.append(f"- CPU threads: {meta['cpu_threads']}")
    lines += [f"- Timing: {meta['timing_method']}",
              f"- Rel err: {meta['rel_err_method']}",
              f"- Bytes counted for GB/s: {meta['bytes_counted']}",
              f"- Weights: {meta['quantization']}, group size {meta['group_size']}; "
              f"activations {meta['activations']}",
              "- auto's large-M threshold (M >= it goes to dequant_matmul): "
              + ", ".join(f"W{b}: {v}" for b, v in meta["large_m_threshold"].items()),
              f"- torch int4pack: {meta['int4pack']} (4-bit rows only)",
              "- Columns: us/call = median time per call; GB/s = counted bytes / time; "
              "% BW = of the copy bandwidth; act+out = activation + output bytes (not in "
              "GB/s); vs fp16 = fp16 linear time / this time at the same M; path = what the "
              "op ran (host path counter)"
              + ("; extra MB = peak memory beyond the output during one call" if cuda else ""),
              ""]
    for (set_name, name, k, n), grp in shape_groups(rows):
        floors = ", ".join(
            f"W{b} {gptq_weight_bytes(k, n, b, meta['group_size']) / gbps / 1e3:.1f} us"
            for b in meta["bits"])
        lines += [f"## {set_name} {name} {k}x{n} (K x N)", "",
                  f"Byte floors at {gbps:.0f} GB/s: {floors}, fp16 "
                  f"{fp16_weight_bytes(k, n) / gbps / 1e3:.1f} us", ""]
        head = ["M", "bits", "kernel", "path", "us/call", "GB/s", "% BW", "act+out B",
                "vs fp16", "rel err"] + (["extra MB"] if cuda else []) + ["note"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in sorted(grp, key=lambda r: (r["m"], r["bits"] if r["bits"] != 16 else 0)):
            flag = " !!" if (r["rel_err"] or 0) > 1e-2 else ""
            cells = [r["m"], r["bits"], r["kernel"], r["path"] or "",
                     _fmt(r["us_per_call"], ".2f", r["status"]), _fmt_gbps(r["gbps"]),
                     _fmt(r["pct_copy_bw"], ".1f"), r["act_out_bytes"],
                     _fmt(r["speedup_vs_fp16"], ".2f"), _fmt(r["rel_err"], ".1e") + flag]
            if cuda:
                cells.append(_fmt(None if r["extra_mem_bytes"] is None
                                  else r["extra_mem_bytes"] / 2**20, ".1f"))
            cells.append((r["note"] or "").replace("|", "/").replace("\n", " "))
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    path.write_text("\n".join(lines))


def write_plot(result, path):
    """Per shape (row) and bits (column): us against M, one line per kernel. False if no
    matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return False
    meta, rows = result["meta"], result["rows"]
    gbps = meta["copy_bandwidth_gbps"]
    bits_list = meta["bits"]
    grps = shape_groups(rows)
    fig, axes = plt.subplots(len(grps), len(bits_list), squeeze=False,
                             figsize=(6.5 * len(bits_list), 3.8 * len(grps)))
    kernel_ids = list(dict.fromkeys(r["kernel_id"] for r in rows))
    colors = {kid: f"C{i}" for i, kid in enumerate(kernel_ids)}
    for gi, ((set_name, name, k, n), grp) in enumerate(grps):
        for bi, bits in enumerate(bits_list):
            ax = axes[gi][bi]
            for kid in kernel_ids:
                for rep in (0, 1):
                    pts = sorted((r["m"], r["us_per_call"]) for r in grp
                                 if r["kernel_id"] == kid and r["repeat"] == rep
                                 and r["us_per_call"] is not None
                                 and (r["bits"] == bits or kid == "fp16_linear"))
                    if not pts:
                        continue
                    label = LABELS.get(kid, kid) + (" (repeat)" if rep else "")
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                            markersize=3, color=colors[kid], label=label,
                            linestyle=":" if rep else "-", alpha=0.6 if rep else 1.0)
            floor = gptq_weight_bytes(k, n, bits, meta["group_size"]) / gbps / 1e3
            ax.axhline(floor, color="k", linestyle="--", linewidth=1,
                       label=f"W{bits} byte floor @ {gbps:.0f} GB/s")
            ax.set_xscale("log", base=2)
            ax.set_xticks(meta["m_list"])
            ax.set_xticklabels([str(m) for m in meta["m_list"]])
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.tick_params(axis="y", which="minor", labelsize=6)
            ax.set_xlabel("M")
            ax.set_ylabel("us per call (log)")
            ax.set_title(f"{set_name} {name} {k}x{n} (KxN), W{bits} g{meta['group_size']}",
                         fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=6)
    fig.suptitle(f"{meta['device_name']}: {meta['command']}", fontsize=8,
                 y=1 - 0.1 / fig.get_figheight(), va="top")  # fixed inches from the top
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def default_out_dir(args):
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" \
        else torch.device("cpu")
    slug = _slug(device_name(device))
    return RESULTS_DIR / (slug + ("-prefill" if args.prefill else "")
                          + ("-quick" if args.quick else ""))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    out_dir = Path(args.out_dir) if args.out_dir else default_out_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)

    def save(result):
        (out_dir / "results.json").write_text(json.dumps(result, indent=1))
        write_markdown(result, out_dir / "results.md")

    result = run(args, argv, checkpoint=save)
    save(result)
    written = ["results.json", "results.md"]
    if not args.no_plot:
        if write_plot(result, out_dir / "results.png"):
            written.append("results.png")
        else:
            print("note: matplotlib is not installed; no plot written "
                  "(pip install matplotlib)", file=sys.stderr)
    bad = [r for r in result["rows"] if r["status"] == "error"
           or (r["rel_err"] is not None and r["rel_err"] > 1e-2)]
    print(f"wrote {', '.join(written)} to {out_dir} ({len(result['rows'])} rows, copy "
          f"bandwidth {result['meta']['copy_bandwidth_gbps']:.0f} GB/s"
          + (f"; {len(bad)} rows with errors or rel err > 1e-2" if bad else "") + ")")
    return result


if __name__ == "__main__":
    main()

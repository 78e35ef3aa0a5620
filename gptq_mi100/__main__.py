"""Main job: `python -m gptq_mi100 [--device cpu|cuda] [--k K --n N --m M --bits B]`.

`python -m gptq_mi100 selftest [--device cpu|cuda]` instead runs the load-time self-check
(gptq_mi100/selfcheck.py) over every bit width, group size, act-order and activation dtype on
the device, prints the table and exits non-zero if a kernel is wrong.

`python -m gptq_mi100 tune [--shapes NAME | --config PATH --tp N | --shape K,N ...]` measures
every kernel and tile choice on the device for those layer shapes and M = 1..64, writes the
winners to the tuned table that `auto` follows (gptq_mi100/tuner.py) and prints it.

Builds the extension in place if it is missing (pip install --no-build-isolation -e .),
runs one GEMM per available kernel on a Qwen3-32B TP=4 down_proj-shaped layer, checks it
against the fp32 reference, and prints the time per call and the weight bandwidth as a
fraction of this card's copy bandwidth. On a GPU the time is the benchmark suite's graph
method (gptq_mi100.timing: 24+ calls per graph over weight copies past L2, copy bandwidth
and launch floor measured in the same run); on the CPU it is the median wall time.
"""

import argparse
import os
import statistics
import time
import subprocess
import sys


def ensure_built():
    try:
        import gptq_mi100.ops  # noqa: F401
        return
    except ImportError as e:
        from gptq_mi100._loader import ExtensionNotBuiltError
        if not isinstance(e, ExtensionNotBuiltError):
            raise
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, "setup.py")):
        raise SystemExit("gptq_mi100._C is missing and no source tree is here to build it")
    installed = _installed_elsewhere(root)
    if installed:  # do not replace a regular install with an editable one behind its back
        raise SystemExit(
            f"python -m gptq_mi100: this runs the unbuilt source tree in {root} (the current "
            f"directory shadows the installed gptq_mi100 in {installed}); run it from another "
            "directory, or build the tree in place with pip install --no-build-isolation -e .")
    print("gptq_mi100: building the extension (pip install --no-build-isolation -e .)",
          flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                           "--no-deps", "-e", root])
    os.execv(sys.executable, [sys.executable, "-m", "gptq_mi100"] + sys.argv[1:])


def _installed_elsewhere(root):
    """Directory of a built gptq_mi100 on sys.path outside the source tree `root`, or None."""
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if path == root:
            continue
        pkg = os.path.join(path, "gptq_mi100")
        if os.path.isdir(pkg) and any(f.startswith("_C") for f in os.listdir(pkg)):
            return pkg
    return None


def _layer_type(name):
    """q_proj / k_proj / gate_proj / lm_head ...: a module name without its layer index."""
    return name.rpartition(".")[2]


def run_model(args):
    """`--model PATH`: per layer type of the loaded checkpoint, which kernel `auto` takes at
    M = --tokens and its time (graph method on a GPU); then the whole forward's time."""
    import torch
    from gptq_mi100 import checkpoint, ops, timing
    from gptq_mi100.nn import GPTQLinear

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("python -m gptq_mi100: --device cuda, but this torch sees no GPU")
    if args.tokens < 1:
        raise SystemExit(f"python -m gptq_mi100: --tokens must be positive, got {args.tokens}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model = checkpoint.load_model(args.model, device=device)
    except (OSError, ValueError, ImportError) as e:
        raise SystemExit(f"python -m gptq_mi100: cannot load {args.model}: {e}")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, GPTQLinear)]
    print(f"{args.model}: {type(model).__name__}, {len(layers)} GPTQ linears, device {device}, "
          f"M = {args.tokens} tokens")
    timer = timing.Timer(device, replays=20, repeats=5)
    seen = {}
    for name, layer in layers:
        kind = _layer_type(name)
        if kind in seen:
            seen[kind][0] += 1
            continue
        x = torch.randn(args.tokens, layer.in_features, device=device).half()
        ops.reset_path_counts()
        layer(x)
        took = [k for k, v in ops.path_counts().items() if v] or ["?"]
        us = statistics.median(timer.time_us([lambda layer=layer, x=x: layer(x)]))
        seen[kind] = [1, layer, took[0], us]
    print(f"  {'layer type':12s} {'count':>5s} {'K x N':>13s} {'bits':>4s} {'group':>5s} "
          f"{'kernel':15s} {'us/call':>9s}")
    for kind, (count, layer, kernel, us) in seen.items():
        print(f"  {kind:12s} {count:5d} {f'{layer.in_features}x{layer.out_features}':>13s} "
              f"{layer.bits:4d} {layer.group_size:5d} {kernel:15s} {us:9.2f}")
    vocab = getattr(model.config, "vocab_size", 32000)
    ids = torch.randint(0, vocab, (1, args.tokens), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)
    with torch.no_grad():
        logits = model(ids).logits
        samples = []
        for _ in range(5):  # the model's own code may not be graph-capturable: wall clock
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            model(ids)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            samples.append(time.perf_counter() - t0)
    if not torch.isfinite(logits).all():
        raise SystemExit("python -m gptq_mi100: the model's logits are not finite")
    print(f"  whole forward of {args.tokens} tokens: {statistics.median(samples) * 1e3:.2f} ms "
          "(wall clock, median of 5); per-layer times: one layer, weights L2-warm"
          + (", graph-timed" if device.type == "cuda" else ""))


def run_selftest(args):
    import torch
    from gptq_mi100 import ops, selfcheck
    if args.device not in (None, "cpu", "cuda"):
        raise SystemExit(f"python -m gptq_mi100: --device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("python -m gptq_mi100: --device cuda, but this torch sees no CUDA/HIP GPU "
                         f"(torch {torch.__version__}); use --device cpu")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gptq_mi100 {ops.build_info()}; self-check on {device} ({name})")
    results = selfcheck.run(device)
    print(selfcheck.format_table(results))
    wrong = sorted({r.kernel for r in results if not r.ok})
    checked = sum(1 for r in results if r.detail == "")
    print(f"{checked} checks passed, {len(results) - checked} not applicable"
          + (f", WRONG: {', '.join(wrong)}" if wrong else ""))
    if wrong:
        raise SystemExit(f"gptq_mi100: self-check failed for {', '.join(wrong)} on {name}; "
                         "please report this table")


class _OneLineParser(argparse.ArgumentParser):
    """User errors: one line and exit status 2, no usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message}\n")


def _int_list(text):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def _k_n(text):
    values = _int_list(text)
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected K,N (in_features,out_features), got {text!r}")
    return values


def run_tune(argv):
    ensure_built()
    import torch
    from gptq_mi100 import ops, tuner
    p = _OneLineParser(prog="python -m gptq_mi100 tune",
                       description="Measure every kernel and tile choice on this device and "
                                   "write the winners to the table auto follows.")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if present")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--shapes", choices=sorted(tuner.PRESETS),
                        help="a model's layer shapes (default qwen3-32b-tp4)")
    source.add_argument("--config", metavar="PATH",
                        help="a checkpoint's config.json (or its directory): qkv, o, gate_up, "
                             "down as vLLM splits them over --tp ranks")
    source.add_argument("--shape", type=_k_n, action="append", metavar="K,N",
                        help="a layer's in_features,out_features (repeatable)")
    p.add_argument("--tp", type=int, default=None, help="tensor-parallel size (with --config)")
    p.add_argument("--m", type=_int_list, default=tuner.DEFAULT_MS, metavar="M,M,...",
                   help="activation rows to measure (default 1,2,4,8,16,32,64)")
    p.add_argument("--bits", type=int, choices=(2, 3, 4, 8), default=4)
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--act-order", action="store_true")
    p.add_argument("--out", metavar="PATH", help="table file to write (default: where this "
                                                 "process reads it, see GPTQ_MI100_TUNE_FILE)")
    args = p.parse_args(argv)
    if args.tp is not None and args.config is None:
        p.error("--tp goes with --config")
    try:
        if args.config is not None:
            shapes = tuner.shapes_from_config(args.config, tp=1 if args.tp is None else args.tp)
        elif args.shape:
            shapes = args.shape
        else:
            config, tp = tuner.PRESETS[args.shapes or "qwen3-32b-tp4"]
            shapes = tuner.shapes_from_config(config, tp)
    except ValueError as e:
        p.error(str(e))
    if args.device == "cuda" and (not torch.cuda.is_available()
                                  or "backend cpu" in ops.build_info()):
        p.error("--device cuda, but this torch sees no CUDA/HIP GPU or gptq_mi100 was built "
                f"without GPU support ({ops.build_info()}); use --device cpu")
    gpu = torch.cuda.is_available() and "backend cpu" not in ops.build_info()
    device = torch.device(args.device or ("cuda" if gpu else "cpu"))
    try:
        result = tuner.tune(shapes, args.m, device=device, bits=args.bits,
                            group_size=args.group_size, act_order=args.act_order, path=args.out)
    except ValueError as e:  # a shape, M or group size the format cannot have
        p.error(str(e))
    print(tuner.format_table(result.rows, result.measured))
    for d in result.dropped:
        print(f"dropped {d.spec} at {d.bits}-bit {d.k}x{d.n} M={d.m}: {d.reason}")
    reads = ("auto follows it from the first prepare in each process"
             if result.path == tuner.table_path(device)
             else f"set GPTQ_MI100_TUNE_FILE={result.path} for auto to follow it")
    print(f"{len(result.rows)} rows written to {result.path} in {result.seconds:.0f} s; {reads}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tune"]:
        return run_tune(argv[1:])
    p = argparse.ArgumentParser(prog="python -m gptq_mi100", description=__doc__.split("\n")[0])
    p.add_argument("command", nargs="?", default="run", choices=("run", "selftest", "tune"),
                   help="run (default): time one GEMM per kernel; selftest: check every kernel "
                        "auto may pick on the device against the reference, print the table; "
                        "tune: measure kernels and tiles, write the table auto follows "
                        "(`tune --help`)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--k", type=int, default=6400)
    p.add_argument("--n", type=int, default=5120)
    p.add_argument("--m", type=int, default=1)
    p.add_argument("--bits", type=int, default=4, choices=(2, 3, 4, 8))
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--model", default=None, metavar="PATH",
                   help="a GPTQ checkpoint directory (Hugging Face layout): load it, run a few "
                        "tokens, print each layer type's kernel and time")
    p.add_argument("--tokens", type=int, default=8,
                   help="--model: tokens per forward (the M of its GEMMs)")
    args = p.parse_args(argv)
    if args.command == "tune":  # reached only when options came first
        p.error("tune takes its own options after it: python -m gptq_mi100 tune [options]")
    ensure_built()
    if args.command == "selftest":
        return run_selftest(args)
    if args.model is not None:
        return run_model(args)

    import torch
    from gptq_mi100 import kernels, ops, quantize, reference

    if args.device not in (None, "cpu", "cuda"):
        raise SystemExit(f"python -m gptq_mi100: --device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("python -m gptq_mi100: --device cuda, but this torch sees no CUDA/HIP GPU "
                         f"(torch {torch.__version__}); use --device cpu")
    for name in ("k", "n", "m"):
        if getattr(args, name) < (0 if name == "m" else 1):
            raise SystemExit(f"python -m gptq_mi100: --{name} must be positive, got "
                             f"{getattr(args, name)}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"gptq_mi100 {ops.build_info()}; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    try:
        t = quantize.random_gptq(args.k, args.n, args.bits, args.group_size, symmetric=False,
                                 act_order=True, v2_zeros=False, seed=0)
        w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                        t.g_idx.to(device), bits=args.bits, group_size=args.group_size)
    except (ValueError, TypeError) as e:  # a shape this format cannot have: say which
        raise SystemExit(f"python -m gptq_mi100: {e}")
    a = torch.randn(args.m, args.k, generator=torch.Generator().manual_seed(1)).half()
    ref = reference.gemm_reference(a, t.qweight, t.qzeros, t.scales, t.g_idx, args.bits, False)
    weight_bytes = (w.qweight.numel() + w.qzeros.numel()) * 4 + w.scales.numel() * 2
    a_dev = a.to(device)
    failed = False
    from gptq_mi100 import timing
    timer = timing.Timer(device, replays=20, repeats=5)
    copies = [w]
    floor = ""
    if device.type == "cuda":
        l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", None)
        copies += [w._replace(qweight=w.qweight.clone(), qzeros=w.qzeros.clone(),
                              scales=w.scales.clone())
                   for _ in range(timing.n_copies(device, weight_bytes, l2) - 1)]
        floor = f", launch floor {timing.launch_floor_us(timer):.2f} us"
    copy_gbps = timing.copy_bandwidth_gbps(device, timing.COPY_BW_BYTES if device.type == "cuda"
                                           else 256 * 2**20)
    print(f"K x N = {args.k} x {args.n}, M = {args.m}, {args.bits}-bit, group "
          f"{args.group_size}, act-order, layout {w.layout}; weight+scale+zero bytes "
          f"{weight_bytes / 1e6:.1f} MB; copy bandwidth {copy_gbps:.0f} GB/s{floor}")
    for kernel in kernels.kernel_names(device.type):
        try:
            out = ops.gemm(a_dev, w, kernel=kernel)
        except ValueError as e:  # a kernel for the other layout, or one that refuses
            print(f"  {kernel:15s} skipped: {str(e).splitlines()[0][:100]}")
            continue
        rel = ((out.float().cpu() - ref).norm() / ref.norm()).item()
        ok = torch.isfinite(out).all().item() and rel < 2e-3
        failed |= not ok
        samples = timer.time_us([lambda wc=wc, kernel=kernel: ops.gemm(a_dev, wc, kernel=kernel)
                                 for wc in copies])
        us = statistics.median(samples)
        gbps = weight_bytes / us / 1e3
        print(f"  {kernel:15s} {us:10.2f} us  {gbps:8.1f} GB/s = {100 * gbps / copy_gbps:5.1f}% "
              f"of copy  rel err {rel:.2e}  {'ok' if ok else 'WRONG'}")
    print("rel err = ||out - ref|| / ||ref|| against the fp32 dequantize + matmul reference; "
          "ok = finite and rel err < 2e-3 (fp16 output rounding is ~5e-4)")
    if failed:
        raise SystemExit("gptq_mi100: a kernel disagrees with the reference")


if __name__ == "__main__":
    main()

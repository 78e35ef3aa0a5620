"""Self-check: `python -m gptq_mi100 [--device cpu|cuda] [--k K --n N --m M --bits B]`.

Builds the extension in place if it is missing (pip install --no-build-isolation -e .),
runs one GEMM per available kernel on a Qwen3-32B TP=4 down_proj-shaped layer, checks it
against the fp32 reference, and prints time and achieved weight bandwidth.
"""

import argparse
import os
import subprocess
import sys
import time


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
    print("gptq_mi100: building the extension (pip install --no-build-isolation -e .)",
          flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                           "--no-deps", "-e", root])
    os.execv(sys.executable, [sys.executable, "-m", "gptq_mi100"] + sys.argv[1:])


def time_call(fn, device, repeats):
    import torch
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(repeats):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
    else:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return times[len(times) // 2]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gptq_mi100", description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--k", type=int, default=6400)
    p.add_argument("--n", type=int, default=5120)
    p.add_argument("--m", type=int, default=1)
    p.add_argument("--bits", type=int, default=4, choices=(2, 3, 4, 8))
    p.add_argument("--group-size", type=int, default=128)
    args = p.parse_args(argv)
    ensure_built()

    import torch
    from gptq_mi100 import kernels, ops, quantize, reference

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"gptq_mi100 {ops.build_info()}; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    t = quantize.random_gptq(args.k, args.n, args.bits, args.group_size, symmetric=False,
                             act_order=True, v2_zeros=False, seed=0)
    w = ops.prepare(t.qweight.to(device), t.qzeros.to(device), t.scales.to(device),
                    t.g_idx.to(device), bits=args.bits, group_size=args.group_size)
    a = torch.randn(args.m, args.k, generator=torch.Generator().manual_seed(1)).half()
    ref = reference.gemm_reference(a, t.qweight, t.qzeros, t.scales, t.g_idx, args.bits, False)
    weight_bytes = (w.qweight.numel() + w.qzeros.numel()) * 4 + w.scales.numel() * 2
    a_dev = a.to(device)
    failed = False
    print(f"K x N = {args.k} x {args.n}, M = {args.m}, {args.bits}-bit, group "
          f"{args.group_size}, act-order; weight+scale+zero bytes {weight_bytes / 1e6:.1f} MB")
    for kernel in kernels.kernel_names(device.type):
        out = ops.gemm(a_dev, w, kernel=kernel)
        rel = ((out.float().cpu() - ref).norm() / ref.norm()).item()
        ok = torch.isfinite(out).all().item() and rel < 2e-3
        failed |= not ok
        us = time_call(lambda: ops.gemm(a_dev, w, kernel=kernel), device, 20)
        print(f"  {kernel:15s} {us:10.1f} us  {weight_bytes / us / 1e3:8.1f} GB/s  "
              f"rel err {rel:.2e}  {'ok' if ok else 'WRONG'}")
    if failed:
        raise SystemExit("gptq_mi100: a kernel disagrees with the reference")


if __name__ == "__main__":
    main()

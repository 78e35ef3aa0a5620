r"""One GEMM call to profile (ncu / compute-sanitizer): warm up, then `--calls` calls.

The calls run between cudaProfilerStart and cudaProfilerStop, and the load-time self-check is
off (GPTQ_MI100_SELFCHECK=off), so `ncu --profile-from-start off` sees only these launches:

    ncu --profile-from-start off --clock-control none --kernel-name regex:transposed_mma \
        --launch-skip 3 --launch-count 1 \
        python3 -m benchmarks.profile_gemm --k 5120 --n 12800 --bits 4 --m 1 --kernel transposed_mma
"""
import argparse
import os

# before the package loads: prepare's self-check launches the profiled kernel too (on its own
# small problems), and ncu's --launch-skip would count those launches
os.environ["GPTQ_MI100_SELFCHECK"] = "off"

import torch  # noqa: E402

from gptq_mi100 import kernels, ops, quantize  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=5120)
    p.add_argument("--n", type=int, default=12800)
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--m", type=int, default=1)
    p.add_argument("--kernel", default="auto")
    p.add_argument("--act-order", action="store_true")
    p.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    p.add_argument("--calls", type=int, default=4)
    p.add_argument("--layout", type=int, choices=(1, 2), default=None,
                   help="weight layout (default: the first one the kernel reads)")
    args = p.parse_args(argv)
    dev = torch.device("cuda")
    t = quantize.random_gptq(args.k, args.n, args.bits, args.group_size, symmetric=False,
                             act_order=args.act_order, v2_zeros=False, seed=1)
    layout = args.layout
    for info in kernels.kernel_table("cuda"):
        if layout is None and info.name == args.kernel.split(":")[0] and info.layouts:
            layout = info.layouts[0]
    w = ops.prepare(t.qweight.to(dev), t.qzeros.to(dev), t.scales.to(dev),
                    t.g_idx.to(dev) if args.act_order else None, bits=args.bits,
                    group_size=args.group_size, layout=layout)
    a = torch.randn(args.m, args.k, device=dev).to(getattr(torch, args.dtype))
    torch.cuda.synchronize()
    torch.cuda.profiler.start()  # ncu --profile-from-start off: only the calls below
    for _ in range(args.calls):
        ops.gemm(a, w, kernel=args.kernel)
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()

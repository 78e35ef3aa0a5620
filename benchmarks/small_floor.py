"""What moving one layer's bytes costs on this card, with bench_gemm's method.

Issue 10's targets price a layer at bytes / (f B) + L, B the copy bandwidth of a 1 GiB copy.
A small layer (qkv W4: 6.8 MB) is read in a few microseconds, where a kernel's ramp and drain
(first loads' latency, the last SMs' tail) are not amortized. This measures that floor with
memory-bound torch kernels of the same byte count, in the same graph form, rotated past L2:

  copy   dst.copy_(src), bytes / 2 each: reads + writes = the layer's bytes
  read   src.sum(dtype=float32) over bytes of fp16: a read-only reduction (torch's own; it
         reads every byte once and writes one value)

Each row: the time, the fraction of B it reaches, and issue 10's M = 1 limit for that shape
(none where the issue sets no bar). `issue10_targets --floor` tables the copy against the bars.

  python -m benchmarks.small_floor --device cuda [--shapes qwen3-32b-tp4 4096x28672] [--bits 4 8]
"""

import argparse
import json
import statistics
from pathlib import Path

import torch

from gptq_mi100.timing import COPY_BW_BYTES, Timer, copy_bandwidth_gbps, launch_floor_us, n_copies

from .issue10_targets import m1_fraction, m1_limit_us
from .shapes import gptq_weight_bytes, parse_shapes


def _time(timer, calls):
    return statistics.median(timer.time_us(calls))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shapes", nargs="+", default=["qwen3-32b-tp4", "4096x28672"])
    ap.add_argument("--bits", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--replays", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type != "cuda":
        raise SystemExit("small_floor times GPU kernels: --device must be a CUDA/HIP device")
    timer = Timer(device, args.replays, 1)
    l2 = torch.cuda.get_device_properties(device).L2_cache_size
    gbps = copy_bandwidth_gbps(device, COPY_BW_BYTES)
    launch = launch_floor_us(timer)
    rows = []
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}: B = {gbps:.0f} GB/s, "
          f"L = {launch:.2f} us")
    print(f"{'shape':>22} {'W':>2} {'bytes':>10} {'copy us':>8} {'%B':>5} {'read us':>8} {'%B':>5} "
          f"{'limit us':>8}")
    for shape in parse_shapes(args.shapes):
        for bits in args.bits:
            nbytes = gptq_weight_bytes(shape.k, shape.n, bits, args.group_size)
            c = n_copies(device, nbytes, l2)
            half = nbytes // 4 * 2  # even, whole fp16 elements for the read
            srcs = [torch.ones(half, dtype=torch.uint8, device=device) for _ in range(c)]
            dsts = [torch.empty_like(s) for s in srcs]
            copy_us = _time(timer, [lambda s=s, d=d: d.copy_(s) for s, d in zip(srcs, dsts)])
            del srcs, dsts
            reads = [torch.ones(nbytes // 2, dtype=torch.float16, device=device) for _ in range(c)]
            read_us = _time(timer, [lambda r=r: r.sum(dtype=torch.float32) for r in reads])
            del reads
            frac = m1_fraction(shape.name, bits)
            limit = m1_limit_us(nbytes, frac, gbps, launch) if frac else None
            row = dict(shape=shape.label, bits=bits, bytes=nbytes, copy_us=copy_us, read_us=read_us,
                       copy_pct_b=100 * nbytes / (copy_us * 1e3) / gbps,
                       read_pct_b=100 * nbytes / (read_us * 1e3) / gbps, limit_us=limit,
                       limit_fraction=frac)
            rows.append(row)
            print(f"{shape.name + ' ' + shape.kxn:>22} {bits:>2} {nbytes:>10} {copy_us:>8.2f} "
                  f"{row['copy_pct_b']:>5.1f} {read_us:>8.2f} {row['read_pct_b']:>5.1f} "
                  f"{'-' if limit is None else f'{limit:.2f}':>8}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(device=torch.cuda.get_device_name(device),
                                            torch=torch.__version__, copy_gbps=gbps,
                                            launch_floor_us=launch, rows=rows), indent=1))


if __name__ == "__main__":
    main()

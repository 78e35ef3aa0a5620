"""Summaries of tp_timeline.cu's raw stamps (TL_DUMP): per case, the phases over all waves and
split by how many waves their SM held (an SM with two blocks against one with one).

    python3 benchmarks/micro/tp_timeline_report.py DIR [DIR2]   (DIR2: a second tree, same cases)
"""
import glob
import os
import struct
import sys

import numpy as np

def load(path):
    with open(path, "rb") as f:
        k, n, m, bits, splits, kslices, grid_x, ns, events = struct.unpack("<9q", f.read(72))
        both = np.frombuffer(f.read(), dtype=np.uint64).reshape(2, -1, events).astype(np.int64)
    raw, clk = both[0], both[1]
    return dict(k=k, n=n, m=m, bits=bits, splits=splits, kslices=kslices, grid_x=grid_x, us=ns / 1000.0), raw, clk


def phases(raw, clk):
    """Per wave: start, first tile, later tile steps, loop end, slice sum, arrival, tail, end (us).
    Positions across waves come from %globaltimer; a wave's own phase lengths from %clock64
    (cycles x the launch's ns per cycle), so a coarse global timer does not round them."""
    t0 = raw[:, 0].min()
    e = raw
    cur = lambda ev: e[:, ev] >= e[:, 0]  # stamped in this launch (not a stale one)
    span_ok = cur(13) & (clk[:, 13] > clk[:, 0]) & (e[:, 13] > e[:, 0])
    ns_per_cycle = float(np.median((e[span_ok, 13] - e[span_ok, 0]) / (clk[span_ok, 13] - clk[span_ok, 0])))
    dt = lambda a, b: (clk[:, a] - clk[:, b]) * ns_per_cycle / 1e3
    out = {"start": (e[:, 0] - t0) / 1e3}
    out["first"] = dt(2, 1)[cur(2)]
    steps = [dt(i, i - 1)[cur(i) & cur(i - 1)] for i in range(3, 12)]
    out["tile"] = np.concatenate(steps)
    out["loop"] = (e[:, 13] - t0) / 1e3
    out["slices"] = dt(14, 13)
    last = cur(16) & (e[:, 18] >= e[:, 16])
    notlast = ~last & cur(15) & (e[:, 17] >= e[:, 15])
    out["write"] = dt(15, 14)[cur(15)]
    out["arrive"] = dt(17, 15)[notlast]
    out["arrive_last"] = dt(16, 15)[last]
    out["tail"] = dt(18, 16)[last]
    end = np.where(last, e[:, 18], e[:, 17])
    out["end"] = (end - t0) / 1e3
    return out, last, ns_per_cycle


def summary(name, v):
    if len(v) == 0:
        return None
    q = np.percentile(v, [0, 10, 50, 90, 100])
    return f"  {name:11s} n={len(v):6d}  " + "  ".join(f"{x:6.2f}" for x in q)


def report(d):
    for path in sorted(glob.glob(os.path.join(d, "case*.bin"))):
        info, raw, clk = load(path)
        ph, last, ns_per_cycle = phases(raw, clk)
        print(f"\n{os.path.basename(path)}: K={info['k']} N={info['n']} M={info['m']} W{info['bits']} "
              f"{info['splits']} splits x {info['kslices']} slices, {info['grid_x']} x {info['splits']} blocks, "
              f"{raw.shape[0]} waves, {info['us']:.2f} us per call, SM clock {1 / ns_per_cycle:.2f} GHz   "
              "(min p10 p50 p90 max, us)")
        for key in ("start", "first", "tile", "loop", "slices", "write", "arrive", "arrive_last", "tail", "end"):
            line = summary(key, ph[key])
            if line:
                print(line)
        sm = raw[:, 19]
        per = np.bincount(sm)
        loads = per[sm]
        for lo, hi, label in ((loads.min(), loads.min(), "least"), (loads.max(), loads.max(), "most")):
            sel = (loads >= lo) & (loads <= hi)
            print(f"  SMs with {label:5s} waves ({lo:3d}): {len(set(sm[sel])):3d} SMs, end p50 "
                  f"{np.median(ph['end'][sel]):6.2f} max {ph['end'][sel].max():6.2f}; loop p50 "
                  f"{np.median(ph['loop'][sel]):6.2f}")


if __name__ == "__main__":
    for d in sys.argv[1:]:
        print(f"==== {d}")
        report(d)

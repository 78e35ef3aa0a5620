"""Issue 10's target table from bench_gemm results (one run for the main table).

    python -m benchmarks.issue10_targets MAIN.json [--act-order AO.json] [--bf16 BF.json]
                                         [--floor FLOOR.json]

MAIN.json: bench_gemm over qwen3-32b-tp4 and 4096x28672, bits 4 and 8, M 1 2 4 8, with
kernels auto fp16_linear int4pack (others ignored). AO.json / BF.json: the same shapes, W4,
auto only, with --act-order / --activations bfloat16 (separate runs: their ratios to the
plain case are taken after scaling both by their run's copy bandwidth).
B (copy bandwidth) and L (launch floor) are the ones MAIN.json measured. FLOOR.json
(benchmarks/small_floor.py): torch's copy of each layer's bytes against the same M = 1 bars,
with that run's own B and L: where even a copy misses a bar, the bar is below this card's floor.
"""
import argparse
import json

M1_FRACTION = {"gate_up": 0.85, "down": 0.85, "4096x28672": 0.85, "qkv": 0.70, "o": 0.70}
W8_FRACTION = {"gate_up": 0.80, "down": 0.80}


def m1_fraction(shape_name, bits):
    """The fraction of B issue 10 asks at M = 1 for that layer and bit width (None: no bar)."""
    return {4: M1_FRACTION, 8: W8_FRACTION}.get(bits, {}).get(shape_name)


def m1_limit_us(nbytes, fraction, copy_gbps, launch_us):
    """Issue 10's M = 1 bar: bytes / (fraction x B) + L."""
    return nbytes / (fraction * copy_gbps * 1e3) + launch_us


def _load(path):
    with open(path) as f:
        d = json.load(f)
    rows = [r for r in d["rows"] if not r["repeat"] and r["status"] == "ok"]
    return d["meta"], rows


def _index(rows):
    t = {}
    for r in rows:
        bits = r["bits"]
        if r["kernel_id"] == "fp16_linear":
            bits = 16
        t[(r["shape"], bits, r["m"], r["kernel_id"])] = r
    return t


def _verdict(measured, limit, smaller_is_better=True):
    ok = measured <= limit if smaller_is_better else measured >= limit
    return "pass" if ok else f"miss by {measured / limit:.2f}x"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("main")
    ap.add_argument("--act-order")
    ap.add_argument("--bf16")
    ap.add_argument("--floor")
    args = ap.parse_args(argv)
    meta, rows = _load(args.main)
    B, L = meta["copy_bandwidth_gbps"], meta["launch_floor_us"]
    t = _index(rows)
    shapes = sorted({r["shape"] for r in rows}, key=lambda s: list(M1_FRACTION).index(s)
                    if s in M1_FRACTION else 99)
    out = [f"B = {B:.0f} GB/s (copy), L = {L:.2f} us (launch floor); command: "
           f"`{meta.get('command', '')}`", "",
           "| target | shape | measured us | limit us | result |", "|---|---|---|---|---|"]

    def auto(shape, bits, m):
        r = t.get((shape, bits, m, "auto"))
        return r["us_per_call"] if r else None

    for s in shapes:  # M = 1, W4 and W8 against bytes / (f B) + L
        for bits in (4, 8):
            frac, r = m1_fraction(s, bits), t.get((s, bits, 1, "auto"))
            if frac is None or r is None:
                continue
            limit = m1_limit_us(r["weight_bytes"], frac, B, L)
            out.append(f"| W{bits} M=1 <= bytes/({frac} B) + L | {s} | {r['us_per_call']:.2f} | "
                       f"{limit:.2f} | {_verdict(r['us_per_call'], limit)} |")
    for s in shapes:  # flat in M
        base = auto(s, 4, 1)
        for m, f in ((2, 1.1), (4, 1.3)):
            v = auto(s, 4, m)
            if base and v:
                out.append(f"| W4 M={m} <= {f} x M=1 | {s} | {v:.2f} | {f * base:.2f} | "
                           f"{_verdict(v, f * base)} |")
    for s in shapes:  # faster than int4pack and fp16 linear, M 1..8
        for m in (1, 2, 4, 8):
            v = auto(s, 4, m)
            for base in ("int4pack", "fp16_linear"):
                r = t.get((s, 4 if base == "int4pack" else 16, m, base))
                if v and r:
                    out.append(f"| W4 faster than {base} | {s} M={m} | {v:.2f} | "
                               f"{r['us_per_call']:.2f} | {_verdict(v, r['us_per_call'])} |")
    for label, path in (("act-order", args.act_order), ("bf16 activations", args.bf16)):
        if not path:
            continue
        m2, rows2 = _load(path)
        t2 = _index(rows2)
        scale = m2["copy_bandwidth_gbps"] / B  # same card, another run: normalise by copy BW
        for s in shapes:
            for m in (1, 2, 4, 8):
                r2, v = t2.get((s, 4, m, "auto")), auto(s, 4, m)
                if r2 and v:
                    w = r2["us_per_call"] * scale
                    out.append(f"| {label} within 10% | {s} M={m} | {w:.2f} | {1.1 * v:.2f} | "
                               f"{_verdict(w, 1.1 * v)} |")
    if args.floor:
        with open(args.floor) as f:
            fl = json.load(f)
        out += ["", f"Same-size floor (benchmarks/small_floor.py, its run: B = {fl['copy_gbps']:.0f} GB/s, "
                f"L = {fl['launch_floor_us']:.2f} us): torch's dst.copy_(src) moving each layer's bytes",
                "", "| bar | shape | copy us | limit us | result |", "|---|---|---|---|---|"]
        for r in fl["rows"]:
            s = r["shape"].split()[1]
            frac = m1_fraction(s, r["bits"])
            if frac is None:
                continue
            limit = m1_limit_us(r["bytes"], frac, fl["copy_gbps"], fl["launch_floor_us"])
            out.append(f"| W{r['bits']} M=1 <= bytes/({frac} B) + L | {s} | {r['copy_us']:.2f} | "
                       f"{limit:.2f} | {_verdict(r['copy_us'], limit)} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()

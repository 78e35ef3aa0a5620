"""Issue 11's target table from bench_gemm results (one run: the ratios are within it).

    python -m benchmarks.issue11_targets RUN.json [--kernel SPEC ...]

RUN.json: bench_gemm over qwen3-32b-tp4 and 4096x28672 (Llama-3-8B gate_up), bits 4 and 8,
M 1 8 16 32 64 128 512, with auto, fp16_linear, int4pack and any kernel specs to judge
(e.g. --kernels auto transposed_mma:mt=32 transposed_mma:mt=64 fp16_linear int4pack).
Each target is judged for `auto` and for every --kernel spec given (default: every gptq_mi100
kernel id in the run), so a tile the tuner could pick is judged before auto adopts it.
"""
import argparse

from benchmarks.issue10_targets import _index, _load, _verdict

FLAT = ((8, 1.15), (16, 1.25), (32, 1.4), (64, 1.8))  # M, limit x (time at M = 1)
BEATS_M = (8, 16, 32, 64)
LARGE_M = (128, 512)
QWEN = ("qkv", "o", "gate_up", "down")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--kernel", action="append", default=None,
                    help="kernel id (spec) to judge besides auto; repeatable")
    args = ap.parse_args(argv)
    meta, rows = _load(args.run)
    t = _index(rows)
    baselines = {"fp16_linear", "int4pack"}
    judged = ["auto"] + (args.kernel or sorted({r["kernel_id"] for r in rows
                                                if r["kernel_id"] not in baselines | {"auto"}}))
    shapes = [s for s in QWEN + ("4096x28672",) if any(k[0] == s for k in t)]
    out = [f"B = {meta['copy_bandwidth_gbps']:.0f} GB/s (copy), L = {meta['launch_floor_us']:.2f} us; "
           f"command: `{meta.get('command', '')}`", "",
           "| target | kernel | shape | measured | limit | result |", "|---|---|---|---|---|---|"]

    def us(shape, bits, m, kern):
        r = t.get((shape, 16 if kern == "fp16_linear" else bits, m, kern))
        return r["us_per_call"] if r and r["us_per_call"] else None

    for kern in judged:
        for s in shapes:  # flat in M, W4: time at M against time at M = 1 (the kernel's own)
            base = us(s, 4, 1, kern)
            for m, f in FLAT:
                v = us(s, 4, m, kern)
                if base and v:
                    out.append(f"| W4 M={m} <= {f} x M=1 | {kern} | {s} | {v:.2f} us | "
                               f"{f * base:.2f} us | {_verdict(v, f * base)} |")
        for s in shapes:  # M 8..64 faster than fp16 and int4 (Qwen3 shapes and Llama gate_up)
            for bits in (4, 8):
                for m in BEATS_M:
                    v = us(s, bits, m, kern)
                    for b in ("fp16_linear", "int4pack"):
                        r = us(s, bits, m, b)
                        if v and r and not (b == "int4pack" and bits == 8):
                            out.append(f"| W{bits} faster than {b} | {kern} | {s} M={m} | "
                                       f"{v:.2f} us | {r:.2f} us | {_verdict(v, r)} |")
        for s in shapes:  # large M: <= 1.05 x fp16, extra memory < 1% of the fp16 weight
            for m in LARGE_M:
                r = t.get((s, 4, m, kern))
                f16 = us(s, 4, m, "fp16_linear")
                if r and r["us_per_call"] and f16:
                    out.append(f"| W4 M={m} <= 1.05 x fp16 | {kern} | {s} | {r['us_per_call']:.2f} us | "
                               f"{1.05 * f16:.2f} us | {_verdict(r['us_per_call'], 1.05 * f16)} |")
                if r and r.get("extra_mem_bytes") is not None:
                    limit = 0.01 * 2 * r["k"] * r["n"]
                    out.append(f"| W4 M={m} extra memory < 1% of fp16 W | {kern} | {s} | "
                               f"{r['extra_mem_bytes'] / 2**20:.2f} MiB | {limit / 2**20:.2f} MiB | "
                               f"{_verdict(r['extra_mem_bytes'], limit)} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()

"""Where a kernel's warps wait, by reason and by SASS instruction, from ncu's source page.

ncu's text report shows only the top stall reason; its source page (per SASS instruction,
`--csv`) has every reason's samples. This prints both summaries (benchmarks/NOTES.md entry 21
found the scale packing this way):

    ncu --profile-from-start off --clock-control none --kernel-name regex:transposed_mma \\
        --launch-skip 2 --launch-count 1 --set full --import-source no -o /tmp/r/k \\
        python3 -m benchmarks.profile_gemm --k 5120 --n 12800 --bits 4 --m 1 --kernel transposed_mma
    ncu -i /tmp/r/k.ncu-rep --page source --print-source sass --csv > /tmp/r/k.csv
    python3 tools/ncu_stalls.py /tmp/r/k.csv [--top 15]

(`tools/device_session.sh stalls` runs all three.)
"""
import argparse
import csv
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"


def _int(text):
    try:
        return int(text.replace(",", "")) if text else 0
    except ValueError:
        return 0


def read(path):
    """(kernel name, header, rows) of an `ncu --page source --csv` export."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    start = next((i for i, r in enumerate(rows) if SAMPLES in r), None)
    if start is None:
        raise ValueError(f"{path}: no '{SAMPLES}' column: not ncu's source page as CSV")
    kernel = next((r[1] for r in rows[:start] if len(r) > 1 and r[0] == "Kernel Name"), "?")
    return kernel, rows[start], [r for r in rows[start + 1:] if len(r) == len(rows[start])]


def summarize(kernel, header, rows, top=15):
    col = {h: i for i, h in enumerate(header)}
    reasons = [h for h in header if h.startswith("stall_") and "Not Issued" not in h]
    totals = {r: sum(_int(row[col[r]]) for row in rows) for r in reasons}
    total = sum(totals.values())
    out = [f"# {kernel}: warp stall samples by reason (total {total})"]
    for r, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        if v:
            out.append(f"{r:24s} {v:7d} {100.0 * v / max(total, 1):5.1f}%")
    out.append("")
    out.append("# instructions with the most samples: SASS index, samples, times executed, "
               "instruction | reasons")
    order = sorted(range(len(rows)), key=lambda i: -_int(rows[i][col[SAMPLES]]))
    for i in order[:top]:
        row = rows[i]
        if not _int(row[col[SAMPLES]]):
            break
        why = " ".join(f"{r[6:]}={row[col[r]]}" for r in reasons if _int(row[col[r]]))
        executed = row[col["Instructions Executed"]] if "Instructions Executed" in col else ""
        source = row[col["Source"]].strip() if "Source" in col else ""
        out.append(f"{i:5d} {_int(row[col[SAMPLES]]):6d} {executed:>7s}  {source[:58]:58s} | {why}")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", help="ncu -i REPORT --page source --print-source sass --csv > this")
    p.add_argument("--top", type=int, default=15, help="instructions to list (default 15)")
    args = p.parse_args(argv)
    try:
        print(summarize(*read(args.csv), top=args.top))
    except (OSError, ValueError) as e:
        print(f"ncu_stalls: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

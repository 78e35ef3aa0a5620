"""One line per (shape, M): us per call of each kernel, rel err, and what auto ran."""
import collections, json, sys

for d in sys.argv[1:]:
    try:
        rows = json.load(open(f"{d}/results.json"))["rows"]
    except Exception as e:  # a part cut by its time limit
        print(d, e)
        continue
    t = collections.defaultdict(dict)
    for r in rows:
        if r.get("repeat") or r.get("us_per_call") is None:
            continue
        name = "auto" if r["kernel"].startswith("auto") else r["kernel_id"]
        name = name.replace("transposed_mma:", "") + ("" if r["bits"] == 16 else f"/w{r['bits']}")
        t[(r["shape"], r["m"])][name] = (r["us_per_call"], r.get("rel_err") or 0, r.get("path"))
    for k in sorted(t, key=str):
        print(d.rsplit("/", 1)[-1], *k, "  ".join(f"{a}={v[0]:.2f} ({v[1]:.1e}{', ' + v[2] if v[2] else ''})"
                                                  for a, v in sorted(t[k].items())))

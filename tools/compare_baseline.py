"""A device_session run directory: `auto` of the tree under test (issue10/main, issue10/ao) against
the tree built from .baseline (baseline/main, baseline/ao), and the forced split sweep (splits/),
as markdown tables. Usage: python tools/compare_baseline.py RUNDIR [NEW BASE]; NEW and BASE name
two trees' directories in RUNDIR (default issue10 baseline; e.g. baseline baseline2 compares
.baseline2's tree against .baseline's)."""
import json, sys, os, collections
r = sys.argv[1]
new_dir, base_dir = sys.argv[2:4] if len(sys.argv) >= 4 else ('issue10', 'baseline')
def load(p):
    p = os.path.join(r, p, 'results.json')
    if not os.path.exists(p): return []
    return [x for x in json.load(open(p))['rows'] if x.get('status') == 'ok']
def table(rows):
    t = collections.defaultdict(list)
    for x in rows:
        t[(x['shape'], x['bits'], x['m'], x['kernel_id'])].append(x['us_per_call'])
    return {k: min(v) for k, v in t.items()}
new = table(load(f'{new_dir}/main')); base = table(load(f'{base_dir}/main'))
nao = table(load(f'{new_dir}/ao')); bao = table(load(f'{base_dir}/ao'))
print("| shape | bits | M | base auto | new auto | change | base fp16 | new fp16 |")
print("|---|---|---|---|---|---|---|---|")
for k in sorted(base):
    if k[3] != 'auto': continue
    if k in new:
        f = (k[0], 16, k[2], 'fp16_linear')
        print(f"| {k[0]} | W{k[1]} | {k[2]} | {base[k]:.2f} | {new[k]:.2f} | {100*(new[k]/base[k]-1):+.0f}% | {base.get(f,0):.2f} | {new.get(f,0):.2f} |")
print("\nact-order overhead (ao / plain auto, same tree)")
print("| shape | M | base plain | base ao | base over | new plain | new ao | new over |")
print("|---|---|---|---|---|---|---|---|")
for k in sorted(bao):  # an act-order row and the plain row of the same key, in each tree
    if k in nao and k in base and k in new:
        print(f"| {k[0]} | {k[2]} | {base[k]:.2f} | {bao[k]:.2f} | {100*(bao[k]/base[k]-1):+.0f}% | {new[k]:.2f} | {nao[k]:.2f} | {100*(nao[k]/new[k]-1):+.0f}% |")
sp = table(load('splits'))
if sp:
    print("\nsplit sweep (W4)")
    ks = sorted({k[3] for k in sp})
    print("| shape | M | " + " | ".join(ks) + " |")
    print("|---|---|" + "---|" * len(ks))
    for sh, m in sorted({(k[0], k[2]) for k in sp}):
        print(f"| {sh} | {m} | " + " | ".join(f"{sp[(sh,4,m,kk)]:.2f}" if (sh,4,m,kk) in sp else "-" for kk in ks) + " |")

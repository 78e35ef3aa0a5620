# session 18, call 1: NOTES 48 (session 17's call 3, never run): M = 64 on the three trees, then
# the GPU suite if the ring wins (a profile of it if not), then M = 32, each as the deadline allows.
# Tree = main + benchmarks/pending/entry48.patch (committed as d5e7e81, reverted unmeasured in
# 3a719ce); .baseline = its parent; .baseline2 = the tree with kMmaRingB = false (lane-only
# ring). Set-up:
#   bash tools/make_baseline.sh HEAD && git apply benchmarks/pending/entry48.patch && git commit -am ... &&
#   bash tools/make_baseline.sh HEAD .baseline2 &&
#   sed -i 's/kMmaRingB = true/kMmaRingB = false/' .baseline2/csrc/gpu/gptq_transposed.cu &&
#   git rev-parse --short HEAD > .treerev        (carry [".baseline", ".baseline2"])
A=$OUT; mkdir -p /tmp/r; export OUT=/tmp/r ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-440} )) \
  GPTQ_MI100_GIT_COMMIT="$(cat .treerev)" MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
trees="tree baseline baseline2"
for t in baseline baseline2; do
  (cd .$t && rm -rf build gptq_mi100/*.so && python3 setup.py build_clib build_ext --inplace > /tmp/r/$t-build.log 2>&1; echo "$t build rc $?") &
done
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r/build.log 2>&1 || { tail -30 /tmp/r/build.log; exit 1; }
wait; echo "builds ${SECONDS}s"
S="--device cuda --no-plot --shapes qwen3-32b-tp4 4096x28672"
M="transposed_mma"
bench() { # tree, M, row tile: W4/W8 on that tree, skipped past the deadline
  local t=$1 d=. rev=$(cat .treerev); [ $1 != tree ] && d=.$1 rev=$(awk '{print substr($2, 1, 7)}' .$1/REV)
  [ $(( DEADLINE - $(date +%s) )) -lt 50 ] && { echo "$t-m$2 skipped"; return; }
  (cd $d && GPTQ_MI100_GIT_COMMIT=$rev timeout 90 python3 -m benchmarks.bench_gemm $S --bits ${BITS:-4 8} --m $2 \
     --kernels auto $M:mt=$3,sw=1 $M:mt=$3,sw=2 fp16_linear --out-dir /tmp/r/$t-m$2 > /tmp/r/$t-m$2.log 2>&1)
  echo "$t-m$2 ${SECONDS}s"
}
for t in $trees; do bench $t 64 64; done
python3 benchmarks/results/session16-2026-12-07/summary.py $(for t in $trees; do echo /tmp/r/$t-m64; done)
tar czf $ARCHIVE -C /tmp/r .
# the GPU suite only if the tree's W4 M = 64 auto beats the baseline's by 7% (geometric mean)
python3 - <<'PY' > /tmp/r/verdict.txt; cat /tmp/r/verdict.txt
import json, math
def auto(t):
    return {r["shape"]: r["us_per_call"] for r in json.load(open(f"/tmp/r/{t}-m64/results.json"))["rows"]
            if r["kernel"].startswith("auto") and r["bits"] == 4 and not r.get("repeat") and r.get("us_per_call")}
a, b = auto("tree"), auto("baseline")
g = math.exp(sum(math.log(a[s] / b[s]) for s in a) / len(a))
print(f"tree/baseline W4 M64 auto geomean {g:.3f}", "WIN" if g < 0.93 else "NO-WIN")
PY
if grep -q ' WIN' /tmp/r/verdict.txt; then
  SKIP_BUILD=1 TESTS_LIMIT=110 bash tools/device_session.sh tests-a tests-b > /tmp/r/tests.log 2>&1
else
  SKIP_BUILD=1 STALLS="5120 12800 4 64 transposed_mma:mt=64,sw=2" STALLS_NAME=stalls-gate_up \
    bash tools/device_session.sh stalls > /tmp/r/tests.log 2>&1
fi
grep -E 'passed|failed|stall|skipped' /tmp/r/tests.log | tail -4
tar czf $ARCHIVE -C /tmp/r .
for t in $trees; do bench $t 32 32; done
python3 benchmarks/results/session16-2026-12-07/summary.py $(for t in $trees; do echo /tmp/r/$t-m32; done)
tar czf $ARCHIVE -C /tmp/r .

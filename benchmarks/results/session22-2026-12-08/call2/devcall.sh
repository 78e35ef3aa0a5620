#!/bin/bash
# Session 22, call 2: entry 54 with `auto` taking 16 waves where NOTES 56's rule says, and entry
# 53 alone, against main (entry 55 dropped after call 1).
# Set-up on the development machine, from main:
#   rev=$(git rev-parse --short HEAD); bash tools/make_baseline.sh $rev    # .baseline = main
#   for e in 53 54; do git apply benchmarks/pending/entry$e.patch; done; echo "$rev+53+54" > .treerev
# Run: LIMIT=450 bash benchmarks/results/session22-2026-12-08/call2/devcall.sh  (carry [".baseline"])
A=$OUT; R=/tmp/s22c2r; rm -rf $R /tmp/s22raw; mkdir -p $R
export DEADLINE=$(( $(date +%s) + ${LIMIT:-450} )) MAX_JOBS=12 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $R/env.txt 2>&1
python3 -c "import torch; print(torch.__version__)" >> $R/env.txt; cat .treerev >> $R/env.txt; date -u >> $R/env.txt
NV="nvcc -O3 -std=c++17 -arch=sm_90 -I csrc/gpu benchmarks/micro/tp_timeline.cu csrc/problem_check.c"
(cd .baseline && $NV -o /tmp/tl2_base > $R/probe-base-build.log 2>&1; echo "probe base rc $?" >> $R/env.txt) &
($NV -o /tmp/tl2_tree > $R/probe-tree-build.log 2>&1; echo "probe tree rc $?" >> $R/env.txt) &
(cd .baseline && rm -rf build gptq_mi100/*.so && python3 setup.py build_clib build_ext --inplace > $R/baseline-build.log 2>&1; echo "baseline build rc $?" >> $R/env.txt) &
(python3 -m pip install -q --no-build-isolation --no-deps -e . > $R/build.log 2>&1; echo "tree build rc $?" >> $R/env.txt) &
wait; echo "builds ${SECONDS}s"; cat $R/env.txt
# the same forced split plans in both trees (53's arrival), and auto (the tree: NOTES 56's rule)
QKV=5120,2560; GU=5120,12800; DN=6400,5120
CASES="$QKV,1,0,0 $QKV,1,3,8 $QKV,8,3,8 1280,2560,1,2,8 $DN,1,0,0 $DN,1,13,1 $GU,1,0,0 $GU,1,5,1 $QKV,16,0,0 $QKV,1,0,0,8"
for b in base tree; do
  mkdir -p /tmp/s22raw/$b
  TL_DUMP=/tmp/s22raw/$b /tmp/tl2_$b $CASES > $R/tl_$b.txt 2>&1; echo "probe $b rc $?"
done
tar -C /tmp/s22raw -czf $A/raw2.tgz .
python3 benchmarks/micro/tp_timeline_report.py /tmp/s22raw/base /tmp/s22raw/tree > $R/tl_report.txt 2>&1
grep -h "^case\|us per call\|arrive \|^====" $R/tl_report.txt | cut -c1-150
echo "probe done ${SECONDS}s"
left() { echo $(( DEADLINE - $(date +%s) )); }
bench() { # tree dir, name, rev, kernels...
  [ $(left) -lt 60 ] && { echo "$2 skipped"; return; }
  local d=$1 n=$2 r=$3; shift 3
  (cd $d && GPTQ_MI100_GIT_COMMIT=$r timeout 150 python3 -m benchmarks.bench_gemm --device cuda --no-plot \
     --shapes qwen3-32b-tp4 4096x28672 --bits 4 8 --m 1 2 4 8 --kernels "$@" --out-dir $R/$n > $R/$n.log 2>&1)
  echo "$n ${SECONDS}s"
}
bench . tree "$(cat .treerev)" auto transposed_mma:splits=3,kslices=8
bench .baseline baseline "$(cut -d' ' -f1 .baseline/REV)" auto transposed_mma:splits=3,kslices=8
python3 benchmarks/results/session16-2026-12-07/summary.py $R/tree $R/baseline
tar czf $A/x.tgz -C $R .
[ $(left) -gt 40 ] && GPTQ_MI100_TEST_DEVICE=cuda timeout $(( $(left) - 10 )) python3 -m pytest -q -n 8 \
  -p no:cacheprovider tests/test_kernel_specs.py tests/test_gemm.py > $R/tests.log 2>&1; tail -3 $R/tests.log
grep -E "^FAILED" $R/tests.log | head
tar czf $A/x.tgz -C $R .

#!/bin/bash
# NOTES 52-55 in one call (prepared in sessions 21 and 22, which got no device machine: not yet run).
# Set-up on the development machine, from main (csrc/ of 1c704c6 or later without 53-55):
#   rev=$(git rev-parse --short HEAD)
#   bash tools/make_baseline.sh $rev                       # .baseline = main
#   for e in 53 54 55; do git apply benchmarks/pending/entry$e.patch; done   # in order: 54 and 55 touch the same lines
#   echo "$rev+53+54+55" > .treerev                        # the tree = main + 53 + 54 + 55
# Run: LIMIT=480 bash benchmarks/results/session21-2026-12-08/call1/devcall.sh  (carry [".baseline"])
# Parts: probe binaries of three kernel files (benchmarks/micro/tp_timeline.cu: main, the tree
# without 55 (t54), the tree; raw stamps in raw.tgz, `python3 benchmarks/micro/tp_timeline_report.py
# DIR...` reads them); the row-8 kernel's SASS (t54 whole, the tree's prefetch lines); both
# extensions built and benchmarked (auto, 1 x 8, and on the tree kslices=16); the tree's GEMM and
# spec tests.
A=$OUT; ROOT=$PWD; R=/tmp/s21c1r; T54=/tmp/s21t54; rm -rf $R /tmp/s21raw $T54; mkdir -p $R $T54/benchmarks
export DEADLINE=$(( $(date +%s) + ${LIMIT:-480} )) MAX_JOBS=12 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $R/env.txt 2>&1
python3 -c "import torch; print(torch.__version__)" >> $R/env.txt; cat .treerev >> $R/env.txt; date -u >> $R/env.txt
cp -r csrc $T54/ && cp -r benchmarks/micro $T54/benchmarks/ && (cd $T54 && git apply -R --include='csrc/*' \
  $ROOT/benchmarks/pending/entry55.patch) || echo "t54 copy failed" >> $R/env.txt
NV="nvcc -O3 -std=c++17 -arch=sm_90 -I csrc/gpu benchmarks/micro/tp_timeline.cu csrc/problem_check.c"
(cd .baseline && $NV -o /tmp/tl_base > $R/probe-base-build.log 2>&1; echo "probe base rc $?" >> $R/env.txt) &
($NV -o /tmp/tl_tree > $R/probe-tree-build.log 2>&1; echo "probe tree rc $?" >> $R/env.txt) &
(cd $T54 && $NV -o /tmp/tl_t54 > $R/probe-t54-build.log 2>&1; echo "probe t54 rc $?" >> $R/env.txt) &
(cd .baseline && rm -rf build gptq_mi100/*.so && python3 setup.py build_clib build_ext --inplace > $R/baseline-build.log 2>&1; echo "baseline build rc $?" >> $R/env.txt) &
(python3 -m pip install -q --no-build-isolation --no-deps -e . > $R/build.log 2>&1; echo "tree build rc $?" >> $R/env.txt) &
wait; echo "builds ${SECONDS}s"; cat $R/env.txt
QKV=5120,2560; O=2048,5120; GU=5120,12800; DN=6400,5120; LL=4096,28672
CASES="$QKV,1,0,0 $QKV,1,1,8 $QKV,1,2,8 $QKV,1,1,4 $QKV,1,1,16 $QKV,8,0,0 $QKV,8,1,8 $QKV,8,1,16
$QKV,1,0,0,8 $QKV,1,1,8,8 $QKV,1,1,16,8 $O,1,0,0 $O,1,1,16 $DN,1,0,0 $DN,1,1,8 $DN,1,2,4 $DN,1,1,16
$GU,1,0,0 $GU,1,1,8 $LL,1,0,0 512,2560,1,0,0 1024,2560,1,1,8 1280,2560,1,0,0 1280,2560,1,1,8
$QKV,16,0,0 $O,16,0,0 $DN,16,0,0"
for pass in 1 2; do
  for b in base t54 tree; do
    mkdir -p /tmp/s21raw/${b}_$pass
    TL_DUMP=/tmp/s21raw/${b}_$pass /tmp/tl_$b $CASES > $R/tl_${b}_$pass.txt 2>&1
  done
done
tar -C /tmp/s21raw -czf $A/raw.tgz .
python3 benchmarks/micro/tp_timeline_report.py /tmp/s21raw/base_1 /tmp/s21raw/t54_1 /tmp/s21raw/tree_1 > $R/tl_report.txt 2>&1
R8=_Z26gptq_transposed_mma_kernelILi4ELi0ELi8ELi1ELi8EEv7tp_args  # W4 fp16 row tile 8, 8 waves (NOTES 55)
cuobjdump -sass -fun $R8 /tmp/tl_t54 2>&1 | gzip > $A/sass_t54.txt.gz
cuobjdump -sass -fun $R8 /tmp/tl_tree 2>&1 | grep -i -m 8 "cctl\|pref\|\.pf" | tee $R/sass_tree_prefetch.txt
grep -h "^case\|us per call" $R/tl_report.txt | cut -c1-150
echo "probe done ${SECONDS}s"
left() { echo $(( DEADLINE - $(date +%s) )); }
bench() { # tree dir, name, rev, kernels...
  [ $(left) -lt 40 ] && { echo "$2 skipped"; return; }
  local d=$1 n=$2 r=$3; shift 3
  (cd $d && GPTQ_MI100_GIT_COMMIT=$r timeout 90 python3 -m benchmarks.bench_gemm --device cuda --no-plot \
     --shapes qwen3-32b-tp4 4096x28672 --bits 4 --m 1 8 --kernels "$@" --out-dir $R/$n > $R/$n.log 2>&1)
  echo "$n ${SECONDS}s"
}
bench . tree "$(cat .treerev)" auto transposed_mma:splits=1,kslices=8 transposed_mma:splits=1,kslices=16
bench .baseline baseline "$(cut -d' ' -f1 .baseline/REV)" auto transposed_mma:splits=1,kslices=8
python3 benchmarks/results/session16-2026-12-07/summary.py $R/tree $R/baseline
tar czf $A/x.tgz -C $R .
[ $(left) -gt 40 ] && GPTQ_MI100_TEST_DEVICE=cuda timeout $(( $(left) - 10 )) python3 -m pytest -q -x -n 8 \
  -p no:cacheprovider tests/test_kernel_specs.py tests/test_gemm.py > $R/tests.log 2>&1; tail -3 $R/tests.log
tar czf $A/x.tgz -C $R .

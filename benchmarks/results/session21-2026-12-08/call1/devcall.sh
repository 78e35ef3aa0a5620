#!/bin/bash
# Session 21, call 1: NOTES 52's per-wave timeline and NOTES 53's arrival, side by side.
# Set-up: bash tools/make_baseline.sh 1c704c6 && git rev-parse --short HEAD > .treerev;
#   .probe/tl_base, .probe/tl_arrive: benchmarks/micro/tp_timeline.cu built (nvcc 13.0, sm_90)
#   on the development machine against 1c704c6's csrc and this tree's (untracked; they travel).
# Run: LIMIT=420 bash benchmarks/results/session21-2026-12-08/call1/devcall.sh  (carry [".baseline"])
A=$OUT; R=/tmp/s21c1r; rm -rf $R; mkdir -p $R
export DEADLINE=$(( $(date +%s) + ${LIMIT:-420} )) MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $R/env.txt 2>&1
python3 -c "import torch; print(torch.__version__)" >> $R/env.txt; cat .treerev >> $R/env.txt
# builds in the background while the probe runs (GPU-only work, graphs: host load does not enter)
(cd .baseline && rm -rf build gptq_mi100/*.so && python3 setup.py build_clib build_ext --inplace > $R/baseline-build.log 2>&1; echo "baseline build rc $?" >> $R/env.txt) &
(python3 -m pip install -q --no-build-isolation --no-deps -e . > $R/build.log 2>&1; echo "tree build rc $?" >> $R/env.txt) &
CASES="5120,2560,1,0,0 5120,2560,1,1,8 5120,2560,1,2,8 5120,2560,1,1,4 5120,2560,1,5,8
5120,2560,8,0,0 5120,2560,8,1,8
2048,5120,1,0,0
6400,5120,1,0,0 6400,5120,1,1,8 6400,5120,1,2,4
5120,12800,1,0,0 5120,12800,1,1,8
4096,28672,1,0,0
512,2560,1,0,0 1024,2560,1,1,8 1280,2560,1,0,0 1280,2560,1,1,8"
for pass in 1 2; do
  for b in base arrive; do
    mkdir -p /tmp/s21raw/${b}_$pass
    TL_DUMP=/tmp/s21raw/${b}_$pass .probe/tl_$b $CASES > $R/tl_${b}_$pass.txt 2>&1
  done
done
tar -C /tmp/s21raw -czf $A/raw.tgz .
grep -h "^case" $R/tl_base_1.txt $R/tl_arrive_1.txt | cut -c1-140
echo "probe done ${SECONDS}s"
wait; echo "builds ${SECONDS}s"; cat $R/env.txt
left() { echo $(( DEADLINE - $(date +%s) )); }
bench() { # tree dir, name, rev
  [ $(left) -lt 40 ] && { echo "$2 skipped"; return; }
  (cd $1 && GPTQ_MI100_GIT_COMMIT=$3 timeout 80 python3 -m benchmarks.bench_gemm --device cuda --no-plot \
     --shapes qwen3-32b-tp4 4096x28672 --bits 4 --m 1 8 --kernels auto transposed_mma:splits=1,kslices=8 \
     --out-dir $R/$2 > $R/$2.log 2>&1)
  echo "$2 ${SECONDS}s"
}
bench . tree "$(cat .treerev)"
bench .baseline baseline 1c704c6
python3 benchmarks/results/session16-2026-12-07/summary.py $R/tree $R/baseline
tar czf $A/x.tgz -C $R .
[ $(left) -gt 40 ] && GPTQ_MI100_TEST_DEVICE=cuda timeout $(( $(left) - 10 )) python3 -m pytest -q -x -n 8 \
  -p no:cacheprovider tests/test_gemm.py > $R/tests.log 2>&1; tail -3 $R/tests.log
tar czf $A/x.tgz -C $R .

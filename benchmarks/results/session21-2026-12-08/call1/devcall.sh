#!/bin/bash
# Session 21, call 1: NOTES 52's per-wave timeline (benchmarks/micro/tp_timeline.cu) and NOTES
# 53's arrival, side by side. .probe/tl_base: the probe on 1c704c6's kernel file; .probe/tl_arrive:
# the same with the one-thread acquire-release arrival. Both built on the development machine
# (nvcc 13.0, -arch=sm_90); rebuilt here from the tree if one does not run.
set -u
OUT=${OUT:-/tmp/s21c1}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > "$OUT/env.txt" 2>&1
cat .treerev >> "$OUT/env.txt" 2>/dev/null
for b in base arrive; do
  if ! .probe/tl_$b 512,2560,1,0,0 > /dev/null 2>&1; then
    echo "tl_$b did not run; rebuilding the tree's version" >> "$OUT/env.txt"
    nvcc -O3 -std=c++17 -arch=sm_90 -I csrc/gpu benchmarks/micro/tp_timeline.cu csrc/problem_check.c -o .probe/tl_$b
  fi
done
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
    TL_DUMP=/tmp/s21raw/${b}_$pass .probe/tl_$b $CASES > "$OUT/tl_${b}_$pass.txt" 2>&1
  done
done
tar -C /tmp/s21raw -czf "$OUT/raw.tgz" .
grep -h "^case" "$OUT"/tl_base_1.txt "$OUT"/tl_arrive_1.txt "$OUT"/tl_base_2.txt "$OUT"/tl_arrive_2.txt | cut -c1-150
tail -c 6000 "$OUT/tl_base_1.txt"

# session 20, call 2 (NOTES 51): the narrow tiles' L2 prefetch against its parent, same call.
# Set-up: bash tools/make_baseline.sh a6af7ac && git rev-parse --short HEAD > .treerev
# Run:    LIMIT=300 bash benchmarks/results/session20-2026-12-08/call2/devcall.sh   (carry [".baseline"])
A=$OUT; mkdir -p /tmp/r2; export OUT=/tmp/r2 ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-300} )) \
  MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
(cd .baseline && rm -rf build gptq_mi100/*.so && python3 setup.py build_clib build_ext --inplace > /tmp/r2/baseline-build.log 2>&1; echo "baseline build rc $?") &
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r2/build.log 2>&1 || { tail -30 /tmp/r2/build.log; exit 1; }
wait; echo "builds ${SECONDS}s"
left() { echo $(( DEADLINE - $(date +%s) )); }
bench() { # tree dir, name, rev
  [ $(left) -lt 40 ] && { echo "$2 skipped"; return; }
  (cd $1 && GPTQ_MI100_GIT_COMMIT=$3 timeout 80 python3 -m benchmarks.bench_gemm --device cuda --no-plot \
     --shapes qwen3-32b-tp4 4096x28672 --bits 4 --m 1 8 --kernels auto transposed_mma:splits=1,kslices=8 \
     --out-dir /tmp/r2/$2 > /tmp/r2/$2.log 2>&1)
  echo "$2 ${SECONDS}s"
}
bench . tree "$(cat .treerev)"
bench .baseline baseline a6af7ac
python3 benchmarks/results/session16-2026-12-07/summary.py /tmp/r2/tree /tmp/r2/baseline
tar czf $ARCHIVE -C /tmp/r2 .
# correctness on the GPU: the GEMM tests (every kernel, ragged N, act-order, bf16, graphs, poison)
[ $(left) -gt 40 ] && GPTQ_MI100_TEST_DEVICE=cuda timeout $(( $(left) - 10 )) python3 -m pytest -q -x -n 8 \
  -p no:cacheprovider tests/test_gemm.py > /tmp/r2/tests.log 2>&1; tail -3 /tmp/r2/tests.log
bench . tree-repeat "$(cat .treerev)"
tar czf $ARCHIVE -C /tmp/r2 .

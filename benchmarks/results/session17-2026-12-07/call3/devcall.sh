# call 3 (prepared in session 17, not run): NOTES 48. The tree = main + benchmarks/pending/entry48.patch
# (everything of the wide tiles through one cp.async ring); .baseline = its parent; .baseline2 (if
# carried) = the tree with kMmaRingB = false (only weights, zeros and scales in the ring, B read
# from global memory, no barrier). All built side by side in this call; W4/W8 M 32/64 on each,
# then both halves of the GPU suite on the tree, then the tree at M 128/512. Set up here:
#   bash tools/make_baseline.sh HEAD && git apply benchmarks/pending/entry48.patch && git commit -am ... &&
#   bash tools/make_baseline.sh HEAD .baseline2 &&
#   sed -i 's/kMmaRingB = true/kMmaRingB = false/' .baseline2/csrc/gpu/gptq_transposed.cu &&
#   git rev-parse --short HEAD > .treerev        (carry [".baseline", ".baseline2"])
A=$OUT; mkdir -p /tmp/r; export OUT=/tmp/r ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-470} )) \
  GPTQ_MI100_GIT_COMMIT="$(cat .treerev)" MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
trees="tree baseline"; [ -f .baseline2/setup.py ] && trees="$trees baseline2"
for t in $trees; do
  [ $t = tree ] && continue
  (cd .$t && rm -rf build gptq_mi100/*.so && python3 setup.py build_clib build_ext --inplace > /tmp/r/$t-build.log 2>&1; echo "$t build rc $?") &
done
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r/build.log 2>&1 || { tail -30 /tmp/r/build.log; exit 1; }
wait; echo "builds ${SECONDS}s"
S="--device cuda --no-plot --shapes qwen3-32b-tp4 4096x28672"
M="transposed_mma"
for t in $trees; do
  d=.; rev=$(cat .treerev); [ $t != tree ] && d=.$t rev=$(awk '{print substr($2, 1, 7)}' .$t/REV)
  (cd $d && export GPTQ_MI100_GIT_COMMIT=$rev &&
   timeout 90 python3 -m benchmarks.bench_gemm $S --bits 4 8 --m 32 --kernels auto $M:mt=32,sw=1 $M:mt=32,sw=2 fp16_linear --out-dir /tmp/r/$t-m32 > /tmp/r/$t-m32.log 2>&1
   timeout 90 python3 -m benchmarks.bench_gemm $S --bits 4 8 --m 64 --kernels auto $M:mt=64,sw=1 $M:mt=64,sw=2 fp16_linear --out-dir /tmp/r/$t-m64 > /tmp/r/$t-m64.log 2>&1)
  echo "$t ${SECONDS}s"
done
python3 benchmarks/results/session16-2026-12-07/summary.py $(for t in $trees; do echo /tmp/r/$t-m32 /tmp/r/$t-m64; done)
tar czf $ARCHIVE -C /tmp/r .
SKIP_BUILD=1 TESTS_LIMIT=110 bash tools/device_session.sh ${TEST_PARTS:-tests-a tests-b} > /tmp/r/tests.log 2>&1; grep -E 'passed|failed' /tmp/r/tests.log | tail -4
tar czf $ARCHIVE -C /tmp/r .
[ $(( DEADLINE - $(date +%s) )) -gt 40 ] && timeout $(( DEADLINE - $(date +%s) - 5 )) python3 -m benchmarks.bench_gemm $S --bits 4 --m 128 512 --kernels auto $M:mt=64,sw=1 $M:mt=64,sw=2 fp16_linear --out-dir /tmp/r/tree-m128 > /tmp/r/tree-m128.log 2>&1
python3 benchmarks/results/session16-2026-12-07/summary.py /tmp/r/tree-m128
tar czf $ARCHIVE -C /tmp/r .

# call 1 (session 17): verify session 16's last tree (tests-b), profile the wide tile at M = 64
# (qkv sw1, gate_up sw2: where do the stalls go), and time the 64-row tile's passes at M 128..512
A=$OUT; mkdir -p /tmp/r; export OUT=/tmp/r ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-470} )) \
  GPTQ_MI100_GIT_COMMIT="$(cat .treerev)"
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r/build.log 2>&1 || { tail -30 /tmp/r/build.log; exit 1; }
echo "build ${SECONDS}s"
M="transposed_mma"
timeout 60 python3 -m benchmarks.bench_gemm --device cuda --no-plot --shapes qwen3-32b-tp4 4096x28672 --bits 4 \
  --m 64 128 512 --kernels auto $M:mt=64,sw=1 $M:mt=64,sw=2 fp16_linear --out-dir /tmp/r/m128 > /tmp/r/m128.log 2>&1
echo "m128 ${SECONDS}s"
python3 benchmarks/results/session16-2026-12-07/summary.py /tmp/r/m128
tar czf $ARCHIVE -C /tmp/r .
for s in "5120 2560 4 64 $M:mt=64,sw=1 qkv" "5120 12800 4 64 $M:mt=64,sw=2 gate_up"; do
  set -- $s
  OUT=/tmp/r/stalls-$6 STALLS="$1 $2 $3 $4 $5 transposed_mma_kernel" SKIP_BUILD=1 bash tools/device_session.sh stalls > /tmp/r/stalls-$6.log 2>&1
  head -40 /tmp/r/stalls-$6/stalls/stalls.txt
  tar czf $ARCHIVE -C /tmp/r .
done
SKIP_BUILD=1 TESTS_LIMIT=150 bash tools/device_session.sh ${TEST_PARTS:-tests-b} > /tmp/r/tests.log 2>&1; grep -E 'passed|failed' /tmp/r/tests.log | tail -4
tar czf $ARCHIVE -C /tmp/r .

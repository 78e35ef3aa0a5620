# call 1 (session 16): NOTES 46 (sw: strips per warp, default 4 at mt32 / 2 at mt64) against sw=1, and 45 (W8 threshold 65)
A=$OUT; mkdir -p /tmp/r; export OUT=/tmp/r ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-470} )) \
  GPTQ_MI100_GIT_COMMIT="$(cat .treerev)"
B="timeout 100 python3 -m benchmarks.bench_gemm --device cuda --no-plot --shapes qwen3-32b-tp4 4096x28672 --bits 4 8"
M="transposed_mma"
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r/build.log 2>&1 || { tail -30 /tmp/r/build.log; exit 1; }
echo "build ${SECONDS}s"
$B --m 32 --kernels auto $M:mt=32,sw=1 $M:mt=32,sw=2 fp16_linear --out-dir /tmp/r/m32 > /tmp/r/m32.log 2>&1
echo "m32 ${SECONDS}s"
$B --m 48 64 --kernels auto $M:mt=64,sw=1 dequant_matmul fp16_linear --out-dir /tmp/r/m64 > /tmp/r/m64.log 2>&1
echo "m64 ${SECONDS}s"
python3 benchmarks/results/session16-2026-12-07/summary.py /tmp/r/m32 /tmp/r/m64
tar czf $ARCHIVE -C /tmp/r .
SKIP_BUILD=1 TESTS_LIMIT=120 bash tools/device_session.sh ${TEST_PARTS:-tests-a tests-b} > /tmp/r/tests.log 2>&1; grep -E 'passed|failed' /tmp/r/tests.log | tail -4
tar czf $ARCHIVE -C /tmp/r .

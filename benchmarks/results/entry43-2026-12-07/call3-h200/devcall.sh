# call 3 (session 15): entry 43 + the 8-bit row-16 fix (tree) against main (.baseline), M 1..16 and 64
A=$OUT; mkdir -p /tmp/r; export OUT=/tmp/r ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-420} )) \
  GPTQ_MI100_GIT_COMMIT="$(cat .treerev)" BASELINE_AO_M="1" \
  BASELINE_ARGS="--shapes qwen3-32b-tp4 4096x28672 --bits 4 8 --m 1 4 8 16 64 --kernels auto fp16_linear"
B="python3 -m benchmarks.bench_gemm --device cuda --no-plot --shapes qwen3-32b-tp4 4096x28672"
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r/build.log 2>&1 || { tail -30 /tmp/r/build.log; exit 1; }
echo "build ${SECONDS}s"
timeout 90 $B --bits 4 8 --m 1 4 8 16 64 --kernels auto fp16_linear --out-dir /tmp/r/tree/main > /tmp/r/tree.log 2>&1
timeout 30 $B --bits 4 --m 1 --act-order --kernels auto --out-dir /tmp/r/tree/ao >> /tmp/r/tree.log 2>&1
echo "tree ${SECONDS}s"; tail -2 /tmp/r/tree.log
SKIP_BUILD=1 bash tools/device_session.sh baseline tests-a
python3 tools/compare_baseline.py /tmp/r tree baseline > /tmp/r/compare.md 2>&1; cat /tmp/r/compare.md | head -80
tar czf $ARCHIVE -C /tmp/r .

# call 2 (session 14): entry 43 (tree) against main (.baseline), then the GPU suite
A=$OUT; mkdir -p /tmp/r; export OUT=/tmp/r ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-585} )) \
  GPTQ_MI100_GIT_COMMIT="$(cat .treerev)" BASELINE_AO_M="1 8" \
  BASELINE_ARGS="--shapes qwen3-32b-tp4 4096x28672 --bits 4 8 --m 1 4 8 16 32 64 --kernels auto fp16_linear"
B="python3 -m benchmarks.bench_gemm --device cuda --no-plot --shapes qwen3-32b-tp4 4096x28672"
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r/build.log 2>&1 || { tail -30 /tmp/r/build.log; exit 1; }
echo "build ${SECONDS}s"
timeout 120 $B --bits 4 8 --m 1 4 8 16 32 64 --kernels auto fp16_linear --out-dir /tmp/r/tree/main > /tmp/r/tree.log 2>&1
timeout 40 $B --bits 4 --m 1 8 --act-order --kernels auto --out-dir /tmp/r/tree/ao >> /tmp/r/tree.log 2>&1
echo "tree ${SECONDS}s"; tail -2 /tmp/r/tree.log
SKIP_BUILD=1 bash tools/device_session.sh baseline tests-a tests-b
STALLS="5120 12800 4 64 transposed_mma:mt=64 gptq_transposed_mma" SKIP_BUILD=1 bash tools/device_session.sh stalls
rm -f /tmp/r/stalls/source.csv
python3 tools/compare_baseline.py /tmp/r tree baseline > /tmp/r/compare.md 2>&1; cat /tmp/r/compare.md | head -80
tar czf $ARCHIVE -C /tmp/r .

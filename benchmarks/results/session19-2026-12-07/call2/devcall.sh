# session 19, call 2 (NOTES 50): main only, no code change. (a) the 64-row tile at M 8..64 (its
# HMMAs run for all 64 rows; only B's loads follow M): is its time set by the rows or by each
# warp's weight chain? (b) K splits of the 64-row tile at M = 64 against the round model;
# (c) ncu stall reasons of `auto` at qkv W4 M = 1 (issue 10's largest miss); (d) added in
# session 20: benchmarks/small_floor.py, what torch's copy and sum take for each layer's bytes;
# (e) qkv's N at M = 1 over K = 128..10240 (fixed against per-tile cost).
# Run: LIMIT=300 bash benchmarks/results/session19-2026-12-07/call2/devcall.sh
A=$OUT; mkdir -p /tmp/r; export OUT=/tmp/r ARCHIVE=$A/x.tgz DEADLINE=$(( $(date +%s) + ${LIMIT:-270} )) \
  GPTQ_MI100_GIT_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || cat .treerev)" MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/r/build.log 2>&1 || { tail -30 /tmp/r/build.log; exit 1; }
echo "build ${SECONDS}s"
left() { echo $(( DEADLINE - $(date +%s) )); }
# (d, session 20) the floor of moving each layer's bytes with torch's own memory-bound kernels
timeout 60 python3 -m benchmarks.small_floor --device cuda --out /tmp/r/small_floor.json > /tmp/r/small_floor.log 2>&1
cat /tmp/r/small_floor.log; echo "floor ${SECONDS}s"
# (e, session 20) qkv's N at M = 1 over K: the fixed part of a launch against its per-tile part
[ $(left) -gt 60 ] && timeout 60 python3 -m benchmarks.bench_gemm --device cuda --no-plot --bits 4 \
  --shapes 128x2560 512x2560 1280x2560 2560x2560 5120x2560 10240x2560 --m 1 --kernels auto int4pack fp16_linear \
  --out-dir /tmp/r/kscale > /tmp/r/kscale.log 2>&1; echo "kscale ${SECONDS}s"
M="transposed_mma:mt=64"
[ $(left) -gt 60 ] && timeout 100 python3 -m benchmarks.bench_gemm --device cuda --no-plot --bits 4 \
  --shapes 5120x2560 5120x12800 6400x5120 --m 8 16 32 64 --kernels auto $M,sw=1 $M,sw=2 \
  --out-dir /tmp/r/mscale > /tmp/r/mscale.log 2>&1; echo "mscale ${SECONDS}s"
tar czf $ARCHIVE -C /tmp/r .
[ $(left) -gt 50 ] && timeout 60 python3 -m benchmarks.bench_gemm --device cuda --no-plot --bits 4 \
  --shapes 5120x12800 --m 64 --kernels $M,sw=2,splits=2 $M,sw=2,splits=3 $M,sw=2,splits=5 $M,sw=2,splits=8 \
  --out-dir /tmp/r/splits-gate_up > /tmp/r/splits-gate_up.log 2>&1; echo "splits-gate_up ${SECONDS}s"
[ $(left) -gt 50 ] && timeout 60 python3 -m benchmarks.bench_gemm --device cuda --no-plot --bits 4 \
  --shapes 4096x28672 --m 64 --kernels $M,sw=2,splits=1 $M,sw=2,splits=2 $M,sw=2,splits=3 $M,sw=2,splits=4 \
  --out-dir /tmp/r/splits-llama > /tmp/r/splits-llama.log 2>&1; echo "splits-llama ${SECONDS}s"
tar czf $ARCHIVE -C /tmp/r .
[ $(left) -gt 60 ] && SKIP_BUILD=1 STALLS="5120 2560 4 1 auto gptq_transposed_mma_kernel" STALLS_NAME=stalls-qkv-m1 \
  timeout $(( $(left) - 10 )) bash tools/device_session.sh stalls > /tmp/r/stalls.log 2>&1; echo "stalls ${SECONDS}s"
python3 benchmarks/results/session16-2026-12-07/summary.py /tmp/r/kscale /tmp/r/mscale /tmp/r/splits-gate_up /tmp/r/splits-llama
head -8 /tmp/r/stalls-qkv-m1/stalls.txt
tar czf $ARCHIVE -C /tmp/r .

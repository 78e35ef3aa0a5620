#!/usr/bin/env bash
# The full H100 run of issue 4 in one device call (kind nvidia-h100-x1, ~5 minutes):
# build, then every shape set at decode M (bits 4 and 8) and the prefill M set.
# Results land in $OUT (device tool) or benchmarks/results/ when OUT is unset; copy them to
# benchmarks/results/<device>/ and commit with the command line recorded in results.md.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
dest=${OUT:-benchmarks/results/h100-run}
python3 -m pip install -q --no-build-isolation --no-deps -e . > /tmp/bench_build.log 2>&1 ||
  { tail -30 /tmp/bench_build.log; exit 1; }
timeout 240 python3 -m benchmarks.bench_gemm --device cuda --shapes all --bits 4 8 \
  --out-dir "$dest/decode" > /tmp/bench_decode.log 2>&1; echo "decode rc=$?"
timeout 300 python3 -m benchmarks.bench_gemm --device cuda --prefill --bits 4 8 \
  --out-dir "$dest/prefill" > /tmp/bench_prefill.log 2>&1; echo "prefill rc=$?"
tail -n 2 /tmp/bench_decode.log /tmp/bench_prefill.log

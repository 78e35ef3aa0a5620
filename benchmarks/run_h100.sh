#!/usr/bin/env bash
# The full H100 run of issue 4 in one device call (kind nvidia-h100-x1, under 10 minutes):
# build, then every shape set at decode M (bits 4 and 8) and the prefill M set.
# Each sweep writes its results after every (shape, bits) block, so a sweep stopped by its
# time limit keeps what it finished (marked partial in results.md).
# Results land in $OUT (device tool) or benchmarks/results/h100-run when OUT is unset; copy
# them to benchmarks/results/<device>[-prefill]/, draw the plots (bench_gemm.write_plot) and
# commit. Pass GPTQ_MI100_GIT_COMMIT=<rev>: the device copy's .git may name a stale HEAD.
# Usage: bash benchmarks/run_h100.sh [DECODE_LIMIT_S] [PREFILL_LIMIT_S] [PREFILL_SHAPES...]
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
dest=${OUT:-benchmarks/results/h100-run}
decode_limit=${1:-300}
prefill_limit=${2:-220}
shift $(( $# < 2 ? $# : 2 ))
prefill_shapes=${*:-qwen3-32b-tp4}
mkdir -p "$dest"
SECONDS=0
python3 -m pip install -q --no-build-isolation --no-deps -e . > "$dest/build.log" 2>&1 ||
  { tail -30 "$dest/build.log"; exit 1; }
echo "build ${SECONDS}s"
SECONDS=0
timeout "$decode_limit" python3 -m benchmarks.bench_gemm --device cuda --shapes all \
  --bits 4 8 --no-plot --out-dir "$dest/decode" > "$dest/decode.log" 2>&1
echo "decode rc=$? ${SECONDS}s"
SECONDS=0
# shellcheck disable=SC2086  # shape set names are single words
timeout "$prefill_limit" python3 -m benchmarks.bench_gemm --device cuda --prefill \
  --shapes $prefill_shapes --bits 4 8 --no-plot --out-dir "$dest/prefill" \
  > "$dest/prefill.log" 2>&1
echo "prefill rc=$? ${SECONDS}s"
for f in "$dest/decode.log" "$dest/prefill.log"; do
  echo "== $f"; tr '\r' '\n' < "$f" | tail -n 3
done

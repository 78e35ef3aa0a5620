#!/usr/bin/env bash
# One lent-GPU call, batched (the device tool gives 10 minutes a call, 30 a session). Builds
# in place, then runs the named parts, each under its own time limit, writing everything to
# $OUT/<part>/ (or benchmarks/results/device-run/ when OUT is unset) with env.txt naming the
# device, torch, date and commit. Copy what should stay into benchmarks/results/<name>/.
#
#   tests     the GPU test suite (pytest -n 8), `python -m gptq_mi100 selftest --device cuda`
#   tests-a, tests-b   the suite's test files in two alphabetical halves (on the H200 the
#             whole suite needs more than 250 s alone: one half per call, or per part)
#   forced    the whole GPU suite with GPTQ_MI100_KERNEL set to each issue-12 variant
#             (FORCED_KERNELS="coalesced warp_shuffle" picks some)
#   sanitize  tools/sanitize.sh (planted bug, memcheck, initcheck, racecheck)
#   longrun   tests/test_long_run.py with GPTQ_MI100_LONG_RUN=100000
#   variants  bench_gemm: every layout-2 kernel against exllama, fp16 and int4 at decode M
#   micro     benchmarks/micro/m1_stream.cu (nvcc, seconds) with its default shapes (NOTES 24-28)
#   issue10   bench_gemm for issue 10's table: qwen3-32b-tp4 + Llama-3-8B gate_up, W4/W8,
#             M 1..64, auto exllama fp16_linear int4pack; then W4 M 1..8 auto with act-order
#             and with bf16; benchmarks/issue10_targets.py and issue11_targets.py tables
#             (ISSUE10_M, ISSUE10_KERNELS narrow the main run)
#   issue11   bench_gemm at M 1..512 for auto and transposed_mma's wide tiles, then
#             benchmarks/issue11_targets.py's table (targets.md)
#   baseline  the tree in .baseline/ (tools/make_baseline.sh REV here, then carry ".baseline"),
#             and .baseline2/ if present (make_baseline.sh REV2 .baseline2, carried too),
#             built in place and benchmarked with the same bench_gemm rows as BASELINE_ARGS
#             (default: Qwen3-32B TP=4 + Llama-3-8B gate_up, W4, M 1 8 16 32, auto and fp16,
#             then act-order at M 1 8, or BASELINE_AO_M): a change and its parent measured in one call
#   tune      `python -m gptq_mi100 tune` on the Qwen3-32B TP=4 shapes (its wall time is a target)
#   profile   ncu (stall reasons, issue rate, DRAM) of the wide-tile mma kernel and of the
#             layout-2 dequantize at gate_up M = 64 (the issue-11 gap)
#   stalls    ncu --set full of one GEMM (STALLS="K N BITS M KERNEL [NAME_REGEX]", default gate_up
#             W4 M = 1 transposed_mma; the regex defaults to the kernel's name, but `transposed`'s
#             variants launch gptq_transposed_kernel): details.txt, source.csv.gz and, from
#             tools/ncu_stalls.py, stalls.txt (stall samples by reason and by SASS instruction),
#             in $OUT/stalls/ or $OUT/$STALLS_NAME/ (several profiles in one call)
#   dequant   bench_gemm at M 64..512: dequant_matmul and the 64-row mma tile against fp16
#             (NOTES entry 17's prediction)
#   minilm    tests/test_end_to_end_minilm.py on the GPU; the weights come as a carried shim
#             (python3 tools/make_minilm_shim.py here, then carry .minilm_shim)
#
# Usage: GPTQ_MI100_GIT_COMMIT=$(git rev-parse HEAD) bash tools/device_session.sh tests sanitize
# DEADLINE=<epoch seconds> shortens or skips parts so that the call ends before it.
# ARCHIVE=$OUT/all.tgz packs everything into one file after each part: the device tool returns
# only a limited number of files from $OUT, so write the parts outside $OUT and keep the archive.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
# 8 pytest workers x torch's default of one thread per core oversubscribe 16 cores 8 times
# over (the tests' fp32 references run on the CPU): 2 threads per worker
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
dest=${OUT:-benchmarks/results/device-run}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)  # absolute: parts may run from another directory (baseline)
[ $# -gt 0 ] || set -- tests sanitize

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: ${GPTQ_MI100_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$dest/env.txt" 2>&1
cat "$dest/env.txt"

SECONDS=0
if [ -z "${SKIP_BUILD:-}" ]; then  # SKIP_BUILD=1: a concurrent session already built
  python3 -m pip install -q --no-build-isolation --no-deps -e . > "$dest/build.log" 2>&1 ||
    { tail -30 "$dest/build.log"; exit 1; }
  echo "build ${SECONDS}s"
fi

run_part() {  # name, limit (s), command...; DEADLINE (epoch s) caps every limit
  local name=$1 limit=$2
  shift 2
  if [ -n "${DEADLINE:-}" ]; then
    local left=$((DEADLINE - $(date +%s)))
    [ "$left" -lt "$limit" ] && limit=$left
    [ "$limit" -lt 20 ] && { echo "$name skipped (DEADLINE)"; return; }
  fi
  mkdir -p "$dest/$name"
  SECONDS=0
  timeout "$limit" "$@" > "$dest/$name/log.txt" 2>&1
  local rc=$?
  echo "$name rc=$rc ${SECONDS}s$([ $rc -eq 124 ] && echo ' (time limit: partial)')"
  tr '\r' '\n' < "$dest/$name/log.txt" | tail -n 4
  # pack after every part: a call cut off by its time limit still returns what finished
  if [ -n "${ARCHIVE:-}" ]; then tar czf "$ARCHIVE" -C "$dest" . ; fi
}

for part in "$@"; do
  case "$part" in
    tests)
      run_part tests "${TESTS_LIMIT:-300}" env GPTQ_MI100_TEST_DEVICE=cuda \
        python3 -m pytest -q -n 8 --durations=10 -p no:cacheprovider tests \
        --ignore=tests/test_gpu_emulation.py  # the CPU emulation: CI's job, not device time
      run_part selftest 60 python3 -m gptq_mi100 selftest --device cuda ;;
    tests-a|tests-b)
      mapfile -t files < <(ls tests/test_*.py | grep -v test_gpu_emulation.py)
      half=$(( (${#files[@]} + 1) / 2 ))
      if [ "$part" = tests-a ]; then sel=("${files[@]:0:half}"); else sel=("${files[@]:half}"); fi
      run_part "$part" "${TESTS_LIMIT:-300}" env GPTQ_MI100_TEST_DEVICE=cuda \
        python3 -m pytest -q -n 8 --durations=10 -p no:cacheprovider "${sel[@]}" ;;
    forced)  # the whole suite per variant, after a check that the default really reaches it;
      # 15 workers x 1 thread: 54 s per variant on an H100 (results/nvidia-h100-2026-12-06)
      for k in ${FORCED_KERNELS:-vectorized coalesced warp_shuffle}; do
        run_part "forced-$k" "${FORCED_LIMIT:-150}" env GPTQ_MI100_TEST_DEVICE=cuda GPTQ_MI100_KERNEL=$k \
          OMP_NUM_THREADS=1 bash -c 'python3 tools/forced_default_check.py && exec python3 -m pytest -q -n 15 \
          -p no:cacheprovider tests --ignore=tests/test_gpu_emulation.py'
      done ;;
    sanitize)  # the sweep turns the load-time self-check off itself (tools/sanitizer_workload.py)
      run_part sanitize "${SANITIZE_LIMIT:-300}" env SANITIZE_LOG_DIR="$dest/sanitize/logs" \
        OMP_NUM_THREADS=1 bash tools/sanitize.sh ;;
    profile)
      # only the profiled calls: profile_gemm turns the self-check off and brackets its calls
      # with cudaProfilerStart/Stop (--launch-skip counts from there)
      for spec in "transposed_mma:mt=64 transposed_mma" "dequant_matmul dequant --layout 2"; do
        read -r pk pre extra <<< "$spec"  # extra: profile_gemm options
        run_part "profile-${pk//[:=]/_}" 90 ncu \
          --profile-from-start off --clock-control none --kernel-name "regex:$pre" \
          --launch-skip 2 --launch-count 1 --section SpeedOfLight --section Occupancy \
          --section LaunchStats --section WarpStateStats --section SchedulerStats \
          --section MemoryWorkloadAnalysis python3 -m benchmarks.profile_gemm --k 5120 \
          --n 12800 --bits 4 --m 64 --kernel "$pk" $extra
      done ;;
    stalls)  # STALLS_NAME: the part's directory (default stalls), so one call can profile several
      read -r sk sn sb sm skern sre <<< "${STALLS:-5120 12800 4 1 transposed_mma}"
      sd=${STALLS_NAME:-stalls}
      mkdir -p "$dest/$sd"
      run_part "$sd" 120 bash -c "ncu --profile-from-start off --clock-control none \
        --kernel-name regex:'${sre:-${skern%%:*}}' --launch-skip 2 --launch-count 1 --set full --import-source no \
        -o '$dest/$sd/k' python3 -m benchmarks.profile_gemm --k $sk --n $sn --bits $sb --m $sm \
        --kernel '$skern' && ncu -i '$dest/$sd/k.ncu-rep' --page details > '$dest/$sd/details.txt' && \
        ncu -i '$dest/$sd/k.ncu-rep' --page source --print-source sass --csv > '$dest/$sd/source.csv' && \
        rm -f '$dest/$sd/k.ncu-rep' && python3 tools/ncu_stalls.py '$dest/$sd/source.csv' > '$dest/$sd/stalls.txt' && \
        gzip -f '$dest/$sd/source.csv'" ;;  # ~2 MB as text: kept gzipped
    dequant)
      run_part dequant 150 python3 -m benchmarks.bench_gemm --device cuda --shapes qwen3-32b-tp4 \
        --bits 4 --m 64 128 512 --no-plot --out-dir "$dest/dequant" \
        --kernels dequant_matmul transposed_mma:mt=64 fp16_linear ;;
    minilm)
      run_part minilm 120 env GPTQ_MI100_TEST_DEVICE=cuda PYTHONPATH="$PWD/.minilm_shim" \
        python3 -m pytest -q -s -p no:cacheprovider tests/test_end_to_end_minilm.py ;;
    longrun)
      run_part longrun 120 env GPTQ_MI100_LONG_RUN=100000 GPTQ_MI100_TEST_DEVICE=cuda \
        python3 -m pytest -q -s -p no:cacheprovider tests/test_long_run.py ;;
    variants)
      run_part variants "${VARIANTS_LIMIT:-240}" python3 -m benchmarks.bench_gemm --device cuda \
        --shapes qwen3-32b-tp4 --bits 4 --m 1 4 8 16 --no-plot --out-dir "$dest/variants" \
        --kernels transposed_mma transposed vectorized vectorized:load=8 coalesced warp_shuffle exllama \
        fp16_linear int4pack ;;
    micro)
      run_part micro "${MICRO_LIMIT:-200}" bash -c "nvcc -O3 -std=c++17 -arch=sm_90 \
        benchmarks/micro/m1_stream.cu -o /tmp/m1_stream && /tmp/m1_stream" ;;
    issue10)
      i10=(python3 -m benchmarks.bench_gemm --device cuda --shapes qwen3-32b-tp4 4096x28672 --no-plot)
      run_part issue10-main "${ISSUE10_LIMIT:-240}" "${i10[@]}" --bits 4 8 --m ${ISSUE10_M:-1 2 4 8 16 32 64} \
        --out-dir "$dest/issue10/main" --kernels ${ISSUE10_KERNELS:-auto exllama fp16_linear int4pack}
      run_part issue10-ao 90 "${i10[@]}" --bits 4 --m 1 2 4 8 --act-order --out-dir "$dest/issue10/ao" \
        --kernels auto
      run_part issue10-bf16 90 "${i10[@]}" --bits 4 --m 1 2 4 8 --activations bfloat16 \
        --out-dir "$dest/issue10/bf16" --kernels auto
      r="$dest/issue10"
      [ -f "$r/main/results.json" ] && python3 -m benchmarks.issue10_targets "$r/main/results.json" \
        $([ -f "$r/ao/results.json" ] && echo --act-order "$r/ao/results.json") \
        $([ -f "$r/bf16/results.json" ] && echo --bf16 "$r/bf16/results.json") > "$r/targets_issue10.md" &&
        python3 -m benchmarks.issue11_targets "$r/main/results.json" > "$r/targets_issue11.md" ;;
    issue11)
      run_part issue11 "${ISSUE11_LIMIT:-300}" python3 -m benchmarks.bench_gemm --device cuda \
        --shapes qwen3-32b-tp4 4096x28672 --bits 4 8 --m 1 8 16 32 64 128 512 --no-plot \
        --out-dir "$dest/issue11" --kernels auto transposed_mma:mt=32 transposed_mma:mt=64 \
        fp16_linear int4pack
      for f in "$dest"/issue11/*.json; do
        [ -f "$f" ] && python3 -m benchmarks.issue11_targets "$f" > "$dest/issue11/targets.md"
      done ;;
    baseline)
      for bl in .baseline .baseline2; do
        [ -f $bl/setup.py ] || { [ $bl = .baseline ] && echo "baseline: no .baseline/ (tools/make_baseline.sh REV, carry it)"; continue; }
        name=${bl#.}
        run_part $name-build 180 bash -c "cd $bl && rm -rf build gptq_mi100/*.so && python3 setup.py build_clib build_ext --inplace"
        # from $bl/ the baseline's package comes first on sys.path (checked), not the
        # editable install of the tree under test
        bl_args=${BASELINE_ARGS:---shapes qwen3-32b-tp4 4096x28672 --bits 4 --m 1 8 16 32 --kernels auto fp16_linear}
        # results.json's commit field names the baseline's revision, not the tree's
        run_part $name 150 bash -c "cd $bl && cat REV && export GPTQ_MI100_GIT_COMMIT=\$(awk '{print substr(\$2, 1, 7)}' REV) && python3 -c 'import gptq_mi100, os, sys; \
          sys.exit(not gptq_mi100.__file__.startswith(os.getcwd()))' && \
          python3 -m benchmarks.bench_gemm --device cuda --no-plot $bl_args --out-dir '$dest/$name/main' && \
          python3 -m benchmarks.bench_gemm --device cuda --no-plot --shapes qwen3-32b-tp4 4096x28672 --bits 4 \
            --m ${BASELINE_AO_M:-1 8} --act-order --kernels auto --out-dir '$dest/$name/ao'"
      done ;;
    tune)
      run_part tune 180 python3 -m gptq_mi100 tune --device cuda --out "$dest/tune/table.json" ;;
    *)
      echo "device_session: unknown part '$part' (tests, tests-a, tests-b, forced, sanitize, profile, stalls, dequant, minilm, longrun, variants, micro, issue10, issue11, baseline, tune)" >&2
      exit 2 ;;
  esac
done
if [ -n "${ARCHIVE:-}" ]; then tar czf "$ARCHIVE" -C "$dest" . && echo "archive: $ARCHIVE"; fi

#!/usr/bin/env bash
# compute-sanitizer (memcheck, initcheck, and racecheck for the shared-memory kernels) over
# every GPU op, with torch's caching allocator off so an out-of-bounds access inside one of its
# blocks is visible. First proves the harness: a planted off-by-one kernel must be caught.
# Usage (GPU machine, after the build): bash tools/sanitize.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
PY=${PYTHON:-python3}
status=0

compute-sanitizer --tool memcheck --error-exitcode 99 "$PY" tools/sanitizer_workload.py planted \
  > /tmp/sanitize_planted.log 2>&1
rc=$?
if [ $rc -eq 99 ] && grep -q "Invalid __global__ write" /tmp/sanitize_planted.log; then
  echo "sanitize: planted out-of-bounds write detected (harness works)"
else
  echo "sanitize: FAILED to detect the planted out-of-bounds write (rc=$rc)"; status=1
  tail -n 20 /tmp/sanitize_planted.log
fi

for tool in memcheck initcheck racecheck; do
  workload=sweep
  [ "$tool" = racecheck ] && workload=sweep-native  # our shared-memory kernels only
  compute-sanitizer --tool "$tool" --error-exitcode 99 "$PY" tools/sanitizer_workload.py "$workload" \
    > "/tmp/sanitize_$tool.log" 2>&1
  rc=$?
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "/tmp/sanitize_$tool.log" | tail -n 1)
  echo "sanitize: $tool rc=$rc ${summary}"
  if [ $rc -ne 0 ]; then status=1; tail -n 30 "/tmp/sanitize_$tool.log"; fi
done
exit $status

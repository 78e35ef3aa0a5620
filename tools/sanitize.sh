#!/usr/bin/env bash
# compute-sanitizer (memcheck, initcheck, and racecheck for the shared-memory kernels) over
# every GPU op, with torch's caching allocator off so an out-of-bounds access inside one of its
# blocks is visible. First proves the harness: a planted off-by-one kernel must be caught.
# Then one process per (tool, sweep case), SANITIZE_JOBS at a time: run one after another the
# sweep needs more than the 5 minutes a device call can give it.
# Usage (GPU machine, after the build): bash tools/sanitize.sh   (logs: $SANITIZE_LOG_DIR)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTORCH_NO_CUDA_MEMORY_CACHING=1
PY=${PYTHON:-python3}
logs=${SANITIZE_LOG_DIR:-/tmp/sanitize}
mkdir -p "$logs"
status=0

compute-sanitizer --tool memcheck --error-exitcode 99 "$PY" tools/sanitizer_workload.py planted \
  > "$logs/planted.log" 2>&1
rc=$?
if [ $rc -eq 99 ] && grep -q "Invalid __global__ write" "$logs/planted.log"; then
  echo "sanitize: planted out-of-bounds write detected (harness works)"
else
  echo "sanitize: FAILED to detect the planted out-of-bounds write (rc=$rc)"; status=1
  tail -n 20 "$logs/planted.log"
fi

one() {  # tool case: one sanitizer process; racecheck runs our shared-memory kernels only
  local workload=sweep
  [ "$1" = racecheck ] && workload=sweep-native  # racecheck flags cuBLAS's own Hopper GEMMs
  compute-sanitizer --tool "$1" --error-exitcode 99 "$PY" tools/sanitizer_workload.py \
    "$workload" "$2" > "$logs/$1-$2.log" 2>&1
  echo "$?" > "$logs/$1-$2.rc"
}
export -f one
export PY logs
ncases=$("$PY" tools/sanitizer_workload.py cases)
for tool in memcheck initcheck racecheck; do
  for ((c = 0; c < ncases; c++)); do echo "$tool $c"; done
done | xargs -P "${SANITIZE_JOBS:-6}" -L 1 bash -c 'one "$0" "$1"'

for tool in memcheck initcheck racecheck; do
  for ((c = 0; c < ncases; c++)); do
    f="$logs/$tool-$c"
    rc=$(cat "$f.rc" 2>/dev/null || echo missing)
    summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$f.log" | tail -n 1)
    done_line=$(grep -c "^sweep done" "$f.log")
    echo "sanitize: $tool case $c rc=$rc sweep_done=$done_line ${summary}"
    if [ "$rc" != 0 ] || [ "$done_line" != 1 ]; then status=1; tail -n 30 "$f.log"; fi
  done
done
exit $status

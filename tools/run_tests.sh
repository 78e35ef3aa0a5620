#!/usr/bin/env bash
# The test command (README "Tests"): from a fresh clone, installs only what is missing
# (torch==2.13.0 when no torch imports, pytest, hypothesis, the in-place build), then
# runs pytest.
# With everything present and the build current it touches no network.
# Extra arguments go to pytest. GPTQ_MI100_TEST_DEVICE=cpu|cuda|all selects devices.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "run_tests: no importable torch; installing torch==2.13.0" >&2
  "$PY" -m pip install torch==2.13.0
fi
if ! "$PY" -c "import pytest" 2>/dev/null; then
  "$PY" -m pip install pytest
fi
if ! "$PY" -c "import hypothesis" 2>/dev/null; then  # property tests; pulls no torch
  "$PY" -m pip install hypothesis
fi

so=$(ls gptq_mi100/_C*.so 2>/dev/null | head -n 1 || true)
stale=""
if [ -z "$so" ]; then
  stale="not built"
elif [ -n "$(find csrc setup.py build_config.py tools/nvcc_flags.txt tools/hip_flags.txt \
             -newer "$so" -type f 2>/dev/null | head -n 1)" ]; then
  stale="sources changed"
elif ! "$PY" -c "import gptq_mi100.ops" 2>/dev/null; then
  stale="does not import"
fi
if [ -n "$stale" ]; then
  echo "run_tests: building gptq_mi100 in place ($stale)" >&2
  "$PY" -m pip install --no-build-isolation --no-deps -e .
fi

exec "$PY" -m pytest -q "$@"

#!/usr/bin/env bash
# Puts the sources of git revision REV into .baseline/ (ignored by git), for a device call that
# measures a change against its parent in the same run: carry ".baseline" with the call and
# run `tools/device_session.sh baseline` (it builds .baseline in place and benchmarks it).
#   bash tools/make_baseline.sh c79b96d
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: make_baseline.sh REV}
rm -rf .baseline && mkdir .baseline
# the whole tree but its recorded results and tests (data, not code: the carried tree stays small)
git archive "$rev" | tar x -C .baseline --exclude=benchmarks/results --exclude=tests
echo "$rev $(git rev-parse "$rev")" > .baseline/REV
du -sh .baseline

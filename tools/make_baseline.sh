#!/usr/bin/env bash
# Puts the sources of git revision REV into .baseline/ (ignored by git), for a device call that
# measures a change against its parent in the same run: carry ".baseline" with the call and
# run `tools/device_session.sh baseline` (it builds .baseline in place and benchmarks it).
# A second revision goes to .baseline2 (DIR argument; carry it too): the part measures both.
#   bash tools/make_baseline.sh c79b96d [.baseline2]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: make_baseline.sh REV [DIR]}
dir=${2:-.baseline}
case "$dir" in .baseline|.baseline2) ;; *) echo "DIR must be .baseline or .baseline2" >&2; exit 2 ;; esac
rm -rf "$dir" && mkdir "$dir"
# the whole tree but its recorded results and tests (data, not code: the carried tree stays small)
git archive "$rev" | tar x -C "$dir" --exclude=benchmarks/results --exclude=tests
echo "$rev $(git rev-parse "$rev")" > "$dir/REV"
du -sh "$dir"

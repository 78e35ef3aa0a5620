#!/usr/bin/env bash
# Static checks of the GPU kernels, for CI machines without a GPU and without torch.
#
#   tools/check_device_code.sh            check (exit 1 on any failure)
#   tools/check_device_code.sh --update   also rewrite benchmarks/results/gfx908_resources.md
#
# 1. hipcc --offload-arch=gfx908 with tools/hip_flags.txt (the flags setup.py's ROCm branch
#    uses): gfx908 ISA (-S --cuda-device-only), per-kernel resources
#    (-Rpass-analysis=kernel-resource-usage), and a host-pass syntax check.
# 2. nvcc -arch=sm_90 -Xptxas -v with tools/nvcc_flags.txt (setup.py's CUDA branch).
# 3. tools/device_report.py turns both into benchmarks/results/gfx908_resources.md.
# 4. Fails if the regenerated report differs from the committed one, if any kernel
#    spills (gfx908 scratch > 0, sm_90 spill stores/loads > 0), if the gfx908 ISA has
#    v_dot2(c)_f32_f16 with clamp, lacks v_dot2(c)_f32_f16, or references __ockl_fdot2,
#    or if a gfx908 decode kernel misses the issue-10 target: every
#    gptq_transposed_kernel<bits 2/4/8, act 0/1, M_TILE 1/2/4/8> compiled, <= 64 VGPRs,
#    no AGPRs, no VGPR/SGPR spills, no scratch, <= 16 KiB LDS, global/buffer_load_dwordx4
#    in its ISA, and fp32 accumulation (v_dot2(c)_f32_f16 for fp16, fp32 FMA for bf16).
# Warnings are errors here (-Werror): the kernel file is meant to compile cleanly.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
srcs="csrc/gpu/gptq_gpu.cu csrc/gpu/gptq_transposed.cu"
report=benchmarks/results/gfx908_resources.md
update=0
for arg in "$@"; do
  case "$arg" in
    --update) update=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "check_device_code: unknown argument '$arg' (use --update)" >&2; exit 2 ;;
  esac
done

fail() { echo "check_device_code: FAIL: $*" >&2; exit 1; }

HIPCC="${HIPCC:-hipcc}"
NVCC="${NVCC:-nvcc}"
if ! command -v "$HIPCC" >/dev/null 2>&1; then
  fail "hipcc not found. Install Debian's ROCm 5.2 HIP compiler (compile only, no GPU needed):
    apt-get install -y hipcc libamdhip64-dev rocm-device-libs"
fi
command -v "$NVCC" >/dev/null 2>&1 || fail "nvcc not found (CUDA 13 toolkit; set NVCC=/path/to/nvcc)"
command -v c++filt >/dev/null 2>&1 || fail "c++filt not found (apt-get install -y binutils)"
command -v python3 >/dev/null 2>&1 || fail "python3 not found"

# One flag per line, '#' comments.
read_flags() { sed -e 's/#.*//' "$1" | tr -s ' \t\n' ' '; }
hip_flags="$(read_flags tools/hip_flags.txt)"
nvcc_flags="$(read_flags tools/nvcc_flags.txt)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Debian's hipcc picks the NVIDIA platform when nvcc is on PATH: force AMD.
export HIP_PLATFORM=amd

# Source-level: the fdot2 island must use the builtin, never __ockl_fdot2 (clamp ignored).
if grep -nE '__ockl_fdot2[[:space:]]*\(' csrc/gpu/*.h csrc/gpu/*.cu; then
  fail "__ockl_fdot2 is called in csrc/gpu (it always clamps on ROCm 5.2); use __builtin_amdgcn_fdot2"
fi

echo "[1/3] hipcc gfx908 (device ISA + resource usage, host syntax)"
: > "$work/hip_remarks.txt"
: > "$work/all.gfx908.s"
for src in $srcs; do
  base="$(basename "$src" .cu)"
  # -Wno-unused-command-line-argument: hipcc always appends link flags (-lamdhip64, ...).
  # shellcheck disable=SC2086
  "$HIPCC" $hip_flags -Werror -Wall -Wno-unused-command-line-argument --offload-arch=gfx908 \
    --cuda-device-only -S -Rpass-analysis=kernel-resource-usage \
    -o "$work/$base.gfx908.s" "$src" 2> "$work/$base.hip.txt" \
    || { grep -v 'remark:' "$work/$base.hip.txt" >&2 || true; fail "hipcc (device) failed on $src"; }
  if grep -v 'remark' "$work/$base.hip.txt" | grep -qE 'warning|error'; then
    grep -v 'remark' "$work/$base.hip.txt" >&2; fail "hipcc (device) printed diagnostics on $src"
  fi
  cat "$work/$base.hip.txt" >> "$work/hip_remarks.txt"
  cat "$work/$base.gfx908.s" >> "$work/all.gfx908.s"
  # shellcheck disable=SC2086
  "$HIPCC" $hip_flags -Werror -Wall -Wno-unused-command-line-argument --offload-arch=gfx908 \
    --cuda-host-only -fsyntax-only "$src" || fail "hipcc (host pass) failed on $src"
done

echo "[2/3] nvcc sm_90 (-Xptxas -v)"
: > "$work/ptxas.txt"
for src in $srcs; do
  base="$(basename "$src" .cu)"
  # shellcheck disable=SC2086
  "$NVCC" $nvcc_flags -arch=sm_90 -Xptxas -v --Werror all-warnings -Xcompiler -Wall,-Werror \
    -c "$src" -o "$work/$base.sm_90.o" > "$work/$base.ptxas.txt" 2>&1 \
    || { cat "$work/$base.ptxas.txt" >&2; fail "nvcc failed on $src"; }
  cat "$work/$base.ptxas.txt" >> "$work/ptxas.txt"
done

echo "[3/3] resource report"
hip_version="$("$HIPCC" --version 2>/dev/null | sed -n 's/^HIP version: *//p' | head -n1)"
clang_version="$("$HIPCC" --version 2>/dev/null | grep -m1 -o 'clang version [0-9.]*' || true)"
nvcc_version="$("$NVCC" --version | sed -n 's/.*\(release [0-9.]*, V[0-9.]*\).*/\1/p' | head -n1)"
status=0
python3 tools/device_report.py \
  --hip-remarks "$work/hip_remarks.txt" --hip-isa "$work/all.gfx908.s" \
  --ptxas "$work/ptxas.txt" --out "$work/report.md" --decode-target \
  --hip-version "hipcc (HIP $hip_version, $clang_version)" --nvcc-version "nvcc ($nvcc_version)" \
  --hip-flags "$hip_flags" --nvcc-flags "$nvcc_flags" || status=1

if [ "$update" = 1 ]; then
  mkdir -p "$(dirname "$report")"
  cp "$work/report.md" "$report"
  echo "wrote $report"
elif [ ! -f "$report" ]; then
  echo "check_device_code: FAIL: $report is missing; run tools/check_device_code.sh --update and commit it" >&2
  status=1
elif ! diff -u "$report" "$work/report.md"; then
  echo "check_device_code: FAIL: $report is out of date (diff above); run tools/check_device_code.sh --update and commit it" >&2
  status=1
fi

if [ "$status" = 0 ]; then
  echo "check_device_code: OK"
fi
exit "$status"

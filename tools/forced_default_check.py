"""Before a forced-variant suite run (tools/device_session.sh forced): prove that the process
default GPTQ_MI100_KERNEL names really runs, so a pass of the suite means that kernel passed.

    GPTQ_MI100_KERNEL=vectorized python tools/forced_default_check.py

Prints, per (bits, M), the kernel a default call took; exits 1 when the forced kernel ran
nowhere it can run (M below the large-M threshold, bits it covers).
"""

import os
import sys

import torch


def main():
    forced = os.environ.get("GPTQ_MI100_KERNEL", "")
    if not forced or forced == "auto":
        sys.exit("set GPTQ_MI100_KERNEL to the kernel whose suite run this checks")
    from gptq_mi100 import kernels, ops, quantize
    name = forced.split(":", 1)[0]
    info = next(e for e in kernels.kernel_table("cuda") if e.name == name)
    took_forced = 0
    for bits in info.bits:
        n = 288 if bits == 3 else 272  # ragged strips; packing needs N % 32 (3-bit) / % 16
        t = quantize.random_gptq(512, n, bits, 128, symmetric=False, act_order=False,
                                 v2_zeros=False, seed=bits)
        w = ops.prepare(t.qweight.cuda(), t.qzeros.cuda(), t.scales.cuda(), None, bits=bits,
                        group_size=128)
        for m in (1, 4, 16, ops.large_m_threshold("cuda", bits) - 1):
            ops.reset_path_counts()
            ops.gemm(torch.randn(m, 512, device="cuda").half(), w)  # the process default
            ran = [k for k, v in ops.path_counts().items() if v]
            print(f"bits {bits} M {m}: {', '.join(ran)}")
            took_forced += ran == [name]
    torch.cuda.synchronize()
    print(f"GPTQ_MI100_KERNEL={forced}: the default ran it in {took_forced} calls")
    sys.exit(0 if took_forced else 1)


if __name__ == "__main__":
    main()

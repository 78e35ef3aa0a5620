"""Workload for tools/sanitize.sh: every GPU op over a shape sweep, or a planted bug.

    python tools/sanitizer_workload.py sweep [CASE...]   # ragged N, M in {1, 7, 64, 200},
                                                         # all bits; CASE: indices into CASES
    python tools/sanitizer_workload.py sweep-native [CASE...]   # same, without cuBLAS
    python tools/sanitizer_workload.py cases     # how many cases (tools/sanitize.sh runs
                                                 # one process per tool and case)
    python tools/sanitizer_workload.py planted   # a kernel that writes one element past
                                                 # the end of a torch tensor (must be caught)
"""

import os
import sys

import torch


CASES = [  # (K, N, bits, group_size, act_order)
    (256, 264, 4, 64, True), (256, 264, 8, 128, False), (512, 272, 2, 128, True),
    (256, 288, 3, 32, True), (1024, 520, 4, -1, False), (2048, 264, 8, 32, True),
]


def sweep(native_only=False, case_ids=()):
    """Every native GPU kernel on the layout it reads (from the registry), plus
    dequant_matmul unless native_only, over CASES (or the cases named by index).

    Every output our kernels write is read back (summed into a checksum), so initcheck proves
    each element was written."""
    # No load-time self-check: it reads dequant_matmul's cuBLAS outputs, which initcheck flags
    # (cuBLAS's Hopper stores are not seen as writes), and the sweep runs the same kernels itself.
    os.environ["GPTQ_MI100_SELFCHECK"] = "off"
    from gptq_mi100 import kernels, ops, quantize
    dev = torch.device("cuda")
    checksum = torch.zeros((), dtype=torch.float64, device=dev)

    def read(out):  # reads every element: an unwritten one is an initcheck error
        checksum.add_(out.float().sum())
    native = [(r.name, r.layouts[0]) for r in kernels.kernel_table("cuda")
              if r.in_build and "cuda" in r.devices and r.auto_range == "below_large_m"]
    # the wide row tiles at every M of the sweep (B from global memory; auto takes 32 rows only at
    # M 17..32, 64 never)
    wide = [(f"{r.name}:mt={mt}", r.layouts[0]) for r in kernels.kernel_table("cuda")
            if r.in_build and "cuda" in r.devices for mt in r.tiles.get("mt", ()) if mt > 16]
    runs = native + wide + ([] if native_only else [("dequant_matmul", None)])
    cases = [CASES[int(i)] for i in case_ids] if case_ids else CASES
    for k, n, bits, gs, act in cases:
        t = quantize.random_gptq(k, n, bits, gs, symmetric=False, act_order=act,
                                 v2_zeros=False, seed=k + n + bits)
        args = (t.qweight.to(dev), t.qzeros.to(dev), t.scales.to(dev),
                t.g_idx.to(dev) if act else None)
        for kernel, layout in runs:
            try:
                w = ops.prepare(*args, bits=bits, group_size=gs, layout=layout)
            except ValueError:  # this weight cannot be in that layout (3-bit, uneven groups)
                continue
            for m in (1, 7, 64, 200):
                for dtype in (torch.float16, torch.bfloat16):
                    a = torch.randn(m, k, device=dev).to(dtype)
                    try:
                        out = ops.gemm(a, w, kernel=kernel)
                    except ValueError:  # the kernel refuses this problem (stated reason)
                        continue
                    # not dequant_matmul's: cuBLAS writes it, with Hopper stores that
                    # initcheck does not see as writes (false errors, not ours)
                    if kernel != "dequant_matmul":
                        read(out)
        read(ops.dequantize(w, torch.float16))
        q = t.qweight.to(dev).clone()
        perm = torch.argsort(t.g_idx).to(torch.int32).to(dev)
        ops.gptq_shuffle(q, perm, bits)
        read(ops.gptq_gemm(torch.randn(7, k, device=dev).half(), q, t.qzeros.to(dev),
                           t.scales.to(dev), perm, True, False, bits))
        g_bad = t.g_idx.clone()
        g_bad[0] = 1 << 20  # clamped in the kernel, never read out of bounds
        read(ops.gptq_gemm(torch.randn(3, k, device=dev).half(), t.qweight.to(dev),
                           t.qzeros.to(dev), t.scales.to(dev), g_bad.to(dev), False, False, bits))
    torch.cuda.synchronize()
    print(f"sweep done; index errors clamped: {ops.take_index_errors('cuda')}; "
          f"output checksum {checksum.item():.6g}")


def planted():
    import cupy
    kernel = cupy.RawKernel(r'''
    extern "C" __global__ void write_one_past(float* out, int n) {
      int i = blockIdx.x * blockDim.x + threadIdx.x;
      if (i <= n) out[i] = 1.0f;  // deliberate off-by-one: i == n is out of bounds
    }''', "write_one_past")
    n = 1000
    out = torch.empty(n, device="cuda")
    kernel((4,), (256,), (out.data_ptr(), cupy.int32(n)))
    torch.cuda.synchronize()
    print("planted kernel ran")


if __name__ == "__main__":
    # sweep-native: only this package's kernels (racecheck flags cuBLAS's Hopper GEMMs,
    # which dequant_matmul calls, with hazards that are not ours).
    {"sweep": lambda: sweep(case_ids=sys.argv[2:]),
     "sweep-native": lambda: sweep(native_only=True, case_ids=sys.argv[2:]),
     "cases": lambda: print(len(CASES)),
     "planted": planted}[sys.argv[1]]()

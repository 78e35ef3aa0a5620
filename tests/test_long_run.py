"""A long run, short version for CI: mixed shapes and kernels, host RSS (and GPU memory)
flat after the allocator's warm-up. GPTQ_MI100_LONG_RUN=100000 sets the call count (the GPU
soak); the default keeps CI fast."""

import os
import time

import torch

from gptq_mi100 import ops, quantize
from conftest import prepare_variants


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_many_mixed_calls_keep_memory_flat(device):
    calls = int(os.environ.get("GPTQ_MI100_LONG_RUN", "3000"))
    layers = []
    for i, (k, n, bits, gs, act) in enumerate([(256, 264, 4, 64, True), (512, 128, 8, 128, False),
                                               (256, 288, 3, 32, False)]):
        t = quantize.random_gptq(k, n, bits, gs, symmetric=False, act_order=act,
                                 v2_zeros=False, seed=100 + i)
        for kernel, w in prepare_variants(t.qweight, t.qzeros, t.scales,
                                          t.g_idx if act else None, bits, gs, False, device):
            layers.append((kernel, w, k))
    inputs = {k: [torch.randn(m, k, device=device).half() for m in (1, 3, 8)]
              for k in {k for _, _, k in layers}}

    def run(count):
        for i in range(count):
            kernel, w, k = layers[i % len(layers)]
            ops.gemm(inputs[k][i % 3], w, kernel=kernel)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run(max(200, calls // 10))  # warm-up: allocator caches, lazy init
    rss0 = _rss_bytes()
    gpu0 = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    t0 = time.perf_counter()
    run(calls)
    seconds = time.perf_counter() - t0
    growth = _rss_bytes() - rss0
    gpu1 = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    print(f"\nlong run on {device}: {calls} calls over {len(layers)} (kernel, weight) pairs in "
          f"{seconds:.1f} s; host RSS {rss0 / 2**20:.1f} MiB -> {growth / 2**20:+.2f} MiB; "
          f"GPU allocated {gpu0 / 2**20:.2f} -> {gpu1 / 2**20:.2f} MiB")
    assert growth < 32 * 2**20, f"host RSS grew {growth / 2**20:.1f} MiB over {calls} calls"
    if device.type == "cuda":
        assert torch.cuda.memory_allocated(device) <= gpu0, "GPU memory grew"

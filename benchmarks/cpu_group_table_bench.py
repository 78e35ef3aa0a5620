"""CPU: vLLM row-parallel act-order call (unsorted g_idx) vs prepare + gemm; see NOTES.md 4."""
import torch, time
from gptq_mi100 import ops, quantize
torch.manual_seed(0)
t = quantize.random_gptq(4096, 5120, 4, 128, symmetric=False, act_order=True, v2_zeros=False, seed=0)
w = ops.prepare(t.qweight, t.qzeros, t.scales, t.g_idx, bits=4, group_size=128)
a = torch.randn(1, 4096).half()
def tm(f):
    f(); ts=[]
    for _ in range(5):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return sorted(ts)[2]*1e3
alt = tm(lambda: ops.gptq_gemm(a, t.qweight, t.qzeros, t.scales, t.g_idx, False, False, 4))
prep = tm(lambda: ops.gemm(a, w, kernel="cpu_c"))
print(f"vLLM alt path (unsorted g_idx): {alt:.1f} ms; prepare+gemm (sorted): {prep:.1f} ms")

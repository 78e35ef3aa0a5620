"""How gptq_mi100 times a GEMM on a GPU (benchmarks/bench_gemm.py and `python -m gptq_mi100`).

BACKGROUND.md section 6: C >= 24 calls captured in one CUDA/HIP graph, one per copy of the
weights (copies together past 4x L2, so every call reads from HBM), warmed up on a side
stream, replays timed one by one with events; per-call time = replay time / C. The copy
bandwidth (dst.copy_(src) of 1 GiB) and the launch floor (a 1-element add_ in the same
graph form) are measured in the same process, so targets are stated against this card.
"""

import math
import statistics
import time

import torch

MIN_CALLS = 24                  # kernel calls per graph (and copies of the weights)
MIN_ROTATION_BYTES = 256 * 2**20
COPY_BW_BYTES = 2**30           # 1 GiB buffer copied: 2 GiB moved


class Timer:
    """Per-call time of a list of calls (one per copy of the weights)."""

    def __init__(self, device, replays, repeats):
        self.device, self.replays, self.repeats = device, replays, repeats
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def time_us(self, calls):
        """List of per-call samples (us): one per graph replay (CUDA) or per call (CPU)."""
        return self._time_cuda(calls) if self.cuda else self._time_cpu(calls[0])

    def _time_cuda(self, calls):
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):         # warmup on a side stream, as capture requires
            for f in calls:
                f()
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for f in calls:
                f()
        graph.replay()
        torch.cuda.synchronize(self.device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        samples = []
        for _ in range(self.replays):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) * 1e3 / len(calls))
        del graph
        return samples

    def _time_cpu(self, f):
        t0 = time.perf_counter()
        f()                                   # warmup; also sizes the repeat count
        first = time.perf_counter() - t0
        reps = self.repeats if first < 1.0 else (3 if first < 10.0 else 1)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            samples.append((time.perf_counter() - t0) * 1e6)
        return samples


def copy_bandwidth_gbps(device, nbytes, reps=10):
    """Read+write bandwidth of dst.copy_(src), nbytes each: 2 * nbytes / median time."""
    src = torch.ones(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    samples = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        for _ in range(reps):
            start.record()
            dst.copy_(src)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(max(5, reps // 2)):
            t0 = time.perf_counter()
            dst.copy_(src)
            samples.append(time.perf_counter() - t0)
    del src, dst
    return 2 * nbytes / statistics.median(samples) / 1e9


def n_copies(device, bytes_per_copy, l2_bytes):
    if device.type != "cuda":
        return 1
    target = max(MIN_ROTATION_BYTES, 4 * (l2_bytes or 0))
    return max(MIN_CALLS, math.ceil(target / max(1, bytes_per_copy)))



def launch_floor_us(timer):
    """Per-call time of a 1-element add_ called MIN_CALLS times in one graph (median)."""
    x = torch.zeros(1, device=timer.device)
    return statistics.median(timer.time_us([lambda: x.add_(1)] * MIN_CALLS))

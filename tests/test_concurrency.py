"""Several threads (each on its own stream on a GPU) and graph replays interleaved with
eager calls give the single-threaded results bitwise (split-K counters are per stream)."""

import threading

import torch

from gptq_mi100 import ops, quantize
from conftest import prepare_variants


def _layers(device):
    t = quantize.random_gptq(512, 2560, 4, 128, symmetric=False, act_order=True,
                             v2_zeros=False, seed=11)
    return prepare_variants(t.qweight, t.qzeros, t.scales, t.g_idx, 4, 128, False, device)


def test_threads_on_their_own_streams_match_single_threaded(device):
    layers = _layers(device)
    xs = [torch.randn(m, 512, generator=torch.Generator().manual_seed(m)).half().to(device)
          for m in (1, 4, 9)]
    want = [[ops.gemm(x, w, kernel=kernel) for x in xs] for kernel, w in layers]
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the side streams below do not wait for this one
    errors = []

    def worker(seed):
        try:
            stream = torch.cuda.Stream(device) if device.type == "cuda" else None
            ctx = torch.cuda.stream(stream) if stream is not None else _Null()
            with ctx:
                for rep in range(20):
                    li = (seed + rep) % len(layers)
                    kernel, w = layers[li]
                    xi = (seed * 7 + rep) % len(xs)
                    got = ops.gemm(xs[xi], w, kernel=kernel)
                    if stream is not None:
                        stream.synchronize()
                    if not torch.equal(got, want[li][xi]):
                        errors.append((seed, rep, kernel))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:5]


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_graph_replay_interleaved_with_eager_calls(device):
    if device.type != "cuda":
        return  # graphs are a GPU feature; the CPU case is the threads test above
    layers = _layers(device)
    kernel, w = layers[0]
    static_x = torch.randn(3, 512, device=device).half()
    other = torch.randn(7, 512, device=device).half()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        ops.gemm(static_x, w, kernel=kernel)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = ops.gemm(static_x, w, kernel=kernel)
    for i in range(10):
        static_x.copy_(torch.randn(3, 512, generator=torch.Generator().manual_seed(i)).half())
        graph.replay()
        eager_other = ops.gemm(other, w, kernel=kernel)     # between replays, same stream
        torch.cuda.synchronize(device)
        assert torch.equal(static_y, ops.gemm(static_x, w, kernel=kernel)), i
        assert torch.equal(eager_other, ops.gemm(other, w, kernel=kernel)), i

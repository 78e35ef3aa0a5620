"""Tensor parallelism for GPTQ layers, split the way vLLM splits them, and a multi-process driver.

K = in_features, N = out_features, G = groups, world = tensor-parallel size.

Column-parallel (QKV, gate_up): N is split. Rank r keeps columns of ``qweight``
[K*bits/32, N/world], ``scales`` [G, N/world] and the packed ``qzeros`` words
[G, N/world*bits/32]; ``g_idx`` [K] is unchanged. Merged layers (QKV, gate_up) split every
sub-output on its own, as vLLM's ``MergedColumnParallelLinear`` / ``QKVParallelLinear`` do: pass
``output_sizes`` (e.g. q, k, v). The rank outputs are all-gathered along N.

Row-parallel (o_proj, down_proj): K is split. Rank r keeps ``qweight`` rows of its K/world input
features and multiplies the matching K slice of the activation; the partial outputs are summed
with an all-reduce.
- Without act-order the groups split with K: rank r keeps ``scales`` / ``qzeros`` rows
  ``[r*K/world/group_size, (r+1)*K/world/group_size)`` and its ``g_idx`` is the local default
  ``k // group_size`` (the checkpoint slice minus the rank's first group). vLLM discards g_idx.
- With act-order (g_idx arbitrary) a rank's K rows belong to groups all over [0, G): each rank
  keeps the raw ``g_idx`` slice of its rows (values in [0, G)) and the WHOLE ``scales`` and
  ``qzeros``, exactly as vLLM does (its ``exllama_state`` is then UNUSED: no ``gptq_shuffle``,
  and ``gptq_gemm(..., use_exllama=False)`` on the unshuffled weights with that g_idx slice).
- group_size -1 (one group): ``scales`` / ``qzeros`` have one row and are replicated.

Two ways to run a shard (``path``):
- "gemm": this package's API, ``prepare(...)`` then ``gemm(x, prepared)``.
- "vllm": vLLM's GPTQLinearMethod call sequence on this package's drop-in ops: at load,
  ``perm = argsort(g_idx)`` with act-order (else an empty int32 tensor) and
  ``gptq_shuffle(qweight, perm, bits)``; per forward ``gptq_gemm(x, qweight, qzeros, scales, perm,
  True, v2, bits)``, except row-parallel act-order shards with world > 1 (see above).

CLI: ``python -m gptq_mi100.tensor_parallel --world 2 --backend gloo --device cpu`` spawns one
process per rank (loopback only), runs Qwen3-32B layers (TP=1 shapes, split here) or scaled-down
shapes (``--shapes small``), and compares the combined output with the unsharded single-device
result and with the fp32 reference. ``--backend nccl --device cuda`` puts rank r on cuda:r.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import socket
import statistics
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import torch
import torch.distributed as dist

from . import formats
from .quantize import GPTQTensors

__all__ = [
    "PARALLEL_KINDS", "PATHS", "REDUCE_DTYPES", "is_act_order", "column_ranges",
    "column_gather_index", "row_range", "shard_column_parallel", "shard_row_parallel",
    "shard_input", "ShardedGPTQLinear", "run_sharded_layer", "spawn", "run_cases",
    "fp_ulp", "sharded_vs_single_bound", "reference_bound", "reference_output",
]

PARALLEL_KINDS = ("column", "row")
PATHS = ("gemm", "vllm")
REDUCE_DTYPES = ("fp32", "activation")

# The GEMM kernels (ours and vLLM's) need K % 32 == 0: group boundaries are checked per 32 rows.
_KERNEL_K_MULTIPLE = 32


# ------------------------------------------------------------------ split helpers

def _check_rank(rank, world):
    rank = formats._as_int("rank", rank)
    world = formats._as_int("world", world)
    if world < 1:
        raise ValueError(f"world must be >= 1, got {world}")
    if not 0 <= rank < world:
        raise ValueError(f"rank must lie in [0, world={world}), got {rank}")
    return rank, world


def _packing_words(bits):
    return ("32 values in 3 int32 words" if bits == 3
            else f"{32 // bits} values per int32 word")


def _check_layer(t: GPTQTensors):
    if not isinstance(t, GPTQTensors):
        raise TypeError(f"expected GPTQTensors, got {type(t).__name__}")
    bits = formats._check_bits(t.bits)
    k, n = t.g_idx.shape[0], t.qweight.shape[1]
    if t.qweight.shape[0] * 32 != k * bits:
        raise ValueError(f"qweight has {t.qweight.shape[0]} rows but g_idx gives K={k}: "
                         f"expected K*bits/32 = {k * bits // 32}")
    if t.scales.dim() != 2 or t.scales.shape[1] != n:
        raise ValueError(f"scales must be [G, N={n}], got {tuple(t.scales.shape)}")
    if tuple(t.qzeros.shape) != (t.scales.shape[0], n * bits // 32):
        raise ValueError(f"qzeros must be [G={t.scales.shape[0]}, N*bits/32={n * bits // 32}], "
                         f"got {tuple(t.qzeros.shape)}")
    return bits, k, n


def _default_g_idx(k, group_size, device):
    return formats.group_index_default(k, group_size, device=device)


def is_act_order(t: GPTQTensors) -> bool:
    """True when g_idx is not the default ``k // group_size`` (desc_act / act-order)."""
    k = t.g_idx.shape[0]
    return not torch.equal(t.g_idx.to(torch.int32),
                           _default_g_idx(k, t.group_size, t.g_idx.device))


def column_ranges(n, world, bits, output_sizes: Optional[Sequence[int]] = None):
    """Column ranges ``[(start, stop), ...]`` of the full N owned by each rank (a list per rank).

    Without ``output_sizes`` rank r owns ``[r*N/world, (r+1)*N/world)``. With ``output_sizes``
    (a merged layer such as QKV: sizes of q, k, v along N) each sub-output is split on its own and
    rank r owns its slice of each, in order. Every rank's slice must start and end on a qzeros
    word boundary: a multiple of 32/bits columns (32 for 3-bit). Raises ValueError otherwise.
    """
    bits = formats._check_bits(bits)
    _, world = _check_rank(0, world)
    sizes = [n] if output_sizes is None else [formats._as_int("output size", s)
                                              for s in output_sizes]
    if sum(sizes) != n:
        raise ValueError(f"column-parallel: output_sizes {list(sizes)} sum to {sum(sizes)}, "
                         f"not N={n}")
    unit = formats.pack_multiple(bits)
    what = "N" if output_sizes is None else "output size"
    for size in sizes:
        if size <= 0 or size % world:
            raise ValueError(f"column-parallel: {what} {size} does not split evenly over "
                             f"world={world} ranks")
        part = size // world
        if part % unit:
            raise ValueError(
                f"column-parallel: each rank's share of {what} {size} is {size}/{world} = "
                f"{part} columns, not a multiple of {unit}: {bits}-bit qzeros pack "
                f"{_packing_words(bits)} along N, so a rank must own whole words "
                f"(N*bits/32 words per rank)")
    ranges = []
    for rank in range(world):
        mine, base = [], 0
        for size in sizes:
            part = size // world
            mine.append((base + rank * part, base + (rank + 1) * part))
            base += size
        ranges.append(mine)
    return ranges


def column_gather_index(n, world, bits, output_sizes=None) -> Optional[torch.Tensor]:
    """Index ``idx`` with ``full = gathered[..., idx]``, where ``gathered`` concatenates the rank
    outputs along N in rank order; None when that concatenation already is in N order."""
    if output_sizes is None or len(output_sizes) == 1 or world == 1:
        return None
    src = torch.cat([torch.arange(s, e) for mine in column_ranges(n, world, bits, output_sizes)
                     for s, e in mine])
    return torch.argsort(src)


def shard_column_parallel(t: GPTQTensors, rank, world, output_sizes=None) -> GPTQTensors:
    """Rank ``rank``'s column-parallel share of layer ``t`` (new contiguous tensors).

    qweight [K*bits/32, N/world], qzeros [G, N/world*bits/32], scales [G, N/world]; g_idx [K]
    unchanged (a copy). See :func:`column_ranges` for ``output_sizes`` and the divisibility rules.
    """
    bits, _, n = _check_layer(t)
    rank, world = _check_rank(rank, world)
    mine = column_ranges(n, world, bits, output_sizes)[rank]

    def cols(x, scale_num=1, scale_den=1):
        parts = [x[:, s * scale_num // scale_den:e * scale_num // scale_den] for s, e in mine]
        return torch.cat(parts, dim=1).contiguous()

    return GPTQTensors(qweight=cols(t.qweight), qzeros=cols(t.qzeros, bits, 32),
                       scales=cols(t.scales), g_idx=t.g_idx.clone(), bits=bits,
                       group_size=t.group_size, v2_zeros=t.v2_zeros)


def row_range(k, world, rank, bits, group_size):
    """``(start, stop)``: the K rows (input features) rank ``rank`` owns under row parallelism.

    Requires K % world == 0, K/world a multiple of the qweight packing (32/bits rows, 32 for
    3-bit) and of 32 (the GEMM kernels' K granularity), and of group_size unless it is -1 (vLLM
    requires input_size_per_partition % group_size == 0; without act-order each rank then holds
    whole groups). Raises ValueError with the reason otherwise.
    """
    bits = formats._check_bits(bits)
    rank, world = _check_rank(rank, world)
    group_size = formats._as_int("group_size", group_size)
    if k % world:
        raise ValueError(f"row-parallel: K={k} input features do not split evenly over "
                         f"world={world} ranks")
    part = k // world
    unit = formats.pack_multiple(bits)
    if part % unit:
        raise ValueError(
            f"row-parallel: K/world = {k}/{world} = {part} rows per rank is not a multiple of "
            f"{unit}: {bits}-bit qweight packs {_packing_words(bits)} along K")
    if part % _KERNEL_K_MULTIPLE:
        raise ValueError(
            f"row-parallel: K/world = {k}/{world} = {part} rows per rank is not a multiple of "
            f"{_KERNEL_K_MULTIPLE}, which the GEMM kernels (gptq_mi100's and vLLM's) need")
    if group_size != -1 and part % group_size:
        raise ValueError(
            f"row-parallel: K/world = {k}/{world} = {part} rows per rank is not a multiple of "
            f"group_size={group_size} (vLLM requires input_size_per_partition % group_size "
            f"== 0; without act-order each rank keeps whole groups of scales and qzeros)")
    return rank * part, (rank + 1) * part


def shard_row_parallel(t: GPTQTensors, rank, world, act_order: Optional[bool] = None
                       ) -> GPTQTensors:
    """Rank ``rank``'s row-parallel share of layer ``t`` (new contiguous tensors).

    qweight [K/world*bits/32, N]. ``act_order`` None detects it from g_idx (:func:`is_act_order`).
    - act-order: g_idx = the raw slice (values in [0, G)), scales / qzeros whole [G, ...], as vLLM.
    - otherwise: scales / qzeros rows of the rank's K/world/group_size groups, g_idx the local
      default ``k // group_size``; ValueError if g_idx is not the default grouping.
    - group_size -1: scales / qzeros (one row) replicated, g_idx the slice (all zeros).
    """
    bits, k, _ = _check_layer(t)
    rank, world = _check_rank(rank, world)
    k0, k1 = row_range(k, world, rank, bits, t.group_size)
    word = lambda row: row * bits // 32  # noqa: E731  (3-bit: row is a multiple of 32)
    qweight = t.qweight[word(k0):word(k1)].contiguous()
    g_slice = t.g_idx[k0:k1].contiguous()
    detected = is_act_order(t)
    if act_order is None:
        act_order = detected
    if t.group_size == -1:
        return GPTQTensors(qweight, t.qzeros.clone(), t.scales.clone(), g_slice, bits,
                           t.group_size, t.v2_zeros)
    if act_order:
        return GPTQTensors(qweight, t.qzeros.clone(), t.scales.clone(), g_slice, bits,
                           t.group_size, t.v2_zeros)
    if detected:
        raise ValueError("row-parallel: act_order=False but g_idx is not the default "
                         "k // group_size grouping (the layer uses act-order / desc_act); "
                         "pass act_order=True or None")
    g0, g1 = k0 // t.group_size, k1 // t.group_size
    return GPTQTensors(qweight, t.qzeros[g0:g1].contiguous(), t.scales[g0:g1].contiguous(),
                       (g_slice - g0).to(torch.int32), bits, t.group_size, t.v2_zeros)


def shard_input(x: torch.Tensor, rank, world) -> torch.Tensor:
    """The K slice ``x[..., r*K/world:(r+1)*K/world]`` a row-parallel rank multiplies."""
    rank, world = _check_rank(rank, world)
    k = x.shape[-1]
    if k % world:
        raise ValueError(f"row-parallel: K={k} does not split evenly over world={world}")
    part = k // world
    return x[..., rank * part:(rank + 1) * part].contiguous()


# ------------------------------------------------------------------ one rank's layer

def _to_device(t: GPTQTensors, device) -> GPTQTensors:
    return t._replace(qweight=t.qweight.to(device), qzeros=t.qzeros.to(device),
                      scales=t.scales.to(device), g_idx=t.g_idx.to(device))


class ShardedGPTQLinear:
    """One rank's share of a GPTQ linear layer, loaded for ``path`` on ``device``.

    ``layer`` is the full (unsharded) layer on the host; construction shards it (load time).
    ``forward_local(x_local)`` runs the local GEMM with no communication; ``combine`` does the
    collective; ``__call__(x)`` takes the full activation [..., K] and returns [..., N].
    """

    def __init__(self, layer: GPTQTensors, parallel: str, rank: int, world: int, *,
                 path: str = "gemm", output_sizes=None, act_order: Optional[bool] = None,
                 device="cpu", kernel: Optional[str] = None):
        from . import ops  # loads the extension
        if parallel not in PARALLEL_KINDS:
            raise ValueError(f"parallel must be one of {PARALLEL_KINDS}, got {parallel!r}")
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        self.rank, self.world = _check_rank(rank, world)
        self.parallel, self.path, self.kernel = parallel, path, kernel
        self.device = torch.device(device)
        self.n_full = layer.qweight.shape[1]
        self.act_order = is_act_order(layer) if act_order is None else bool(act_order)
        if parallel == "column":
            shard = shard_column_parallel(layer, rank, world, output_sizes)
            self.gather_index = column_gather_index(self.n_full, world, layer.bits,
                                                    output_sizes)
            if self.gather_index is not None:
                self.gather_index = self.gather_index.to(self.device)
        else:
            if output_sizes is not None:
                raise ValueError("output_sizes applies to column-parallel layers only")
            shard = shard_row_parallel(layer, rank, world, self.act_order)
            self.gather_index = None
        self.shard = shard = _to_device(shard, self.device)
        bits = shard.bits
        if path == "gemm":
            self.prepared = ops.prepare(shard.qweight, shard.qzeros, shard.scales, shard.g_idx,
                                        bits=bits, group_size=shard.group_size,
                                        v2_zeros=shard.v2_zeros)
            return
        # vLLM GPTQLinearMethod: row-parallel (K partitioned) + desc_act + group_size != -1
        # -> exllama_state UNUSED: unshuffled weights, raw g_idx slice, use_exllama=False.
        self.use_exllama = not (parallel == "row" and world > 1 and self.act_order
                                and shard.group_size != -1)
        if self.use_exllama:
            if self.act_order:
                self.b_g_idx = torch.argsort(shard.g_idx).to(torch.int)
            else:
                self.b_g_idx = torch.empty((0,), dtype=torch.int, device=self.device)
            self.qweight = shard.qweight.clone()
            ops.gptq_shuffle(self.qweight, self.b_g_idx, bits)
        else:
            self.qweight = shard.qweight
            self.b_g_idx = shard.g_idx.to(torch.int)

    @property
    def k_local(self):
        return self.shard.g_idx.shape[0]

    @property
    def n_local(self):
        return self.shard.qweight.shape[1]

    def local_input(self, x: torch.Tensor) -> torch.Tensor:
        """Full activation [..., K] -> what this rank multiplies ([..., K/world] if row)."""
        x = x.to(self.device)
        return x if self.parallel == "column" else shard_input(x, self.rank, self.world)

    def forward_local(self, x_local: torch.Tensor) -> torch.Tensor:
        """x_local [..., K_local] -> local output [..., N_local] in x's dtype (no collective)."""
        from . import ops
        if self.path == "gemm":
            return ops.gemm(x_local, self.prepared, kernel=self.kernel)
        s = self.shard
        lead = x_local.shape[:-1]
        y = ops.gptq_gemm(x_local.reshape(-1, x_local.shape[-1]), self.qweight, s.qzeros,
                          s.scales, self.b_g_idx, self.use_exllama, s.v2_zeros, s.bits)
        return y.reshape(*lead, self.n_local)

    def combine(self, y_local: torch.Tensor, group=None, reduce_dtype: str = "fp32"):
        """Column: all_gather along N (back into N order). Row: all_reduce(sum).

        reduce_dtype "fp32" (default) sums the partials in fp32 and rounds once to the
        activation dtype. vLLM all-reduces the fp16 partials in fp16 (NCCL / custom all-reduce),
        so every intermediate sum is rounded to fp16 too: up to world-1 extra half-ulp roundings
        on top of what "fp32" gives. Either way each partial was already rounded to the
        activation dtype by the GEMM (its output dtype), which is where a sharded row-parallel
        result differs from the unsharded one. "activation" reproduces vLLM's fp16 all-reduce.
        """
        if reduce_dtype not in REDUCE_DTYPES:
            raise ValueError(f"reduce_dtype must be one of {REDUCE_DTYPES}, got {reduce_dtype!r}")
        if self.world == 1:
            return y_local
        if self.parallel == "column":
            y_local = y_local.contiguous()
            parts = [torch.empty_like(y_local) for _ in range(self.world)]
            dist.all_gather(parts, y_local, group=group)
            y = torch.cat(parts, dim=-1)
            return y if self.gather_index is None else y.index_select(-1, self.gather_index)
        if reduce_dtype == "fp32":
            buf = y_local.to(torch.float32)  # a new tensor: y_local stays the fp16 partial
            dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
            return buf.to(y_local.dtype)
        buf = y_local.clone()
        dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
        return buf

    def __call__(self, x: torch.Tensor, group=None, reduce_dtype: str = "fp32"):
        return self.combine(self.forward_local(self.local_input(x)), group, reduce_dtype)


def run_sharded_layer(x: torch.Tensor, layer: GPTQTensors, parallel: str, *, path="gemm",
                      output_sizes=None, act_order=None, reduce_dtype="fp32", group=None,
                      device=None, kernel=None) -> torch.Tensor:
    """Inside an initialized process group: shard ``layer`` for this rank, run its share of
    ``x`` [..., K] (full activation) on ``device`` (default: cuda:<local rank> for NCCL, else
    cpu) through ``path``, combine across ranks and return the full output [..., N]."""
    if not dist.is_initialized():
        raise RuntimeError("run_sharded_layer needs an initialized torch.distributed group")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if device is None:
        device = (torch.device("cuda", torch.cuda.current_device())
                  if dist.get_backend(group) == "nccl" else torch.device("cpu"))
    lin = ShardedGPTQLinear(layer, parallel, rank, world, path=path, output_sizes=output_sizes,
                            act_order=act_order, device=device, kernel=kernel)
    return lin(x, group=group, reduce_dtype=reduce_dtype)


# ------------------------------------------------------------------ accuracy bounds

def fp_ulp(x: torch.Tensor, dtype=torch.float16) -> torch.Tensor:
    """Spacing of ``dtype`` numbers at |x| (fp32 result): 2**(floor(log2|x|)) * eps, and the
    subnormal spacing below the smallest normal."""
    fi = torch.finfo(dtype)
    ax = x.detach().abs().to(torch.float32)
    exponent = torch.frexp(ax).exponent  # ax = m * 2**e, m in [0.5, 1)
    ulp = torch.ldexp(torch.full_like(ax, fi.eps / 2), exponent)
    return torch.where(ax < fi.smallest_normal, torch.full_like(ax, fi.smallest_normal * fi.eps),
                       ulp)


def _order_term(k, spread):
    # fp32 accumulation in a different order (split K, other blocking): a random walk of
    # per-addition roundings, ~2**-24 * sqrt(K/2) * spread; 4 * sqrt(K) leaves margin.
    return 4.0 * math.sqrt(k) * 2.0**-24 * spread


def sharded_vs_single_bound(parallel, y_sharded, y_single, partials, spread, k, *,
                            reduce_dtype="fp32", dtype=torch.float16):
    """Per-element bound of |y_sharded - y_single| (fp32 tensors, same shape).

    Both outputs are rounded to ``dtype`` once at the end: ulp(max(|y_sharded|, |y_single|)).
    Both accumulate in fp32, possibly in different orders: 4*sqrt(K)*2**-24*spread, with
    ``spread = sqrt((x**2) @ (w**2))``. Row-parallel: each rank's partial p_r is rounded to
    ``dtype`` by its GEMM before the all-reduce: + sum_r ulp(p_r)/2, + world * 2**-24 * sum|p_r|
    for the fp32 sum; with a reduce in ``dtype`` (vLLM) + (world-1) * ulp(sum|p_r|)/2 for the
    intermediate sums. ``partials``: the rank outputs (row-parallel), else None.
    """
    big = torch.maximum(y_sharded.abs(), y_single.abs())
    bound = fp_ulp(big, dtype) + _order_term(k, spread)
    if parallel == "row" and partials is not None and len(partials) > 1:
        p = torch.stack([q.float() for q in partials])
        abs_sum = p.abs().sum(0)
        bound = bound + 0.5 * fp_ulp(p, dtype).sum(0) + len(partials) * 2.0**-24 * abs_sum
        if reduce_dtype != "fp32":
            bound = bound + (len(partials) - 1) * 0.5 * fp_ulp(abs_sum, dtype)
    return bound


def reference_bound(ref, spread, *, partials=None, reduce_dtype="fp32", dtype=torch.float16):
    """Per-element bound of |y - ref| against the fp32 reference: the project's GEMM bound
    ``eps*|ref| + 4*eps*spread`` (eps = 2**-11 for fp16: output rounding, and weights rounded to
    fp16 by the dequantize + matmul path as a random walk over K), plus, for a row-parallel
    result, the rounding of each partial (and of the fp16 all-reduce) as in
    :func:`sharded_vs_single_bound`."""
    eps = torch.finfo(dtype).eps / 2
    bound = eps * ref.abs() + 4 * eps * spread + 1e-6
    if partials is not None and len(partials) > 1:
        p = torch.stack([q.float() for q in partials])
        bound = bound + 0.5 * fp_ulp(p, dtype).sum(0)
        if reduce_dtype != "fp32":
            bound = bound + (len(partials) - 1) * 0.5 * fp_ulp(p.abs().sum(0), dtype)
    return bound


def reference_output(x: torch.Tensor, t: GPTQTensors, chunk_cols: int = 4096):
    """(ref, spread), fp32 [M, N] on the CPU: ref = x @ W from the fp64 reference dequantization,
    spread = sqrt((x**2) @ (W**2)). Column chunks bound the memory for large layers."""
    from .reference import dequantize_reference
    x64 = x.detach().to("cpu", torch.float64).reshape(-1, x.shape[-1])
    n = t.qweight.shape[1]
    unit = formats.pack_multiple(t.bits)
    chunk = max(unit, chunk_cols // unit * unit)
    refs, spreads = [], []
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        w = dequantize_reference(t.qweight[:, s:e].cpu(), t.qzeros[:, s * t.bits // 32:
                                                                   e * t.bits // 32].cpu(),
                                 t.scales[:, s:e].cpu(), t.g_idx.cpu(), t.bits, t.v2_zeros,
                                 dtype=torch.float64)
        refs.append((x64 @ w).float())
        spreads.append((x64.square() @ w.square()).sqrt().float())
        del w
    return torch.cat(refs, dim=1), torch.cat(spreads, dim=1)


# ------------------------------------------------------------------ process driver

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _layer_to_dict(t: GPTQTensors):
    return {"qweight": t.qweight, "qzeros": t.qzeros, "scales": t.scales, "g_idx": t.g_idx,
            "bits": int(t.bits), "group_size": int(t.group_size), "v2_zeros": bool(t.v2_zeros)}


def _layer_from_dict(d) -> GPTQTensors:
    return GPTQTensors(d["qweight"], d["qzeros"], d["scales"], d["g_idx"], d["bits"],
                       d["group_size"], d["v2_zeros"])


def _rank_device(device_type, rank):
    if device_type == "cuda":
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank)
    return torch.device("cpu")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_case(case, rank, world, device):
    from . import ops
    layer = _layer_from_dict(case["layer"])
    lin = ShardedGPTQLinear(layer, case["parallel"], rank, world, path=case["path"],
                            output_sizes=case.get("output_sizes"),
                            act_order=case.get("act_order"), device=device,
                            kernel=case.get("kernel"))
    ops.take_index_errors(device)  # start from zero
    outs, partials, ms = [], [], []
    for x in case["xs"]:
        x_local = lin.local_input(x)
        y_local = lin.forward_local(x_local)
        y = lin.combine(y_local, reduce_dtype=case.get("reduce_dtype", "fp32"))
        outs.append(y.cpu())
        if case["parallel"] == "row" and world > 1 and case.get("want_partials", True):
            parts = [torch.empty_like(y_local) for _ in range(world)]
            dist.all_gather(parts, y_local.contiguous())
            partials.append([p.cpu() for p in parts])
        else:
            partials.append(None)
        times = []
        for _ in range(case.get("timing_reps", 0)):
            _sync(device)
            t0 = time.perf_counter()
            lin.forward_local(x_local)
            _sync(device)
            times.append((time.perf_counter() - t0) * 1e3)
        ms.append(statistics.median(times) if times else None)
    errors = torch.tensor([ops.take_index_errors(device)], dtype=torch.int64, device=device)
    dist.all_reduce(errors)
    return {"name": case["name"], "outputs": outs, "partials": partials,
            "index_errors": int(errors.item()), "local_ms": ms,
            "local_shape": (lin.k_local, lin.n_local),
            "local_g_idx": lin.shard.g_idx.cpu(), "prepared_perm_len": (
                (0 if lin.prepared.a_perm is None else int(lin.prepared.a_perm.numel()))
                if case["path"] == "gemm" else None),
            "use_exllama": getattr(lin, "use_exllama", None)}


def _worker(rank, world, backend, device_type, port, cases_path, result_path, threads):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast (NVLS) off
    if backend == "gloo" and os.path.exists("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo's own sockets on loopback too
    if threads:
        torch.set_num_threads(threads)
    device = _rank_device(device_type, rank)
    kwargs = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=180), **kwargs)
    try:
        cases = torch.load(cases_path, weights_only=True)
        results = []
        for case in cases:
            try:
                results.append(_run_case(case, rank, world, device))
            except Exception as e:
                raise RuntimeError(f"rank {rank}/{world}, case {case['name']!r}: "
                                   f"{type(e).__name__}: {e}") from e
        if rank == 0:
            torch.save(results, result_path)
    finally:
        dist.destroy_process_group()


def spawn(world, backend, device_type, cases_path, result_path, *, timeout_s=600,
          threads=None):
    """Run :func:`_worker` in ``world`` spawned processes (loopback rendezvous on a free port).

    Raises the first failing rank's exception (torch.multiprocessing's ProcessRaisedException
    carries its traceback) or TimeoutError after ``timeout_s``."""
    import torch.multiprocessing as mp
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // world) if device_type == "cpu" else 1
    port = _free_port()
    ctx = mp.start_processes(_worker, args=(world, backend, device_type, port, cases_path,
                                            result_path, threads),
                             nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            for p in ctx.processes:
                p.join(10)
            raise TimeoutError(f"tensor-parallel workers (world={world}, {backend}) did not "
                               f"finish within {timeout_s} s")


def run_cases(cases: List[dict], world: int, backend: str = "gloo", device_type: str = "cpu",
              *, timeout_s=600, threads=None, workdir=None):
    """Run ``cases`` sharded over ``world`` spawned ranks; returns rank 0's result list.

    A case is a dict: name, parallel ("column"/"row"), path ("gemm"/"vllm"), layer (the full
    layer as a dict of GPTQTensors fields), xs (list of full activations [M, K]), and optionally
    output_sizes, act_order, reduce_dtype, kernel, timing_reps, want_partials. Each result holds
    outputs (combined [M, N] per x, on the CPU), partials (row-parallel: every rank's local
    output per x), index_errors (summed over ranks), local_ms, local_shape, local_g_idx (rank 0).
    """
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        cases_path = os.path.join(tmp, "cases.pt")
        result_path = os.path.join(tmp, "results.pt")
        torch.save(cases, cases_path)
        spawn(world, backend, device_type, cases_path, result_path, timeout_s=timeout_s,
              threads=threads)
        return torch.load(result_path, weights_only=True)


# ------------------------------------------------------------------ CLI

def qwen3_32b_layers(shapes="full"):
    """[(name, parallel, K, N, output_sizes)] for Qwen3-32B at TP=1 (hidden 5120, intermediate
    25600, 64 q / 8 kv heads of 128), or "small": hidden and intermediate / 10, head_dim 16:
    the same split structure and g128 divisibility at TP 2 and 4."""
    if shapes == "full":
        hidden, inter, hd = 5120, 25600, 128
    elif shapes == "small":
        hidden, inter, hd = 512, 2560, 16
    else:
        raise ValueError(f"shapes must be 'full' or 'small', got {shapes!r}")
    q, kv = 64 * hd, 8 * hd
    return [("qkv", "column", hidden, q + 2 * kv, (q, kv, kv)),
            ("o", "row", q, hidden, None),
            ("gate_up", "column", hidden, 2 * inter, (inter, inter)),
            ("down", "row", inter, hidden, None)]


def random_layer(k, n, bits, group_size, *, act_order, symmetric, v2_zeros, seed,
                 chunk_cols=4096):
    """Random GPTQ layer; large ones are quantized in column chunks (bounded memory), all
    chunks sharing one act-order permutation so g_idx is the layer's."""
    from .quantize import quantize_rtn, random_gptq
    if k * n <= 16 * 2**20:
        return random_gptq(k, n, bits, group_size, symmetric=symmetric, act_order=act_order,
                           v2_zeros=v2_zeros, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    perm_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    parts = []
    for s in range(0, n, chunk_cols):
        e = min(n, s + chunk_cols)
        col_std = torch.exp(torch.empty(e - s).uniform_(math.log(0.005), math.log(0.05),
                                                        generator=gen))
        w = torch.randn(k, e - s, generator=gen) * col_std
        parts.append(quantize_rtn(w, bits, group_size, symmetric=symmetric,
                                  act_order=act_order, v2_zeros=v2_zeros,
                                  generator=torch.Generator().manual_seed(perm_seed)))
        del w
    return GPTQTensors(torch.cat([p.qweight for p in parts], 1),
                       torch.cat([p.qzeros for p in parts], 1),
                       torch.cat([p.scales for p in parts], 1), parts[0].g_idx, bits,
                       group_size, v2_zeros)


def _parse_list(text, conv=str):
    return [conv(v) for v in text.split(",") if v.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m gptq_mi100.tensor_parallel",
        description="Shard Qwen3-32B GPTQ layers over spawned ranks the way vLLM does and "
                    "compare with the unsharded layer and the fp32 reference.")
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--backend", choices=("gloo", "nccl"), default=None,
                    help="default: gloo for --device cpu, nccl for cuda")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: rank r on cuda:r")
    ap.add_argument("--shapes", choices=("full", "small"), default="full",
                    help="full: Qwen3-32B TP=1 layers (split here); small: scaled down")
    ap.add_argument("--layers", default="qkv,o,gate_up,down")
    ap.add_argument("--bits", default="4", help="comma list, e.g. 4,8")
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--act-order", choices=("off", "on", "both"), default="both")
    ap.add_argument("--asym", action="store_true", help="asymmetric zeros (default symmetric)")
    ap.add_argument("--v2", action="store_true", help="GPTQ v2 zero convention")
    ap.add_argument("--m", default="1,16", help="token counts, comma list")
    ap.add_argument("--paths", default="gemm,vllm")
    ap.add_argument("--reduce-dtype", choices=REDUCE_DTYPES, default="fp32")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of the local GEMM")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=1800)
    args = ap.parse_args(argv)

    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    backend = args.backend or ("nccl" if args.device == "cuda" else "gloo")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA/HIP device visible")
        if torch.cuda.device_count() < args.world:
            ap.error(f"--world {args.world} needs {args.world} GPUs, "
                     f"{torch.cuda.device_count()} visible")
    from . import ops
    single_device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    acts = {"off": [False], "on": [True], "both": [False, True]}[args.act_order]
    wanted = set(_parse_list(args.layers))
    layers = [spec for spec in qwen3_32b_layers(args.shapes) if spec[0] in wanted]
    if not layers:
        ap.error(f"--layers: none of {sorted(wanted)} is one of qkv, o, gate_up, down")
    paths = _parse_list(args.paths)
    ms_list = _parse_list(args.m, int)
    print(f"gptq_mi100 {ops.build_info()}; world {args.world}, backend {backend}, "
          f"device {args.device}, shapes {args.shapes}, reduce {args.reduce_dtype}")

    rows = []
    for bits in _parse_list(args.bits, int):
        for act in acts:
            cases, extra = [], []
            for li, (name, parallel, k, n, sizes) in enumerate(layers):
                seed = args.seed * 1000 + li * 100 + bits * 10 + int(act)
                t0 = time.perf_counter()
                layer = random_layer(k, n, bits, args.group_size, act_order=act,
                                     symmetric=not args.asym, v2_zeros=args.v2, seed=seed)
                gen = torch.Generator().manual_seed(seed + 1)
                xs = [torch.randn(m, k, generator=gen).to(torch.float16) for m in ms_list]
                refs = [reference_output(x, layer) for x in xs]
                for path in paths:
                    single = ShardedGPTQLinear(layer, "column", 0, 1, path=path,
                                               device=single_device)
                    y1 = [single.forward_local(x.to(single_device)).cpu() for x in xs]
                    del single
                    cases.append({"name": f"{name}/{path}", "parallel": parallel, "path": path,
                                  "output_sizes": list(sizes) if sizes else None,
                                  "layer": _layer_to_dict(layer), "xs": xs,
                                  "reduce_dtype": args.reduce_dtype, "timing_reps": args.reps})
                    extra.append((name, parallel, k, n, y1, refs))
                print(f"  built {name} {k}x{n} w{bits} act={act} in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
            t0 = time.perf_counter()
            results = run_cases(cases, args.world, backend, args.device,
                                timeout_s=args.timeout)
            print(f"  ran {len(cases)} sharded cases on {args.world} ranks in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            for case, res, (name, parallel, k, n, y1s, refs) in zip(cases, results, extra):
                for i, m in enumerate(ms_list):
                    ysh, y1 = res["outputs"][i].float(), y1s[i].float()
                    ref, spread = refs[i]
                    parts = res["partials"][i]
                    b1 = sharded_vs_single_bound(parallel, ysh, y1, parts, spread, k,
                                                 reduce_dtype=args.reduce_dtype)
                    d1 = (ysh - y1).abs()
                    r_sh = ((ysh - ref).abs() / reference_bound(
                        ref, spread, partials=parts, reduce_dtype=args.reduce_dtype)).max()
                    r_1 = ((y1 - ref).abs() / reference_bound(ref, spread)).max()
                    rel = d1.max() / y1.abs().max().clamp_min(1e-30)
                    rows.append((name, parallel, f"{k}x{n}", "x".join(map(str,
                                 res["local_shape"])), bits, "on" if act else "off",
                                 case["path"], m, float(rel), float((d1 / b1).max()),
                                 float(r_sh), float(r_1), res["index_errors"],
                                 res["local_ms"][i]))
    head = ("layer", "par", "K x N", "rank K x N", "bits", "act", "path", "m",
            "|sh-1|/|y|", "sh-1/bnd", "sh-ref/bnd", "1-ref/bnd", "idx err", "local ms")
    fmt = "{:<8}{:<7}{:<12}{:<12}{:>5}{:>5} {:<6}{:>5}{:>11}{:>10}{:>11}{:>10}{:>8}{:>10}"
    print(fmt.format(*head))
    ok = True
    for r in rows:
        good = r[9] <= 1 and r[10] <= 1 and r[11] <= 1 and r[12] == 0
        ok &= good
        print(fmt.format(*r[:8], f"{r[8]:.1e}", f"{r[9]:.3f}", f"{r[10]:.3f}", f"{r[11]:.3f}",
                         r[12], "-" if r[13] is None else f"{r[13]:.2f}")
              + ("" if good else "  FAIL"))
    print("|sh-1|/|y|: max |sharded - single| over max |single|; /bnd: max of error over its "
          "per-element bound (<= 1 passes; see sharded_vs_single_bound, reference_bound)")
    print("all within bounds" if ok else "SOME CASES OUT OF BOUNDS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

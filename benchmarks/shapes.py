"""Benchmark shapes and byte counts (pure Python, shared by bench_gemm and mi100_sheet).

Every shape is written K x N: K = in_features (the reduction dimension, qweight rows before
packing), N = out_features (qweight columns, the GEMM output width).
"""

import re
from typing import NamedTuple


class Shape(NamedTuple):
    set_name: str   # e.g. "qwen3-32b-tp4", or "custom" for an explicit KxN
    name: str       # e.g. "qkv"
    k: int          # in_features
    n: int          # out_features

    @property
    def label(self):
        return f"{self.set_name} {self.name} {self.k}x{self.n}"

    @property
    def kxn(self):
        return f"{self.k}x{self.n}"


# Per-GPU GEMM shapes (K x N). TP=4 shapes are one GPU's slice of the column-parallel
# (qkv, gate_up: N split) and row-parallel (o, down: K split) layers.
SHAPE_SETS = {
    "qwen3-32b-tp4": (("qkv", 5120, 2560), ("o", 2048, 5120),
                      ("gate_up", 5120, 12800), ("down", 6400, 5120)),
    "qwq-32b-tp4": (("qkv", 5120, 1792), ("o", 1280, 5120),
                    ("gate_up", 5120, 13824), ("down", 6912, 5120)),
    "llama3-8b": (("qkv", 4096, 6144), ("o", 4096, 4096),
                  ("gate_up", 4096, 28672), ("down", 14336, 4096)),
    "qwen3-0.6b": (("qkv", 1024, 4096), ("o", 2048, 1024),
                   ("gate_up", 1024, 6144), ("down", 3072, 1024)),
}

_KXN = re.compile(r"^(\d+)[xX](\d+)$")


def parse_shapes(tokens):
    """Set names, 'all', or explicit KxN tokens (commas also separate) -> [Shape], no repeats."""
    out = []
    for token in tokens:
        for t in filter(None, token.split(",")):
            t = t.strip()
            if t == "all":
                for set_name in SHAPE_SETS:
                    out += [Shape(set_name, *s) for s in SHAPE_SETS[set_name]]
            elif t in SHAPE_SETS:
                out += [Shape(t, *s) for s in SHAPE_SETS[t]]
            elif _KXN.match(t):
                k, n = map(int, _KXN.match(t).groups())
                out.append(Shape("custom", t, k, n))
            else:
                raise ValueError(f"unknown shape {t!r}: use one of {', '.join(SHAPE_SETS)}, "
                                 f"'all', or KxN (in_features x out_features), e.g. 5120x2560")
    seen, unique = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def groups(k, group_size):
    return 1 if group_size == -1 else k // group_size


def gptq_weight_bytes(k, n, bits, group_size):
    """Bytes a GPTQ GEMM must read for the weight: qweight + scales (fp16) + qzeros.

    K*N*bits/8 (qweight) + G*N*2 (scales) + G*N*bits/8 (qzeros), G = K / group_size.
    """
    g = groups(k, group_size)
    return k * n * bits // 8 + g * n * 2 + g * n * bits // 8


def fp16_weight_bytes(k, n):
    return 2 * k * n


def int4pack_weight_bytes(k, n, group_size):
    """torch tinygemm int4: packed int4 K*N/2 + bf16 scales_and_zeros [G, N, 2]."""
    return k * n // 2 + groups(k, group_size) * n * 2 * 2

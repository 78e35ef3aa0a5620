"""Bad input, one table for every op (issue 14).

Each case is (id, call, expected): `call(env)` makes one bad (or borderline) call, and the
expectation is either `Raises(exception, regex)`, where the regex names the argument, or
`Works(check)`, where `check(env, result)` says what "handled correctly" means (per-call
indices clamped and counted, NaN propagated, empty shapes, ...). After every case a good
`gemm` must still give the reference result: no input breaks later calls (on a GPU a
device fault would make that call fail too).

The same table runs per device (`device` fixture, GPTQ_MI100_TEST_DEVICE); cases that only
make sense on one device type skip elsewhere with the reason. Other files keep their
focused checks (tests/test_validation.py, tests/test_vllm_dropin.py); this is the one
place that lists bad inputs for every op.
"""

from typing import Any, Callable, NamedTuple, Optional

import pytest
import torch

from gptq_mi100 import kernels, ops, quantize, reference
from conftest import assert_gemm_close, error_bound, native_kernels, seed_of

K, N, BITS, GS = 256, 264, 4, 64
G = K // GS
M = 3
_ops = torch.ops.gptq_mi100


class Raises(NamedTuple):
    exc: type
    match: str  # must name the argument (and, where it helps, the value)


class Works(NamedTuple):
    check: Callable[[Any, Any], None]  # check(env, result of call(env))


class Case(NamedTuple):
    id: str
    call: Callable[[Any], Any]
    expect: Any                 # Raises or Works
    only: Optional[str] = None  # "cpu" / "cuda": the device type where the case applies
    why: str = ""               # the skip reason elsewhere


# ------------------------------------------------------------------------------ the env

class Env:
    """Good tensors on one device (built once per device; cases never modify them)."""

    def __init__(self, device):
        self.dev = device = torch.device(device)
        seed = seed_of("bad_inputs")
        t = quantize.random_gptq(K, N, BITS, GS, symmetric=False, act_order=True,
                                 v2_zeros=False, seed=seed)
        tp = quantize.random_gptq(K, N, BITS, GS, symmetric=False, act_order=False,
                                  v2_zeros=False, seed=seed + 1)
        self.t, self.tp = t, tp
        d = lambda x: x.to(device)  # noqa: E731
        self.q, self.z, self.s, self.g = d(t.qweight), d(t.qzeros), d(t.scales), d(t.g_idx)
        self.qp, self.zp, self.sp = d(tp.qweight), d(tp.qzeros), d(tp.scales)
        # fp32 [K, N] in checkpoint K order
        self.w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx,
                                                    BITS, False)
        self.wp_ref = reference.dequantize_reference(tp.qweight, tp.qzeros, tp.scales, None,
                                                     BITS, False)
        self._args = {"w": (self.q, self.z, self.s, self.g),
                      "wp": (self.qp, self.zp, self.sp, None)}
        self._layouts = {"w": {}, "wp": {}}
        self.w = self.in_layout("w", None)    # act-order, default layout
        self.w1 = self.in_layout("w", 1)      # act-order, checkpoint layout
        self.wp = self.in_layout("wp", None)  # no act-order, default layout
        assert self.w.a_perm is not None and self.w.group_index is None
        # kernel row r multiplies a[:, a_perm[r]]: kernel-order weights W'[r] = W[a_perm[r]]
        self.perm = self.w.a_perm
        self.w_kernel = self.w_ref[self.perm.long().cpu()]
        gen = torch.Generator().manual_seed(seed + 2)
        self.a = torch.randn(M, K, generator=gen).half().to(device)
        self.none = torch.empty(0, dtype=torch.int32, device=device)
        # vLLM's sequence: perm = argsort(g_idx), gptq_shuffle in place
        self.vperm = torch.argsort(t.g_idx).to(torch.int32).to(device)
        self.qs = self.q.clone()
        ops.gptq_shuffle(self.qs, self.vperm, BITS)
        self.vllm_layout = ops.preferred_layout(device, BITS, K, N)

    def meta(self, x):
        return x.to("meta")

    def in_layout(self, which, layout):
        """Weight `which` ("w" act-order, "wp" plain) prepared in `layout` (None: default);
        None where the weight cannot be in that layout."""
        if layout not in self._layouts[which]:
            try:
                self._layouts[which][layout] = ops.prepare(*self._args[which], bits=BITS,
                                                           group_size=GS, layout=layout)
            except ValueError:
                self._layouts[which][layout] = None
        return self._layouts[which][layout]

    def native_for(self, layout):
        """The first native kernel of this device that reads `layout`."""
        return next(name for name, lay in native_kernels(self.dev) if lay == layout)

    def variants(self, which="w"):
        """[(kernel, weight in the layout it reads)] for every kernel choice on this device:
        each native kernel, then dequant_matmul and auto on the default layout."""
        out = [(name, self.in_layout(which, layout)) for name, layout in native_kernels(self.dev)]
        base = self.in_layout(which, None)
        return [v for v in out if v[1] is not None] + [("dequant_matmul", base), ("auto", base)]


_ENVS = {}


def env_for(device):
    key = str(device)
    if key not in _ENVS:
        _ENVS[key] = Env(device)
    return _ENVS[key]


def raw_gemm(e, a=None, w=None, **override):
    """torch.ops.gptq_mi100.gemm with the fields of a PreparedGPTQ, some overridden."""
    w = e.w if w is None else w
    args = dict(a=e.a if a is None else a, qweight=w.qweight, qzeros=w.qzeros,
                scales=w.scales, a_perm=w.a_perm, group_index=w.group_index, bits=w.bits,
                group_size=w.group_size, v2_zeros=w.v2_zeros, layout=w.layout,
                kernel="auto")
    args.update(override)
    return _ops.gemm(*args.values())


def vllm(e, a=None, q=None, z=None, s=None, g=None, exllama=False, bits=BITS):
    """gptq_gemm on the unshuffled checkpoint (use_exllama=False, raw g_idx) by default."""
    return _ops.gptq_gemm(e.a if a is None else a, e.q if q is None else q,
                          e.z if z is None else z, e.s if s is None else s,
                          e.g if g is None else g, exllama, False, bits)


def prep(e, q=None, z=None, s=None, g="act", **kw):
    kw = {"bits": BITS, "group_size": GS, **kw}
    return ops.prepare(e.q if q is None else q, e.z if z is None else z,
                       e.s if s is None else s, e.g if isinstance(g, str) else g, **kw)


def other_device(e):
    return torch.device("cpu") if e.dev.type == "cuda" else torch.device("meta")


def odd_offset(x):
    """x's values in a new tensor whose data starts one element into its storage."""
    buf = torch.empty(x.numel() + 1, dtype=x.dtype, device=x.device)
    view = buf[1:].view(x.shape)
    view.copy_(x)
    return view


# ------------------------------------------------------------------------------ checks

def close_to_ref(a_attr="a", w_attr="w_ref"):
    def check(e, out):
        a = getattr(e, a_attr) if isinstance(a_attr, str) else a_attr(e)
        w_ref = getattr(e, w_attr)
        assert_gemm_close(out.reshape(-1, N), a.reshape(-1, K), w_ref,
                          a.reshape(-1, K).float().cpu() @ w_ref)
    return check


def check_shape(shape, device_type=None, dtype=torch.float16):
    def check(e, out):
        assert tuple(out.shape) == tuple(shape), out.shape
        assert out.dtype == dtype
        if device_type:
            assert out.device.type == device_type
    return check


def bad_index(base, kind):
    """base with one duplicated, negative or out-of-range entry (plus int32 extremes)."""
    bad = base.clone()
    if kind == "duplicate":
        bad[0] = bad[1]
    elif kind == "negative":
        bad[5] = -7
        bad[6] = -(1 << 31)
    else:
        bad[3] = 1 << 20
        bad[4] = (1 << 31) - 1
    return bad


def expected_clamp_errors(bad, size):
    wide = bad.long().cpu()
    return int(((wide < 0) | (wide >= size)).sum())


def assert_counted(e, want):
    """take_index_errors after clamping: the CPU kernels and the dequantize + matmul path
    count each bad entry once per call; GPU kernels count per read (at least once)."""
    got = ops.take_index_errors(e.dev)
    if e.dev.type == "cpu" or want == 0:
        assert got == want, (got, want)
    else:
        assert got >= want, (got, want)


def gemm_every_kernel(e, kind):
    """A bad a_perm through every kernel choice, each into a NaN-poisoned out, twice."""
    results = {}
    for name, w in e.variants():
        wb = w._replace(a_perm=bad_index(w.a_perm, kind))
        outs = []
        for _ in range(2):
            out = torch.full((M, N), float("nan"), dtype=torch.float16, device=e.dev)
            outs.append(ops.gemm(e.a, wb, kernel=name, out=out))
        results[name] = (wb.a_perm, outs)
    return results


def check_every_kernel(kind):
    def check(e, results):
        for name, (bad, (o1, o2)) in results.items():
            assert torch.equal(o1, o2), f"{name}: not deterministic"
            a_g = e.a[:, bad.long().clamp(0, K - 1)]  # what clamping gathers
            assert_gemm_close(o1, a_g, e.w_kernel, a_g.float().cpu() @ e.w_kernel, name)
        assert_counted(e, sum(2 * expected_clamp_errors(bad, K) for bad, _ in results.values()))
    return check


def dequantize_bad_perm(e, kind):
    wb = e.w._replace(a_perm=bad_index(e.perm, kind))
    return wb.a_perm, ops.dequantize(wb, torch.float16), ops.dequantize(wb, torch.float16)


def check_dequantize_bad_perm(e, result):
    bad, d1, d2 = result
    assert torch.equal(d1, d2), "not deterministic"
    order = torch.sort(bad.long().cpu().clamp(0, K - 1), stable=True).indices
    want = e.w_kernel[order].half()  # exact fp32 values rounded once
    assert torch.equal(d1.cpu(), want), "rows not placed by the stable order of clamped a_perm"
    assert_counted(e, 2 * expected_clamp_errors(bad, K))


def vllm_large_m_bad_perm(e, kind):
    """vLLM at large M after gptq_shuffle, with a per-call perm that is not one."""
    m = ops.large_m_threshold(e.dev, BITS) + 5
    a = torch.randn(m, K, generator=torch.Generator().manual_seed(7)).half().to(e.dev)
    bad = bad_index(e.vperm, kind)
    ops.reset_path_counts()
    outs = [_ops.gptq_gemm(a, e.qs, e.z, e.s, bad, True, False, BITS) for _ in range(2)]
    counts = ops.path_counts()
    native = raw_gemm(e, a=a, qweight=e.qs, qzeros=e.z, scales=e.s, a_perm=bad,
                      group_index=None, group_size=-1, layout=e.vllm_layout,
                      kernel=e.native_for(e.vllm_layout))
    return a, bad, outs, counts, native


def check_vllm_large_m(e, result):
    a, bad, (o1, o2), counts, native = result
    assert torch.equal(o1, o2), "not deterministic"
    if kernels.default_kernel() == "auto":
        assert counts["dequant_matmul"] == 2, counts  # the large-M path ran
    a_g = a[:, bad.long().clamp(0, K - 1)]
    w_kernel = e.w_ref[e.vperm.long().cpu()]
    ref = a_g.float().cpu() @ w_kernel
    assert_gemm_close(o1, a_g, w_kernel, ref, "gptq_gemm large M")
    assert_gemm_close(native, a_g, w_kernel, ref, "native kernel")
    assert_counted(e, 3 * expected_clamp_errors(bad, K))


def nan_inf_rows(e):
    a = e.a.clone()
    a[1, 5] = float("nan")
    a[2, 7] = float("inf")
    return a, {name: ops.gemm(a, w, kernel=name) for name, w in e.variants()}


def check_nan_inf_rows(e, result):
    a, outs = result
    for name, out in outs.items():
        assert_gemm_close(out[:1], a[:1], e.w_ref, a[:1].float().cpu() @ e.w_ref, name)
        assert torch.isnan(out[1]).all(), f"{name}: a NaN activation must reach every column"
        assert not torch.isfinite(out[2]).any(), f"{name}: an inf activation must stay non-finite"


def huge_activations(e):
    a = torch.full((M, K), 60000.0, dtype=torch.float16, device=e.dev)
    a[1] = -a[1]
    a[2, ::2] = 0
    return a, {name: ops.gemm(a, w, kernel=name) for name, w in e.variants()}


def check_huge_activations(e, result):
    a, outs = result
    ref = a.float().cpu() @ e.w_ref
    big = ref.abs() > 65520 * 1.01   # rounds to inf in fp16
    small = ref.abs() < 65504 * 0.9
    assert big.any() and small.any()
    bound = error_bound(a.cpu(), e.w_ref, ref, torch.float16)
    for name, out in outs.items():
        o = out.float().cpu()
        assert torch.equal(o[big], torch.sign(ref[big]) * float("inf")), name
        assert ((o - ref).abs() <= bound)[small].all(), name
        assert not torch.isnan(o).any(), name


def bad_scales(e):
    s = e.sp.clone()
    s[0, 3] = float("nan")
    s[1, 9] = float("inf")
    return {name: ops.gemm(e.a, w._replace(scales=s), kernel=name)
            for name, w in e.variants("wp")}


def check_bad_scales(e, outs):
    good = [c for c in range(N) if c not in (3, 9)]
    for name, out in outs.items():
        assert torch.isnan(out[:, 3]).all(), name
        assert not torch.isfinite(out[:, 9]).any(), name
        ref = e.a.float().cpu() @ e.wp_ref
        assert_gemm_close(out[:, good], e.a, e.wp_ref[:, good], ref[:, good], name)


def group_index_out_of_range(e):
    """Uneven groups (a tensor-parallel shard's g_idx): group_index is per call."""
    g = (torch.arange(K) * G // K).to(torch.int32)
    g[GS:GS + 6] = 0  # sorted but not k // gs: prepare keeps group_index
    w = ops.prepare(e.q, e.z, e.s, g.to(e.dev), bits=BITS, group_size=GS)
    assert w.group_index is not None
    bad = w.group_index.clone()
    bad[3], bad[200] = 1 << 20, -5
    wb = w._replace(group_index=bad)
    outs = {}
    for name, lay in native_kernels(e.dev) + [("dequant_matmul", 1), ("auto", 1)]:
        if lay == 1:
            outs[name] = ops.gemm(e.a, wb, kernel=name)
    return g, bad, outs


def check_group_index(e, result):
    g, bad, outs = result
    g_used = bad.long().cpu().clamp(0, G - 1)  # kernel rows are checkpoint rows here
    w_used = reference.dequantize_reference(e.t.qweight, e.t.qzeros, e.t.scales, g_used, BITS,
                                            False)
    for name, out in outs.items():
        assert_gemm_close(out, e.a, w_used, e.a.float().cpu() @ w_used, name)
    assert_counted(e, 2 * len(outs))


def vllm_raw_g_idx_out_of_range(e):
    bad = e.g.clone()
    bad[3], bad[200] = 1 << 20, -5
    return bad, vllm(e, g=bad)


def check_vllm_raw_g_idx(e, result):
    bad, out = result
    w_used = reference.dequantize_reference(e.t.qweight, e.t.qzeros, e.t.scales,
                                            bad.long().cpu().clamp(0, G - 1), BITS, False)
    assert_gemm_close(out, e.a, w_used, e.a.float().cpu() @ w_used)
    assert_counted(e, 2)


def shuffled(e, perm):
    q = e.q.clone()
    ops.gptq_shuffle(q, perm, BITS)
    return q


def check_same_as_int32_shuffle(e, q):
    assert torch.equal(q, e.qs)


def check_unchanged_after_reject(fn):
    """The call must raise, and leave q_weight as it was."""
    def call(e):
        q = e.q.clone()
        with pytest.raises(ValueError, match="q_perm must be a permutation of 0..K-1"):
            fn(e, q)
        return q
    return call


def out_strided(e):
    buf = torch.full((M, N + 8), -1.0, dtype=torch.float16, device=e.dev)
    ops.gemm(e.a, e.w, out=buf[:, :N])
    return buf


def check_out_strided(e, buf):
    close_to_ref()(e, buf[:, :N])
    assert (buf[:, N:] == -1).all(), "gemm wrote outside out"


def odd_offset_out(e):
    out = odd_offset(torch.full((M, N), float("nan"), dtype=torch.float16, device=e.dev))
    return ops.gemm(e.a, e.w, out=out)


def prepare_int64_g_idx(e):
    return prep(e, g=e.g.long())


def check_prepared_like(attr):
    def check(e, w):
        ref = getattr(e, attr)
        for f in ("qweight", "a_perm", "group_index"):
            x, y = getattr(w, f), getattr(ref, f)
            assert (x is None) == (y is None) and (x is None or torch.equal(x, y)), f
        close_to_ref()(e, ops.gemm(e.a, w))
    return check


def introspect_take_index_errors_bad_gpu(e):
    return ops.take_index_errors(torch.device("cuda", torch.cuda.device_count() + 3))


# ------------------------------------------------------------------------------ the table

NOT_CPU = "needs a GPU (a second real device / GPU-only requirement)"
NOT_CUDA = "CPU-only behaviour (no GPU kernels on CPU)"

CASES = [
    # ---- prepare (gptq_mi100.prepare and the raw op)
    Case("prepare.bits_1", lambda e: prep(e, bits=1),
         Raises(ValueError, "bits must be one of 2, 3, 4, 8, got 1")),
    Case("prepare.bits_16", lambda e: prep(e, bits=16),
         Raises(ValueError, "bits must be one of 2, 3, 4, 8, got 16")),
    Case("prepare.bits_float", lambda e: prep(e, bits=4.0),
         Raises(RuntimeError, "argument 'bits'")),
    Case("prepare.group_size_not_multiple_of_32", lambda e: prep(e, g=None, group_size=48),
         Raises(ValueError, r"group_size must be -1 or a positive multiple of 32 dividing "
                            r"K=256, got 48")),
    Case("prepare.group_size_not_dividing_K", lambda e: prep(e, g=None, group_size=96),
         Raises(ValueError, r"group_size .* dividing K=256, got 96")),
    Case("prepare.group_size_-2", lambda e: prep(e, g=None, group_size=-2),
         Raises(ValueError, r"group_size .*, got -2")),
    Case("prepare.group_size_float", lambda e: prep(e, g=None, group_size=64.0),
         Raises(ValueError, r"group_size .*, got 64.0")),
    Case("prepare.group_size_huge", lambda e: prep(e, g=None, group_size=1 << 62),
         Raises(ValueError, rf"group_size .*, got {1 << 62}")),
    Case("prepare.K0_group_size_-1",
         lambda e: ops.prepare(e.q[:0], e.z[:1], e.s[:1], None, bits=BITS, group_size=-1),
         Raises(ValueError, r"qweight has no rows \(K = 0\).*group_size=-1")),
    Case("prepare.g_idx_meta", lambda e: prep(e, g=e.meta(e.g)),
         Raises(ValueError, "g_idx is on meta")),
    Case("prepare.scales_meta", lambda e: prep(e, s=e.meta(e.s)),
         Raises(ValueError, "scales is on meta")),
    Case("prepare.all_meta", lambda e: prep(e, q=e.meta(e.q), z=e.meta(e.z), s=e.meta(e.s),
                                            g=None),
         Raises(ValueError, "qweight is on the meta device")),
    Case("prepare.g_idx_other_device", lambda e: prep(e, g=e.g.cpu()),
         Raises(ValueError, "g_idx is on cpu but qweight is on cuda"), "cuda", NOT_CPU),
    Case("prepare.qweight_float", lambda e: prep(e, q=e.q.float()),
         Raises(TypeError, "qweight must be int32, got Float")),
    Case("prepare.qweight_3d", lambda e: prep(e, q=e.q[None]),
         Raises(ValueError, "qweight must be 2-D")),
    Case("prepare.qweight_non_contiguous", lambda e: prep(e, q=e.q.t().contiguous().t()),
         Raises(ValueError, "qweight must be contiguous")),
    Case("prepare.qweight_N_not_multiple_of_8", lambda e: prep(e, q=e.q[:, :260].contiguous()),
         Raises(ValueError, r"N \(qweight.size\(1\)\) must be a positive multiple of 8 for "
                            r"bits=4, got 260")),
    Case("prepare.K_not_multiple_of_32",
         lambda e: ops.prepare(e.qp[:3].contiguous(), e.zp[:1], e.sp[:1], None, bits=BITS,
                               group_size=-1),
         Raises(ValueError, "K=24")),
    Case("prepare.bits3_rows_not_multiple_of_3",
         lambda e: ops.prepare(e.q, e.z[:1, :33], e.s[:1], None, bits=3, group_size=-1),
         Raises(ValueError, r"for bits=3 qweight.size\(0\) must be a multiple of 3, got 32")),
    Case("prepare.qzeros_int64", lambda e: prep(e, z=e.z.long()),
         Raises(TypeError, "qzeros must be int32, got Long")),
    Case("prepare.qzeros_wrong_shape", lambda e: prep(e, z=e.z[:, :8].contiguous()),
         Raises(ValueError, r"qzeros must be \[G=4, N\*bits/32=33\]")),
    Case("prepare.scales_float32", lambda e: prep(e, s=e.s.float()),
         Raises(TypeError, "scales must be float16 or bfloat16, got Float")),
    Case("prepare.scales_1d", lambda e: prep(e, s=e.s[0]),
         Raises(ValueError, r"scales must be \[G, N\]")),
    Case("prepare.scales_G_mismatch_without_g_idx", lambda e: prep(e, g=None, group_size=128),
         Raises(ValueError, r"without g_idx, scales.shape\[0\] \(G\) must equal")),
    Case("prepare.g_idx_float", lambda e: prep(e, g=e.g.float()),
         Raises(TypeError, r"g_idx must be int32 \(or int64\), got Float")),
    Case("prepare.g_idx_int64", prepare_int64_g_idx, Works(check_prepared_like("w"))),
    Case("prepare.g_idx_non_contiguous",
         lambda e: prep(e, g=torch.stack([e.g, e.g], 1)[:, 0]), Works(check_prepared_like("w"))),
    Case("prepare.g_idx_short", lambda e: prep(e, g=e.g[:100]),
         Raises(ValueError, "g_idx must be 1-D of length K=256")),
    Case("prepare.g_idx_out_of_range", lambda e: prep(e, g=torch.where(e.g == 0, G, e.g)),
         Raises(ValueError, r"g_idx values must lie in \[0, G=4\), got min 1 max 4")),
    Case("prepare.g_idx_negative", lambda e: prep(e, g=torch.where(e.g == 0, -1, e.g)),
         Raises(ValueError, r"g_idx values must lie in \[0, G=4\), got min -1")),
    Case("prepare.g_idx_huge_int64", lambda e: prep(e, g=torch.where(e.g == 0, 1 << 40,
                                                                      e.g.long())),
         Raises(ValueError, rf"g_idx values must lie in \[0, G=4\), got min 1 max {1 << 40}")),
    Case("prepare.layout_3", lambda e: prep(e, layout=3),
         Raises(ValueError, r"layout must be None, 1 \(checkpoint\) or 2 \(tiled\), got 3")),
    Case("prepare.layout_2_uneven_groups",
         lambda e: prep(e, g=torch.zeros(K, dtype=torch.int32, device=e.dev), layout=2),
         Raises(ValueError, r"layout=2 \(tiled\) needs groups")),
    Case("prepare.v2_zeros_string", lambda e: prep(e, v2_zeros="no"),
         Raises(TypeError, "v2_zeros must be a bool.*got 'no'")),
    Case("prepare_op.K0_with_empty_g_idx",
         lambda e: _ops.prepare(e.q[:0], e.z[:1], e.s[:1], e.none, BITS),
         Raises(ValueError, r"prepare: qweight has no rows \(K = 0")),
    Case("prepare_op.qweight_other_device",
         lambda e: _ops.prepare(e.q.cpu(), e.z, e.s, e.g, BITS),
         Raises(ValueError, "prepare: qzeros is on cuda:0 but qweight is on cpu"), "cuda",
         NOT_CPU),
    Case("prepare_op.all_meta_K_not_multiple_of_32",
         lambda e: _ops.prepare(e.meta(e.qp[:3]), e.meta(e.zp[:1]), e.meta(e.sp[:1]), None,
                                BITS),
         Raises(ValueError, r"prepare: K must be a multiple of 32, got 24 \(from qweight")),

    # ---- gemm: the activation
    Case("gemm.w_not_prepared", lambda e: ops.gemm(e.a, (e.w.qweight, e.w.qzeros)),
         Raises(TypeError, "w must be a PreparedGPTQ")),
    Case("gemm.a_not_a_tensor", lambda e: ops.gemm([0.0] * K, e.w),
         Raises(ValueError, r"a must be a tensor of shape \[..., K\]")),
    Case("gemm.a_0d", lambda e: ops.gemm(e.a[0, 0], e.w),
         Raises(ValueError, r"a must be a tensor of shape \[..., K\]")),
    Case("gemm.a_float32", lambda e: ops.gemm(e.a.float(), e.w),
         Raises(TypeError, "a must be float16 or bfloat16, got Float")),
    Case("gemm.a_int32", lambda e: ops.gemm(e.a.int(), e.w),
         Raises(TypeError, "a must be float16 or bfloat16, got Int")),
    Case("gemm.a_wrong_K", lambda e: ops.gemm(e.a[:, :128], e.w),
         Raises(ValueError, r"a.size\(1\) must equal K=256 .*got 128")),
    Case("gemm.a_1d", lambda e: ops.gemm(e.a[0], e.w),
         Works(lambda e, out: (check_shape((N,))(e, out), close_to_ref(lambda e: e.a[:1])(e, out[None])))),
    Case("gemm.a_3d", lambda e: ops.gemm(e.a.reshape(1, M, K), e.w),
         Works(lambda e, out: (check_shape((1, M, N))(e, out), close_to_ref()(e, out)))),
    Case("gemm.a_expanded_rows", lambda e: ops.gemm(e.a[:1].expand(M, K), e.w),
         Raises(ValueError, r"a's rows overlap in memory \(strides \[0, 1\]")),
    Case("gemm.a_expanded_leading_dim_3d", lambda e: ops.gemm(e.a[None].expand(2, M, K), e.w),
         Works(lambda e, out: close_to_ref(lambda e: e.a.repeat(2, 1))(e, out))),
    Case("gemm.a_stride_0_along_K", lambda e: ops.gemm(e.a[:, :1].expand(M, K), e.w),
         Raises(ValueError, r"a must have unit stride along K, got strides \[256, 0\]")),
    Case("gemm.a_row_stride_above_K",
         lambda e: ops.gemm(torch.cat([e.a, e.a[:, :8]], 1)[:, :K], e.w), Works(close_to_ref())),
    Case("gemm.a_odd_element_offset", lambda e: ops.gemm(odd_offset(e.a), e.w),
         Works(close_to_ref())),
    Case("gemm.a_M0", lambda e: ops.gemm(e.a[:0], e.w), Works(check_shape((0, N)))),
    Case("gemm.a_M0_3d_dequant_matmul", lambda e: ops.gemm(e.a[:0].reshape(2, 0, K), e.w,
                                                           kernel="dequant_matmul"),
         Works(check_shape((2, 0, N)))),
    Case("gemm.a_nan_inf_every_kernel", nan_inf_rows, Works(check_nan_inf_rows)),
    Case("gemm.a_huge_finite_every_kernel", huge_activations, Works(check_huge_activations)),
    Case("gemm.a_other_device", lambda e: ops.gemm(e.a.cpu(), e.w),
         Raises(ValueError, "qweight is on cuda:0 but a is on cpu"), "cuda", NOT_CPU),
    Case("gemm.a_meta", lambda e: ops.gemm(e.meta(e.a), e.w),
         Raises(ValueError, "gemm: qweight is on .* but a is on meta")),

    # ---- gemm: kernel, layout, bits, group_size
    Case("gemm.kernel_unknown", lambda e: ops.gemm(e.a, e.w, kernel="fast"),
         Raises(ValueError, "kernel must be one of .*got 'fast'")),
    Case("gemm.kernel_of_other_device", lambda e: ops.gemm(e.a, e.w, kernel="exllama"),
         Raises(ValueError, "kernel must be one of auto, cpu_c, dequant_matmul for cpu "
                            "tensors, got 'exllama'"), "cpu", NOT_CUDA),
    Case("gemm.kernel_for_other_layout", lambda e: ops.gemm(e.a, e.w1, kernel="transposed"),
         Raises(ValueError, r"kernel 'transposed' reads layout 2 \(tiled\) but the weight is "
                            r"in layout 1"), "cuda", NOT_CPU),
    Case("gemm.kernel_not_a_string", lambda e: ops.gemm(e.a, e.w, kernel=3),
         Raises(RuntimeError, "argument 'kernel'")),
    Case("use_kernel.unknown", lambda e: kernels.use_kernel("fast").__enter__(),
         Raises(ValueError, "kernel must be one of .*got 'fast'")),
    Case("gemm_op.layout_7", lambda e: raw_gemm(e, layout=7),
         Raises(ValueError, "unknown weight layout 7")),
    Case("gemm_op.layout_2_on_cpu", lambda e: raw_gemm(e, w=e.w1, layout=2),
         Raises(ValueError, r"no cpu kernel of this build reads layout 2"), "cpu", NOT_CUDA),
    Case("gemm_op.layout_2_bits_3", lambda e: raw_gemm(e, bits=3, layout=2),
         Raises(ValueError, "the tiled layout exists for bits 2, 4 and 8, got bits=3")),
    Case("gemm_op.bits_1", lambda e: raw_gemm(e, bits=1),
         Raises(ValueError, "bits must be one of 2, 3, 4, 8, got 1")),
    Case("gemm_op.bits_5", lambda e: raw_gemm(e, bits=5),
         Raises(ValueError, "bits must be one of 2, 3, 4, 8, got 5")),
    Case("gemm_op.bits_16", lambda e: raw_gemm(e, bits=16),
         Raises(ValueError, "bits must be one of 2, 3, 4, 8, got 16")),
    Case("gemm_op.bits_too_big_for_int64", lambda e: raw_gemm(e, bits=1 << 70),
         Raises(RuntimeError, "argument 'bits'")),
    Case("gemm.bits_not_the_weights", lambda e: ops.gemm(e.a, e.w1._replace(bits=8)),
         Raises(ValueError, r"a.size\(1\) must equal K=128")),
    Case("gemm_op.group_size_not_dividing_K", lambda e: raw_gemm(e, w=e.wp, group_size=96),
         Raises(ValueError, r"without group_index, G \(scales.size\(0\)=4\) must equal "
                            r"K / group_size = 256 / 96")),
    Case("gemm_op.group_size_overflowing_times_G",
         lambda e: raw_gemm(e, w=e.wp, group_size=(1 << 62) + 64),
         Raises(ValueError, rf"K / group_size = 256 / {(1 << 62) + 64}")),
    Case("gemm_op.group_size_negative_derives_K_over_G",
         lambda e: raw_gemm(e, w=e.wp, group_size=-5), Works(close_to_ref(w_attr="wp_ref"))),

    # ---- gemm: weight tensors
    Case("gemm_op.qweight_float", lambda e: raw_gemm(e, qweight=e.w.qweight.float()),
         Raises(TypeError, "qweight must be int32, got Float")),
    Case("gemm_op.qweight_1d", lambda e: raw_gemm(e, qweight=e.w.qweight[0]),
         Raises(ValueError, "qweight must be 2-D")),
    Case("gemm_op.qweight_non_contiguous",
         lambda e: raw_gemm(e, qweight=e.w1.qweight.t().contiguous().t(), layout=1),
         Raises(ValueError, "qweight must be contiguous")),
    Case("gemm_op.qweight_N_not_multiple_of_8",
         lambda e: raw_gemm(e, w=e.wp, qweight=e.wp.qweight[:, :260].contiguous()),
         Raises(ValueError, r"N \(qweight.size\(1\)\) must be a positive multiple of 8 for "
                            r"bits=4, got 260")),
    Case("gemm_op.K_not_multiple_of_32",
         lambda e: raw_gemm(e, a=e.a[:, :24], w=e.wp, qweight=e.wp.qweight[:3].contiguous(),
                            layout=1, group_size=-1),
         Raises(ValueError, r"K must be a multiple of 32, got 24 \(from qweight")),
    Case("gemm_op.K0", lambda e: raw_gemm(e, a=e.a[:, :0], w=e.wp,
                                          qweight=e.wp.qweight[:0], layout=1),
         Raises(ValueError, r"qweight has no rows \(K = 0")),
    Case("gemm_op.qweight_misaligned_on_gpu",
         lambda e: raw_gemm(e, w=e.w1, qweight=odd_offset(e.w1.qweight)),
         Raises(ValueError, "qweight must be 16-byte aligned on GPUs"), "cuda", NOT_CPU),
    Case("gemm_op.qweight_odd_offset_on_cpu",
         lambda e: raw_gemm(e, w=e.w1, qweight=odd_offset(e.w1.qweight)),
         Works(close_to_ref()), "cpu", "GPUs refuse it (gemm_op.qweight_misaligned_on_gpu)"),
    Case("gemm_op.qzeros_int16", lambda e: raw_gemm(e, qzeros=e.w.qzeros.short()),
         Raises(TypeError, "qzeros must be int32, got Short")),
    Case("gemm_op.qzeros_wrong_shape", lambda e: raw_gemm(e, qzeros=e.w.qzeros[:, :8].contiguous()),
         Raises(ValueError, r"qzeros must be \[G=4, N\*bits/32=33\], got shape \[4, 8\]")),
    Case("gemm_op.qzeros_non_contiguous",
         lambda e: raw_gemm(e, qzeros=e.w.qzeros.t().contiguous().t()),
         Raises(ValueError, "qzeros must be contiguous")),
    Case("gemm_op.scales_float32", lambda e: raw_gemm(e, scales=e.w.scales.float()),
         Raises(TypeError, "scales must be float16 or bfloat16, got Float")),
    Case("gemm_op.scales_wrong_N", lambda e: raw_gemm(e, scales=e.w.scales[:, :8].contiguous()),
         Raises(ValueError, r"scales must be \[G, N=264\], got shape \[4, 8\]")),
    Case("gemm_op.scales_no_groups", lambda e: raw_gemm(e, scales=e.w.scales[:0]),
         Raises(ValueError, r"scales must be \[G, N=264\], got shape \[0, 264\]")),
    Case("gemm_op.scales_non_contiguous",
         lambda e: raw_gemm(e, scales=e.w.scales.t().contiguous().t()),
         Raises(ValueError, "scales must be contiguous")),
    Case("gemm_op.scales_other_device", lambda e: raw_gemm(e, scales=e.w.scales.cpu()),
         Raises(ValueError, "scales is on cpu but a is on cuda"), "cuda", NOT_CPU),
    Case("gemm.scales_nan_inf_every_kernel", bad_scales, Works(check_bad_scales)),
    Case("gemm.scales_meta", lambda e: ops.gemm(e.a, e.w._replace(scales=e.meta(e.w.scales))),
         Raises(ValueError, "scales is on meta")),

    # ---- gemm: per-call indices (clamped and counted, never trusted)
    Case("gemm.a_perm_duplicate_every_kernel", lambda e: gemm_every_kernel(e, "duplicate"),
         Works(check_every_kernel("duplicate"))),
    Case("gemm.a_perm_negative_every_kernel", lambda e: gemm_every_kernel(e, "negative"),
         Works(check_every_kernel("negative"))),
    Case("gemm.a_perm_out_of_range_every_kernel",
         lambda e: gemm_every_kernel(e, "out_of_range"),
         Works(check_every_kernel("out_of_range"))),
    Case("gemm.a_perm_int64", lambda e: ops.gemm(e.a, e.w._replace(a_perm=e.perm.long())),
         Raises(TypeError, "a_perm must be int32, got Long")),
    Case("gemm.a_perm_short", lambda e: ops.gemm(e.a, e.w._replace(a_perm=e.perm[:10])),
         Raises(ValueError, "a_perm must be None or 1-D of length K=256, got shape")),
    Case("gemm.a_perm_non_contiguous",
         lambda e: ops.gemm(e.a, e.w._replace(a_perm=torch.stack([e.perm, e.perm], 1)[:, 0])),
         Raises(ValueError, "a_perm must be contiguous")),
    Case("gemm.a_perm_other_device", lambda e: ops.gemm(e.a, e.w._replace(a_perm=e.perm.cpu())),
         Raises(ValueError, "a_perm is on cpu but a is on cuda"), "cuda", NOT_CPU),
    Case("gemm.a_perm_meta", lambda e: ops.gemm(e.a, e.w._replace(a_perm=e.meta(e.perm))),
         Raises(ValueError, "a_perm is on meta")),
    Case("gemm.group_index_out_of_range_layout_1_kernels", group_index_out_of_range,
         Works(check_group_index)),
    Case("gemm_op.group_index_int64",
         lambda e: raw_gemm(e, group_index=(torch.arange(K, device=e.dev) // GS)),
         Raises(TypeError, "group_index must be int32, got Long")),
    Case("gemm_op.group_index_short",
         lambda e: raw_gemm(e, group_index=(torch.arange(K, device=e.dev) // GS).int()[:10]),
         Raises(ValueError, "group_index must be None or 1-D of length K=256")),

    # ---- gemm: out
    Case("gemm.out_wrong_shape",
         lambda e: ops.gemm(e.a, e.w, out=torch.empty(M, N + 8, dtype=torch.float16,
                                                      device=e.dev)),
         Raises(ValueError, r"out must have shape \(3, 264\), got \(3, 272\)")),
    Case("gemm.out_bfloat16_for_fp16_a",
         lambda e: ops.gemm(e.a, e.w, out=torch.empty(M, N, dtype=torch.bfloat16, device=e.dev)),
         Raises(TypeError, "out must have a's dtype Half, got BFloat16")),
    Case("gemm.out_expanded_rows",
         lambda e: ops.gemm(e.a, e.w, out=torch.empty(1, N, dtype=torch.float16,
                                                      device=e.dev).expand(M, N)),
         Raises(ValueError, r"out's rows overlap in memory \(strides \[0, 1\]\)")),
    Case("gemm.out_expanded_3d",
         lambda e: ops.gemm(e.a.repeat(2, 1).view(2, M, K), e.w,
                            out=torch.empty(1, M, N, dtype=torch.float16,
                                            device=e.dev).expand(2, M, N)),
         Raises(ValueError, r"out must be viewable as \[M, N\] rows .*strides \(0, 264, 1\)")),
    Case("gemm.out_transposed",
         lambda e: ops.gemm(e.a, e.w, out=torch.empty(N, M, dtype=torch.float16,
                                                      device=e.dev).t()),
         Raises(ValueError, r"out must have unit stride along N, got strides \[1, 3\]")),
    Case("gemm.out_not_a_tensor", lambda e: ops.gemm(e.a, e.w, out=[0.0] * N),
         Raises(TypeError, "out must be a tensor or None, got list")),
    Case("gemm.out_meta",
         lambda e: ops.gemm(e.a, e.w, out=torch.empty(M, N, dtype=torch.float16,
                                                      device="meta")),
         Raises(ValueError, "out is on meta")),
    Case("gemm.out_other_device",
         lambda e: ops.gemm(e.a, e.w, out=torch.empty(M, N, dtype=torch.float16)),
         Raises(ValueError, "out is on cpu but a is on cuda"), "cuda", NOT_CPU),
    Case("gemm_op.out_1d",
         lambda e: _ops.gemm_out(e.a, e.w.qweight, e.w.qzeros, e.w.scales, e.w.a_perm, None,
                                 BITS, e.w.group_size, False, e.w.layout, None,
                                 torch.empty(M * N, dtype=torch.float16, device=e.dev)),
         Raises(ValueError, r"gemm_out: out must be \[M=3, N=264\], got shape \[792\]")),
    Case("gemm.out_row_stride_above_N", out_strided, Works(check_out_strided)),
    Case("gemm.out_odd_element_offset", odd_offset_out, Works(close_to_ref())),

    # ---- dequantize
    Case("dequantize.dtype_float32", lambda e: ops.dequantize(e.w, torch.float32),
         Raises(TypeError, "dtype must be float16 or bfloat16, got Float")),
    Case("dequantize.dtype_string", lambda e: ops.dequantize(e.w, "float16"),
         Raises(RuntimeError, "argument 'dtype'")),
    Case("dequantize.a_perm_duplicate", lambda e: dequantize_bad_perm(e, "duplicate"),
         Works(check_dequantize_bad_perm)),
    Case("dequantize.a_perm_negative", lambda e: dequantize_bad_perm(e, "negative"),
         Works(check_dequantize_bad_perm)),
    Case("dequantize.a_perm_out_of_range", lambda e: dequantize_bad_perm(e, "out_of_range"),
         Works(check_dequantize_bad_perm)),
    Case("dequantize.a_perm_meta", lambda e: ops.dequantize(e.w._replace(a_perm=e.meta(e.perm))),
         Raises(ValueError, "dequantize: a_perm is on meta but qweight is on")),
    Case("dequantize_op.qweight_other_device",
         lambda e: _ops.dequantize(e.qp.cpu(), e.zp, e.sp, None, None, BITS, GS, False, 1,
                                   torch.float16),
         Raises(ValueError, "dequantize: qzeros is on cuda:0 but qweight is on cpu"), "cuda",
         NOT_CPU),
    Case("dequantize_op.K0",
         lambda e: _ops.dequantize(e.qp[:0], e.zp[:1], e.sp[:1], None, None, BITS, -1, False, 1,
                                   torch.float16),
         Raises(ValueError, r"dequantize: qweight has no rows \(K = 0")),
    Case("dequantize_op.layout_9",
         lambda e: _ops.dequantize(e.qp, e.zp, e.sp, None, None, BITS, GS, False, 9,
                                   torch.float16),
         Raises(ValueError, "unknown weight layout 9")),
    Case("dequantize_op.all_meta_K_not_multiple_of_32",
         lambda e: _ops.dequantize(e.meta(e.qp[:3]), e.meta(e.zp[:1]), e.meta(e.sp[:1]), None,
                                   None, BITS, -1, False, 1, torch.float16),
         Raises(ValueError, r"dequantize: K must be a multiple of 32, got 24")),
    Case("dequantize_op.all_meta_good_call_gives_the_shape",
         lambda e: _ops.dequantize(e.meta(e.qp), e.meta(e.zp), e.meta(e.sp), None, None, BITS,
                                   GS, False, 1, torch.bfloat16),
         Works(check_shape((K, N), "meta", torch.bfloat16))),

    # ---- vLLM's gptq_gemm
    Case("gptq_gemm.a_float32", lambda e: vllm(e, a=e.a.float()),
         Raises(TypeError, "gptq_gemm: a must be float16 or bfloat16, got Float")),
    Case("gptq_gemm.bits_7", lambda e: vllm(e, bits=7),
         Raises(ValueError, "gptq_gemm: bits must be one of 2, 3, 4, 8, got 7")),
    Case("gptq_gemm.b_q_weight_float", lambda e: vllm(e, q=e.q.float()),
         Raises(TypeError, "gptq_gemm: b_q_weight must be int32, got Float")),
    Case("gptq_gemm.b_gptq_qzeros_int64", lambda e: vllm(e, z=e.z.long()),
         Raises(TypeError, "gptq_gemm: b_gptq_qzeros must be int32, got Long")),
    Case("gptq_gemm.b_gptq_scales_float32", lambda e: vllm(e, s=e.s.float()),
         Raises(TypeError, "gptq_gemm: b_gptq_scales must be float16 or bfloat16, got Float")),
    Case("gptq_gemm.b_g_idx_int64", lambda e: vllm(e, g=e.g.long()),
         Raises(TypeError, "gptq_gemm: b_g_idx must be int32, got Long")),
    Case("gptq_gemm.perm_int64_exllama", lambda e: vllm(e, q=e.qs, g=e.vperm.long(),
                                                        exllama=True),
         Raises(TypeError, "gptq_gemm: b_g_idx must be int32, got Long")),
    Case("gptq_gemm.b_g_idx_short", lambda e: vllm(e, g=e.g[:10]),
         Raises(ValueError, r"gptq_gemm: b_g_idx must be .*of length K=256, got shape \[10\]")),
    Case("gptq_gemm.N_not_multiple_of_8",
         lambda e: vllm(e, q=e.q[:, :260].contiguous(), g=e.none),
         Raises(ValueError, r"N \(b_q_weight.size\(1\)\) must be a positive multiple of 8")),
    Case("gptq_gemm.a_expanded_rows", lambda e: vllm(e, a=e.a[:1].expand(M, K)),
         Raises(ValueError, r"gptq_gemm: a's rows overlap in memory \(strides \[0, 1\]")),
    Case("gptq_gemm.K0", lambda e: vllm(e, a=e.a[:, :0], q=e.q[:0], g=e.none, exllama=True),
         Raises(ValueError, r"gptq_gemm: b_q_weight has no rows \(K = 0")),
    Case("gptq_gemm.M0", lambda e: vllm(e, a=e.a[:0]), Works(check_shape((0, N)))),
    Case("gptq_gemm.b_q_weight_meta", lambda e: vllm(e, q=e.meta(e.q)),
         Raises(ValueError, "gptq_gemm: b_q_weight is on meta")),
    Case("gptq_gemm.b_gptq_qzeros_meta", lambda e: vllm(e, z=e.meta(e.z)),
         Raises(ValueError, "gptq_gemm: b_gptq_qzeros is on meta")),
    Case("gptq_gemm.b_gptq_scales_meta", lambda e: vllm(e, s=e.meta(e.s)),
         Raises(ValueError, "gptq_gemm: b_gptq_scales is on meta")),
    Case("gptq_gemm.b_g_idx_meta", lambda e: vllm(e, g=e.meta(e.g)),
         Raises(ValueError, "gptq_gemm: b_g_idx is on meta")),
    Case("gptq_gemm.b_gptq_scales_other_device", lambda e: vllm(e, s=e.s.cpu()),
         Raises(ValueError, "b_gptq_scales is on cpu but a is on cuda"), "cuda", NOT_CPU),
    Case("gptq_gemm.a_other_device", lambda e: vllm(e, a=e.a.cpu()),
         Raises(ValueError, "gptq_gemm: b_q_weight is on cuda:0 but a is on cpu"), "cuda",
         NOT_CPU),
    Case("gptq_gemm.all_meta_a_float32",
         lambda e: vllm(e, *(e.meta(x) for x in (e.a.float(), e.q, e.z, e.s, e.g))),
         Raises(TypeError, "gptq_gemm: a must be float16 or bfloat16")),
    Case("gptq_gemm.all_meta_wrong_K",
         lambda e: vllm(e, *(e.meta(x) for x in (e.a[:, :128], e.q, e.z, e.s, e.g))),
         Raises(ValueError, r"gptq_gemm: a must be \[M, K\] with K = 256 \(from b_q_weight\)")),
    Case("gptq_gemm.all_meta_scales_float32",
         lambda e: vllm(e, *(e.meta(x) for x in (e.a, e.q, e.z, e.s.float(), e.g))),
         Raises(TypeError, "gptq_gemm: b_gptq_scales must be float16 or bfloat16")),
    Case("gptq_gemm.all_meta_good_call_gives_the_shape",
         lambda e: vllm(e, *(e.meta(x) for x in (e.a, e.q, e.z, e.s, e.g))),
         Works(check_shape((M, N), "meta"))),
    Case("gptq_gemm.perm_duplicate_large_M", lambda e: vllm_large_m_bad_perm(e, "duplicate"),
         Works(check_vllm_large_m)),
    Case("gptq_gemm.perm_negative_large_M", lambda e: vllm_large_m_bad_perm(e, "negative"),
         Works(check_vllm_large_m)),
    Case("gptq_gemm.perm_out_of_range_large_M",
         lambda e: vllm_large_m_bad_perm(e, "out_of_range"), Works(check_vllm_large_m)),
    Case("gptq_gemm.raw_g_idx_out_of_range", vllm_raw_g_idx_out_of_range,
         Works(check_vllm_raw_g_idx)),

    # ---- vLLM's gptq_shuffle
    Case("gptq_shuffle.q_perm_meta", lambda e: ops.gptq_shuffle(e.q.clone(), e.meta(e.vperm), 4),
         Raises(ValueError, "gptq_shuffle: q_perm is on meta but q_weight is on")),
    Case("gptq_shuffle.q_weight_meta", lambda e: ops.gptq_shuffle(e.meta(e.q), e.vperm, 4),
         Raises(ValueError, "gptq_shuffle: q_perm is on .* but q_weight is on meta")),
    Case("gptq_shuffle.q_perm_other_device",
         lambda e: ops.gptq_shuffle(e.q.clone(), e.vperm.cpu(), 4),
         Raises(ValueError, "q_perm is on cpu but q_weight is on cuda"), "cuda", NOT_CPU),
    Case("gptq_shuffle.q_weight_other_device",
         lambda e: ops.gptq_shuffle(e.q.cpu(), e.vperm, 4),
         Raises(ValueError, "gptq_shuffle: q_perm is on cuda:0 but q_weight is on cpu"), "cuda",
         NOT_CPU),
    Case("gptq_shuffle.empty_perm_on_another_device",
         lambda e: shuffled(e, torch.empty(0, dtype=torch.int32, device=other_device(e))),
         Works(lambda e, q: torch.equal(q, shuffled(e, e.none)) or pytest.fail("changed")),
         "cuda", "vLLM's empty perm of a GPU weight may be a CPU tensor: never read"),
    Case("gptq_shuffle.all_meta_bits_5",
         lambda e: ops.gptq_shuffle(e.meta(e.q), e.meta(e.vperm), 5),
         Raises(ValueError, "gptq_shuffle: bits must be one of 2, 3, 4, 8, got 5")),
    Case("gptq_shuffle.all_meta_short_perm",
         lambda e: ops.gptq_shuffle(e.meta(e.q), e.meta(e.vperm[:10]), 4),
         Raises(ValueError, "gptq_shuffle: q_perm must be 1-D of length K=256")),
    Case("gptq_shuffle.perm_duplicate",
         check_unchanged_after_reject(lambda e, q: ops.gptq_shuffle(
             q, bad_index(e.vperm, "duplicate"), BITS)),
         Works(lambda e, q: torch.equal(q, e.q) or pytest.fail("q_weight changed"))),
    Case("gptq_shuffle.perm_negative",
         check_unchanged_after_reject(lambda e, q: ops.gptq_shuffle(
             q, bad_index(e.vperm, "negative"), BITS)),
         Works(lambda e, q: torch.equal(q, e.q) or pytest.fail("q_weight changed"))),
    Case("gptq_shuffle.perm_out_of_range",
         check_unchanged_after_reject(lambda e, q: ops.gptq_shuffle(
             q, bad_index(e.vperm, "out_of_range"), BITS)),
         Works(lambda e, q: torch.equal(q, e.q) or pytest.fail("q_weight changed"))),
    Case("gptq_shuffle.perm_float", lambda e: ops.gptq_shuffle(e.q.clone(), e.vperm.float(), 4),
         Raises(TypeError, r"q_perm must be int32 \(or int64\), got Float")),
    Case("gptq_shuffle.perm_short", lambda e: ops.gptq_shuffle(e.q.clone(), e.vperm[:10], 4),
         Raises(ValueError, "q_perm must be 1-D of length K=256, got shape")),
    Case("gptq_shuffle.perm_int64", lambda e: shuffled(e, e.vperm.long()),
         Works(check_same_as_int32_shuffle)),
    Case("gptq_shuffle.perm_non_contiguous",
         lambda e: shuffled(e, torch.stack([e.vperm, e.vperm], 1)[:, 0]),
         Works(check_same_as_int32_shuffle)),
    Case("gptq_shuffle.q_weight_non_contiguous",
         lambda e: ops.gptq_shuffle(e.q.t().contiguous().t(), e.vperm, 4),
         Raises(ValueError, "gptq_shuffle: q_weight must be contiguous")),
    Case("gptq_shuffle.q_weight_float", lambda e: ops.gptq_shuffle(e.q.float(), e.vperm, 4),
         Raises(TypeError, "gptq_shuffle: q_weight must be int32, got Float")),
    Case("gptq_shuffle.bits_16", lambda e: ops.gptq_shuffle(e.q.clone(), e.vperm, 16),
         Raises(ValueError, "gptq_shuffle: bits must be one of 2, 3, 4, 8, got 16")),
    Case("gptq_shuffle.K0", lambda e: ops.gptq_shuffle(e.q[:0].clone(), e.none, 4),
         Raises(ValueError, r"gptq_shuffle: q_weight has no rows \(K = 0")),

    # ---- introspection ops
    Case("kernel_table.device_type_tpu", lambda e: _ops.kernel_table("tpu"),
         Raises(ValueError, "kernel_table: device_type must be 'cpu' or 'cuda', got 'tpu'")),
    Case("large_m_threshold.bits_5", lambda e: ops.large_m_threshold(e.dev, 5),
         Raises(ValueError, "large_m_threshold: bits must be one of 2, 3, 4, 8, got 5")),
    Case("preferred_layout.bits_6", lambda e: ops.preferred_layout(e.dev, 6, K, N),
         Raises(ValueError, "preferred_layout: bits must be one of 2, 3, 4, 8, got 6")),
    Case("take_index_errors.device_type_gpu", lambda e: _ops.take_index_errors("gpu", 0),
         Raises(ValueError, "take_index_errors: device_type must be 'cpu' or 'cuda'")),
    Case("take_index_errors.no_such_gpu", introspect_take_index_errors_bad_gpu,
         Raises(ValueError, r"take_index_errors: device cuda:\d+ does not exist"), "cuda",
         NOT_CPU),
]


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(device, case):
    if case.only and case.only != device.type:
        pytest.skip(case.why or f"only on {case.only}")
    e = env_for(device)
    ops.take_index_errors(device)  # each case counts its own clamped entries
    if isinstance(case.expect, Raises):
        with pytest.raises(case.expect.exc, match=case.expect.match):
            case.call(e)
    else:
        case.expect.check(e, case.call(e))
    # later calls still work (a device fault would surface here, at the latest)
    if device.type == "cuda":
        torch.cuda.synchronize()
    out = ops.gemm(e.a, e.w)
    close_to_ref()(e, out)
    assert ops.take_index_errors(device) == 0

"""Tensor parallelism: vLLM-style column / row splits of GPTQ layers (gptq_mi100.tensor_parallel).

Two kinds of tests:
- Split helpers in one process: shapes, error messages for indivisible splits, and the shard
  outputs (run rank by rank, no collectives) concatenated / summed equal the whole layer.
- One spawned process per rank (torch.multiprocessing, loopback rendezvous): gloo on the CPU at
  world 2 and 4; NCCL on GPUs (world 1 with one GPU, 2 and 4 when that many are visible).
  One spawn per world size runs every case (4/8-bit x act-order x column/row x gemm/vLLM
  sequence, M = 1 and 33); the parent compares. A failing rank's exception propagates (with
  the case name) through torch.multiprocessing.

Tolerances (per element, fp16 activations and outputs, eps = 2**-11):
- sharded vs unsharded single-device (`sharded_vs_single_bound`): both outputs are rounded to
  fp16 once, ulp(max(|y_sharded|, |y_single|)); both accumulate in fp32, possibly in different
  orders, 4*sqrt(K)*2**-24*spread with spread = sqrt((x**2) @ (w**2)). Row-parallel adds the
  rounding of each rank's partial to fp16 by its GEMM (the GEMM returns the activation dtype)
  before the all-reduce: + sum_r ulp(p_r)/2 (+ world*2**-24*sum|p_r| for the fp32 sum). The
  all-reduce itself runs in fp32; the vLLM-like fp16 all-reduce cases add (world-1) half-ulps
  of sum|p_r| for the intermediate sums. Column-parallel outputs come out bit-identical here.
- both vs the fp32 reference: the project's GEMM bound eps*|ref| + 4*eps*spread (conftest),
  plus the partial roundings above for sharded row-parallel results.
"""

import pytest
import torch

from gptq_mi100 import formats, ops, quantize, reference
from gptq_mi100 import tensor_parallel as tp
from conftest import assert_diverse, assert_gemm_close, seed_of

GS = 128
M_VALUES = (1, 33)  # 33 >= the CPU large-M threshold (32): dequantize + matmul path too
COL_K = 1024
COL_SHAPES = {4: (1280, (1024, 128, 128)),  # QKV-like merged layer: q, k, v (64 : 8 : 8 heads)
              8: (768, None)}                # plain column split
ROW_K, ROW_N = 2048, 512                     # world 4: 512 rows = 4 groups per rank
# (bits, act_order) -> (symmetric, v2_zeros): vary the zero conventions across layers.
FORMATS = {(4, False): (False, False), (4, True): (True, False),
           (8, False): (True, True), (8, True): (False, True)}


def make_layer(k, n, bits, act_order, seed, group_size=GS):
    symmetric, v2 = FORMATS.get((bits, act_order), (False, False))
    return quantize.random_gptq(k, n, bits, group_size, symmetric=symmetric,
                                act_order=act_order, v2_zeros=v2, seed=seed)


def activations(m, k, seed):
    return torch.randn(m, k, generator=torch.Generator().manual_seed(seed)).half()


def w_ref_of(t):
    return reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, t.bits,
                                          t.v2_zeros)


def check_bound(err, bound, what):
    bad = err > bound
    if bad.any():
        i = tuple(bad.nonzero()[0].tolist())
        return (f"{what}: {int(bad.sum())} of {err.numel()} elements off, worst "
                f"{float((err / bound).max()):.3g} x bound; first at {i}: err "
                f"{float(err[i]):.3g} > bound {float(bound[i]):.3g}")
    return None


# ------------------------------------------------------------------ split helpers

@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("world", [1, 2, 4])
def test_column_shards_shapes_and_reassembly(bits, world):
    k, n = 256, 1024
    t = make_layer(k, n, bits, True, seed_of("colshape", bits, world), group_size=64)
    for sizes in (None, (512, 256, 256)):
        shards = [tp.shard_column_parallel(t, r, world, sizes) for r in range(world)]
        for s in shards:
            assert s.qweight.shape == (k * bits // 32, n // world)
            assert s.scales.shape == (k // 64, n // world)
            assert s.qzeros.shape == (k // 64, n // world * bits // 32)
            assert torch.equal(s.g_idx, t.g_idx) and s.qweight.is_contiguous()
        idx = tp.column_gather_index(n, world, bits, sizes)
        order = (lambda x: x) if idx is None else (lambda x: x[:, idx])
        assert torch.equal(order(torch.cat([s.qweight for s in shards], 1)), t.qweight)
        assert torch.equal(order(torch.cat([s.scales for s in shards], 1)), t.scales)
        zeros = torch.cat([formats.unpack_columns(s.qzeros, bits, n // world) for s in shards],
                          1)
        assert torch.equal(order(zeros), formats.unpack_columns(t.qzeros, bits, n))


@pytest.mark.parametrize("bits", [3, 4, 8])
@pytest.mark.parametrize("act_order", [False, True])
def test_row_shards_shapes_groups_and_reassembly(bits, act_order):
    k, n, world = 1024, 256, 4
    t = make_layer(k, n, bits, act_order, seed_of("rowshape", bits, act_order))
    kp = k // world
    shards = [tp.shard_row_parallel(t, r, world) for r in range(world)]
    for r, s in enumerate(shards):
        assert s.qweight.shape == (kp * bits // 32, n)
        if act_order:  # vLLM: whole scales / zeros, raw g_idx slice
            assert torch.equal(s.scales, t.scales) and torch.equal(s.qzeros, t.qzeros)
            assert torch.equal(s.g_idx, t.g_idx[r * kp:(r + 1) * kp])
        else:  # groups split with K, g_idx rebased to the local default
            g0, g1 = r * kp // GS, (r + 1) * kp // GS
            assert torch.equal(s.scales, t.scales[g0:g1])
            assert torch.equal(s.qzeros, t.qzeros[g0:g1])
            assert torch.equal(s.g_idx, formats.group_index_default(kp, GS))
    assert torch.equal(torch.cat([s.qweight for s in shards]), t.qweight)
    # Each shard dequantizes to its rows of the whole layer.
    w = w_ref_of(t)
    for r, s in enumerate(shards):
        assert torch.equal(w_ref_of(s), w[r * kp:(r + 1) * kp])


def test_row_shards_one_group_replicates_scales():
    t = make_layer(512, 64, 4, False, seed_of("g-1"), group_size=-1)
    s = tp.shard_row_parallel(t, 1, 2)
    assert s.scales.shape == (1, 64) and torch.equal(s.scales, t.scales)
    assert torch.equal(w_ref_of(s), w_ref_of(t)[256:])


def _raises(match, fn, *args, **kw):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kw)


def test_indivisible_splits_raise_clear_errors():
    t4 = make_layer(512, 96, 4, False, seed_of("err4"))  # N = 96
    _raises(r"column-parallel: N 96 does not split evenly over world=5",
            tp.shard_column_parallel, t4, 0, 5)
    # 96 / 4 = 24 columns per rank: 4-bit qzeros pack 8 per word -> OK; / 8 -> 12: not
    # a multiple of 8.
    assert tp.shard_column_parallel(t4, 3, 4).scales.shape == (4, 24)
    _raises(r"96/8 = 12 columns, not a multiple of 8: 4-bit qzeros pack 8 values per int32 "
            r"word along N", tp.shard_column_parallel, t4, 0, 8)
    _raises(r"output size 56 does not split evenly over world=5",
            tp.shard_column_parallel, t4, 0, 5, (40, 56))
    _raises(r"output_sizes \[64, 16\] sum to 80, not N=96",
            tp.shard_column_parallel, t4, 0, 2, (64, 16))
    t3 = make_layer(512, 64, 3, False, seed_of("err3"))
    _raises(r"64/4 = 16 columns, not a multiple of 32: 3-bit qzeros pack 32 values in 3 "
            r"int32 words", tp.shard_column_parallel, t3, 0, 4)
    _raises(r"row-parallel: K/world = 512/32 = 16 rows per rank is not a multiple of 32: "
            r"3-bit qweight packs 32 values in 3 int32 words along K",
            tp.shard_row_parallel, t3, 0, 32)
    _raises(r"row-parallel: K=512 input features do not split evenly over world=3",
            tp.shard_row_parallel, t4, 0, 3)
    _raises(r"K/world = 512/32 = 16 rows per rank is not a multiple of 32, which the GEMM",
            tp.shard_row_parallel, t4, 0, 32)
    _raises(r"K/world = 512/8 = 64 rows per rank is not a multiple of group_size=128",
            tp.shard_row_parallel, t4, 0, 8)
    t8 = make_layer(256, 64, 8, False, seed_of("err8"), group_size=32)
    _raises(r"256/128 = 2 rows per rank is not a multiple of 4: 8-bit qweight packs 4 values",
            tp.row_range, 256, 128, 0, 8, 32)
    assert tp.shard_row_parallel(t8, 7, 8).scales.shape == (1, 64)
    _raises(r"rank must lie in \[0, world=2\), got 2", tp.shard_row_parallel, t4, 2, 2)
    _raises(r"world must be >= 1", tp.shard_column_parallel, t4, 0, 0)
    ta = make_layer(512, 64, 4, True, seed_of("err-act"))
    _raises(r"act_order=False but g_idx is not the default", tp.shard_row_parallel, ta, 0, 2,
            act_order=False)
    _raises(r"output_sizes applies to column-parallel layers only", tp.ShardedGPTQLinear, ta,
            "row", 0, 2, output_sizes=(32, 32))


def test_fp_ulp_is_the_fp16_spacing():
    x = torch.tensor([0.0, 1e-8, 3e-6, 2.0**-14, 0.3, -1.0, 1.5, -1000.0, 2047.0, 60000.0])
    h = x.half().abs()
    want = (torch.nextafter(h, torch.tensor(float("inf")).half()).float() - h.float())
    assert torch.equal(tp.fp_ulp(h.float()), want)


def _local_outputs(t, parallel, world, path, x, sizes=None):
    lins = [tp.ShardedGPTQLinear(t, parallel, r, world, path=path, output_sizes=sizes)
            for r in range(world)]
    return lins, [lin.forward_local(lin.local_input(x)) for lin in lins]


def _combine_locally(parallel, lins, outs, n, bits, sizes):
    if parallel == "column":
        y = torch.cat(outs, -1)
        idx = tp.column_gather_index(n, len(lins), bits, sizes)
        return y if idx is None else y[:, idx]
    return torch.stack([o.float() for o in outs]).sum(0).half()


@pytest.mark.parametrize("path", tp.PATHS)
@pytest.mark.parametrize("act_order", [False, True], ids=["plain", "actorder"])
@pytest.mark.parametrize("parallel", tp.PARALLEL_KINDS)
def test_shard_outputs_combine_to_the_whole_layer(parallel, act_order, path):
    """No processes: each rank's local GEMM, concatenated (column) or summed in fp32 (row),
    equals the unsharded layer within sharded_vs_single_bound, and the reference."""
    bits = 4
    k, n, sizes = (COL_K, *COL_SHAPES[4]) if parallel == "column" else (ROW_K, ROW_N, None)
    t = make_layer(k, n, bits, act_order, seed_of("local", parallel, act_order, path))
    w = w_ref_of(t)
    single = tp.ShardedGPTQLinear(t, "column", 0, 1, path=path)
    for world in (2, 4):
        for m in M_VALUES:
            x = activations(m, k, seed_of("local-x", parallel, act_order, path, world, m))
            ref, spread = tp.reference_output(x, t)
            y1 = single.forward_local(x)
            assert_gemm_close(y1, x, w, x.float() @ w, f"single m={m}")
            lins, outs = _local_outputs(t, parallel, world, path, x, sizes)
            y = _combine_locally(parallel, lins, outs, n, bits, sizes)
            parts = outs if parallel == "row" else None
            b = tp.sharded_vs_single_bound(parallel, y.float(), y1.float(), parts, spread, k)
            msg = check_bound((y.float() - y1.float()).abs(), b, f"world={world} m={m}")
            assert msg is None, msg
            msg = check_bound((y.float() - ref).abs(),
                              tp.reference_bound(ref, spread, partials=parts),
                              f"vs ref world={world} m={m}")
            assert msg is None, msg


def test_run_sharded_layer_in_a_one_rank_group(tmp_path):
    """run_sharded_layer end to end in this process (gloo, world 1): equals the plain layer."""
    import torch.distributed as dist
    t = make_layer(ROW_K, ROW_N, 4, True, seed_of("rsl"))
    x = activations(3, ROW_K, seed_of("rsl-x"))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0,
                            world_size=1)
    try:
        for parallel in tp.PARALLEL_KINDS:
            for path in tp.PATHS:
                y = tp.run_sharded_layer(x, t, parallel, path=path)
                want = tp.ShardedGPTQLinear(t, "column", 0, 1, path=path).forward_local(x)
                assert torch.equal(y, want), (parallel, path)
    finally:
        dist.destroy_process_group()


def test_bound_catches_planted_errors():
    """The checks are not vacuous: a single row of one shard read with the wrong group, or
    act-order shards given rank-local g_idx, go out of bounds."""
    k, n, world, bits = ROW_K, ROW_N, 4, 4
    t = make_layer(k, n, bits, True, seed_of("plant"))
    x = activations(1, k, seed_of("plant-x"))
    y1 = tp.ShardedGPTQLinear(t, "column", 0, 1).forward_local(x)
    ref, spread = tp.reference_output(x, t)

    def run(shards):
        outs = []
        for r, s in enumerate(shards):
            prepared = ops.prepare(s.qweight, s.qzeros, s.scales, s.g_idx, bits=bits,
                                   group_size=GS, v2_zeros=s.v2_zeros)
            outs.append(ops.gemm(tp.shard_input(x, r, world), prepared))
        y = torch.stack([o.float() for o in outs]).sum(0).half().float()
        b = tp.sharded_vs_single_bound("row", y, y1.float(), outs, spread, k)
        return check_bound((y - y1.float()).abs(), b, "planted")

    good = [tp.shard_row_parallel(t, r, world) for r in range(world)]
    assert run(good) is None
    one_row = list(good)
    g = good[2].g_idx.clone()
    g[17] = (g[17] + 5) % (k // GS)
    one_row[2] = good[2]._replace(g_idx=g)
    assert run(one_row) is not None
    kp = k // world
    rank_local = [s._replace(g_idx=(s.g_idx % (kp // GS)).to(torch.int32)) for s in good]
    assert run(rank_local) is not None


def test_row_act_order_slice_that_looks_like_a_default_grouping():
    """Row-parallel act-order shard (whole scales: G=4 groups of 128 rows over K=512) whose
    256-row g_idx slice happens to be k // 64 == k // (K_local / G)."""
    t = make_layer(512, 64, 4, False, seed_of("lookalike"))
    g = torch.arange(256, dtype=torch.int32) // 64
    qw = t.qweight[:32].contiguous()
    w = ops.prepare(qw, t.qzeros, t.scales, g, bits=4, group_size=GS)
    x = activations(2, 256, 1)
    y = ops.gemm(x, w)
    w_ref = reference.dequantize_reference(qw, t.qzeros, t.scales, g, 4, False)
    assert_gemm_close(y, x, w_ref, x.float() @ w_ref, "look-alike slice")


# ------------------------------------------------------------------ spawned ranks

def _layers():
    layers = {}
    for bits in (4, 8):
        for act in (False, True):
            n, sizes = COL_SHAPES[bits]
            layers[("column", bits, act)] = (make_layer(COL_K, n, bits, act,
                                                        seed_of("tp-col", bits, act)), sizes)
            layers[("row", bits, act)] = (make_layer(ROW_K, ROW_N, bits, act,
                                                     seed_of("tp-row", bits, act)), None)
    return layers


def _case_specs():
    specs = []
    for bits in (4, 8):
        for act in (False, True):
            for parallel in tp.PARALLEL_KINDS:
                for path in tp.PATHS:
                    specs.append((parallel, bits, act, path, "fp32"))
            specs.append(("row", bits, act, "vllm", "activation"))  # vLLM's fp16 all-reduce
    return specs


@pytest.fixture(scope="module")
def tp_cases():
    """Layers, activations and fp32 references shared by every world size and device."""
    layers = _layers()
    cases = []
    for spec in _case_specs():
        parallel, bits, act, path, reduce_dtype = spec
        t, sizes = layers[(parallel, bits, act)]
        k = t.g_idx.shape[0]
        xs = [activations(m, k, seed_of("tp-x", spec, m)) for m in M_VALUES]
        name = f"{parallel}-w{bits}-{'act' if act else 'plain'}-{path}-{reduce_dtype}"
        cases.append({"name": name, "spec": spec, "layer": t, "sizes": sizes, "xs": xs,
                      "w_ref": w_ref_of(t), "refs": [tp.reference_output(x, t) for x in xs]})
    return cases


@pytest.mark.parametrize("world", [1, 2, 4])
def test_sharded_layers_across_processes(device, world, tp_cases):
    if device.type == "cpu":
        if world == 1:
            pytest.skip("world 1 runs only with NCCL on a GPU; gloo covers world 2 and 4")
        backend = "gloo"
    else:
        backend = "nccl"
        if not torch.distributed.is_nccl_available():
            pytest.skip("torch was built without NCCL")
        if torch.cuda.device_count() < world:
            pytest.skip(f"world {world} needs {world} GPUs, {torch.cuda.device_count()} visible")
    single_device = torch.device("cuda", 0) if device.type == "cuda" else device
    payload, singles = [], []
    for c in tp_cases:
        parallel, bits, act, path, reduce_dtype = c["spec"]
        payload.append({"name": c["name"], "parallel": parallel, "path": path,
                        "output_sizes": list(c["sizes"]) if c["sizes"] else None,
                        "layer": tp._layer_to_dict(c["layer"]), "xs": c["xs"],
                        "reduce_dtype": reduce_dtype})
        lin = tp.ShardedGPTQLinear(c["layer"], "column", 0, 1, path=path,
                                   device=single_device)
        singles.append([lin.forward_local(x.to(single_device)).cpu() for x in c["xs"]])
    results = tp.run_cases(payload, world, backend, device.type, timeout_s=240)
    assert [r["name"] for r in results] == [c["name"] for c in tp_cases]

    failures = []
    for c, res, y1s in zip(tp_cases, results, singles):
        parallel, bits, act, path, reduce_dtype = c["spec"]
        t = c["layer"]
        k, n = t.g_idx.shape[0], t.qweight.shape[1]
        if res["index_errors"]:
            failures.append(f"{c['name']}: {res['index_errors']} out-of-range index entries")
        if parallel == "row" and act and world > 1:
            # Each rank's g_idx slice is a genuine act-order slice: unsorted, and groups from
            # outside the rank's own K range.
            g = res["local_g_idx"].long()
            kp = k // world
            if g.shape != (kp,) or bool((g[1:] >= g[:-1]).all()) or int(g.max()) < kp // GS:
                failures.append(f"{c['name']}: rank 0's g_idx slice is sorted or holds only "
                                f"its own groups")
            if path == "gemm" and res["prepared_perm_len"] != kp:
                failures.append(f"{c['name']}: prepare did not take the act-order path")
            if path == "vllm" and res["use_exllama"] is not False:
                failures.append(f"{c['name']}: vLLM calls gptq_gemm(use_exllama=False) here")
        for i, m in enumerate(M_VALUES):
            what = f"{c['name']} world={world} m={m}"
            y = res["outputs"][i]
            y1 = y1s[i]
            if y.shape != (m, n) or y.dtype != torch.float16:
                failures.append(f"{what}: got {tuple(y.shape)} {y.dtype}")
                continue
            ref, spread = c["refs"][i]
            parts = res["partials"][i]
            b = tp.sharded_vs_single_bound(parallel, y.float(), y1.float(), parts, spread, k,
                                           reduce_dtype=reduce_dtype)
            for msg in (
                    check_bound((y.float() - y1.float()).abs(), b, f"{what} sharded vs single"),
                    check_bound((y.float() - ref).abs(),
                                tp.reference_bound(ref, spread, partials=parts,
                                                   reduce_dtype=reduce_dtype),
                                f"{what} sharded vs fp32 reference")):
                if msg:
                    failures.append(msg)
            try:
                assert_gemm_close(y1, c["xs"][i], c["w_ref"], c["xs"][i].float() @ c["w_ref"],
                                  f"{what} single-device vs fp32 reference")
                assert_diverse(y.float(), what)
            except AssertionError as e:
                failures.append(str(e))
            if parallel == "column" and device.type == "cpu" and not torch.equal(y, y1):
                failures.append(f"{what}: column-parallel output not bit-identical to the "
                                f"single-device output on the CPU")
    assert not failures, "\n".join(failures)


def test_failing_rank_propagates_its_message(tmp_path):
    t = make_layer(256, 104, 4, False, seed_of("fail"))
    case = {"name": "bad-split", "parallel": "column", "path": "gemm",
            "layer": tp._layer_to_dict(t), "xs": [activations(1, 256, 0)]}
    case["output_sizes"] = [96, 8]  # 8 / 2 = 4 columns per rank: not a whole qzeros word
    with pytest.raises(Exception, match=r"case 'bad-split'.*output size 8 is 8/2 = 4 "
                                        r"columns, not a multiple of 8"):
        tp.run_cases([case], 2, "gloo", "cpu", timeout_s=120, workdir=str(tmp_path))

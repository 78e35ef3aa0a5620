"""gptq_mi100.vllm_plugin: the vLLM plugin's logic on tensors shaped as vLLM delivers them, and
register() on a fake `vllm` module tree (vLLM itself is not installed here).

Shapes follow vLLM's GPTQLinearMethod per tensor-parallel rank (vllm_plugin's docstring):
column-parallel keeps N/world columns and the whole g_idx; row-parallel keeps K/world rows and
the checkpoint's g_idx slice (global group numbers), with the rank's groups of scales/qzeros
without act-order and the WHOLE scales/qzeros with act-order (ExllamaState.UNUSED). Every
output is checked per element against the fp32 reference (conftest.assert_gemm_close).
"""

import enum
import logging
import sys
import types
import warnings
from fractions import Fraction

import pytest
import torch

from conftest import assert_gemm_close, seed_of
from gptq_mi100 import formats, kernels, ops, quantize, reference, vllm_plugin as vp
from gptq_mi100 import tensor_parallel as tp
from gptq_mi100.checkpoint import GPTQFormatWarning

pytestmark = pytest.mark.filterwarnings("error::gptq_mi100.checkpoint.GPTQFormatWarning")

K, N, GS = 256, 128, 64          # G = 4
NAME = "model.layers.3.mlp.down_proj"
M_VALUES = (1, 7, 130)           # 130 >= every large-M threshold (CPU 128): both auto paths
# (bits, act_order) -> (symmetric, v2_zeros): vary the zero conventions across cases.
FORMATS = {(2, False): (False, True), (2, True): (False, False), (3, False): (True, False),
           (3, True): (False, True), (4, False): (False, False), (4, True): (True, False),
           (8, False): (True, True), (8, True): (False, False)}


def make(bits, act_order, seed, k=K, n=N, gs=GS, symmetric=None, v2=None):
    sym, v2_default = FORMATS[(bits, act_order)]
    sym = sym if symmetric is None else symmetric
    v2 = v2_default if v2 is None else v2
    t = quantize.random_gptq(k, n, bits, gs, symmetric=sym, act_order=act_order, v2_zeros=v2,
                             seed=seed)
    return t, w_ref_of(t, t.qzeros, v2)


def w_ref_of(t, qzeros, v2, g_idx=None):
    return reference.dequantize_reference(t.qweight, qzeros, t.scales,
                                          t.g_idx if g_idx is None else g_idx, t.bits, v2)


def acts(m, k, seed, dtype=torch.float16):
    return torch.randn(m, k, generator=torch.Generator().manual_seed(seed)).to(dtype)


def conv(mode):
    # random_gptq's v1 zeros may legitimately store 2**bits - 1 (true zero 2**bits), as this
    # package's writer does: no AutoGPTQ check for them.
    return {"v1": vp.ZeroConvention("fieldwise", "v1", False),
            "v2": vp.ZeroConvention("v2", "v2", False)}[mode]


def run(w, x, device, bias=None):
    return vp.gptq_linear(x.to(device), w.qweight, w.qzeros, w.scales, w.g_idx, w.use_exllama,
                          w.v2_zeros, w.bits, bias)


def process(t, device, *, desc_act, name=NAME, zeros=None, row_split=False, qzeros=None,
            g_idx=None):
    dev = lambda x: x.clone().to(device)  # noqa: E731  (process_layer shuffles in place)
    return vp.process_layer(name, dev(t.qweight), dev(t.qzeros if qzeros is None else qzeros),
                            dev(t.scales), dev(t.g_idx if g_idx is None else g_idx),
                            bits=t.bits, group_size=t.group_size, desc_act=desc_act,
                            row_split_act_order=row_split,
                            zeros=zeros or conv("v2" if t.v2_zeros else "v1"))


# ------------------------------------------------------------------ one layer, whole

@pytest.mark.parametrize("act_order", [False, True], ids=["plain", "actorder"])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_process_layer_matches_reference(device, bits, act_order):
    seed = seed_of("plugin", bits, act_order)
    t, w_ref = make(bits, act_order, seed)
    w = process(t, device, desc_act=act_order)
    assert w.use_exllama and w.v2_zeros == t.v2_zeros
    assert w.plan.order == ("act-order (perm)" if act_order else "none")
    assert w.g_idx.numel() == (K if act_order else 0)
    for m in M_VALUES:
        x = acts(m, K, seed + m)
        assert_gemm_close(run(w, x, device), x, w_ref, x.float() @ w_ref, f"m={m}")


def test_bf16_activations_leading_dims_and_bias(device):
    t, w_ref = make(4, True, seed_of("bf16"))
    w = process(t, device, desc_act=True)
    x = acts(6, K, 3, torch.bfloat16).reshape(2, 3, K)
    bias = (0.01 * acts(1, N, 4)).reshape(N).to(torch.bfloat16)
    y = run(w, x, device, bias.to(device))
    assert y.shape == (2, 3, N) and y.dtype == torch.bfloat16
    x2 = x.reshape(-1, K)
    assert_gemm_close(y.reshape(-1, N), x2, w_ref, x2.float() @ w_ref + bias.float(), "bf16")


def test_uneven_act_order_groups_take_the_raw_g_idx_path(device):
    """vLLM's exllama path assumes every act-order group has K/G rows; with uneven groups the
    plugin uses the unshuffled weights and the per-row g_idx, which is exact."""
    t, _ = make(4, True, seed_of("uneven"))
    g = t.g_idx.clone()
    moved = (g == 1).nonzero().flatten()[:5]
    g[moved] = 0
    assert torch.bincount(g.long()).tolist() != [K // 4] * 4
    w_ref = w_ref_of(t, t.qzeros, t.v2_zeros, g)
    w = process(t, device, desc_act=True, g_idx=g)
    assert not w.use_exllama and "unequal" in w.plan.order and torch.equal(w.g_idx.cpu(), g)
    x = acts(5, K, 9)
    assert_gemm_close(run(w, x, device), x, w_ref, x.float() @ w_ref, "uneven groups")


def test_desc_act_false_with_non_default_g_idx_warns_and_follows_vllm(device):
    t, w_ref = make(4, False, seed_of("ignored"))
    g = t.g_idx.flip(0).contiguous()
    with pytest.warns(GPTQFormatWarning, match=NAME.replace(".", r"\.")):
        w = process(t, device, desc_act=False, g_idx=g)
    assert w.use_exllama and w.g_idx.numel() == 0 and "g_idx ignored" in w.plan.describe()
    x = acts(3, K, 2)
    assert_gemm_close(run(w, x, device), x, w_ref, x.float() @ w_ref, "g_idx ignored")


def test_one_group_ignores_vllms_negative_default_g_idx(device):
    """group_size -1: vLLM fills an absent g_idx with i // -1 = -i; one group needs none."""
    t, w_ref = make(8, False, seed_of("onegroup"), gs=-1)
    g = -torch.arange(K, dtype=torch.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for desc_act in (False, True):
            w = process(t, device, desc_act=desc_act, g_idx=g)
            assert w.use_exllama and w.g_idx.numel() == 0 and w.plan.groups == 1
            x = acts(4, K, 1)
            assert_gemm_close(run(w, x, device), x, w_ref, x.float() @ w_ref, "one group")


# ------------------------------------------------------------------ tensor-parallel shards

def vllm_shard(t, parallel, rank, world, desc_act):
    """Rank `rank`'s tensors as vLLM's GPTQLinearMethod holds them after loading, the K and N
    ranges they cover, and whether vLLM marks the layer ExllamaState.UNUSED."""
    bits, k, n = t.bits, t.k, t.n
    if parallel == "column":
        (s, e), = tp.column_ranges(n, world, bits)[rank]
        z0, z1 = s * bits // 32, e * bits // 32
        return dict(qweight=t.qweight[:, s:e], qzeros=t.qzeros[:, z0:z1], scales=t.scales[:, s:e],
                    g_idx=t.g_idx, rows=(0, k), cols=(s, e), row_split=False)
    k0, k1 = tp.row_range(k, world, rank, bits, t.group_size)
    q = t.qweight[k0 * bits // 32:k1 * bits // 32]
    row_split = world > 1 and desc_act and t.group_size != -1
    if row_split or t.group_size == -1:
        qzeros, scales = t.qzeros, t.scales
    else:
        g0, g1 = k0 // t.group_size, k1 // t.group_size
        qzeros, scales = t.qzeros[g0:g1], t.scales[g0:g1]
    return dict(qweight=q, qzeros=qzeros, scales=scales, g_idx=t.g_idx[k0:k1], rows=(k0, k1),
                cols=(0, n), row_split=row_split)


@pytest.mark.parametrize("desc_act", [False, True], ids=["plain", "actorder"])
@pytest.mark.parametrize("parallel", ["column", "row"])
@pytest.mark.parametrize("bits", [3, 4, 8])
def test_tensor_parallel_shards_as_vllm_delivers_them(device, bits, parallel, desc_act):
    world = 2
    seed = seed_of("tp", bits, parallel, desc_act)
    t, w_ref = make(bits, desc_act, seed)
    x = acts(5, K, seed)
    parts = []
    for rank in range(world):
        s = vllm_shard(t, parallel, rank, world, desc_act)
        shard = t._replace(qweight=s["qweight"].contiguous(), qzeros=s["qzeros"].contiguous(),
                           scales=s["scales"].contiguous(), g_idx=s["g_idx"].contiguous())
        w = process(shard, device, desc_act=desc_act, row_split=s["row_split"],
                    name=f"{NAME} rank {rank}")
        assert w.use_exllama == (not s["row_split"])
        (k0, k1), (c0, c1) = s["rows"], s["cols"]
        w_blk, x_blk = w_ref[k0:k1, c0:c1], x[:, k0:k1]
        y = run(w, x_blk, device)
        assert_gemm_close(y, x_blk, w_blk, x_blk.float() @ w_blk, f"rank {rank}")
        parts.append(y.float().cpu())
    full = torch.cat(parts, 1) if parallel == "column" else sum(parts)
    # combined: within the per-shard roundings of the whole product (fp16 partials summed)
    err = (full - x.float() @ w_ref).abs()
    assert float(err.max()) <= 2.0**-9 * float((x.float() @ w_ref).abs().max()) + 1e-3


# ------------------------------------------------------------------ zero conventions

def gptqmodel_v1(qzeros_v2, bits, n):
    """GPTQModel's v2 -> v1 zeros: a constant subtracted from whole words (3-bit: per field)."""
    if bits == 3:
        z = formats.unpack_columns(qzeros_v2, 3, n).to(torch.int64)
        return formats.pack_columns((z - 1) & 7, 3)
    const = sum(1 << (bits * i) for i in range(32 // bits))
    words = (qzeros_v2.to(torch.int64) - const) & 0xFFFFFFFF
    return torch.where(words >= 1 << 31, words - (1 << 32), words).to(torch.int32)


def test_zero_convention_from_config_dicts(monkeypatch):
    zc = vp.zero_convention
    assert zc({"quant_method": "gptq", "bits": 4, "checkpoint_format": "gptq_v2"}).mode == "v2"
    assert zc({"format": "GPTQ_V2"}).mode == "v2"
    gm = {"checkpoint_format": "gptq", "meta": {"quantizer": ["gptqmodel:4.2.5"]}}
    assert zc(gm).mode == "wordwise"
    assert zc(gm, v1_zeros="fieldwise").mode == "fieldwise"
    assert zc({"meta": {"quantizer": "gptq_mi100:0.1.0"}}) == ("fieldwise", "v1 (AutoGPTQ "
                                                              "convention)", False)
    assert zc({}).mode == "fieldwise" and zc({}).check_damaged
    assert zc({}, v1_zeros="wordwise").mode == "wordwise"
    assert zc(None, use_v2_format=True).mode == "v2" and zc(None).mode == "fieldwise"
    with pytest.raises(ValueError, match="checkpoint_format"):
        zc({"checkpoint_format": "marlin"})
    with pytest.raises(ValueError, match="v1_zeros"):
        zc({}, v1_zeros="bytewise")
    with pytest.raises(TypeError, match="config"):
        zc("gptq_v2")
    monkeypatch.setenv(vp.ENV_V1_ZEROS, " WordWise ")
    assert vp.resolve_v1_zeros() == "wordwise"
    monkeypatch.setenv(vp.ENV_V1_ZEROS, "sometimes")
    with pytest.raises(ValueError, match=vp.ENV_V1_ZEROS):
        vp.resolve_v1_zeros()


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_gptqmodel_wordwise_v1_zeros(device, bits):
    t, w_ref = make(bits, True, seed_of("wordwise", bits), symmetric=False, v2=True)
    assert (formats.unpack_columns(t.qzeros, bits, N) == 0).any(), "needs a zero point of 0"
    stored = gptqmodel_v1(t.qzeros, bits, N)
    config = {"quant_method": "gptq", "bits": bits, "group_size": GS, "desc_act": True,
              "sym": False, "checkpoint_format": "gptq", "meta": {"quantizer": ["gptqmodel:4"]}}
    w = process(t, device, desc_act=True, qzeros=stored, zeros=vp.zero_convention(config))
    assert w.v2_zeros and torch.equal(w.qzeros.cpu(), t.qzeros)
    x = acts(4, K, bits)
    assert_gemm_close(run(w, x, device), x, w_ref, x.float() @ w_ref, "word-wise")
    # Field-wise reading (vLLM's own) warns about the borrowed fields and gets them wrong.
    with pytest.warns(GPTQFormatWarning, match=NAME.replace(".", r"\.")):
        wrong = process(t, device, desc_act=True, qzeros=stored, zeros=vp.zero_convention({}))
    with pytest.raises(AssertionError, match="elements off"):
        assert_gemm_close(run(wrong, x, device), x, w_ref, x.float() @ w_ref, "field-wise")


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_autogptq_destroyed_fields_warn_naming_the_layer(bits):
    t, _ = make(bits, False, seed_of("autogptq", bits), symmetric=False, v2=False)
    z = formats.unpack_columns(t.qzeros, bits, N).clamp_max((1 << bits) - 2)
    words = formats.pack_columns(z, bits)
    pf = 32 // bits  # AutoGPTQ's `word |= (zero - 1) << shift` with zero 0: column 3, group 1
    col, shift = 3 // pf, bits * (3 % pf)
    words[1, col] = int(torch.tensor(int(words[1, col]), dtype=torch.int32) | (-1 << shift))
    config = {"quant_method": "gptq", "bits": bits, "group_size": GS, "desc_act": False}
    with pytest.warns(GPTQFormatWarning, match=NAME.replace(".", r"\.") + ".*AutoGPTQ"):
        w = process(t, "cpu", desc_act=False, qzeros=words, zeros=vp.zero_convention(config))
    assert not w.v2_zeros and any("damaged" in note for note in w.plan.notes)
    with warnings.catch_warnings():  # the same fields from this package's writer: no warning
        warnings.simplefilter("error")
        mine = vp.zero_convention(dict(config, meta={"quantizer": ["gptq_mi100:0.1.0"]}))
        process(t, "cpu", desc_act=False, qzeros=words, zeros=mine)


def test_transformers_gptq_v2_label(device):
    """transformers' GPTQConfig + save_pretrained: v2 zeros, labelled only by config.json's
    quantization_config (the dict vLLM hands to GPTQConfig.from_config)."""
    t, w_ref = make(4, True, seed_of("v2label"), symmetric=False, v2=True)
    config = {"quant_method": "gptq", "bits": 4, "group_size": GS, "desc_act": True,
              "sym": False, "checkpoint_format": "gptq_v2"}
    w = process(t, device, desc_act=True, zeros=vp.zero_convention(config))
    x = acts(3, K, 7)
    assert w.v2_zeros
    assert_gemm_close(run(w, x, device), x, w_ref, x.float() @ w_ref, "gptq_v2 label")
    unlabelled = process(t, device, desc_act=True, zeros=conv("v1"))
    with pytest.raises(AssertionError, match="elements off"):
        assert_gemm_close(run(unlabelled, x, device), x, w_ref, x.float() @ w_ref, "as v1")


# ------------------------------------------------------------------ bad input, settings

def test_bad_inputs_name_the_argument():
    t, _ = make(4, True, seed_of("bad"))
    ok = dict(qweight=t.qweight, qzeros=t.qzeros, scales=t.scales, g_idx=t.g_idx)
    kw = dict(bits=4, group_size=GS, desc_act=True)
    cases = [
        (dict(qweight=t.qweight.float()), {}, TypeError, "qweight"),
        (dict(qweight=t.qweight[:, :N - 8]), {}, ValueError, "scales"),
        (dict(qzeros=t.qzeros[:, :-1]), {}, ValueError, "qzeros"),
        (dict(scales=t.scales.float()), {}, TypeError, "scales"),
        (dict(g_idx=t.g_idx[:-1]), {}, ValueError, "g_idx"),
        (dict(g_idx=t.g_idx + 4), {}, ValueError, r"g_idx values must lie in \[0, G=4\)"),
        (dict(g_idx=t.g_idx.float()), {}, TypeError, "g_idx"),
        ({}, dict(bits=5), ValueError, "bits"),
        ({}, dict(group_size=128), ValueError, "group_size=128"),
        ({}, dict(group_size="128"), TypeError, "group_size"),
        (dict(g_idx=t.g_idx - 1), dict(row_split_act_order=True), ValueError, "g_idx values"),
    ]
    for over, kw_over, exc, match in cases:
        args = dict(ok, **over)
        with pytest.raises(exc, match=match):
            vp.process_layer(NAME, args["qweight"].clone(), args["qzeros"], args["scales"],
                             args["g_idx"], **dict(kw, **kw_over))
    with pytest.raises(TypeError, match="name"):
        vp.process_layer(None, t.qweight.clone(), t.qzeros, t.scales, t.g_idx, **kw)
    with pytest.raises(TypeError, match="convention"):
        vp.convert_zeros(NAME, t.qzeros, 4, "v2")
    with pytest.raises(TypeError, match="bit"):
        vp.vllm_gptq_gemm(acts(1, K, 0), t.qweight, t.qzeros, t.scales, t.g_idx, False, True)


def test_mode_and_activation(monkeypatch):
    monkeypatch.delenv(vp.ENV_MODE, raising=False)
    assert vp.resolve_mode() == "auto"
    assert vp.resolve_mode({vp.ENV_MODE: " OFF "}) == "off"
    with pytest.raises(ValueError, match=vp.ENV_MODE):
        vp.resolve_mode({vp.ENV_MODE: "yes"})
    decide = vp.activation_decision
    assert decide("auto", "6.2.41133", "rocm").active
    assert not decide("auto", None, "cuda").active
    assert "rebuild" in decide("auto", "6.2", "cpu").reason
    assert decide("on", None, "cpu").active and not decide("off", "6.2", "rocm").active
    with pytest.raises(ValueError, match="mode"):
        decide("maybe", None, "cpu")


def test_kernel_choice_from_the_registry(device, monkeypatch):
    dt = torch.device(device).type
    monkeypatch.setattr(kernels, "default_kernel", lambda: "auto")  # auto's rule, whatever the env
    c = vp.kernel_choice(device, 4, K, N, True)
    assert c.layout == ops.preferred_layout(device, 4, K, N)
    assert c.threshold == ops.large_m_threshold(device, 4)
    assert {c.below, c.from_threshold} <= set(kernels.kernel_names(dt))
    raw = vp.kernel_choice(device, 3, K, N, False)
    assert raw.layout == 1 and raw.from_threshold == "dequant_matmul"
    if dt == "cpu":
        assert c.describe() == (f"layout 1, kernel cpu_c for M < {c.threshold}, "
                                f"dequant_matmul from M = {c.threshold}")


def test_kernel_choice_names_the_env_default_only_where_it_runs(device, monkeypatch):
    """GPTQ_MI100_KERNEL is a preference: where its kernel does not read the layer's layout
    or bits, the registry lets auto decide, and the plan must say auto's choice."""
    dt = torch.device(device).type
    table = [e for e in kernels.kernel_table(dt) if e.in_build and e.auto_range == "below_large_m"]
    monkeypatch.setattr(kernels, "default_kernel", lambda: "auto")
    auto = {b: vp.kernel_choice(device, b, K, N, True) for b in (2, 3, 4, 8)}
    for e in table:
        layer_bits = [b for b in auto if auto[b].layout in e.layouts and b in e.bits]
        other_bits = [b for b in auto if b not in layer_bits]
        monkeypatch.setattr(kernels, "default_kernel", lambda e=e: e.name)
        for b in layer_bits:
            c = vp.kernel_choice(device, b, K, N, True)
            assert c.threshold is None and c.below == e.name, (e.name, b)
            assert f"kernel {e.name} (GPTQ_MI100_KERNEL)" in c.describe()
        for b in other_bits:
            assert vp.kernel_choice(device, b, K, N, True) == auto[b], (e.name, b)
    # a registry where the forced kernel lacks a bit width (no such CPU kernel exists)
    narrow = [e._replace(bits=(4,)) if e.name == "cpu_c" else e for e in kernels.kernel_table("cpu")]
    monkeypatch.setattr(kernels, "kernel_table", lambda device_type="cuda": narrow)
    monkeypatch.setattr(kernels, "default_kernel", lambda: "cpu_c")
    assert vp.kernel_choice("cpu", 4, K, N, True).threshold is None
    assert vp.kernel_choice("cpu", 3, K, N, True).threshold is not None


# ------------------------------------------------------------------ register() on a fake vLLM

GPTQ_MODULE = "vllm.model_executor.layers.quantization.gptq"


def build_fake_vllm(with_gptq=True):
    """A module tree with vLLM's names and GPTQ contract (parameter shapes per rank, the
    exllama state, ops looked up on vllm._custom_ops at call time). Its own kernels raise."""

    def not_ours(*args):
        raise AssertionError("vLLM's own GPTQ kernel ran: the plugin did not route it")

    vllm = types.ModuleType("vllm")
    vllm.__path__ = []
    vllm.__version__ = "0.0-fake"
    custom_ops = types.ModuleType("vllm._custom_ops")
    custom_ops.gptq_gemm = custom_ops.gptq_shuffle = not_ours
    vllm._custom_ops = custom_ops
    modules = {"vllm": vllm, "vllm._custom_ops": custom_ops}
    if not with_gptq:
        return modules
    parts = GPTQ_MODULE.split(".")
    for i in range(2, len(parts)):
        modules[".".join(parts[:i])] = types.ModuleType(".".join(parts[:i]))
    gptq = types.ModuleType(GPTQ_MODULE)

    class ExllamaState(enum.Enum):
        UNUSED = enum.auto()
        UNINITIALIZED = enum.auto()
        READY = enum.auto()

    class GPTQConfig:
        def __init__(self, weight_bits, group_size, desc_act, checkpoint_format=""):
            self.weight_bits, self.group_size, self.desc_act = weight_bits, group_size, desc_act
            self.pack_factor = Fraction(32, weight_bits)
            self.use_v2_format = checkpoint_format == "gptq_v2"

        @classmethod
        def from_config(cls, config):
            return cls(config["bits"], config["group_size"], config["desc_act"],
                       config.get("checkpoint_format", ""))

        @classmethod
        def get_supported_act_dtypes(cls):
            return [torch.float16]

    class GPTQLinearMethod:
        def __init__(self, quant_config):
            self.quant_config = quant_config

        def create_weights(self, layer, input_size_per_partition, output_partition_sizes,
                           input_size, output_size, params_dtype, device="cpu"):
            c = self.quant_config
            n = sum(output_partition_sizes)
            gs = input_size if c.group_size == -1 else c.group_size
            groups, state = input_size // gs, ExllamaState.UNINITIALIZED
            if input_size != input_size_per_partition and c.group_size != -1:
                if c.desc_act:
                    state = ExllamaState.UNUSED
                else:
                    groups = input_size_per_partition // gs
            p = lambda t: torch.nn.Parameter(t.to(device), requires_grad=False)  # noqa: E731
            layer.register_parameter("qweight", p(torch.empty(
                int(input_size_per_partition / c.pack_factor), n, dtype=torch.int32)))
            layer.register_parameter("g_idx", p(torch.tensor(
                [i // c.group_size for i in range(input_size_per_partition)], dtype=torch.int32)))
            layer.register_parameter("qzeros", p(torch.empty(
                groups, int(n / c.pack_factor), dtype=torch.int32)))
            layer.register_parameter("scales", p(torch.empty(groups, n, dtype=params_dtype)))
            layer.exllama_state = state

        def process_weights_after_loading(self, layer):
            custom_ops.gptq_shuffle(layer.qweight, layer.g_idx, self.quant_config.weight_bits)

        def apply(self, layer, x, bias=None):
            return custom_ops.gptq_gemm(x, layer.qweight, layer.qzeros, layer.scales, layer.g_idx,
                                        True, False, self.quant_config.weight_bits)

    gptq.ExllamaState, gptq.GPTQConfig, gptq.GPTQLinearMethod = (ExllamaState, GPTQConfig,
                                                                  GPTQLinearMethod)
    modules[GPTQ_MODULE] = gptq
    return modules


@pytest.fixture
def fake_vllm(monkeypatch):
    def install(with_gptq=True):
        modules = build_fake_vllm(with_gptq)
        for name, mod in modules.items():
            monkeypatch.setitem(sys.modules, name, mod)
        return modules
    vp.unregister()
    yield install
    vp.unregister()


def load_rank(modules, t, config, parallel, rank, world, device, prefix):
    """A vLLM layer of rank `rank`: create_weights, then the checkpoint shard copied into the
    parameters as vLLM's weight loaders do (shapes must match what create_weights made)."""
    gptq = modules[GPTQ_MODULE]
    cfg = gptq.GPTQConfig.from_config(config)
    method = gptq.GPTQLinearMethod(cfg)
    layer = torch.nn.Module()
    layer.prefix = prefix
    if parallel == "column":
        k_part, n_part = t.k, t.n // world
    else:
        k_part, n_part = t.k // world, t.n
    method.create_weights(layer, k_part, [n_part], t.k, t.n, torch.float16, device=device)
    s = vllm_shard(t, parallel, rank, world, config["desc_act"])
    assert (layer.exllama_state.name == "UNUSED") == s["row_split"]
    for key in ("qweight", "qzeros", "scales", "g_idx"):
        getattr(layer, key).data.copy_(s[key])
    return method, layer, s


def test_register_routes_a_fake_vllm_to_this_package(device, fake_vllm, caplog):
    modules = fake_vllm()
    custom_ops, gptq = modules["vllm._custom_ops"], modules[GPTQ_MODULE]
    caplog.set_level(logging.INFO, logger=vp.LOGGER_NAME)
    labels = vp.register("on")
    assert custom_ops.gptq_gemm is vp.vllm_gptq_gemm
    assert custom_ops.gptq_shuffle is vp.vllm_gptq_shuffle
    assert {f"{GPTQ_MODULE}.GPTQLinearMethod.apply", "vllm._custom_ops.gptq_gemm",
            f"{GPTQ_MODULE}.GPTQConfig.from_config"} <= set(labels)
    assert vp.register("on") == labels and len(vp.patched()) == len(labels)  # idempotent
    assert torch.bfloat16 in gptq.GPTQConfig.get_supported_act_dtypes()

    world, bits = 2, 4
    t, w_ref = make(bits, True, seed_of("fake"), symmetric=False, v2=True)
    config = {"quant_method": "gptq", "bits": bits, "group_size": GS, "desc_act": True,
              "sym": False, "checkpoint_format": "gptq_v2"}
    x = acts(3, K, 1)
    bias = 0.01 * acts(1, N, 2).reshape(N)
    for parallel in ("column", "row"):
        for rank in range(world):
            prefix = f"model.layers.0.{parallel}_proj.rank{rank}"
            method, layer, s = load_rank(modules, t, config, parallel, rank, world, device,
                                         prefix)
            assert getattr(method.quant_config, "gptq_mi100_config") == config
            caplog.clear()
            method.process_weights_after_loading(layer)
            lines = [r.getMessage() for r in caplog.records if r.name == vp.LOGGER_NAME]
            assert len(lines) == 1 and prefix in lines[0] and "kernel" in lines[0]
            assert ("use_exllama=False" in lines[0]) == s["row_split"]
            (k0, k1), (c0, c1) = s["rows"], s["cols"]
            w_blk, x_blk, b = w_ref[k0:k1, c0:c1], x[:, k0:k1], bias[c0:c1]
            y = method.apply(layer, x_blk.to(device), b.to(device))
            assert_gemm_close(y, x_blk, w_blk, x_blk.float() @ w_blk + b.float(), prefix)
            before = layer.qweight.detach().clone()
            method.process_weights_after_loading(layer)  # again: no second shuffle, no log
            assert torch.equal(layer.qweight, before)
            assert [r for r in caplog.records if r.name == vp.LOGGER_NAME][1:] == []

    fresh = torch.nn.Module()
    fresh.prefix = "model.layers.9.never_loaded"
    with pytest.raises(RuntimeError, match="never_loaded"):
        gptq.GPTQLinearMethod(gptq.GPTQConfig(4, GS, False)).apply(fresh, x)
    vp.unregister()
    assert vp.patched() == () and not hasattr(gptq.GPTQConfig.from_config(config),
                                              "gptq_mi100_config")
    assert gptq.GPTQConfig.get_supported_act_dtypes() == [torch.float16]
    with pytest.raises(AssertionError, match="vLLM's own"):
        custom_ops.gptq_gemm(x)


def test_register_op_level_only_on_a_vllm_without_gptq_py(device, fake_vllm):
    """vLLM after May 2026 has no exllama-era gptq.py; its ExllamaLinearKernel still calls
    ops.gptq_shuffle / ops.gptq_gemm, which the plugin routes. Also vLLM's 7-argument form."""
    modules = fake_vllm(with_gptq=False)
    ops_mod = modules["vllm._custom_ops"]
    assert vp.register("on") == ("vllm._custom_ops.gptq_gemm", "vllm._custom_ops.gptq_shuffle")
    t, w_ref = make(8, True, seed_of("oplevel"), symmetric=True, v2=False)
    q = t.qweight.clone().to(device)
    perm = torch.argsort(t.g_idx).to(torch.int).to(device)
    ops_mod.gptq_shuffle(q, perm, 8)
    x = acts(4, K, 5)
    args = (x.to(device), q, t.qzeros.to(device), t.scales.to(device), perm, True)
    for y in (ops_mod.gptq_gemm(*args, False, 8), ops_mod.gptq_gemm(*args, 8)):
        assert_gemm_close(y, x, w_ref, x.float() @ w_ref, "op level")


def test_register_modes_leave_vllm_alone(fake_vllm, monkeypatch):
    modules = fake_vllm()
    original = modules["vllm._custom_ops"].gptq_gemm
    monkeypatch.setenv(vp.ENV_MODE, "off")
    assert vp.register() == ()
    monkeypatch.setenv(vp.ENV_MODE, "auto")
    if not torch.version.hip:
        assert vp.register() == ()                       # not a ROCm torch
    monkeypatch.setattr(torch.version, "hip", "6.2.41133", raising=False)
    if vp._build_backend() != "rocm":
        assert vp.register() == ()                       # ROCm torch, but not a rocm build
    assert modules["vllm._custom_ops"].gptq_gemm is original and vp.patched() == ()
    monkeypatch.setenv(vp.ENV_MODE, "sometimes")
    with pytest.raises(ValueError, match=vp.ENV_MODE):
        vp.register()


def test_register_on_without_vllm_is_an_error(monkeypatch):
    vp.unregister()
    monkeypatch.setitem(sys.modules, "vllm", None)       # import vllm -> ImportError
    with pytest.raises(ImportError, match="vllm is not importable"):
        vp.register("on")
    assert vp.patched() == ()


def test_entry_point_declared_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    import importlib
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    eps = tomllib.loads(path.read_text())["project"]["entry-points"]["vllm.general_plugins"]
    module, _, attr = eps["gptq_mi100"].partition(":")
    assert getattr(importlib.import_module(module), attr) is vp.register

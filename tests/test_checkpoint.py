"""gptq_mi100.checkpoint: the Hugging Face GPTQ layout, the three zero-convention facts of
issue 13 (each reproduced by a synthetic checkpoint), and save -> load round trips."""

import json
import os
import warnings

import pytest
import torch

pytest.importorskip("safetensors")
from safetensors.torch import save_file  # noqa: E402

from conftest import assert_gemm_close, seed_of  # noqa: E402
from gptq_mi100 import formats, quantize, reference  # noqa: E402
from gptq_mi100.checkpoint import (GPTQFormatWarning, QuantizeConfig,  # noqa: E402
                                   gptqmodel_v1_zeros_to_v2, load_layers, read_quantize_config,
                                   save_checkpoint)

K, N = 128, 64
LAYER = "model.layers.0.mlp.up_proj"


def _write(path, tensors, quantize_config=None, config=None):
    os.makedirs(path, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(path, "model.safetensors"))
    for name, d in (("quantize_config.json", quantize_config), ("config.json", config)):
        if d is not None:
            with open(os.path.join(path, name), "w") as f:
                json.dump(d, f)
    return str(path)


def _layer_tensors(t, qzeros=None, name=LAYER):
    return {f"{name}.qweight": t.qweight, f"{name}.qzeros": t.qzeros if qzeros is None else qzeros,
            f"{name}.scales": t.scales, f"{name}.g_idx": t.g_idx}


def _assert_runs_like(layer, t, v2, what):
    """layer's output is within the fp16 bound of the reference of GPTQ tensors t."""
    x = torch.randn(4, K, generator=torch.Generator().manual_seed(5)).half()
    w_ref = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, t.bits, v2)
    assert_gemm_close(layer(x), x, w_ref, x.float() @ w_ref, what)


def _dequant(layer):
    return reference.dequantize_reference(layer.qweight, layer.qzeros, layer.scales,
                                          layer.g_idx, layer.bits, layer.v2_zeros)


def _v2_with_zero_point_0(bits, seed):
    """Asymmetric v2 tensors in which some zero points are 0 (the borrow case)."""
    t = quantize.random_gptq(K, N, bits, 32, symmetric=False, act_order=True, v2_zeros=True,
                             seed=seed)
    z = formats.unpack_columns(t.qzeros, bits, N)
    assert (z == 0).any(), "fixture must contain a zero point of 0"
    return t


def _gptqmodel_v1_words(qzeros_v2, bits):
    """GPTQModel's v2 -> v1: subtract a constant from whole words (3-bit: each field, mod 8)."""
    if bits == 3:
        z = formats.unpack_columns(qzeros_v2, 3, N).to(torch.int64)
        return formats.pack_columns((z - 1) & 7, 3)
    const = sum(1 << (bits * i) for i in range(32 // bits))
    words = (qzeros_v2.to(torch.int64) - const) & 0xFFFFFFFF
    return torch.where(words >= 1 << 31, words - (1 << 32), words).to(torch.int32)


GPTQMODEL_QC = {"bits": None, "group_size": 32, "desc_act": True, "sym": False,
                "checkpoint_format": "gptq", "quant_method": "gptq",
                "meta": {"quantizer": ["gptqmodel:7.7.0"]}}


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_gptqmodel_wordwise_v1_zeros(tmp_path, bits):
    t = _v2_with_zero_point_0(bits, seed_of("wordwise", bits))
    stored = _gptqmodel_v1_words(t.qzeros, bits)
    qc = dict(GPTQMODEL_QC, bits=bits)
    path = _write(tmp_path, _layer_tensors(t, stored), quantize_config=qc)
    layers, rest, config = load_layers(path)
    assert rest == {} and config.written_by("gptqmodel")
    layer = layers[LAYER]
    assert layer.v2_zeros and torch.equal(layer.qzeros, t.qzeros)
    _assert_runs_like(layer, t, True, f"gptqmodel v1 {bits}-bit")
    if bits != 3:
        # Field-wise v1 reading (vLLM's, this package's kernels') gets the borrowed group wrong,
        # and the stored 2**bits - 1 fields trigger the damaged-zeros warning.
        with pytest.warns(GPTQFormatWarning, match=LAYER):
            fieldwise, _, _ = load_layers(path, v1_zeros="fieldwise")
        assert not torch.equal(_dequant(fieldwise[LAYER]), _dequant(layer))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_wordwise_equals_field_plus_one_without_borrow(bits):
    t = quantize.random_gptq(K, N, bits, 32, symmetric=False, act_order=False,
                             v2_zeros=False, seed=seed_of("noborrow", bits))
    z = formats.unpack_columns(t.qzeros, bits, N)
    t = t._replace(qzeros=formats.pack_columns(z.clamp_max((1 << bits) - 2), bits))
    v2 = gptqmodel_v1_zeros_to_v2(t.qzeros, bits)
    w1 = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, bits, False)
    w2 = reference.dequantize_reference(t.qweight, v2, t.scales, t.g_idx, bits, True)
    assert torch.equal(w1, w2)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_autogptq_or_minus_one_warns(tmp_path, bits):
    t = quantize.random_gptq(K, N, bits, 32, symmetric=False, act_order=False, v2_zeros=False,
                             seed=seed_of("autogptq", bits))
    z = formats.unpack_columns(t.qzeros, bits, N).clamp_max((1 << bits) - 2)
    words = formats.pack_columns(z, bits)
    # AutoGPTQ packs (zero - 1) with `word |= value << shift`: zero 0 -> value -1 sets every
    # bit from the field's start up. Column 3 of group 1 gets that treatment.
    pf = 32 // bits
    col, shift = 3 // pf, bits * (3 % pf)
    words[1, col] = int(torch.tensor(int(words[1, col]), dtype=torch.int32) | (-1 << shift))
    path = _write(tmp_path, _layer_tensors(t, words), quantize_config={
        "bits": bits, "group_size": 32, "desc_act": False, "sym": False,
        "model_file_base_name": "model"})
    with pytest.warns(GPTQFormatWarning, match=LAYER.replace(".", r"\.")):
        layers, _, _ = load_layers(path)
    assert not layers[LAYER].v2_zeros


def test_gptq_v2_label_in_config_json(tmp_path):
    # transformers' GPTQConfig(format="gptq") + save_pretrained: v2 zeros, labelled only in
    # config.json, no quantize_config.json.
    t = _v2_with_zero_point_0(4, 11)
    path = _write(tmp_path, _layer_tensors(t), config={
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32,
                                "desc_act": True, "sym": False,
                                "checkpoint_format": "gptq_v2"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers, _, config = load_layers(path)
    assert config.v2_zeros and layers[LAYER].v2_zeros
    _assert_runs_like(layers[LAYER], t, True, "gptq_v2 label")
    # Ignoring the label would read the same words as v1: every zero off by one step.
    w_v1 = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, t.g_idx, 4, False)
    assert not torch.allclose(w_v1, _dequant(layers[LAYER]))


def test_quantize_config_merge_and_errors(tmp_path):
    _write(tmp_path / "a", {"x": torch.zeros(1)},
           quantize_config={"bits": 8, "group_size": 128, "checkpoint_format": "gptq_v2"},
           config={"quantization_config": {"bits": 4, "group_size": 32, "lm_head": True}})
    c = read_quantize_config(str(tmp_path / "a"))
    assert (c.bits, c.group_size, c.v2_zeros, c.lm_head) == (8, 128, True, True)
    _write(tmp_path / "b", {"x": torch.zeros(1)}, config={"model_type": "llama"})
    with pytest.raises(FileNotFoundError, match="quantize_config"):
        read_quantize_config(str(tmp_path / "b"))
    with pytest.raises(ValueError, match="awq"):
        QuantizeConfig.from_dict({"quant_method": "awq", "bits": 4, "group_size": 128})
    with pytest.raises(ValueError, match="marlin"):
        QuantizeConfig.from_dict({"bits": 4, "group_size": 128, "checkpoint_format": "marlin"})
    t = quantize.random_gptq(K, N, 4, 32, symmetric=True, act_order=False, v2_zeros=False,
                             seed=1)
    path = _write(tmp_path / "c", _layer_tensors(t), quantize_config={"bits": 8,
                                                                       "group_size": 32})
    with pytest.raises(ValueError, match="dynamic"):
        load_layers(path)


def test_dynamic_overrides():
    c = QuantizeConfig.from_dict({
        "bits": 4, "group_size": 128, "desc_act": True,
        "dynamic": {r"-:.*\.1\.mlp\..*": {}, r"+:.*\.0\.mlp\..*": {"bits": 8, "group_size": 32},
                    r".*down_proj": {"bits": 2}}})
    assert c.module_settings("model.layers.1.mlp.up_proj") is None
    assert c.module_settings("model.layers.0.mlp.down_proj")["bits"] == 8   # first match wins
    assert c.module_settings("model.layers.2.mlp.down_proj")["bits"] == 2
    s = c.module_settings("model.layers.0.self_attn.q_proj")
    assert (s["bits"], s["group_size"], s["desc_act"]) == (4, 128, True)


def test_save_load_layers_round_trip_sharded(tmp_path):
    from gptq_mi100.nn import replace_linears
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Linear(128, 64),
                                torch.nn.Linear(64, 64))
    replace_linears(model, "^0$", bits=4, group_size=32, act_order=True, sym=False,
                    progress=False)
    replace_linears(model, "^1$", bits=8, group_size=64, sym=True, progress=False)
    model.half()
    config = save_checkpoint(model, str(tmp_path), max_shard_bytes=8192)
    files = sorted(os.listdir(tmp_path))
    assert "model.safetensors.index.json" in files and "model-00002-of-" in " ".join(files)
    assert config.quantizer[0].startswith("gptq_mi100:") and not config.sym
    assert config.dynamic == {r"+:^1$": {"bits": 8, "group_size": 64}, r"-:^2$": {}}
    layers, rest, loaded = load_layers(str(tmp_path))
    assert set(layers) == {"0", "1"} and set(rest) == {"2.weight", "2.bias"}
    assert loaded.to_dict() == config.to_dict()
    x = torch.randn(3, 64).half()
    h = model[0](x)
    assert torch.equal(layers["0"](x), h) and torch.equal(layers["1"](h), model[1](h))
    assert layers["0"].act_order and not layers["1"].act_order


def test_v1_files_of_this_package_do_not_warn(tmp_path):
    # quantize_rtn's v1 zeros can be 2**bits (stored field 2**bits - 1): legitimate here.
    t = quantize.random_gptq(K, N, 4, 32, symmetric=False, act_order=False, v2_zeros=False,
                             seed=3)
    assert (formats.unpack_columns(t.qzeros, 4, N) == 15).any()
    model = torch.nn.Sequential(torch.nn.Identity())
    from gptq_mi100.nn import GPTQLinear
    model[0] = GPTQLinear.from_checkpoint(t.qweight, t.qzeros, t.scales, t.g_idx, bits=4,
                                          group_size=32)
    with pytest.warns(GPTQFormatWarning, match="GPTQModel"):
        save_checkpoint(model, str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers, _, _ = load_layers(str(tmp_path))
    _assert_runs_like(layers["0"], t, False, "own v1 file")


def _tiny_llama(tie):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=64,
        tie_word_embeddings=tie)
    torch.manual_seed(0)
    # Built as load_model builds it (a .to(fp16) afterwards would also cast rotary buffers).
    return transformers.LlamaForCausalLM._from_config(cfg, dtype=torch.float16).eval()


@pytest.mark.parametrize("tie,quantize_head", [(True, True), (True, False), (False, False)])
def test_load_model_round_trip(tmp_path, tie, quantize_head):
    from gptq_mi100.checkpoint import load_model
    from gptq_mi100.nn import GPTQLinear, replace_linears
    model = _tiny_llama(tie)
    ids = torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(1))
    ref = model(ids).logits.float()
    head = "" if quantize_head else r"(?<!lm_head)$"
    replace_linears(model, r"layers\.0\..*" + head, bits=8, group_size=32, sym=False,
                    progress=False)
    replace_linears(model, r"(layers\.1\.self_attn|lm_head)" + head, bits=4, group_size=64,
                    act_order=True, progress=False)
    y = model(ids).logits.float()
    assert (y - ref).norm() / ref.norm() < 0.2
    save_checkpoint(model, str(tmp_path))
    qc = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert qc["lm_head"] == quantize_head and qc["checkpoint_format"] == "gptq"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_model(str(tmp_path))
    assert isinstance(loaded.lm_head, GPTQLinear) == quantize_head
    assert type(loaded.model.layers[1].mlp.up_proj) is torch.nn.Linear
    assert torch.equal(loaded(ids).logits.float(), y)


def test_main_job_model_mode(tmp_path):
    """`python -m gptq_mi100 --model DIR`: per layer type, the kernel auto takes and a time;
    then the whole forward."""
    import subprocess
    import sys
    from gptq_mi100.nn import replace_linears
    model = _tiny_llama(False)
    replace_linears(model, r"layers\.\d+\.(self_attn|mlp)\.", bits=4, group_size=32, sym=False,
                    progress=False)
    save_checkpoint(model, str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "gptq_mi100", "--model", str(tmp_path),
                          "--device", "cpu", "--tokens", "3"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "14 GPTQ linears" in out.stdout, out.stdout
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()
            if line.startswith("  ") and line.split()[0].endswith("_proj")}
    assert set(rows) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                         "down_proj"}
    assert all(r[5] == "cpu_c" for r in rows.values())  # M = 3 on the CPU: the C kernel
    assert "whole forward of 3 tokens" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "gptq_mi100", "--model", str(tmp_path / "none"),
                          "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "cannot load" in bad.stderr and "Traceback" not in bad.stderr


def test_read_tensors_picks_the_model_file_and_refuses_duplicates(tmp_path):
    """Without an index: model.safetensors as transformers reads it (a stray adapter file
    beside it is not merged); several shards merge, but a name in two of them is an error."""
    from gptq_mi100.checkpoint import read_tensors
    one = tmp_path / "one"
    one.mkdir()
    save_file({"w": torch.zeros(2)}, str(one / "model.safetensors"))
    save_file({"w": torch.ones(2), "lora": torch.ones(1)}, str(one / "adapter.safetensors"))
    got = read_tensors(str(one))
    assert set(got) == {"w"} and torch.equal(got["w"], torch.zeros(2))
    two = tmp_path / "two"
    two.mkdir()
    save_file({"a": torch.zeros(1)}, str(two / "part-1.safetensors"))
    save_file({"b": torch.zeros(1)}, str(two / "part-2.safetensors"))
    assert set(read_tensors(str(two))) == {"a", "b"}
    save_file({"a": torch.ones(1)}, str(two / "part-3.safetensors"))
    with pytest.raises(ValueError, match="'a' is in both part-1.safetensors and part-3"):
        read_tensors(str(two))

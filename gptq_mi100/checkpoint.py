"""Load and save GPTQ checkpoints in the Hugging Face layout.

A checkpoint directory holds safetensors shards (``model.safetensors``, or
``model-0000i-of-0000n.safetensors`` with ``model.safetensors.index.json``) where each quantized
linear ``<name>`` has ``<name>.qweight / .qzeros / .scales / .g_idx`` (and ``.bias``), and the
quantization settings in ``quantize_config.json`` (AutoGPTQ, GPTQModel) and/or
``config.json["quantization_config"]`` (transformers, GPTQModel): ``bits``, ``group_size``,
``desc_act``, ``sym``, ``checkpoint_format`` (``"gptq"`` = v1 zeros, ``"gptq_v2"``), ``lm_head``,
GPTQModel's ``dynamic`` per-module overrides and ``meta.quantizer`` (who wrote the file).

Zero conventions (README "Formats"; issue 13 has the measurements):

- ``checkpoint_format == "gptq_v2"`` (GPTQModel's v2, and what transformers' ``GPTQConfig`` +
  ``save_pretrained`` writes, saying so only in ``config.json``): zeros are read as stored.
- v1 written by GPTQModel (``meta.quantizer`` names gptqmodel): GPTQModel converts its v2 zeros
  to v1 by subtracting a constant from each whole 32-bit word (0x55555555 / 0x11111111 /
  0x01010101 for 2 / 4 / 8 bits), so a zero point of 0 borrows from the field above. The loader
  adds the constant back word-wise and uses the result as v2 zeros, which reproduces GPTQModel
  exactly and equals stored + 1 wherever nothing borrowed. For 3 bits GPTQModel shifts each
  field (mod 8) instead, and so does this loader.
- Other v1 files (AutoGPTQ, unknown writers): zero = stored + 1, field by field. AutoGPTQ's
  packer ORs -1 into the word for a zero point of 0, which destroys the fields above it; a stored
  field of ``2**bits - 1`` is that pattern, and the loader warns (``GPTQFormatWarning``) naming
  the layer. Files written by this package (``meta.quantizer`` ``gptq_mi100:*``) are read the
  same way without the warning: their v1 fields of ``2**bits - 1`` mean a zero of ``2**bits``.

``transformers`` and ``safetensors`` are optional dependencies, imported on use.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from . import formats
from .nn import GPTQLinear, set_submodule

__all__ = ["GPTQFormatWarning", "QuantizeConfig", "read_quantize_config", "read_tensors",
           "gptqmodel_v1_zeros_to_v2", "load_layers", "load_model", "save_checkpoint"]

_SUFFIXES = ("qweight", "qzeros", "scales", "g_idx", "bias")
_SINGLE = "model.safetensors"
_INDEX = "model.safetensors.index.json"


class GPTQFormatWarning(UserWarning):
    """A checkpoint's zeros or settings are damaged or ambiguous (the message names the layer)."""


def _require(module: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"gptq_mi100.checkpoint needs the optional package "
                          f"{module.split('.')[0]!r}: pip install {module.split('.')[0]}") from e


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("gptq_mi100")
    except Exception:   # not installed as a distribution (source tree on sys.path)
        return "0"


# ---------------------------------------------------------------------- configuration

@dataclass
class QuantizeConfig:
    """GPTQ settings of a checkpoint. ``dynamic`` maps regexes (prefix ``+:`` or none: override,
    ``-:``: leave the module unquantized) to per-module overrides, first match wins."""
    bits: int
    group_size: int
    desc_act: bool = False
    sym: bool = True
    checkpoint_format: str = "gptq"
    lm_head: bool = False
    dynamic: Optional[Dict[str, dict]] = None
    quantizer: Tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "QuantizeConfig":
        d = dict(d)
        method = str(d.pop("quant_method", "gptq")).lower()
        if method != "gptq":
            raise ValueError(f"quant_method is {method!r}; only 'gptq' checkpoints are supported")
        if "bits" not in d or "group_size" not in d:
            raise ValueError(f"quantization config needs 'bits' and 'group_size', got keys "
                             f"{sorted(d)}")
        fmt = d.pop("checkpoint_format", None) or d.pop("format", None) or "gptq"
        d.pop("format", None)
        meta = d.pop("meta", None) or {}
        quantizer = meta.get("quantizer", ()) if isinstance(meta, dict) else ()
        if isinstance(quantizer, str):
            quantizer = (quantizer,)
        fmt = str(fmt).lower()
        if fmt not in ("gptq", "gptq_v2"):
            raise ValueError(f"checkpoint_format {fmt!r} is not supported (gptq, gptq_v2)")
        return cls(bits=formats._check_bits(int(d.pop("bits"))),
                   group_size=int(d.pop("group_size")),
                   desc_act=bool(d.pop("desc_act", False)), sym=bool(d.pop("sym", True)),
                   checkpoint_format=fmt, lm_head=bool(d.pop("lm_head", False)),
                   dynamic=d.pop("dynamic", None) or None,
                   quantizer=tuple(str(q) for q in quantizer), extra=d)

    def to_dict(self) -> dict:
        d = dict(self.extra)
        d.update(quant_method="gptq", bits=self.bits, group_size=self.group_size,
                 desc_act=self.desc_act, sym=self.sym, lm_head=self.lm_head,
                 checkpoint_format=self.checkpoint_format)
        if self.dynamic:
            d["dynamic"] = self.dynamic
        if self.quantizer:
            d["meta"] = {"quantizer": list(self.quantizer)}
        return d

    @property
    def v2_zeros(self) -> bool:
        return self.checkpoint_format == "gptq_v2"

    def written_by(self, tool: str) -> bool:
        return any(q.lower().startswith(tool) for q in self.quantizer)

    def module_settings(self, name: str) -> Optional[dict]:
        """bits / group_size / desc_act / sym for module ``name``; None if ``dynamic``
        excludes it."""
        settings = dict(bits=self.bits, group_size=self.group_size, desc_act=self.desc_act,
                        sym=self.sym)
        for pattern, override in (self.dynamic or {}).items():
            if pattern.startswith("-:"):
                if re.match(pattern[2:], name):
                    return None
            elif re.match(pattern[2:] if pattern.startswith("+:") else pattern, name):
                settings.update({k: v for k, v in (override or {}).items() if k in settings})
                break
        return settings


def _read_json(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_quantize_config(path: str) -> QuantizeConfig:
    """Settings from ``quantize_config.json`` (or ``quant_config.json``), merged over
    ``config.json["quantization_config"]`` (the separate file wins on conflicts)."""
    config = _read_json(os.path.join(path, "config.json")) or {}
    merged = dict(config.get("quantization_config") or {})
    for name in ("quantize_config.json", "quant_config.json"):
        separate = _read_json(os.path.join(path, name))
        if separate is not None:
            merged.update(separate)
            break
    if not merged:
        raise FileNotFoundError(f"{path}: no quantize_config.json and no "
                                f"config.json['quantization_config']")
    return QuantizeConfig.from_dict(merged)


def read_tensors(path: str) -> Dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's safetensors shards, on the CPU: the shards the index
    names, else model.safetensors as transformers reads it, else every *.safetensors in the
    folder. A tensor name in two files is an error (which one is the model's is unknown)."""
    st = _require("safetensors.torch")
    index = _read_json(os.path.join(path, _INDEX))
    if index is not None:
        files = sorted(set(index["weight_map"].values()))
    elif os.path.exists(os.path.join(path, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no *.safetensors files")
    tensors, origin = {}, {}
    for f in files:
        for name, t in st.load_file(os.path.join(path, f)).items():
            if name in tensors:
                raise ValueError(f"{path}: tensor {name!r} is in both {origin[name]} and {f}; "
                                 f"add a {_INDEX} naming the shards or remove the extra file")
            tensors[name], origin[name] = t, f
    return tensors


# ---------------------------------------------------------------------- zero conventions

def _word_constant(bits: int) -> int:
    return sum(1 << (bits * i) for i in range(32 // bits))


def gptqmodel_v1_zeros_to_v2(qzeros: torch.Tensor, bits: int) -> torch.Tensor:
    """Undo GPTQModel's v2 -> v1 zero conversion: add its constant to each whole int32 word
    (wrapping), or for 3 bits add 1 to each field mod 8. Returns v2 qzeros (new tensor)."""
    bits = formats._check_bits(bits)
    if bits == 3:
        n = qzeros.shape[1] * 32 // 3
        z = formats.unpack_columns(qzeros.to(torch.int32), 3, n)
        return formats.pack_columns((z.to(torch.int64) + 1) & 7, 3)
    words = (qzeros.to(torch.int64) + _word_constant(bits)) & 0xFFFFFFFF
    return torch.where(words >= 1 << 31, words - (1 << 32), words).to(torch.int32)


def _max_fields(qzeros: torch.Tensor, bits: int) -> int:
    n = qzeros.shape[1] * 32 // bits
    z = formats.unpack_columns(qzeros.to(torch.int32), bits, n)
    return int((z == (1 << bits) - 1).sum())


def _v1_mode(config: QuantizeConfig, v1_zeros: str) -> str:
    if v1_zeros not in ("auto", "wordwise", "fieldwise"):
        raise ValueError(f"v1_zeros must be 'auto', 'wordwise' or 'fieldwise', got {v1_zeros!r}")
    if v1_zeros != "auto":
        return v1_zeros
    return "wordwise" if config.written_by("gptqmodel") else "fieldwise"


def _zeros_for_kernel(name: str, qzeros: torch.Tensor, bits: int, config: QuantizeConfig,
                      mode: str) -> Tuple[torch.Tensor, bool]:
    """(qzeros, v2_zeros) to hand to the kernels for layer ``name``."""
    if config.v2_zeros:
        return qzeros, True
    if mode == "wordwise":
        return gptqmodel_v1_zeros_to_v2(qzeros, bits), True
    if not config.written_by("gptq_mi100"):
        count = _max_fields(qzeros, bits)
        if count:
            warnings.warn(
                f"{name}: {count} stored v1 zero field(s) equal {(1 << bits) - 1}. AutoGPTQ "
                f"writes this for a zero point of 0 by OR-ing -1 into the packed word, which "
                f"destroys the fields above it: those zeros cannot be recovered, and outputs "
                f"of the affected columns are wrong. Re-quantize, or use a gptq_v2 checkpoint "
                f"(if GPTQModel wrote this file, load with v1_zeros='wordwise').",
                GPTQFormatWarning, stacklevel=3)
    return qzeros, False


# ---------------------------------------------------------------------- loading

def _group_layers(tensors: Dict[str, torch.Tensor]):
    """({layer name: {suffix: tensor}} for every layer with a qweight, other tensors)."""
    layers = {k[: -len(".qweight")]: {} for k in tensors if k.endswith(".qweight")}
    rest = {}
    for key, t in tensors.items():
        prefix, _, suffix = key.rpartition(".")
        if prefix in layers and suffix in _SUFFIXES:
            layers[prefix][suffix] = t
        else:
            rest[key] = t
    return layers, rest


def _build_layer(name: str, parts: Dict[str, torch.Tensor], settings: dict,
                 config: QuantizeConfig, mode: str, kernel: Optional[str]) -> GPTQLinear:
    missing = [s for s in ("qzeros", "scales") if s not in parts]
    if missing:
        raise ValueError(f"{name}: qweight without {', '.join(missing)}")
    bits, group_size = settings["bits"], settings["group_size"]
    qweight, scales, g_idx = parts["qweight"], parts["scales"], parts.get("g_idx")
    k = qweight.shape[0] // 3 * 32 if bits == 3 else qweight.shape[0] * 32 // bits
    if g_idx is not None and g_idx.shape[0] != k:
        raise ValueError(f"{name}: g_idx has {g_idx.shape[0]} entries but qweight "
                         f"{tuple(qweight.shape)} at {bits} bits encodes K={k}; is bits "
                         f"({bits}) right for this layer (check 'dynamic')?")
    groups = 1 if group_size == -1 else -(-k // group_size)
    if scales.shape[0] != groups:
        raise ValueError(f"{name}: scales has {scales.shape[0]} groups, but K={k} and "
                         f"group_size={group_size} need {groups}")
    qzeros, v2 = _zeros_for_kernel(name, parts["qzeros"], bits, config, mode)
    return GPTQLinear.from_checkpoint(
        qweight.to(torch.int32), qzeros.to(torch.int32), scales,
        None if g_idx is None else g_idx.to(torch.int32), parts.get("bias"), bits=bits,
        group_size=group_size, v2_zeros=v2, sym=settings["sym"], kernel=kernel)


def load_layers(path: str, *, v1_zeros: str = "auto", kernel: Optional[str] = None,
                tensors: Optional[Dict[str, torch.Tensor]] = None):
    """GPTQLinear modules of a checkpoint, on the CPU (needs only safetensors).

    Returns ``(layers, rest, config)``: ``{name: GPTQLinear}`` for every ``<name>.qweight``,
    the remaining tensors by name, and the :class:`QuantizeConfig`. ``v1_zeros``: ``"auto"``
    (word-wise for files GPTQModel wrote, field-wise otherwise), ``"wordwise"`` or
    ``"fieldwise"``; ignored for gptq_v2 files.
    """
    config = read_quantize_config(path)
    mode = _v1_mode(config, v1_zeros)
    layers, rest = _group_layers(read_tensors(path) if tensors is None else tensors)
    modules = {}
    for name, parts in layers.items():
        settings = config.module_settings(name)
        if settings is None:
            raise ValueError(f"{name}: has GPTQ tensors, but the config's 'dynamic' excludes "
                             f"it from quantization")
        modules[name] = _build_layer(name, parts, settings, config, mode, kernel)
    return modules, rest, config


def _no_init_weights():
    for where in ("transformers.initialization", "transformers.modeling_utils"):
        try:
            return _require(where).no_init_weights()
        except (ImportError, AttributeError):
            continue
    import contextlib
    return contextlib.nullcontext()


def _model_class(config, model_cls):
    transformers = _require("transformers")
    if model_cls is not None:
        return model_cls
    for arch in getattr(config, "architectures", None) or ():
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls
    return transformers.AutoModelForCausalLM


def _match_prefix(names: List[str], model: torch.nn.Module) -> Dict[str, str]:
    """Map checkpoint names onto the model's (base_model_prefix added or removed)."""
    own = set(model.state_dict()) | {n for n, _ in model.named_modules()}
    prefix = getattr(model, "base_model_prefix", "") or ""
    out = {}
    for n in names:
        if n in own or not prefix:
            out[n] = n
        elif f"{prefix}.{n}" in own:
            out[n] = f"{prefix}.{n}"
        elif n.startswith(prefix + ".") and n[len(prefix) + 1:] in own:
            out[n] = n[len(prefix) + 1:]
        else:
            out[n] = n
    return out


def load_model(path: str, *, dtype: torch.dtype = torch.float16, device="cpu",
               v1_zeros: str = "auto", model_cls=None, trust_remote_code: bool = False,
               kernel: Optional[str] = None):
    """A ``transformers`` model from a GPTQ checkpoint directory, its quantized linears
    replaced by :class:`GPTQLinear`, in eval mode on ``device``.

    The model class is ``config.architectures[0]`` from transformers (else ``model_cls``, else
    AutoModelForCausalLM). Float tensors are loaded in ``dtype`` (fp16 or bf16: the kernels'
    activation dtypes); scales stay as stored. A quantized ``lm_head`` with tied embeddings is
    untied (the embedding stays float). The model is built on the CPU first, without random
    init: peak host memory is about the float model's size.
    """
    transformers = _require("transformers")
    layers, rest, qconfig = load_layers(path, v1_zeros=v1_zeros, kernel=kernel)
    config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    if hasattr(config, "quantization_config"):
        del config.quantization_config       # transformers must not run its own GPTQ path
    cls = _model_class(config, model_cls)
    quantized_head = any(n.rpartition(".")[2] == "lm_head" for n in layers)
    if quantized_head and getattr(config, "tie_word_embeddings", False):
        config.tie_word_embeddings = False
    with _no_init_weights():
        if hasattr(cls, "_model_mapping"):          # an Auto class
            model = cls.from_config(config, dtype=dtype)
        else:
            model = cls._from_config(config, dtype=dtype)
    names = _match_prefix(list(layers) + list(rest), model)
    for name, layer in layers.items():
        target = names[name]
        try:
            old = model.get_submodule(target)
        except AttributeError:
            raise ValueError(f"{name}: the checkpoint has GPTQ tensors for it, but "
                             f"{cls.__name__} has no such module") from None
        if not isinstance(old, torch.nn.Linear):
            raise ValueError(f"{name}: GPTQ tensors for a {type(old).__name__}, not a Linear")
        if (old.in_features, old.out_features) != (layer.in_features, layer.out_features):
            raise ValueError(f"{name}: checkpoint K x N = {layer.in_features} x "
                             f"{layer.out_features}, model has {old.in_features} x "
                             f"{old.out_features}")
        if layer.bias is not None:
            layer.bias = layer.bias.to(dtype)
        set_submodule(model, target, layer)
    result = model.load_state_dict({names[k]: v for k, v in rest.items()}, strict=False)
    replaced = tuple(names[n] + "." for n in layers)
    missing = [k for k in result.missing_keys if not k.startswith(replaced)]
    if hasattr(model, "tie_weights"):
        model.tie_weights()
        tied = getattr(model, "get_output_embeddings", lambda: None)()
        if tied is not None and not isinstance(tied, GPTQLinear):
            missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or result.unexpected_keys:
        warnings.warn(f"{path}: tensors missing from the checkpoint: {missing[:8]}; "
                      f"unexpected: {result.unexpected_keys[:8]}", GPTQFormatWarning,
                      stacklevel=2)
    return model.to(device).eval()


# ---------------------------------------------------------------------- saving

def _layer_sym(layer: GPTQLinear) -> bool:
    n = layer.out_features
    z = formats.unpack_columns(layer.qzeros.cpu(), layer.bits, n).to(torch.int64)
    true_zero = z if layer.v2_zeros else z + 1
    return bool((true_zero == 1 << (layer.bits - 1)).all())


def _layer_settings(layer: GPTQLinear) -> dict:
    return dict(bits=layer.bits, group_size=layer.group_size, desc_act=layer.act_order,
                sym=_layer_sym(layer))


def _quantize_config_of(model: torch.nn.Module) -> QuantizeConfig:
    quantized = {n: m for n, m in model.named_modules() if isinstance(m, GPTQLinear)}
    if not quantized:
        raise ValueError("the model has no GPTQLinear modules to save")
    formats_used = {m.v2_zeros for m in quantized.values()}
    if len(formats_used) > 1:
        raise ValueError("the model mixes v1 and v2 zero conventions; a checkpoint has one "
                         "checkpoint_format")
    settings = {n: _layer_settings(m) for n, m in quantized.items()}
    for n, m in quantized.items():
        if not m.v2_zeros and _max_fields(m.qzeros.cpu(), m.bits):
            warnings.warn(f"{n}: v1 zeros of {1 << m.bits} (stored {(1 << m.bits) - 1}) are "
                          f"saved as they are: AutoGPTQ and vLLM read them right, GPTQModel's "
                          f"word-wise reader does not (quantize with v2_zeros=True to avoid)",
                          GPTQFormatWarning, stacklevel=3)
    body = {n: s for n, s in settings.items() if n.rpartition(".")[2] != "lm_head"} or settings
    common = Counter((s["bits"], s["group_size"]) for s in body.values()).most_common(1)[0][0]
    desc_act = any(s["desc_act"] for s in settings.values())
    sym = all(s["sym"] for s in settings.values())
    dynamic = {}
    for n, s in settings.items():
        if (s["bits"], s["group_size"]) != common:
            dynamic[f"+:^{re.escape(n)}$"] = {"bits": s["bits"], "group_size": s["group_size"]}
    for n, m in model.named_modules():
        if type(m) is torch.nn.Linear and n.rpartition(".")[2] != "lm_head":
            dynamic[f"-:^{re.escape(n)}$"] = {}
    return QuantizeConfig(
        bits=common[0], group_size=common[1], desc_act=desc_act, sym=sym,
        checkpoint_format="gptq_v2" if formats_used.pop() else "gptq",
        lm_head=any(n.rpartition(".")[2] == "lm_head" for n in quantized),
        dynamic=dynamic or None, quantizer=(f"gptq_mi100:{_package_version()}",))


def _unique_tensors(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Contiguous CPU copies; of tensors sharing storage (tied weights) the first is kept."""
    seen, out = set(), {}
    for k, t in state.items():
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if t.numel() and key in seen:
            continue
        seen.add(key)
        out[k] = t.detach().cpu().contiguous()
    return out


def save_checkpoint(model: torch.nn.Module, path: str, *, max_shard_bytes: int = 4 << 30,
                    config: Optional[QuantizeConfig] = None) -> QuantizeConfig:
    """Write ``model`` (with GPTQLinear modules) as a Hugging Face GPTQ checkpoint in ``path``.

    Tensors go to ``model.safetensors`` (or shards of at most ``max_shard_bytes`` plus
    ``model.safetensors.index.json``) under their state_dict names, GPTQ layers as
    ``.qweight / .qzeros / .scales / .g_idx / .bias``. The settings (derived from the layers
    unless ``config`` is given: per-layer bits / group size that differ from the most common
    go to ``dynamic``, plain Linears to ``-:`` entries) go to ``quantize_config.json`` and, for
    a transformers model, into ``config.json["quantization_config"]``. Zeros are written as
    the layers hold them (v1 or v2, ``checkpoint_format`` says which). Returns the config.
    """
    st = _require("safetensors.torch")
    config = config or _quantize_config_of(model)
    os.makedirs(path, exist_ok=True)
    tensors = _unique_tensors(model.state_dict())
    shards, current, size = [], {}, 0
    for k, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[k] = t
        size += nbytes
    shards.append(current)
    if len(shards) == 1:
        st.save_file(shards[0], os.path.join(path, _SINGLE), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            st.save_file(shard, os.path.join(path, name), metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        with open(os.path.join(path, _INDEX), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f,
                      indent=2)
    qdict = config.to_dict()
    with open(os.path.join(path, "quantize_config.json"), "w") as f:
        json.dump(qdict, f, indent=2)
    hf_config = getattr(model, "config", None)
    if hf_config is not None and hasattr(hf_config, "to_dict"):
        d = hf_config.to_dict()
        if not d.get("architectures"):
            d["architectures"] = [type(model).__name__]
        d["quantization_config"] = qdict
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(d, f, indent=2)
    return config

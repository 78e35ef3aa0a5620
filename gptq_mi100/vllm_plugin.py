"""vLLM plugin: route vLLM's GPTQ path to this package's kernels, without editing vLLM.

Activation
----------
- vLLM loads every ``vllm.general_plugins`` entry point in each of its processes (API server,
  engine core, tensor-parallel workers); this package declares ``gptq_mi100 =
  "gptq_mi100.vllm_plugin:register"`` there (pyproject.toml). ``VLLM_PLUGINS`` (vLLM's own
  filter) can leave it out. Without the entry point, call ``gptq_mi100.vllm_plugin.register()``
  once per process before the model loads.
- ``GPTQ_MI100_VLLM`` = ``auto`` (default): active only when torch is a ROCm build
  (``torch.version.hip`` set) and this package was built with its GPU backend; ``on``: active
  whatever the platform (an error if vLLM or its GPTQ code is missing); ``off``: nothing is
  patched.
- ``GPTQ_MI100_VLLM_V1_ZEROS`` = ``auto`` | ``wordwise`` | ``fieldwise``: how v1 zeros are read
  (below). ``auto`` decides per checkpoint.

What gets patched (vLLM itself stays untouched on disk; ``unregister()`` undoes it)
----------------------------------------------------------------------------------
1. ``vllm._custom_ops.gptq_gemm`` / ``gptq_shuffle``: replaced by :func:`vllm_gptq_gemm` /
   :func:`vllm_gptq_shuffle`, which call ``torch.ops.gptq_mi100.*`` (same schemas, so the
   shuffle/gemm pair stays consistent). Callers look these up as ``ops.gptq_gemm`` at call time
   (``from vllm import _custom_ops as ops``), so every vLLM caller is routed: GPTQLinearMethod,
   and after mid-2026 the ``ExllamaLinearKernel`` of ``auto_gptq``. ``gptq_gemm`` also accepts
   the 7-argument form of vLLM before v0.11.1 (no ``use_v2_format``).
2. Where ``vllm/model_executor/layers/quantization/gptq.py`` exists with ``GPTQConfig``,
   ``GPTQLinearMethod`` and ``ExllamaState`` (the exllama-era file; upstream deleted it on
   2026-05-14, PR #38288):
   - ``GPTQConfig.from_config`` keeps the raw quantization-config dict on the config object,
     so the zero convention can be read from it (``checkpoint_format``, ``meta.quantizer``);
   - ``GPTQConfig.get_supported_act_dtypes`` adds bfloat16 (``--dtype bfloat16`` works);
   - ``GPTQLinearMethod.process_weights_after_loading`` runs :func:`process_layer` on the
     layer's tensors as vLLM delivers them, logs once per layer which kernel it uses, and
     keeps per-layer flags (use_exllama, v2 zeros) on the layer;
   - ``GPTQLinearMethod.apply`` runs :func:`gptq_linear` with the layer's own flags.
   This file accepts 2/3/4/8 bits and asymmetric checkpoints (it never read ``sym``), so they
   run on this package's kernels. In vLLM after #38288 only the op-level route (1) exists:
   ``auto_gptq`` there accepts only symmetric 4/8-bit, and this plugin does not bring the
   other configurations back (that would need a whole QuantizationConfig).

Tensor-parallel shards, as vLLM's GPTQLinearMethod delivers them (K = in_features of the
rank's shard, N = its out_features, G = rows of ``scales``)
- column-parallel (N split): qweight [K*bits/32, N/world], qzeros [G, N/world*bits/32],
  scales [G, N/world], g_idx [K] whole; act-order through ``perm = argsort(g_idx)``.
- row-parallel without act-order (K split): qweight, scales, qzeros of the rank's groups;
  g_idx is the checkpoint's slice (global group numbers), which vLLM, and this plugin, ignore.
- row-parallel act-order (K split, group_size != -1; vLLM's ``ExllamaState.UNUSED``): qweight
  and the raw g_idx slice of the rank's K rows, the WHOLE scales and qzeros, no shuffle,
  ``gptq_gemm(..., use_exllama=False)``.
- act-order whose groups are not all K/G rows long (vLLM's exllama path assumes they are):
  the raw g_idx path as well, which is exact for any g_idx.

Zero conventions (README "Models and checkpoints"; :mod:`gptq_mi100.checkpoint`)
- ``checkpoint_format == "gptq_v2"`` (GPTQModel v2; transformers' GPTQConfig +
  save_pretrained labels it only in config.json's quantization_config, which is the dict vLLM
  passes when present): zeros as stored. Read from the dict even in vLLM before v0.11.1, which
  did not know the label.
- v1 written by GPTQModel (``meta.quantizer`` names gptqmodel): GPTQModel subtracted a constant
  from whole int32 words, so a zero point of 0 borrowed from the field above; the plugin adds
  it back word-wise (:func:`gptq_mi100.checkpoint.gptqmodel_v1_zeros_to_v2`) and uses v2 zeros.
- other v1 (AutoGPTQ): zero = stored + 1. A stored field of ``2**bits - 1`` is AutoGPTQ's
  OR-ed -1 that destroyed the fields above it: a ``GPTQFormatWarning`` names the layer.

Everything except :func:`register` / :func:`unregister` and the two patched methods is plain
Python on tensors (testable without vLLM, tests/test_vllm_plugin.py); vLLM is imported only
inside :func:`register`. Nothing here has run inside vLLM in this project.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from typing import NamedTuple, Optional, Tuple

import torch

from . import formats
from .checkpoint import GPTQFormatWarning, gptqmodel_v1_zeros_to_v2

__all__ = [
    "ENV_MODE", "ENV_V1_ZEROS", "MODES", "V1_ZEROS_MODES", "LOGGER_NAME", "resolve_mode",
    "resolve_v1_zeros", "Activation", "activation_decision", "ZeroConvention", "zero_convention",
    "convert_zeros", "KernelChoice", "kernel_choice", "LayerPlan", "VllmGPTQWeights",
    "process_layer", "gptq_linear", "vllm_gptq_gemm", "vllm_gptq_shuffle", "register",
    "unregister", "patched",
]

ENV_MODE = "GPTQ_MI100_VLLM"
ENV_V1_ZEROS = "GPTQ_MI100_VLLM_V1_ZEROS"
MODES = ("auto", "on", "off")
V1_ZEROS_MODES = ("auto", "wordwise", "fieldwise")
# A child of vLLM's "vllm" logger: inside vLLM the lines go through vLLM's own log handler.
LOGGER_NAME = "vllm.gptq_mi100"
logger = logging.getLogger(LOGGER_NAME)

_GPTQ_MODULE = "vllm.model_executor.layers.quantization.gptq"
_CUSTOM_OPS_MODULE = "vllm._custom_ops"
_RAW_CONFIG_ATTR = "gptq_mi100_config"      # raw quantization-config dict on a GPTQConfig
_LAYER_ATTR = "gptq_mi100"                   # LayerPlan on a processed vLLM layer


# ------------------------------------------------------------------ settings

def _env_choice(var, choices, environ):
    environ = os.environ if environ is None else environ
    raw = environ.get(var, "")
    value = raw.strip().lower() or choices[0]
    if value not in choices:
        raise ValueError(f"{var} must be one of {', '.join(choices)} (or unset), got {raw!r}")
    return value


def resolve_mode(environ=None) -> str:
    """``GPTQ_MI100_VLLM`` from ``environ`` (default os.environ): auto, on or off."""
    return _env_choice(ENV_MODE, MODES, environ)


def resolve_v1_zeros(environ=None) -> str:
    """``GPTQ_MI100_VLLM_V1_ZEROS`` from ``environ``: auto, wordwise or fieldwise."""
    return _env_choice(ENV_V1_ZEROS, V1_ZEROS_MODES, environ)


class Activation(NamedTuple):
    active: bool
    reason: str


def activation_decision(mode: str, hip_version: Optional[str], backend: str) -> Activation:
    """Whether the plugin patches vLLM. ``hip_version``: ``torch.version.hip``; ``backend``: the
    backend this package was built with ("rocm", "cuda" or "cpu", from ``build_info()``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return Activation(False, f"{ENV_MODE}=off")
    if mode == "on":
        return Activation(True, f"{ENV_MODE}=on")
    if not hip_version:
        return Activation(False, f"torch is not a ROCm build (torch.version.hip is unset); "
                                 f"{ENV_MODE}=on forces the plugin")
    if backend != "rocm":
        return Activation(False, f"torch is ROCm {hip_version} but gptq_mi100 was built with "
                                 f"the {backend} backend: rebuild it in this environment "
                                 f"(pip install --no-build-isolation .)")
    return Activation(True, f"ROCm {hip_version}, gptq_mi100 built for rocm")


# ------------------------------------------------------------------ zero conventions

class ZeroConvention(NamedTuple):
    mode: str            # "v2", "wordwise" (GPTQModel v1 -> v2) or "fieldwise" (v1)
    source: str          # why, for the log line
    check_damaged: bool  # fieldwise: warn on AutoGPTQ's destroyed fields


def _quantizers(config):
    meta = config.get("meta") or {}
    q = meta.get("quantizer", ()) if isinstance(meta, dict) else ()
    if isinstance(q, str):
        q = (q,)
    return tuple(str(s).lower() for s in q or ())


def zero_convention(config=None, *, use_v2_format=None, v1_zeros="auto") -> ZeroConvention:
    """The zero convention of a checkpoint from its quantization-config dict (what vLLM passes
    to ``GPTQConfig.from_config``: config.json's ``quantization_config`` or
    quantize_config.json). Without the dict, ``use_v2_format`` (vLLM's own reading) decides.
    ``v1_zeros``: auto (word-wise for files GPTQModel wrote), wordwise or fieldwise."""
    if v1_zeros not in V1_ZEROS_MODES:
        raise ValueError(f"v1_zeros must be one of {', '.join(V1_ZEROS_MODES)}, got "
                         f"{v1_zeros!r}")
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be the quantization-config dict or None, got "
                        f"{type(config).__name__}")
    if config is None:
        if use_v2_format:
            return ZeroConvention("v2", "use_v2_format", False)
        fmt, quantizers = "gptq", ()
    else:
        raw = config.get("checkpoint_format") or config.get("format") or "gptq"
        fmt = str(raw).lower()
        if fmt not in ("gptq", "gptq_v2"):
            raise ValueError(f"checkpoint_format must be 'gptq' or 'gptq_v2' for a GPTQ "
                             f"checkpoint, got {raw!r}")
        quantizers = _quantizers(config)
    if fmt == "gptq_v2":
        return ZeroConvention("v2", "checkpoint_format gptq_v2", False)
    by = lambda tool: any(q.startswith(tool) for q in quantizers)  # noqa: E731
    if v1_zeros == "wordwise" or (v1_zeros == "auto" and by("gptqmodel")):
        why = f"{ENV_V1_ZEROS}=wordwise" if v1_zeros == "wordwise" else "written by GPTQModel"
        return ZeroConvention("wordwise", f"v1 {why}: word-wise to v2", False)
    why = f"{ENV_V1_ZEROS}=fieldwise" if v1_zeros == "fieldwise" else "AutoGPTQ convention"
    return ZeroConvention("fieldwise", f"v1 ({why})", not by("gptq_mi100"))


def convert_zeros(name, qzeros, bits, convention: ZeroConvention):
    """(qzeros, v2_zeros, note) for the kernels. Word-wise conversion returns a new tensor; a
    field-wise v1 tensor with stored fields of 2**bits - 1 raises a GPTQFormatWarning naming
    the layer (AutoGPTQ's OR-ed -1: the fields above it are lost)."""
    if not isinstance(convention, ZeroConvention):
        raise TypeError(f"convention must be a ZeroConvention (see zero_convention), got "
                        f"{type(convention).__name__}")
    if convention.mode == "v2":
        return qzeros, True, ""
    if convention.mode == "wordwise":
        return gptqmodel_v1_zeros_to_v2(qzeros, bits), True, ""
    if convention.check_damaged:
        n = qzeros.shape[1] * 32 // bits
        fields = formats.unpack_columns(qzeros, bits, n)
        count = int((fields == (1 << bits) - 1).sum())
        if count:
            warnings.warn(
                f"{name}: {count} stored v1 zero field(s) equal {(1 << bits) - 1}. AutoGPTQ "
                f"writes this for a zero point of 0 by OR-ing -1 into the packed word, which "
                f"destroys the fields above it: those zeros cannot be recovered and the "
                f"affected columns' outputs are wrong. Re-quantize, or use a gptq_v2 "
                f"checkpoint (if GPTQModel wrote this file, set {ENV_V1_ZEROS}=wordwise).",
                GPTQFormatWarning, stacklevel=3)
            return qzeros, False, f"{count} damaged zero fields (AutoGPTQ pattern)"
    return qzeros, False, ""


# ------------------------------------------------------------------ kernel choice

class KernelChoice(NamedTuple):
    layout: int
    below: Optional[str]         # kernel `auto` takes for M < threshold (or the forced one)
    threshold: Optional[int]     # None when GPTQ_MI100_KERNEL forces one kernel
    from_threshold: Optional[str]

    def describe(self):
        if self.threshold is None:
            return f"layout {self.layout}, kernel {self.below} (GPTQ_MI100_KERNEL)"
        return (f"layout {self.layout}, kernel {self.below} for M < {self.threshold}, "
                f"{self.from_threshold} from M = {self.threshold}")


def kernel_choice(device, bits, k, n, use_exllama) -> KernelChoice:
    """Which kernel ``gptq_gemm`` runs for a layer, from the kernel registry: the layout
    ``gptq_shuffle`` leaves (use_exllama) or layout 1 (raw g_idx), then the registry's first
    kernel of this build for that layout and bits below / from the large-M threshold (the
    registry may still fall back for a shape a kernel refuses), or GPTQ_MI100_KERNEL where
    its kernel reads that layout and bits (elsewhere the registry lets auto decide)."""
    from . import kernels, ops
    device = torch.device(device)
    dt = "cuda" if device.type == "cuda" else "cpu"
    layout = ops.preferred_layout(device, bits, k, n) if use_exllama else ops.LAYOUT_CHECKPOINT
    table = [e for e in kernels.kernel_table(dt)
             if e.in_build and layout in e.layouts and bits in e.bits]
    forced = kernels.default_kernel()
    if any(e.name == forced.split(":")[0] for e in table):
        return KernelChoice(layout, forced, None, None)
    first = lambda rng: next((e.name for e in table if e.auto_range == rng), None)  # noqa: E731
    return KernelChoice(layout, first("below_large_m"), ops.large_m_threshold(device, bits),
                        first("from_large_m"))


# ------------------------------------------------------------------ one layer

class LayerPlan(NamedTuple):
    name: str
    bits: int
    group_size: int
    k: int
    n: int
    groups: int
    order: str           # "none", "act-order (perm)", "raw g_idx (...)"
    use_exllama: bool
    v2_zeros: bool
    zeros: str
    kernel: KernelChoice
    notes: Tuple[str, ...]

    def describe(self):
        gs = "per-channel" if self.group_size == -1 else f"g{self.group_size}"
        extra = "".join(f"; {note}" for note in self.notes)
        return (f"gptq_mi100: {self.name}: {self.bits}-bit {gs}, K={self.k} N={self.n} "
                f"G={self.groups}, order {self.order}, zeros {self.zeros}"
                f"{' (v2)' if self.v2_zeros else ''} -> gptq_gemm(use_exllama="
                f"{self.use_exllama}), {self.kernel.describe()}{extra}")


class VllmGPTQWeights(NamedTuple):
    """What a processed layer holds (vLLM's parameter names) and how to call gptq_gemm."""
    qweight: torch.Tensor    # shuffled in place (use_exllama) or as loaded
    qzeros: torch.Tensor     # as stored, or word-wise converted to v2
    scales: torch.Tensor
    g_idx: torch.Tensor      # perm (act-order), empty, or the raw g_idx (use_exllama False)
    bits: int
    use_exllama: bool
    v2_zeros: bool
    plan: LayerPlan


def _tensor(name, t, dtypes, dim, shape_doc):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape_doc}, got {type(t).__name__}")
    if t.dtype not in dtypes or t.dim() != dim:
        want = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must be a {dim}-D {want} tensor {shape_doc}, got {t.dtype} "
                        f"of shape {tuple(t.shape)}")
    return t


def _default_groups(g, k, groups):
    return torch.equal(g, torch.arange(k, device=g.device, dtype=g.dtype) // (k // groups))


def process_layer(name, qweight, qzeros, scales, g_idx, *, bits, group_size, desc_act,
                  row_split_act_order=False, zeros: ZeroConvention = None) -> VllmGPTQWeights:
    """Load-time processing of one GPTQ linear, with tensors shaped as vLLM's GPTQLinearMethod
    delivers them (module docstring; this rank's shard under tensor parallelism).

    ``name``: the layer's name for messages (vLLM's prefix). ``bits``, ``group_size``,
    ``desc_act``: the layer's settings (after GPTQModel ``dynamic`` overrides).
    ``row_split_act_order``: vLLM's ``ExllamaState.UNUSED`` (row-parallel act-order shard:
    raw g_idx slice, whole scales/qzeros). ``zeros``: a :class:`ZeroConvention` (default v1
    field-wise). ``qweight`` is shuffled IN PLACE when the plan uses the exllama-style path,
    as vLLM's ``gptq_shuffle`` does; the other inputs are not modified. Reads g_idx back to
    the host (load time only). Bad input raises TypeError / ValueError naming the argument.
    """
    from . import ops
    if not isinstance(name, str):
        raise TypeError(f"name must be the layer's name (str), got {type(name).__name__}")
    bits = formats._check_bits(bits)
    group_size = formats._as_int("group_size", group_size)
    if group_size != -1 and group_size <= 0:
        raise ValueError(f"{name}: group_size must be -1 or positive, got {group_size}")
    if zeros is None:
        zeros = ZeroConvention("fieldwise", "v1", True)
    qweight = _tensor("qweight", qweight, (torch.int32,), 2, "[K * bits / 32, N]")
    qzeros = _tensor("qzeros", qzeros, (torch.int32,), 2, "[G, N * bits / 32]")
    scales = _tensor("scales", scales, (torch.float16, torch.bfloat16), 2, "[G, N]")
    rows, n = qweight.shape
    if rows == 0 or (bits == 3 and rows % 3):
        three = " (a multiple of 3 for bits=3)" if bits == 3 else ""
        raise ValueError(f"{name}: qweight must have a positive number of rows{three}, got "
                         f"shape {tuple(qweight.shape)}")
    k = rows // 3 * 32 if bits == 3 else rows * 32 // bits
    groups = scales.shape[0]
    if scales.shape[1] != n or groups == 0:
        raise ValueError(f"{name}: scales must be [G >= 1, N={n}] (N from qweight), got shape "
                         f"{tuple(scales.shape)}")
    if n % formats.pack_multiple(bits):
        raise ValueError(f"{name}: N={n} (qweight.shape[1]) must be a multiple of "
                         f"{formats.pack_multiple(bits)} for {bits}-bit qzeros")
    if tuple(qzeros.shape) != (groups, n * bits // 32):
        raise ValueError(f"{name}: qzeros must be [G={groups}, N*bits/32={n * bits // 32}], got "
                         f"shape {tuple(qzeros.shape)}")
    if g_idx is not None:
        g_idx = _tensor("g_idx", g_idx, (torch.int32, torch.int64), 1, "[K]")
        if g_idx.shape[0] != k:
            raise ValueError(f"{name}: g_idx must have K={k} entries (K from qweight "
                             f"{tuple(qweight.shape)} at {bits} bits), got {g_idx.shape[0]}")
    devices = {t.device for t in (qweight, qzeros, scales, g_idx) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"{name}: qweight, qzeros, scales and g_idx must be on one device, got "
                         f"{sorted(str(d) for d in devices)}")
    notes = []
    raw = bool(row_split_act_order)
    if groups == 1 and not raw:
        g_idx = None  # one group: g_idx says nothing (vLLM even fills it with -i then)
    if not raw:
        if k % groups:
            raise ValueError(f"{name}: scales has G={groups} rows, which does not divide K={k}")
        if group_size != -1 and k // groups != group_size:
            raise ValueError(f"{name}: scales has G={groups} rows but K={k} / group_size="
                             f"{group_size} needs {k // group_size}: the checkpoint and the "
                             f"config disagree")
    if raw or (desc_act and g_idx is not None):
        if g_idx is None:
            raise ValueError(f"{name}: a row-parallel act-order shard needs its g_idx slice")
        lo, hi = int(g_idx.min()), int(g_idx.max())
        if lo < 0 or hi >= groups:
            raise ValueError(f"{name}: g_idx values must lie in [0, G={groups}) (G = "
                             f"scales.shape[0]), got min {lo}, max {hi}")
    g32 = None if g_idx is None else g_idx.to(torch.int32).contiguous()
    if raw:
        order = "raw g_idx (row-parallel act-order shard)"
    elif desc_act and g32 is not None and not _default_groups(g32, k, groups):
        counts = torch.bincount(g32.long(), minlength=groups)
        if bool((counts == k // groups).all()):
            order = "act-order (perm)"
        else:
            raw, order = True, "raw g_idx (act-order groups of unequal size)"
    else:
        order = "none"
        if g32 is not None and not desc_act and not _default_groups(g32 - g32.min(), k, groups):
            warnings.warn(f"{name}: desc_act is false but g_idx is not k // group_size; vLLM "
                          f"ignores g_idx then, and so does gptq_mi100: check the checkpoint's "
                          f"quantization config", GPTQFormatWarning, stacklevel=2)
            notes.append("g_idx ignored (desc_act false)")
    qzeros, v2, note = convert_zeros(name, qzeros, bits, zeros)
    if note:
        notes.append(note)
    if raw:
        b_g_idx = g32
    else:
        if order == "act-order (perm)":
            b_g_idx = torch.argsort(g32).to(torch.int32)
        else:
            b_g_idx = torch.empty((0,), dtype=torch.int32, device=qweight.device)
        qweight = qweight.contiguous()
        ops.gptq_shuffle(qweight, b_g_idx, bits)
    plan = LayerPlan(name, bits, group_size, k, n, groups, order, not raw, v2, zeros.source,
                     kernel_choice(qweight.device, bits, k, n, not raw), tuple(notes))
    return VllmGPTQWeights(qweight, qzeros, scales, b_g_idx, bits, not raw, v2, plan)


def gptq_linear(x, qweight, qzeros, scales, g_idx, use_exllama, v2_zeros, bits, bias=None):
    """GPTQLinearMethod.apply's computation: x [..., K] -> [..., N] (+ bias), on tensors from
    :func:`process_layer`. No host sync, no Python branch on values: graph- and compile-safe."""
    from . import ops
    y = ops.gptq_gemm(x.reshape(-1, x.shape[-1]), qweight, qzeros, scales, g_idx, use_exllama,
                      v2_zeros, bits)
    if bias is not None:
        y.add_(bias)
    return y.reshape(*x.shape[:-1], y.shape[-1])


# ------------------------------------------------------------------ op-level replacements

def vllm_gptq_gemm(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
                   use_v2_format=None, bit=None):
    """``vllm._custom_ops.gptq_gemm`` on this package's op. Accepts vLLM's 8-argument form
    and the 7-argument form of vLLM before v0.11.1 (``..., use_exllama, bit``)."""
    if bit is None:
        if use_v2_format is None or type(use_v2_format) is bool:
            raise TypeError("gptq_gemm: missing bit (the weight's bits: 2, 3, 4 or 8)")
        bit, use_v2_format = use_v2_format, False
    from . import ops
    return ops.gptq_gemm(a, b_q_weight, b_gptq_qzeros, b_gptq_scales, b_g_idx, use_exllama,
                         bool(use_v2_format), bit)


def vllm_gptq_shuffle(q_weight, q_perm, bit):
    """``vllm._custom_ops.gptq_shuffle`` on this package's op (in place)."""
    from . import ops
    ops.gptq_shuffle(q_weight, q_perm, bit)


# ------------------------------------------------------------------ the vLLM-facing layer

_PATCHES = []  # (owner, attribute, previous value in owner.__dict__ or _MISSING, label)
_MISSING = object()


def _patch(owner, attr, value, label):
    _PATCHES.append((owner, attr, owner.__dict__.get(attr, _MISSING), label))
    setattr(owner, attr, value)


def patched() -> Tuple[str, ...]:
    """What register() patched in this process ("module.attribute" labels)."""
    return tuple(label for *_, label in _PATCHES)


def unregister():
    """Undo every patch register() made (tests; a model loaded meanwhile keeps its layout)."""
    while _PATCHES:
        owner, attr, old, _ = _PATCHES.pop()
        if old is _MISSING:
            delattr(owner, attr)
        else:
            setattr(owner, attr, old)


def _build_backend():
    from . import ops
    info = ops.build_info()
    return info.rsplit("backend ", 1)[-1].split(";")[0].strip() if "backend " in info else "cpu"


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _layer_name(layer):
    name = getattr(layer, "prefix", None) or getattr(layer, "layer_name", None)
    return name if isinstance(name, str) and name else f"<{type(layer).__name__} {id(layer):#x}>"


def _make_methods(ready_state):
    """The patched GPTQLinearMethod.process_weights_after_loading / apply."""

    def process_weights_after_loading(self, layer):
        if getattr(layer, _LAYER_ATTR, None) is not None:
            return  # already processed (vLLM's own READY guard, same purpose)
        cfg = self.quant_config
        data = lambda p: p.data if isinstance(p, torch.nn.Parameter) else p  # noqa: E731
        state = getattr(layer, "exllama_state", None)
        convention = zero_convention(getattr(cfg, _RAW_CONFIG_ATTR, None),
                                     use_v2_format=getattr(cfg, "use_v2_format", None),
                                     v1_zeros=resolve_v1_zeros())
        w = process_layer(_layer_name(layer), data(layer.qweight), data(layer.qzeros),
                          data(layer.scales), data(layer.g_idx), bits=cfg.weight_bits,
                          group_size=cfg.group_size, desc_act=bool(cfg.desc_act),
                          row_split_act_order=getattr(state, "name", None) == "UNUSED",
                          zeros=convention)
        param = lambda t: torch.nn.Parameter(t, requires_grad=False)  # noqa: E731
        layer.qweight, layer.qzeros = param(w.qweight), param(w.qzeros)
        layer.scales, layer.g_idx = param(w.scales), param(w.g_idx)
        if w.use_exllama and ready_state is not None:
            layer.exllama_state = ready_state
        setattr(layer, _LAYER_ATTR, w.plan)
        logger.info(w.plan.describe())

    def apply(self, layer, x, bias=None):
        plan = getattr(layer, _LAYER_ATTR, None)
        if plan is None:
            raise RuntimeError(f"gptq_mi100: {_layer_name(layer)} was loaded before "
                               f"gptq_mi100.vllm_plugin.register() patched vLLM (its weights "
                               f"are in vLLM's layout): register the plugin before the model "
                               f"loads (entry point or an explicit call)")
        return gptq_linear(x, layer.qweight, layer.qzeros, layer.scales, layer.g_idx,
                           plan.use_exllama, plan.v2_zeros, plan.bits, bias)

    return process_weights_after_loading, apply


def _patch_gptq_module(mod):
    config_cls = getattr(mod, "GPTQConfig", None)
    method_cls = getattr(mod, "GPTQLinearMethod", None)
    state_cls = getattr(mod, "ExllamaState", None)
    if config_cls is None or method_cls is None or state_cls is None or not all(
            hasattr(method_cls, a) for a in ("process_weights_after_loading", "apply")):
        return False
    where = mod.__name__
    original = getattr(config_cls, "from_config")
    func = getattr(original, "__func__", None)  # a classmethod: call it for the subclass

    def from_config(cls, config, *args, **kwargs):
        obj = (func(cls, config, *args, **kwargs) if func is not None
               else original(config, *args, **kwargs))
        if isinstance(config, dict):
            setattr(obj, _RAW_CONFIG_ATTR, dict(config))
        return obj

    def get_supported_act_dtypes(cls):
        return [torch.float16, torch.bfloat16]

    process, apply = _make_methods(getattr(state_cls, "READY", None))
    _patch(config_cls, "from_config", classmethod(from_config), f"{where}.GPTQConfig.from_config")
    _patch(config_cls, "get_supported_act_dtypes", classmethod(get_supported_act_dtypes),
           f"{where}.GPTQConfig.get_supported_act_dtypes")
    _patch(method_cls, "process_weights_after_loading", process,
           f"{where}.GPTQLinearMethod.process_weights_after_loading")
    _patch(method_cls, "apply", apply, f"{where}.GPTQLinearMethod.apply")
    return True


def register(mode: Optional[str] = None) -> Tuple[str, ...]:
    """vLLM general-plugin entry point (and the one documented call): patch vLLM's GPTQ path
    to use this package, in this process. ``mode`` None reads GPTQ_MI100_VLLM. Returns the
    patched attributes (empty when inactive); calling it again changes nothing."""
    mode = resolve_mode() if mode is None else mode
    hip = getattr(torch.version, "hip", None)
    backend = "unknown"
    if mode == "auto" and hip:
        try:
            backend = _build_backend()
        except Exception as e:  # e.g. the extension is not built: never break vLLM's start
            backend = f"unknown ({type(e).__name__}: {e})"
    decision = activation_decision(mode, hip, backend)
    if not decision.active:
        level = logging.WARNING if torch.version.hip and mode == "auto" else logging.DEBUG
        logger.log(level, "gptq_mi100 vLLM plugin inactive: %s", decision.reason)
        return ()
    if _PATCHES:
        return patched()
    if _import("vllm") is None:
        if mode == "on":
            raise ImportError(f"{ENV_MODE}=on, but vllm is not importable in this environment")
        logger.warning("gptq_mi100 vLLM plugin: vllm is not importable; nothing patched")
        return ()
    custom_ops = _import(_CUSTOM_OPS_MODULE)
    if custom_ops is not None:
        for attr, fn in (("gptq_gemm", vllm_gptq_gemm), ("gptq_shuffle", vllm_gptq_shuffle)):
            if hasattr(custom_ops, attr):
                _patch(custom_ops, attr, fn, f"{_CUSTOM_OPS_MODULE}.{attr}")
    gptq_mod = _import(_GPTQ_MODULE)
    methods = gptq_mod is not None and _patch_gptq_module(gptq_mod)
    if not _PATCHES:
        msg = (f"gptq_mi100 vLLM plugin: this vLLM has neither {_CUSTOM_OPS_MODULE}.gptq_gemm "
               f"nor {_GPTQ_MODULE}.GPTQLinearMethod; nothing patched")
        if mode == "on":
            raise RuntimeError(msg)
        logger.warning(msg)
        return ()
    version = getattr(importlib.import_module("vllm"), "__version__", "?")
    logger.info("gptq_mi100 vLLM plugin active (%s; vLLM %s): %s", decision.reason, version,
                ", ".join(patched()))
    if not methods:
        logger.info("gptq_mi100 vLLM plugin: no exllama-era GPTQLinearMethod in this vLLM: only "
                    "ops.gptq_gemm / gptq_shuffle are routed (asymmetric and 2/3-bit GPTQ stay "
                    "unavailable here)")
    return patched()

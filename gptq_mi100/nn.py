"""torch modules on top of the package's API: ``GPTQLinear`` and ``replace_linears``.

``GPTQLinear`` holds a GPTQ layer's checkpoint tensors as buffers (``qweight`` int32
[K*bits/32, N], ``qzeros`` int32 [G, N*bits/32], ``scales`` fp16 [G, N], ``g_idx`` int32 [K],
optional ``bias`` [N]), so ``state_dict`` has the Hugging Face GPTQ names and ``.to(device)``
moves them. The kernels consume a :class:`gptq_mi100.ops.PreparedGPTQ`, which is prepared
from the buffers:

- eagerly when the module is built and after every ``.to()`` / ``.cuda()`` / ``.cpu()``
  (``prepare`` reads ``g_idx`` back to the host: load time, never inside ``forward``);
- ``forward`` only looks the prepared weight up. If it is missing (buffers replaced by hand, or
  a ``load_state_dict``), ``forward`` prepares it once, except under CUDA/HIP graph capture,
  where it raises: call :meth:`GPTQLinear.prepare` (or ``.to(device)``) before capturing.

Without act-order the prepared qweight is the checkpoint qweight itself (no second copy).
With act-order the kernel-order qweight is a second tensor beside the checkpoint one, which
``state_dict`` and device moves need.

Module dtype casts (``.half()``, ``.to(torch.bfloat16)``) cast ``bias`` but keep ``scales`` in
their stored dtype (fp16 in checkpoints), so no scale precision is lost. Activations must be
fp16 or bf16 (the kernels' contract); the output has the activation's dtype.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Union

import torch

from . import formats

__all__ = ["GPTQLinear", "replace_linears"]


def _ops():
    # Imported on use: the compiled extension loads on first use (see gptq_mi100/__init__.py).
    from . import ops
    return ops


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


class GPTQLinear(torch.nn.Module):
    """``y = x @ W + bias`` with W a GPTQ-quantized [K, N] weight (K = in_features).

    Build it with :meth:`from_checkpoint` (checkpoint tensors) or :meth:`from_linear`
    (round-to-nearest quantization of a float ``nn.Linear``). ``forward`` takes ``x``
    [..., K] fp16 or bf16 and returns [..., N] in ``x``'s dtype; ``kernel`` (None = the
    process default, see README "Kernels") is passed to :func:`gptq_mi100.ops.gemm`.
    """

    def __init__(self, in_features: int, out_features: int, bits: int, group_size: int,
                 *, bias: bool = False, v2_zeros: bool = False, sym: Optional[bool] = None,
                 kernel: Optional[str] = None, device=None,
                 bias_dtype: torch.dtype = torch.float16):
        """Empty module with zero-filled buffers of the right shapes (fill them with
        ``load_state_dict``). Most callers want :meth:`from_checkpoint`."""
        super().__init__()
        bits = formats._check_bits(bits)
        k = formats._as_int("in_features", in_features)
        n = formats._as_int("out_features", out_features)
        gs = k if group_size == -1 else formats._as_int("group_size", group_size)
        if gs <= 0 or k % gs:
            raise ValueError(f"group_size must be -1 or a positive divisor of "
                             f"in_features={k}, got {group_size}")
        groups = k // gs
        self._setup(k, n, bits, group_size, v2_zeros, sym, kernel,
                    torch.zeros(k * bits // 32, n, dtype=torch.int32, device=device),
                    torch.zeros(groups, n * bits // 32, dtype=torch.int32, device=device),
                    torch.zeros(groups, n, dtype=torch.float16, device=device),
                    formats.group_index_default(k, gs, device=device),
                    torch.zeros(n, dtype=bias_dtype, device=device) if bias else None)

    def _setup(self, k, n, bits, group_size, v2_zeros, sym, kernel, qweight, qzeros, scales,
               g_idx, bias):
        self.in_features, self.out_features = k, n
        self.bits, self.group_size = bits, group_size
        self.v2_zeros, self.sym, self.kernel = bool(v2_zeros), sym, kernel
        self.register_buffer("qweight", qweight)
        self.register_buffer("qzeros", qzeros)
        self.register_buffer("scales", scales)
        self.register_buffer("g_idx", g_idx.to(torch.int32))
        self.register_buffer("bias", bias)
        self._prepared: Dict[torch.device, object] = {}
        self.register_load_state_dict_pre_hook(self._drop_prepared)
        self.register_load_state_dict_post_hook(self._prepare_after_load)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, qweight: torch.Tensor, qzeros: torch.Tensor,
                        scales: torch.Tensor, g_idx: Optional[torch.Tensor] = None,
                        bias: Optional[torch.Tensor] = None, *, bits: int, group_size: int,
                        v2_zeros: bool = False, sym: Optional[bool] = None,
                        kernel: Optional[str] = None) -> "GPTQLinear":
        """Module from GPTQ checkpoint tensors (not copied; prepared on their device).

        ``g_idx`` None means the default grouping ``k // group_size``. ``v2_zeros``: False for
        GPTQ v1 zeros (AutoGPTQ, ``checkpoint_format="gptq"``), True for v2 (``"gptq_v2"``).
        ``sym`` is only recorded (written back by :func:`gptq_mi100.checkpoint.save_checkpoint`).
        """
        bits = formats._check_bits(bits)
        if qweight.dim() != 2 or scales.dim() != 2:
            raise ValueError(f"qweight and scales must be 2-D, got shapes "
                             f"{tuple(qweight.shape)} and {tuple(scales.shape)}")
        k = qweight.shape[0] // 3 * 32 if bits == 3 else qweight.shape[0] * (32 // bits)
        n = qweight.shape[1]
        if group_size != -1 and scales.shape[0] != -(-k // group_size):
            raise ValueError(f"scales has {scales.shape[0]} groups (rows), but K={k} and "
                             f"group_size={group_size} need {-(-k // group_size)}")
        if g_idx is None:
            gs = k if group_size == -1 else group_size
            g_idx = formats.group_index_default(k, gs, device=qweight.device)
        module = cls.__new__(cls)
        torch.nn.Module.__init__(module)
        module._setup(k, n, bits, group_size, v2_zeros, sym, kernel, qweight, qzeros, scales,
                      g_idx, bias)
        module.prepare()
        return module

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear, bits: int, group_size: int = 128, *,
                    act_order: bool = False, sym: bool = True, v2_zeros: bool = False,
                    generator: Optional[torch.Generator] = None,
                    kernel: Optional[str] = None) -> "GPTQLinear":
        """Quantize a float ``nn.Linear`` with :func:`gptq_mi100.quantize.quantize_rtn`
        (round to nearest: no calibration data, unlike GPTQ proper). ``act_order`` draws a
        random group assignment from ``generator``; the bias is kept in fp16."""
        from .quantize import quantize_rtn
        if not isinstance(linear, torch.nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        with torch.no_grad():
            t = quantize_rtn(linear.weight.detach().t(), bits, group_size=group_size,
                             symmetric=sym, act_order=act_order, v2_zeros=v2_zeros,
                             generator=generator)
            bias = None if linear.bias is None else linear.bias.detach().to(torch.float16)
        return cls.from_checkpoint(t.qweight, t.qzeros, t.scales, t.g_idx, bias, bits=bits,
                                   group_size=group_size, v2_zeros=v2_zeros, sym=sym,
                                   kernel=kernel)

    # ------------------------------------------------------------------ prepared weight

    def prepare(self):
        """(Re)build the prepared weight on the buffers' device and return it. Reads g_idx
        back to the host: call at load time, never during graph capture."""
        ops = _ops()
        device = self.qweight.device
        w = ops.prepare(self.qweight, self.qzeros, self.scales, self.g_idx, bits=self.bits,
                        group_size=self.group_size, v2_zeros=self.v2_zeros)
        if (w.a_perm is None and w.qweight.shape == self.qweight.shape
                and torch.equal(w.qweight, self.qweight)):
            w = w._replace(qweight=self.qweight)   # same values: keep one copy
        self._prepared = {device: w}
        return w

    def prepared(self):
        """The prepared weight for the buffers' device (built on first use)."""
        w = self._prepared.get(self.qweight.device)
        if w is None:
            if _capturing():
                raise RuntimeError(
                    "GPTQLinear: no prepared weight for this device during graph capture; "
                    "call .prepare() (or .to(device)) before capturing")
            w = self.prepare()
        return w

    def _drop_prepared(self, *args, **kwargs):
        self._prepared = {}

    def _prepare_after_load(self, module, incompatible_keys):
        if self.qweight.device.type != "meta":
            self.prepare()

    def _apply(self, fn, recurse=True):
        scales = self.scales
        super()._apply(fn, recurse)
        if self.scales.dtype != scales.dtype:          # dtype casts keep the stored scales
            self.scales = scales.to(self.scales.device)
        self._prepared = {}
        if self.qweight.device.type != "meta":
            self.prepare()
        return self

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _ops().gemm(x, self.prepared(), kernel=self.kernel)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bits={self.bits}, group_size={self.group_size}, "
                f"zeros={'v2' if self.v2_zeros else 'v1'}, "
                f"act_order={self.act_order}, bias={self.bias is not None}")

    @property
    def act_order(self) -> bool:
        """Whether g_idx differs from the default grouping ``k // group_size``."""
        gs = self.in_features if self.group_size == -1 else self.group_size
        default = formats.group_index_default(self.in_features, gs, device=self.g_idx.device)
        return not torch.equal(self.g_idx.to(torch.int32), default)


def _progress(items, total: int, desc: str, enabled: bool):
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return items
        return tqdm(items, total=total, desc=desc, unit="layer")
    return items


Filter = Union[None, str, Callable[[str, torch.nn.Linear], bool]]


def _selector(filter: Filter) -> Callable[[str, torch.nn.Linear], bool]:
    if filter is None:
        return lambda name, mod: True
    if isinstance(filter, str):
        pattern = re.compile(filter)
        return lambda name, mod: pattern.search(name) is not None
    if callable(filter):
        return filter
    raise TypeError(f"filter must be None, a regex string or a callable (name, module) -> "
                    f"bool, got {type(filter).__name__}")


def quantizable(linear: torch.nn.Linear, bits: int, group_size: int) -> Optional[str]:
    """None if ``linear`` can become a GPTQLinear at these settings, else the reason."""
    k, n = linear.in_features, linear.out_features
    unit = formats.pack_multiple(bits)
    if k % 32:
        return f"in_features={k} is not a multiple of 32"
    if n % unit:
        return f"out_features={n} is not a multiple of {unit} for {bits}-bit"
    if group_size != -1 and (group_size % 32 or k % group_size):
        return f"group_size={group_size} does not divide in_features={k} in multiples of 32"
    return None


def set_submodule(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    """Replace the submodule at dotted path ``name``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def replace_linears(model: torch.nn.Module, filter: Filter = None, *, bits: int = 4,
                    group_size: int = 128, act_order: bool = False, sym: bool = True,
                    v2_zeros: bool = False, seed: int = 0, skip_incompatible: bool = True,
                    progress: bool = True, kernel: Optional[str] = None) -> List[str]:
    """Replace every ``nn.Linear`` of ``model`` that ``filter`` selects with a GPTQLinear made
    by :meth:`GPTQLinear.from_linear` (in place). Returns the replaced names.

    ``filter``: None (all), a regex searched in the dotted module name, or a callable
    ``(name, linear) -> bool``. Linears whose shape the format does not allow (see
    :func:`quantizable`) are left as they are when ``skip_incompatible`` (else ValueError).
    ``seed`` fixes the act-order permutations. A tqdm progress bar is shown when tqdm is
    importable and ``progress`` is true.
    """
    select = _selector(filter)
    chosen = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and not isinstance(mod, GPTQLinear) and \
                select(name, mod):
            reason = quantizable(mod, bits, group_size)
            if reason is None:
                chosen.append((name, mod))
            elif not skip_incompatible:
                raise ValueError(f"{name}: {reason}")
    gen = torch.Generator().manual_seed(seed)
    for name, mod in _progress(chosen, len(chosen), "GPTQ quantize", progress):
        q = GPTQLinear.from_linear(mod, bits, group_size, act_order=act_order, sym=sym,
                                   v2_zeros=v2_zeros, generator=gen, kernel=kernel)
        set_submodule(model, name, q)
    return [name for name, _ in chosen]

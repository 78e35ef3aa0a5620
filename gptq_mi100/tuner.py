"""On-device tuner (issue 12): measure the kernels and tile choices on this device, keep the
fastest that is right, and let `auto` follow it.

No GPU this project runs on is an MI100: gfx908's built-in choices are reasoned, not measured.
The user's GPU can measure them. `tune` takes layer shapes (K, N) and Ms; per shape and M it runs
every kernel of this build that reads the weight's layout (`prepare`'s default one), crossed
with the tile values the kernel registry lists for it, plus dequantize + matmul. Each candidate
is first checked against the fp32 reference in fp16 and bf16 (a wrong or raising one is dropped
and reported, never chosen), then timed with the benchmark suite's graph method (timing.py).
Bounded: every (kernel, load, mt) is timed with the launcher's own K split and few replays, the
split counts are swept for the fastest few, and the fastest few are timed again in full. The
winner of a measured M also covers the Ms down to the previous measured one (the same weight
passes), once it has been checked at each of them; neighbours with one winner merge into a row.

The rows (bits, K, N, m_lo, m_hi, kernel spec) go to a JSON table in a per-user cache directory,
one file per device name, architecture, CU/SM count, gptq_mi100 version and torch version (also
recorded in the file's "key"). `ensure_applied`, called by `prepare` and `gptq_shuffle` (load
time), reads it once per process and device type, validates it and installs it in the kernel
registry (kernels.set_tuned_table), which `auto` consults from memory: `gemm` does no file I/O.
A corrupt, stale or foreign table is ignored with one TuneTableWarning; Ms and shapes the table
lacks keep the built-in rule.

Environment: GPTQ_MI100_TUNE_FILE (the table to read instead; `none` reads none),
GPTQ_MI100_CACHE_DIR (else $XDG_CACHE_HOME/gptq_mi100, else ~/.cache/gptq_mi100).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from . import kernels, layouts, ops, quantize, reference, timing
from .kernels import TunedRow

__all__ = ["tune", "apply", "ensure_applied", "shapes_from_config", "LayerShape", "TuneResult",
           "TuneTableWarning", "PRESETS", "DEFAULT_MS", "cache_dir", "device_key",
           "default_path", "table_path", "format_table"]

SCHEMA = 1
DEFAULT_MS = (1, 2, 4, 8, 16, 32, 64)
_SPLIT_SWEEPS = 3          # fastest (kernel, load, mt) choices whose K splits are swept
_FINALISTS = 3             # fastest candidates timed again with the full replay count
_QUICK = dict(replays=3, repeats=3)
_FULL = dict(replays=20, repeats=7)
_MAX_INT = 2**31 - 1       # the registry holds rows as int64; no real shape comes near this

# Models named on the command line: their configs' fields and tensor-parallel size.
PRESETS = {
    "qwen3-32b-tp4": (dict(hidden_size=5120, intermediate_size=25600, num_attention_heads=64,
                           num_key_value_heads=8, head_dim=128), 4),
    "llama-3-8b-tp1": (dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
                            num_key_value_heads=8, head_dim=128), 1),
}


class TuneTableWarning(UserWarning):
    """A tuned table was ignored (corrupt, stale or from another device): `auto` uses its
    built-in choices."""


class LayerShape(NamedTuple):
    k: int          # in_features
    n: int          # out_features
    name: str = ""


class Dropped(NamedTuple):
    """A candidate that gave wrong results or raised: never chosen."""
    bits: int
    k: int
    n: int
    m: int
    spec: str
    reason: str


class Measured(NamedTuple):
    """The winner at one measured M (and the runner-up, for the record)."""
    bits: int
    k: int
    n: int
    m: int
    spec: str
    us: float
    runner_up: str
    runner_up_us: float
    timed: int      # candidates that passed the check and were timed


class TuneResult(NamedTuple):
    rows: List[TunedRow]        # what this tune chose, for its shapes
    measured: List[Measured]
    dropped: List[Dropped]
    skipped: List[Tuple[int, int, int]]   # (k, n, m) left out: budget_s ran out
    path: str                   # the table file written (it also keeps other shapes' rows)
    seconds: float


# ------------------------------------------------------------------------------ shapes

def shapes_from_config(config, tp: int = 1) -> List[LayerShape]:
    """qkv, o, gate_up and down of one tensor-parallel rank, split as vLLM splits them.

    config: a dict, or the path of a config.json or of the checkpoint directory holding it.
    Needs hidden_size, intermediate_size, num_attention_heads; num_key_value_heads (default:
    the attention heads) and head_dim (default hidden_size / heads) are optional. Column-parallel
    layers (qkv, gate_up) split N, row-parallel ones (o, down) split K; KV heads fewer than tp are
    replicated, one per rank.
    """
    if isinstance(config, (str, os.PathLike)):
        path = os.path.join(config, "config.json") if os.path.isdir(config) else config
        try:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read the model config {os.fspath(path)}: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"a model config must be a JSON object, got {type(config).__name__}")
    if "hidden_size" not in config and isinstance(config.get("text_config"), dict):
        config = config["text_config"]  # multimodal configs nest the language model's

    def field(name, default=None):
        value = config.get(name)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"model config: {name} must be a positive integer, got {value!r}")
        return value

    hidden, inter = field("hidden_size"), field("intermediate_size")
    heads = field("num_attention_heads")
    kv_heads = field("num_key_value_heads", heads)
    head_dim = field("head_dim", hidden // heads)
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ValueError(f"tensor-parallel size must be a positive integer, got {tp!r}")
    if heads % tp or inter % tp or (kv_heads % tp if kv_heads >= tp else tp % kv_heads):
        raise ValueError(f"tensor-parallel size {tp} must divide num_attention_heads ({heads}) "
                         f"and intermediate_size ({inter}), and divide or be a multiple of "
                         f"num_key_value_heads ({kv_heads})")
    kv_per_rank = max(1, kv_heads // tp)
    return [LayerShape(hidden, (heads // tp + 2 * kv_per_rank) * head_dim, "qkv"),
            LayerShape(heads // tp * head_dim, hidden, "o"),
            LayerShape(hidden, 2 * inter // tp, "gate_up"),
            LayerShape(inter // tp, hidden, "down")]


def _layer_shapes(shapes) -> List[LayerShape]:
    """(k, n) pairs or LayerShapes -> LayerShapes without repeats."""
    out, seen = [], set()
    for s in shapes:
        try:
            k, n = s[0], s[1]
        except (TypeError, IndexError, KeyError):
            raise ValueError(f"a layer shape is a (k, n) pair, got {s!r}") from None
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (k, n)):
            raise ValueError(f"a layer shape is a (k, n) pair of integers, got {s!r}")
        if (k, n) not in seen:
            seen.add((k, n))
            out.append(LayerShape(k, n, getattr(s, "name", "")))
    if not out:
        raise ValueError("no layer shapes to tune")
    return out


def _check_problem(shapes, ms, bits, group_size):
    """The format's rules (README "Formats"), before any device work."""
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits must be 2, 3, 4 or 8, got {bits!r}")
    align = 32 if bits == 3 else 32 // bits
    for s in shapes:
        if s.k <= 0 or s.k % 32:
            raise ValueError(f"layer {s.k}x{s.n}: K must be a positive multiple of 32")
        if s.n <= 0 or s.n % align:
            raise ValueError(f"layer {s.k}x{s.n}: N must be a positive multiple of {align} "
                             f"at {bits} bits")
        if group_size != -1 and (group_size <= 0 or group_size % 32 or s.k % group_size):
            raise ValueError(f"layer {s.k}x{s.n}: group size must be -1 or a positive multiple "
                             f"of 32 dividing K, got {group_size}")
    if not ms or any(isinstance(m, bool) or not isinstance(m, int) or not 0 < m <= _MAX_INT
                     for m in ms):
        raise ValueError(f"ms must be positive integers, got {tuple(ms)!r}")


# ------------------------------------------------------------------ where a table lives

def cache_dir() -> str:
    explicit = os.environ.get("GPTQ_MI100_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gptq_mi100")


def _package_version() -> str:
    try:
        return importlib.metadata.version("gptq_mi100")
    except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _concrete(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def device_key(device) -> Dict[str, object]:
    """What a table is valid for: the device's name, architecture and CU/SM count (CPU: its
    cores), and the gptq_mi100 and torch versions that measured it."""
    device = _concrete(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        arch = props.gcnArchName if torch.version.hip else f"sm_{props.major}{props.minor}"
        name, units = props.name, props.multi_processor_count
    else:
        name, arch, units = _cpu_name(), f"cpu-{platform.machine()}", os.cpu_count() or 0
    return {"device": name, "arch": arch, "units": units, "gptq_mi100": _package_version(),
            "torch": torch.__version__}


def default_path(device) -> str:
    """The cache file of this device and these versions."""
    key = device_key(device)
    parts = [key["device"], key["arch"], f"{key['units']}cu", f"gptq_mi100-{key['gptq_mi100']}",
             f"torch-{key['torch']}"]
    slug = "_".join(re.sub(r"[^a-z0-9.+-]+", "-", str(p).lower()).strip("-") for p in parts)
    return os.path.join(cache_dir(), f"tune_{slug}.json")


def table_path(device) -> Optional[str]:
    """The table this process reads for `device`: GPTQ_MI100_TUNE_FILE, None when that is
    `none`, else default_path."""
    chosen = os.environ.get("GPTQ_MI100_TUNE_FILE", "").strip()
    if chosen.lower() == "none":
        return None
    return chosen or default_path(device)


# ------------------------------------------------------------------------ reading a table

def _read_rows(path: str, device: torch.device) -> List[TunedRow]:
    """The rows of the table at `path` if its schema, key and row values hold for `device`;
    else ValueError saying why (kernel specs are the registry's to judge, at install)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"schema {data.get('schema')!r}; this gptq_mi100 reads schema {SCHEMA}")
    key, here = data.get("key"), device_key(device)
    if not isinstance(key, dict):
        raise ValueError("it has no key object")
    if any(key.get(f) != here[f] for f in ("device", "arch", "units")):
        raise ValueError(f"it was measured on another device: {key.get('device')!r} "
                         f"({key.get('arch')}, {key.get('units')} units), this is "
                         f"{here['device']!r} ({here['arch']}, {here['units']} units)")
    if any(key.get(f) != here[f] for f in ("gptq_mi100", "torch")):
        raise ValueError(f"it is stale: measured with gptq_mi100 {key.get('gptq_mi100')} and "
                         f"torch {key.get('torch')}, this is gptq_mi100 {here['gptq_mi100']} "
                         f"and torch {here['torch']}")
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise ValueError("its rows are not a list")
    return [_row(i, item) for i, item in enumerate(rows)]


def _row(index: int, item) -> TunedRow:
    where = f"rows[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    values = []
    for field in TunedRow._fields[:-1]:
        v = item.get(field)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= _MAX_INT:
            raise ValueError(f"{where}.{field} must be a positive integer, got {v!r}")
        values.append(v)
    bits, k, _, m_lo, m_hi = values
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"{where}.bits must be 2, 3, 4 or 8, got {bits}")
    if k % 32:
        raise ValueError(f"{where}.k must be a multiple of 32, got {k}")
    if m_lo > m_hi:
        raise ValueError(f"{where}: m_lo {m_lo} > m_hi {m_hi}")
    spec = item.get("spec")
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"{where}.spec must be a kernel spec string, got {spec!r}")
    return TunedRow(*values, spec)


_lock = threading.Lock()
_applied = set()  # device types whose table this process has read


def _install(device: torch.device, path: Optional[str]) -> List[TunedRow]:
    """Read, validate and install. No table: nothing changes, silently; a defective one:
    nothing of it is installed, one warning."""
    if path is None:
        return []
    try:
        rows = _read_rows(path, device)
        kernels.set_tuned_table(device.type, rows)  # the registry validates every spec
        return rows
    except FileNotFoundError:
        return []  # never tuned: the built-in rule
    except (OSError, ValueError, RecursionError) as e:
        warnings.warn(f"gptq_mi100: ignoring the tuned kernel table {path}: {e}. `auto` uses its "
                      f"built-in choices; run `python -m gptq_mi100 tune` to measure this device "
                      f"again.", TuneTableWarning, stacklevel=4)
        return []


def apply(device, path: Optional[str] = None) -> List[TunedRow]:
    """Read the table for `device` (`path`, else table_path) and install it for the device's
    type in this process; returns the rows installed ([]: there is none, or it was ignored;
    either way the registry keeps what it had, empty unless set by hand or by `tune`)."""
    device = _concrete(device)
    with _lock:
        rows = _install(device, path or table_path(device))
        _applied.add(device.type)
    return rows


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def ensure_applied(device) -> None:
    """The prepare hook: `apply` once per process and device type (not during graph capture,
    not on the meta device)."""
    device = torch.device(device)
    if device.type not in ("cpu", "cuda") or device.type in _applied or _capturing(device):
        return
    with _lock:
        if device.type not in _applied:
            device = _concrete(device)
            _install(device, table_path(device))
            _applied.add(device.type)


def _reset_for_tests() -> None:
    """Forget which tables were read and clear the installed ones (tests only)."""
    with _lock:
        _applied.clear()
        for device_type in ("cpu", "cuda"):
            kernels.set_tuned_table(device_type, [])


# ----------------------------------------------------------------------------- candidates

def _split_spec(spec: str) -> Tuple[str, Dict[str, int]]:
    name, _, items = spec.partition(":")
    return name, {k: int(v) for k, v in (item.split("=") for item in items.split(",") if item)}


def _row_tiles(values: Sequence[int], m: int) -> Tuple[int, ...]:
    """Row tiles worth timing at M: none wider than the first that holds M (the same single
    pass, more idle rows), none under a quarter of it (4x the weight passes)."""
    ordered = sorted(values)
    cover = next((v for v in ordered if v >= m), ordered[-1])
    return tuple(v for v in ordered if 4 * v >= cover and v <= cover)


def _split_counts(values: Sequence[int], k: int, bits: int, layout: int) -> Tuple[int, ...]:
    """K splits worth timing: more splits than layout-2 K tiles is the same launch."""
    if layout != ops.LAYOUT_TILED:
        return tuple(values)
    return tuple(v for v in values if v <= k // layouts.tile_rows(bits))


def _first_specs(info: kernels.KernelInfo, m: int) -> List[str]:
    """Every (load, mt) choice of the kernel at M, the K splits, slices and strips per wave
    left to the launcher."""
    tiles = {key: (_row_tiles(v, m) if key == "mt" else tuple(v))
             for key, v in info.tiles.items() if key not in ("splits", "kslices", "sw")}
    keys = sorted(tiles)
    return [kernels.kernel_spec(info.name, **dict(zip(keys, combo)))
            for combo in itertools.product(*(tiles[key] for key in keys))]


def _with_splits(spec: str, info: kernels.KernelInfo, k: int, bits: int, layout: int) -> List[str]:
    name, tiles = _split_spec(spec)
    return [kernels.kernel_spec(name, **tiles, splits=s)
            for s in _split_counts(info.tiles.get("splits", ()), k, bits, layout)]


def _candidate_kernels(device_type: str, bits: int, layout: int) -> List[kernels.KernelInfo]:
    """Kernels of this build that can read the weight: in its layout, covering its bits, not
    excluded by the load-time self-check."""
    excluded = set(torch.ops.gptq_mi100.excluded_kernels(device_type))
    return [info for info in kernels.kernel_table(device_type)
            if info.in_build and device_type in info.devices and layout in info.layouts
            and bits in info.bits and info.name not in excluded]


# ------------------------------------------------------------------------------- measuring

class _Layer:
    """One layer shape on the device: the weight in prepare's default layout (copies rotated
    past L2 on GPUs), the fp64 reference weight, and per M the checked activations."""

    def __init__(self, shape, bits, group_size, act_order, device, dtype):
        self.k, self.n, self.bits, self.device, self.dtype = shape.k, shape.n, bits, device, dtype
        t = quantize.random_gptq(shape.k, shape.n, bits, group_size, symmetric=False,
                                 act_order=act_order, v2_zeros=False,
                                 seed=(shape.k * 65537 + shape.n) * 8 + bits,
                                 device=device)
        g_idx = t.g_idx if act_order else None
        self.w64 = reference.dequantize_reference(t.qweight, t.qzeros, t.scales, g_idx, bits,
                                                  False, dtype=torch.float64)
        self.w32 = self.w64.float()
        w = ops.prepare(t.qweight, t.qzeros, t.scales, g_idx, bits=bits, group_size=group_size)
        l2 = (getattr(torch.cuda.get_device_properties(device), "L2_cache_size", None)
              if device.type == "cuda" else None)
        nbytes = sum(x.numel() * x.element_size() for x in (w.qweight, w.qzeros, w.scales))
        self.weights = [w] + [w._replace(qweight=w.qweight.clone(), qzeros=w.qzeros.clone(),
                                         scales=w.scales.clone())
                              for _ in range(timing.n_copies(device, nbytes, l2) - 1)]
        self.layout = w.layout

    def checks(self, m: int):
        """{dtype: (a, reference output, error bound)} for fp16 and bf16 at M."""
        out = {}
        for i, dtype in enumerate((torch.float16, torch.bfloat16)):
            gen = torch.Generator().manual_seed(1000 * m + i)
            a = torch.randn(m, self.k, generator=gen).to(dtype).to(self.device)
            ref = (a.double() @ self.w64).float()
            out[dtype] = (a, ref, reference.error_bound(a, self.w32, ref, dtype))
        return out

    def verify(self, spec: str, checks) -> Tuple[str, str]:
        """("ok", ""), ("n/a", why) for a problem the kernel does not take, ("wrong", detail)
        or ("raised", error)."""
        for dtype, (a, ref, bound) in checks.items():
            try:
                out = ops.gemm(a, self.weights[0], kernel=spec).float()
            except ValueError as e:
                return "n/a", str(e).splitlines()[0]
            except Exception as e:  # noqa: BLE001  a failing candidate must not end the tune
                return "raised", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            bad = ~torch.isfinite(out) | ((out - ref).abs() > bound)
            if bad.any():
                i = tuple(bad.nonzero()[0].tolist())
                return "wrong", (f"{str(dtype)[6:]} M={a.shape[0]}: {int(bad.sum())} of "
                                 f"{out.numel()} outside the reference bound; first {i}: got "
                                 f"{out[i].item():.5g}, want {ref[i].item():.5g}")
        return "ok", ""

    def time_us(self, spec: str, checks, timer: timing.Timer) -> float:
        a = checks[self.dtype][0]
        calls = [lambda w=w: ops.gemm(a, w, kernel=spec) for w in self.weights]
        return statistics.median(timer.time_us(calls))


def _rank(layer: _Layer, infos, m: int, checks, quick, full, drop) -> List[Tuple[str, float]]:
    """Specs that passed the check at M, fastest first (the finalists by their full timing)."""
    times: Dict[str, float] = {}

    def measure(spec):
        status, detail = layer.verify(spec, checks)
        if status == "n/a":
            return
        if status == "ok":
            try:
                times[spec] = layer.time_us(spec, checks, quick)
                return
            except Exception as e:  # noqa: BLE001
                status, detail = "raised", f"while timed: {type(e).__name__}: {e}"[:200]
        drop(spec, detail)

    by_name = {info.name: info for info in infos}
    for info in infos:
        for spec in _first_specs(info, m):
            measure(spec)

    def kernel_of(spec):
        return by_name[_split_spec(spec)[0]]

    sweep = [s for s in sorted(times, key=times.get) if "splits" in kernel_of(s).tiles]
    for spec in sweep[:_SPLIT_SWEEPS]:
        for variant in _with_splits(spec, kernel_of(spec), layer.k, layer.bits, layer.layout):
            measure(variant)
    order = sorted(times, key=times.get)
    finals = sorted(((layer.time_us(s, checks, full), s) for s in order[:_FINALISTS]))
    return [(s, us) for us, s in finals] + [(s, times[s]) for s in order[_FINALISTS:]]


def _choose(layer: _Layer, infos, m_lo: int, m: int, quick, full, drop):
    """(ranking at M, winner or None): the fastest spec at M that is also right at every M
    from m_lo on, which its row will cover."""
    ranking = _rank(layer, infos, m, layer.checks(m), quick, full, drop)
    for spec, us in ranking:
        failed = next((status for status in (layer.verify(spec, layer.checks(x))
                                             for x in range(m_lo, m)) if status[0] != "ok"), None)
        if failed is None:
            return ranking, (spec, us)
        drop(spec, failed[1])
    return ranking, None


def _merged(bits: int, shape: LayerShape, winners) -> List[TunedRow]:
    """(m_lo, m_hi, spec) in M order -> rows; neighbours with one winner share a row."""
    rows: List[TunedRow] = []
    for m_lo, m_hi, spec in winners:
        if rows and (rows[-1].spec, rows[-1].m_hi + 1) == (spec, m_lo):
            rows[-1] = rows[-1]._replace(m_hi=m_hi)
        else:
            rows.append(TunedRow(bits, shape.k, shape.n, m_lo, m_hi, spec))
    return rows


def tune(shapes, ms=DEFAULT_MS, *, device, bits=4, group_size=128, act_order=False,
         dtype=torch.float16, progress=True, path=None, budget_s=None) -> TuneResult:
    """Measure every candidate for each layer shape (K, N) and M on `device`, write the winners
    to the table (`path`, else where this process reads tables: table_path, or default_path
    under GPTQ_MI100_TUNE_FILE=none) and install them in this process.

    Rows of other shapes already in a valid table there are kept. Timing uses `dtype`
    activations; every candidate is checked in fp16 and bf16. `budget_s`: no new (shape, M) is
    started after that many seconds (the result lists what was skipped). Progress: a line per
    shape and M on stderr.
    """
    started = time.perf_counter()
    shapes, ms = _layer_shapes(shapes), tuple(ms)
    _check_problem(shapes, ms, bits, group_size)
    ms = sorted(set(ms))
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float16 or torch.bfloat16, got {dtype}")
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda, but this torch sees no CUDA/HIP GPU")
    device = _concrete(device)

    def say(text):
        if progress:
            print(text, file=sys.stderr, flush=True)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    say(f"tune: {len(shapes)} layer shapes x {len(ms)} Ms on {device} ({name}), {bits}-bit, "
        f"group {group_size}{', act-order' if act_order else ''}, {str(dtype)[6:]} timing; "
        f"gptq_mi100 {ops.build_info()}")
    quick, full = timing.Timer(device, **_QUICK), timing.Timer(device, **_FULL)
    rows, measured, dropped, skipped = [], [], [], []
    done = 0
    for shape in shapes:
        layer = _Layer(shape, bits, group_size, act_order, device, dtype)
        infos = _candidate_kernels(device.type, bits, layer.layout)
        winners = []
        for i, m in enumerate(ms):
            done += 1
            if budget_s is not None and time.perf_counter() - started > budget_s:
                skipped.append((shape.k, shape.n, m))
                continue
            t0, dropped_before = time.perf_counter(), len(dropped)

            def drop(spec, reason, m=m):
                dropped.append(Dropped(bits, shape.k, shape.n, m, spec, reason))

            m_lo = ms[i - 1] + 1 if i else 1
            ranking, winner = _choose(layer, infos, m_lo, m, quick, full, drop)
            found = "no candidate passed"
            if winner:
                winners.append((m_lo, m, winner[0]))
                runner = next(((s, us) for s, us in ranking if s != winner[0]), ("", 0.0))
                measured.append(Measured(bits, shape.k, shape.n, m, *winner, *runner,
                                         len(ranking)))
                found = f"{winner[0]} {winner[1]:.2f} us" + (
                    f"; next {runner[0]} {runner[1]:.2f} us" if runner[0] else "")
            say(f"tune [{done}/{len(shapes) * len(ms)}] {bits}-bit {shape.k}x{shape.n}"
                f"{f' ({shape.name})' if shape.name else ''} M={m}: {found} ({len(ranking)} "
                f"timed, {len(dropped) - dropped_before} dropped, "
                f"{time.perf_counter() - t0:.1f} s)")
        rows += _merged(bits, shape, winners)
        del layer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    path = path or table_path(device) or default_path(device)
    settings = dict(bits=bits, group_size=group_size, act_order=bool(act_order),
                    dtype=str(dtype)[6:], ms=list(ms))
    _write(path, device, rows, measured, settings)
    return TuneResult(rows, measured, dropped, skipped, path, time.perf_counter() - started)


def _write(path, device, rows, measured, settings):
    """Write the table (other shapes' rows of a valid table there kept) and install it."""
    tuned = {(r.bits, r.k, r.n) for r in rows}
    try:
        kept = [r for r in _read_rows(path, device) if (r.bits, r.k, r.n) not in tuned]
    except (OSError, ValueError, RecursionError):  # none yet, or one this tune replaces
        kept = []
    with _lock:
        try:
            kernels.set_tuned_table(device.type, kept + rows)
        except ValueError:  # a kept row the registry no longer takes: keep only the new rows
            kept = []
            kernels.set_tuned_table(device.type, rows)
        _applied.add(device.type)
    times = {}
    for r in measured:
        times.setdefault((r.bits, r.k, r.n), {})[r.m] = round(r.us, 3)
    data = {
        "schema": SCHEMA,
        "key": device_key(device),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "last_tune": settings,
        "rows": [dict(r._asdict(), us={str(m): us for m, us in
                                       times.get((r.bits, r.k, r.n), {}).items()
                                       if r.m_lo <= m <= r.m_hi})
                 for r in kept + rows],
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)  # readers never see half a table


def format_table(rows: Sequence[TunedRow], measured: Sequence[Measured] = ()) -> str:
    """One line per row; with `measured`, the winner's time at each measured M of the row."""
    times = {(r.bits, r.k, r.n, r.m): r.us for r in measured}
    lines = [f"{'bits':>4s} {'K':>6s} {'N':>6s} {'M':>9s}  {'kernel spec':40s} us at measured M"]
    for r in rows:
        at = ", ".join(f"M={m}: {times[(r.bits, r.k, r.n, m)]:.2f}"
                       for m in range(r.m_lo, r.m_hi + 1) if (r.bits, r.k, r.n, m) in times)
        lines.append(f"{r.bits:4d} {r.k:6d} {r.n:6d} {f'{r.m_lo}..{r.m_hi}':>9s}  "
                     f"{r.spec:40s} {at}")
    return "\n".join(lines)

"""Build-time choices for setup.py, kept importable without building anything.

The backend follows the installed torch, never a visible GPU: a ROCm torch builds HIP for
gfx908, a CUDA torch builds CUDA when nvcc exists, anything else builds the CPU kernels
only. GPTQ_MI100_BUILD=cpu|cuda|rocm forces a choice (and fails if torch cannot do it).
"""

import os
import shutil

BACKENDS = ("cpu", "cuda", "rocm")
DEFAULT_ROCM_ARCH = "gfx908"
DEFAULT_CUDA_ARCH_LIST = "8.0;9.0"


def choose_backend(torch_version, env=None, nvcc_path=None):
    """Return (backend, reason). torch_version is the `torch.version` module (or any
    object with `hip` and `cuda` attributes); env a mapping like os.environ."""
    env = os.environ if env is None else env
    hip = getattr(torch_version, "hip", None)
    cuda = getattr(torch_version, "cuda", None)
    forced = env.get("GPTQ_MI100_BUILD", "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise ValueError(
                f"GPTQ_MI100_BUILD must be one of {', '.join(BACKENDS)}, got {forced!r}")
        if forced == "rocm" and not hip:
            raise ValueError("GPTQ_MI100_BUILD=rocm needs a ROCm build of torch "
                             f"(torch.version.hip is {hip!r})")
        if forced == "cuda" and not cuda:
            raise ValueError("GPTQ_MI100_BUILD=cuda needs a CUDA build of torch "
                             f"(torch.version.cuda is {cuda!r})")
        return forced, f"forced by GPTQ_MI100_BUILD={forced}"
    if hip:
        return "rocm", f"torch {hip and 'ROCm ' + str(hip)} (torch.version.hip)"
    if cuda:
        if nvcc_path is None:
            nvcc_path = find_nvcc(env)
        if nvcc_path:
            return "cuda", f"torch CUDA {cuda} and nvcc at {nvcc_path}"
        return "cpu", f"torch CUDA {cuda} but no nvcc found: CPU kernels only"
    return "cpu", "CPU-only torch: CPU kernels only"


def find_nvcc(env=None):
    env = os.environ if env is None else env
    for root in (env.get("CUDA_HOME"), env.get("CUDA_PATH")):
        if root and os.path.exists(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    return shutil.which("nvcc")


def read_flags(path):
    """Flags file: one flag per line, '#' comments."""
    if not os.path.exists(path):
        return []
    flags = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                flags.extend(line.split())
    return flags

"""Build gptq_mi100: `pip install --no-build-isolation .` (torch must already be installed:
the extension compiles against that torch, and an isolated build environment has none)."""

import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
import build_config  # noqa: E402


def rel(*parts):
    return os.path.join("csrc", *parts)


def get_extensions():
    import torch
    from torch.utils import cpp_extension

    backend, reason = build_config.choose_backend(torch.version)
    print(f"gptq_mi100: building the {backend} backend ({reason})")
    torch_version = str(torch.__version__)
    with open(os.path.join(ROOT, "gptq_mi100", "_build_info.py"), "w") as f:
        f.write("# Written by setup.py at build time.\n")
        f.write(f"TORCH_VERSION = {torch_version!r}\nBACKEND = {backend!r}\n")

    limited_api = torch.__version__ >= "2.6.0"
    macros = [("GPTQ_MI100_TORCH_VERSION", f'"{torch_version}"'),
              ("GPTQ_MI100_BACKEND", f'"{backend}"')]
    cxx = ["-O3", "-std=c++17"]
    if limited_api:
        cxx.append("-DPy_LIMITED_API=0x03090000")
    host = ["validate.cpp", "kernel_registry.cpp", "introspection.cpp", "prepare.cpp"]
    sources = ([rel("ops_schema.cpp")] + [rel("host", f) for f in host] +
               [rel("cpu", "ops_cpu.cpp")])
    if backend == "cpu":
        ext = cpp_extension.CppExtension(
            "gptq_mi100._C", sources, define_macros=macros,
            extra_compile_args={"cxx": cxx}, py_limited_api=limited_api,
            libraries=["gptq_cpu_c"])
        return [ext], limited_api

    sources += [rel("gpu", "gptq_gpu.cu"), rel("gpu", "gptq_transposed.cu"),
                rel("gpu", "ops_gpu.cpp")]
    macros.append(("GPTQ_MI100_WITH_GPU", "1"))
    if backend == "rocm":
        os.environ.setdefault("PYTORCH_ROCM_ARCH", build_config.DEFAULT_ROCM_ARCH)
        gpu_flags = build_config.read_flags(os.path.join(ROOT, "tools", "hip_flags.txt"))
        gpu_key = "nvcc"  # torch passes the "nvcc" flags to hipcc on ROCm
    else:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", build_config.DEFAULT_CUDA_ARCH_LIST)
        gpu_flags = build_config.read_flags(os.path.join(ROOT, "tools", "nvcc_flags.txt"))
        gpu_key = "nvcc"
    ext = cpp_extension.CUDAExtension(
        "gptq_mi100._C", sources, define_macros=macros,
        extra_compile_args={"cxx": cxx, gpu_key: ["-O3"] + gpu_flags},
        py_limited_api=limited_api, libraries=["gptq_cpu_c"])
    return [ext], limited_api


TORCH_FIRST = """gptq_mi100: torch is not importable in this build environment.
gptq_mi100 compiles against the torch you already run (ROCm, CUDA or CPU build), so:
  1. install torch first (e.g. `pip install torch==2.13.0` for CPU, or your ROCm build),
  2. then `pip install --no-build-isolation .` (plain `pip install .` builds in a fresh,
     isolated environment that has no torch, which is how you got here)."""


def main():
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit(TORCH_FIRST)
    from torch.utils.cpp_extension import BuildExtension

    ext_modules, limited_api = get_extensions()
    options = {"bdist_wheel": {"py_limited_api": "cp39"}} if limited_api else {}
    setup(
        packages=find_packages(include=["gptq_mi100", "gptq_mi100.*"]),
        ext_modules=ext_modules,
        # The C99 kernels build as a static library with C flags, then link into _C.
        libraries=[("gptq_cpu_c", {"sources": [rel("problem_check.c"), rel("cpu", "gptq_cpu.c")],
                                   "cflags": ["-std=c99", "-O3", "-fPIC", "-Wall"]})],
        cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
        options=options,
    )


if __name__ == "__main__":
    main()

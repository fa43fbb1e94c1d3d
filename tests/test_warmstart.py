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


def test_the_default_warm_start_ships_with_the_current_key():
    """Fails when the warm start's key changes without `bench/ship_warmstart.py` being run."""
    import hashlib
    import json
    from dataclasses import asdict

    key = warmstart.cache_key(TinyModelConfig(), warmstart.SFTSettings())
    shipped = warmstart.shipped_path(key)
    assert shipped.exists(), f"no shipped warm start for key {key}: run bench/ship_warmstart.py"
    meta = json.loads(shipped.with_suffix(".json").read_text())
    assert meta["key"] == key
    assert meta["sft"] == asdict(warmstart.SFTSettings())
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == meta["sha256"]  # not an LFS pointer
    state = torch.load(shipped, weights_only=True)
    model = TinyGPT(TinyModelConfig(), len(get_tokenizer()), warmstart.SFTSettings().max_len)
    model.load_state_dict(state)  # every tensor present, with the current shapes


def _fake_shipped(monkeypatch, tmp_path, cfg, sft):
    """A shipped warm start for small settings, in a temporary assets dir."""
    assets = tmp_path / "assets"
    assets.mkdir()
    monkeypatch.setattr(warmstart, "ASSETS", assets)
    monkeypatch.setenv("ARCHER_SWEEP_CACHE", str(tmp_path / "cache"))
    state = TinyGPT(cfg, len(get_tokenizer()), sft.max_len).state_dict()
    torch.save(state, warmstart.shipped_path(warmstart.cache_key(cfg, sft)))
    built = []
    real = warmstart.train_sft
    monkeypatch.setattr(warmstart, "train_sft", lambda c, s: built.append(1) or real(c, s))
    return state, built


def test_a_shipped_warm_start_is_loaded_without_building(monkeypatch, tmp_path):
    cfg = TinyModelConfig(n_layer=1, d_model=16, n_head=2)
    sft = warmstart.SFTSettings(steps=2, batch_size=2, smooth_steps=1, max_len=80)
    state, built = _fake_shipped(monkeypatch, tmp_path, cfg, sft)
    monkeypatch.delenv(warmstart.BUILD_ENV, raising=False)
    got = warmstart.load_or_build(cfg, sft)
    assert built == [] and not (tmp_path / "cache").exists()  # no build, nothing cached
    assert all(torch.equal(got[k], v) for k, v in state.items())


def test_the_build_switch_ignores_the_shipped_file_and_caches_its_own(monkeypatch, tmp_path):
    cfg = TinyModelConfig(n_layer=1, d_model=16, n_head=2)
    sft = warmstart.SFTSettings(steps=2, batch_size=2, smooth_steps=1, max_len=80)
    state, built = _fake_shipped(monkeypatch, tmp_path, cfg, sft)
    monkeypatch.setenv(warmstart.BUILD_ENV, "build")
    got = warmstart.load_or_build(cfg, sft)
    assert built == [1]
    assert len(list((tmp_path / "cache").glob("tiny-warmstart-*.pt"))) == 1
    assert not all(torch.equal(got[k], v) for k, v in state.items())  # trained, not the shipped one
    warmstart.load_or_build(cfg, sft)
    assert built == [1]  # the second call reads its cache

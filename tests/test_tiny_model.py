import torch

from trainable.config import TinyModelConfig
from trainable.tiny_model import TinyGPT, sample


def _model(seed=0):
    torch.manual_seed(seed)
    return TinyGPT(TinyModelConfig(n_layer=2, d_model=32, n_head=2), 64, 40).eval()


def test_cached_generation_matches_full_recompute_logits():
    torch.set_num_threads(1)
    m = _model()
    prompt = torch.randint(3, 64, (4, 5))
    out = m.generate(
        prompt, torch.ones_like(prompt), 12, 1.0, torch.Generator().manual_seed(0), eos_id=1, pad_id=0
    )
    seq = torch.cat([prompt, out], 1)
    full = m.logits(m(seq))
    # rerun the cached path token by token and compare its logits to the full forward
    caches = m._new_cache(4, seq.shape[1])
    mask = torch.ones_like(seq)
    from trainable.tiny_model import _full_mask, _positions

    h = m._hidden(prompt, _positions(mask[:, :5]), _full_mask(mask[:, :5]), caches)
    assert torch.allclose(m.logits(h), full[:, :5], atol=1e-4)
    for t in range(5, seq.shape[1]):
        h = m._hidden(
            seq[:, t : t + 1],
            _positions(mask[:, : t + 1])[:, t : t + 1],
            mask[:, None, None, : t + 1].bool(),
            caches,
            t,
        )
        assert torch.allclose(m.logits(h)[:, 0], full[:, t], atol=1e-4)


def test_left_padding_does_not_change_logits():
    m = _model()
    prompt = torch.randint(3, 64, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), prompt], 1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], 1)
    a = m.logits(m(prompt))
    b = m.logits(m(padded, mask))[:, 3:]
    assert torch.allclose(a, b, atol=1e-5)


def test_generation_is_seeded_and_stops_after_eos():
    m = _model()
    prompt = torch.randint(3, 64, (6, 4))
    gen = lambda s: m.generate(
        prompt, torch.ones_like(prompt), 20, 1.0, torch.Generator().manual_seed(s), eos_id=5, pad_id=0
    )
    a, b = gen(3), gen(3)
    assert torch.equal(a, b)
    for row in a.tolist():
        if 5 in row:
            assert all(t == 0 for t in row[row.index(5) + 1 :])


def test_sample_follows_the_distribution():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1, 0.0]])).repeat(20000, 1)
    draws = sample(logits, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1, 0.0]), atol=0.015)


def test_dropping_finished_rows_keeps_every_token():
    """`compact` drops finished rows from the decode batch; each row's tokens stay the same
    (rows are computed independently, and the batch never shrinks below MIN_BATCH)."""
    torch.set_num_threads(1)
    m = _model()
    prompt = torch.randint(3, 64, (24, 4))
    mask = torch.ones_like(prompt)
    mask[::3, :2] = 0  # left padding too
    for seed in range(4):
        a, b = (
            m.generate(prompt, mask, 36, 1.0, torch.Generator().manual_seed(seed), 5, 0, compact=c)
            for c in (True, False)
        )
        assert torch.equal(a, b)
        ended = (a == 5).any(1)
        assert 4 <= int(ended.sum()) < len(a)  # rows did leave the batch, others ran on

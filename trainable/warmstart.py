"""The tiny backend's warm start: SFT on generated worked solutions, built once, cached.

The cache file lives under `$ARCHER_SWEEP_CACHE` (default `$XDG_CACHE_HOME/archer-sweep/`,
`~/.cache/archer-sweep/` without it),
named by a hash of everything that shapes it (model sizes, SFT settings, vocabulary,
task version), so a changed setting builds a new one. A file lock makes trials that
start together build it once: the first takes the lock and trains (with every core,
since the others only wait), the rest wait and then load the file. The file is
written to a temporary name and renamed, so a half-written cache is never read.

The default sizes' warm start also ships with the package (`trainable/assets/`, built by
`bench/ship_warmstart.py`): it is used before any cache, so a first run skips the build
(~2 min on 2 cores, ~5.5 min on a slow one) and every machine starts its trials from the
same weights (600 SFT steps would otherwise round differently on another CPU).
`ARCHER_SWEEP_WARMSTART=build` ignores it and builds (and caches) as for other sizes.

The last `smooth_steps` use label smoothing: it leaves a little probability on every
token (the gibberish block included). Without it the gibberish tokens have ~no mass
and a strong entropy bonus can only spread over the filler words (ln 500 ≈ 6.2).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from trainable import tasks
from trainable.config import TinyModelConfig
from trainable.progress import StepProgress
from trainable.tiny_model import TinyGPT
from trainable.tokenizer import Tokenizer, get_tokenizer

log = logging.getLogger(__name__)
TASK_VERSION = 3  # bump when tasks.worked_solution or the tokenizer changes
# bump when train_sft computes differently (same settings, other float bits): 2 = the loss
# projects only response positions onto the vocabulary
RECIPE_VERSION = 2


@dataclass(frozen=True)
class SFTSettings:
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 30
    smooth_steps: int = 100
    label_smoothing: float = 0.02
    direct_fraction: float = 0.05
    seed: int = 1234
    max_len: int = 128


def cache_dir() -> Path:
    if os.environ.get("ARCHER_SWEEP_CACHE"):
        return Path(os.environ["ARCHER_SWEEP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "archer-sweep"


ASSETS = Path(__file__).resolve().parent / "assets"
BUILD_ENV = "ARCHER_SWEEP_WARMSTART"


def file_name(key: str) -> str:
    """The warm start's file name, the same in the cache and in the shipped assets."""
    return f"tiny-warmstart-{key}.pt"


def shipped_path(key: str) -> Path:
    return ASSETS / file_name(key)


def model_sizes(model_cfg: TinyModelConfig) -> dict[str, int]:
    """The sizes that shape the warm start (what `cache_key` hashes)."""
    return {k: getattr(model_cfg, k) for k in ("n_layer", "d_model", "n_head")}


def cache_key(model_cfg: TinyModelConfig, sft: SFTSettings) -> str:
    blob = json.dumps(
        {
            "model": model_sizes(model_cfg),
            "sft": asdict(sft),
            "vocab": len(get_tokenizer()),
            "task": TASK_VERSION,
            "recipe": RECIPE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _batch(tok: Tokenizer, problems, rng: random.Random, sft: SFTSettings):
    """Token ids [B, T] and a loss mask over response tokens (EOS included)."""
    seqs, starts = [], []
    for p in rng.choices(problems, k=sft.batch_size):
        prompt = tasks.encode_prompt(tok, p)
        response = tok.encode(tasks.worked_solution(p, rng, tok, sft.direct_fraction))
        seqs.append(prompt + response + [tok.eos_id])
        starts.append(len(prompt))
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), tok.pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T - 1))
    for i, (s, start) in enumerate(zip(seqs, starts)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, start - 1 : len(s) - 1] = 1  # position t predicts token t + 1
    return ids, mask


def sft_loss(model: TinyGPT, ids: torch.Tensor, mask: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean cross-entropy over the response tokens. Only those positions are projected onto
    the ~4k-word vocabulary, as [N, V] rows: projecting every position of [B, V, T] (prompt
    and padding included) took half the step, and a third of it went to copying logits."""
    real = mask.bool()
    hidden = model(ids[:, :-1])[real]
    return F.cross_entropy(model.logits(hidden), ids[:, 1:][real], label_smoothing=smoothing)


def train_sft(model_cfg: TinyModelConfig, sft: SFTSettings) -> dict[str, torch.Tensor]:
    """Run the SFT from scratch; returns the model's state dict."""
    tok = get_tokenizer()
    torch.manual_seed(sft.seed)
    model = TinyGPT(model_cfg, len(tok), sft.max_len)
    opt = torch.optim.AdamW(model.parameters(), lr=sft.lr, weight_decay=0.01)
    train, _ = tasks.split()
    rng = random.Random(sft.seed)
    with StepProgress("warm start SFT", sft.steps, log) as progress:
        for step in range(sft.steps):
            lr_scale = min(1.0, (step + 1) / sft.warmup)
            lr_scale *= 0.5 * (1 + math.cos(math.pi * step / sft.steps)) * 0.9 + 0.1
            for group in opt.param_groups:
                group["lr"] = sft.lr * lr_scale
            ids, mask = _batch(tok, train, rng, sft)
            smoothing = sft.label_smoothing if step >= sft.steps - sft.smooth_steps else 0.0
            loss = sft_loss(model, ids, mask, smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            progress.advance(step + 1, loss=float(loss.detach()))
    return model.state_dict()


def load_or_build(model_cfg: TinyModelConfig, sft: SFTSettings | None = None) -> dict:
    """The warm-start state dict for these sizes: the shipped one, else the cached one, else
    built (once) and cached."""
    sft = sft or SFTSettings()
    key = cache_key(model_cfg, sft)
    shipped = shipped_path(key)
    if os.environ.get(BUILD_ENV) != "build" and shipped.exists():
        log.info("tiny warm start: the shipped one (%s; %s=build builds it here)", shipped.name, BUILD_ENV)
        return torch.load(shipped, weights_only=True)
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(key)
    if path.exists():
        return torch.load(path, weights_only=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another trial may be building it right now
        try:
            if path.exists():
                return torch.load(path, weights_only=True)
            log.info("building the tiny warm start (once) -> %s", path)
            threads = torch.get_num_threads()
            torch.set_num_threads(len(os.sched_getaffinity(0)))  # every core it may: trials wait
            try:
                state = train_sft(model_cfg, sft)
            finally:
                torch.set_num_threads(threads)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(state, tmp)
            os.replace(tmp, path)
            return state
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

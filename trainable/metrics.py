"""Every metric key archer-sweep knows, and their computation from one batch.

The names are verl's / Archer2.0's, so rules written against a real W&B run work
unchanged on the tiny backend. Nothing else in the project spells these strings:
import the constants from here.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence

STEP = "step"

ENTROPY = "actor/entropy"
PG_LOSS = "actor/pg_loss"
KL_LOSS = "actor/kl_loss"
PG_CLIPFRAC = "actor/pg_clipfrac"
PPO_KL = "actor/ppo_kl"
GRAD_NORM = "actor/grad_norm"
LR = "actor/lr"

SCORE_MEAN = "critic/score/mean"
SCORE_MAX = "critic/score/max"
SCORE_MIN = "critic/score/min"
ADV_MEAN = "critic/advantages/mean"

RESP_LEN_MEAN = "response_length/mean"
RESP_LEN_POS = "response_length/pos/mean"
RESP_LEN_NEG = "response_length/neg/mean"
RESP_CLIP_RATIO = "response_length/clip_ratio"

SOLVE_NONE = "batch/solve_none"
SOLVE_ALL = "batch/solve_all"
VALID = "batch/valid"

LOGICAL_CONNECTIVES = "token/logical_connectives"

THROUGHPUT = "perf/throughput"
TIME_GEN = "timing_s/gen"
TIME_UPDATE = "timing_s/update"
TIME_STEP = "timing_s/step"

#: Validation (tiny `data.val_size`, hf `data.val_files`): verl's names, reported only at the steps that
#: validate (sparse: rules skip the reports without them). `val_key` spells the per-source keys
#: `val-core/<data_source>/reward/mean@<n>` (verl's core metric) and `val-aux/…/std@<n>`.
VAL_CORE = "val-core"
VAL_AUX = "val-aux"
TIME_VAL = "timing_s/testing"
#: The tiny backend's outcome: greedy accuracy on held-out prompts of its task (`data.val_size`).
TINY_DATA_SOURCE = "archer-sweep/arithmetic"
TINY_VAL_SCORE = f"{VAL_CORE}/{TINY_DATA_SOURCE}/reward/mean@1"

#: With `search.objective_reduce: best`: the objective's value signed so that larger is better
#: (−inf where a report lacks it), Ray's `checkpoint_score_attribute`: checkpoints are kept
#: by it, so the best step's checkpoint survives `checkpoint.num_to_keep`.
CHECKPOINT_SCORE = "checkpoint/score"

#: The `replay` backend: how far the played recording lies from the trial's own params
#: (normalised, log scale for positive values), and each snapped param under `replay/<key>`.
REPLAY_DISTANCE = "replay/distance"
REPLAY_PREFIX = "replay/"

#: Keys every backend reports on every step (docs/design.md contract).
ALL_KEYS: tuple[str, ...] = (
    ENTROPY,
    PG_LOSS,
    KL_LOSS,
    PG_CLIPFRAC,
    PPO_KL,
    GRAD_NORM,
    LR,
    SCORE_MEAN,
    SCORE_MAX,
    SCORE_MIN,
    ADV_MEAN,
    RESP_LEN_MEAN,
    RESP_LEN_POS,
    RESP_LEN_NEG,
    RESP_CLIP_RATIO,
    SOLVE_NONE,
    SOLVE_ALL,
    VALID,
    LOGICAL_CONNECTIVES,
    THROUGHPUT,
    TIME_GEN,
    TIME_UPDATE,
    TIME_STEP,
    STEP,
)

#: The seed's monitoring table, in the order reports show it.
KEY_METRICS: tuple[str, ...] = (ENTROPY, SCORE_MEAN, RESP_LEN_POS, LOGICAL_CONNECTIVES)

#: verl's share of negative-advantage tokens cut by the dual clip (extra, not in ALL_KEYS).
PG_CLIPFRAC_LOWER = "actor/pg_clipfrac_lower"

#: Extra diagnostics of the tiny backend (not part of the cross-backend contract).
GIBBERISH_FRAC = "tiny/gibberish_frac"

#: Archer2.0's reward manager counts these words (lower-cased, whole words).
CONNECTIVE_WORDS: frozenset[str] = frozenset(
    [
        "alternatively",
        "although",
        "and",
        "because",
        "but",
        "either",
        "even",
        "hence",
        "however",
        "if",
        "just",
        "maybe",
        "nevertheless",
        "neither",
        "nor",
        "only",
        "or",
        "perhaps",
        "possibly",
        "probably",
        "since",
        "so",
        "still",
        "then",
        "therefore",
        "though",
        "thus",
        "while",
        "yet",
    ]
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def count_connectives(text: str) -> int:
    """Number of connective words in one decoded response."""
    return sum(1 for w in _WORD.findall(text.lower()) if w in CONNECTIVE_WORDS)


def _mean(values: Sequence[float]) -> float:
    # No value is reported as NaN, never as 0: an empty positive set is "unknown",
    # and the criteria treat NaN deliberately (see archer_sweep/criteria/rules.py).
    return float(sum(values) / len(values)) if values else math.nan


def batch_metrics(
    scores: Sequence[float],
    response_lengths: Sequence[int],
    group_ids: Sequence[int],
    texts: Sequence[str],
    max_response_length: int,
) -> dict[str, float]:
    """Reward-side metrics of one rollout batch (one entry per response).

    `response_length/pos/mean` averages responses with score > 0 and is NaN when
    no response scored; groups are prompt groups of `rollout.n` samples.
    """
    n = len(scores)
    if not (n == len(response_lengths) == len(group_ids) == len(texts)) or n == 0:
        raise ValueError(
            f"batch_metrics needs equal, non-empty inputs: {n=}, "
            f"{len(response_lengths)=}, {len(group_ids)=}, {len(texts)=}"
        )
    pos = [l for s, l in zip(scores, response_lengths) if s > 0]
    neg = [l for s, l in zip(scores, response_lengths) if s <= 0]
    groups: dict[int, list[float]] = defaultdict(list)
    for g, s in zip(group_ids, scores):
        groups[g].append(s)
    solve_none = sum(1 for v in groups.values() if all(s <= 0 for s in v))
    solve_all = sum(1 for v in groups.values() if all(s > 0 for s in v))
    return {
        SCORE_MEAN: _mean(scores),
        SCORE_MAX: float(max(scores)),
        SCORE_MIN: float(min(scores)),
        RESP_LEN_MEAN: _mean(response_lengths),
        RESP_LEN_POS: _mean(pos),
        RESP_LEN_NEG: _mean(neg),
        RESP_CLIP_RATIO: sum(1 for l in response_lengths if l >= max_response_length) / n,
        SOLVE_NONE: float(solve_none),
        SOLVE_ALL: float(solve_all),
        VALID: float(len(groups) - solve_none - solve_all),
        LOGICAL_CONNECTIVES: _mean([count_connectives(t) for t in texts]),
    }


def val_key(section: str, data_source: str, name: str) -> str:
    """verl's validation key: `<val-core|val-aux>/<data_source>/reward/<name>`."""
    return f"{section}/{data_source}/reward/{name}"


def validation_metrics(scores: Sequence[float], data_sources: Sequence[str], n: int) -> dict[str, float]:
    """Per-data-source validation metrics of `n` responses per prompt (prompt-major scores).

    `mean@n` (val-core) is the mean score over the source's prompts and their `n` responses;
    with n > 1, `std@n` (val-aux) is the mean over prompts of their `n` scores' population std,
    as verl computes both. `data_sources` has one entry per prompt.
    """
    if n < 1 or len(scores) != n * len(data_sources) or not data_sources:
        raise ValueError(
            f"validation_metrics needs n responses per prompt: {len(scores)=} {len(data_sources)=} {n=}"
        )
    by_source: dict[str, list[list[float]]] = defaultdict(list)
    for i, source in enumerate(data_sources):
        by_source[source].append([float(s) for s in scores[i * n : (i + 1) * n]])
    out: dict[str, float] = {}
    for source, groups in by_source.items():
        out[val_key(VAL_CORE, source, f"mean@{n}")] = _mean([s for g in groups for s in g])
        if n > 1:
            stds = [math.sqrt(sum((s - sum(g) / n) ** 2 for s in g) / n) for g in groups]
            out[val_key(VAL_AUX, source, f"std@{n}")] = _mean(stds)
    return out

"""One GRPO step of the tiny backend at its default settings: time, tokens/s, KV-cache speedup.

    .venv/bin/python bench/step.py [--steps 5] [--threads 2] [--set actor.lr=1e-3 ...]
    .venv/bin/python bench/step.py --compare-logprobs [--steps 8]
    .venv/bin/python bench/step.py --compare-baseline [--steps 8]

Prints the mean step time (sampling / update), tokens per second, and the ratio of
sampling time without and with the KV cache on the same model and prompts.
`--compare-logprobs` instead times two trainers of the same config and seed, stepped
in turn in this process (so machine load hits both alike): one with TinyPolicy's fused (buffered)
log-prob and entropy, one with the separate `token_log_probs` +
`entropy_from_logits` it replaced. `--compare-baseline` likewise steps a trainer on the
code before the allocation-free log-probs and the compacting decode loop (kept below as
`BaselinePolicy`) against the current one, checks that every metric but timings is equal
(`==`) at every step, and prints the time ratios with the machine's load.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time

import torch

from trainable import algos, build_trainer, tasks
from trainable import metrics as M
from trainable.backends import grpo_base
from trainable.backends.tiny import TinyPolicy
from trainable.tiny_model import _full_mask, _positions


def parse_sets(pairs: list[str]) -> dict:
    """`a.b=1` strings → nested dict (values parsed as int/float/bool when they look so)."""
    config: dict = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        value: object = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                pass
        if raw in ("true", "false"):
            value = raw == "true"
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config


def kv_speedup(trainer, repeats: int = 1) -> tuple[float, float]:
    """(seconds with cache, seconds without) to sample one default batch, same seed."""
    cfg = trainer.config
    prompts = [tasks.encode_prompt(trainer.tok, p) for p in trainer.train_set[: cfg.data.train_batch_size]]
    rows = torch.tensor([p for p in prompts for _ in range(cfg.rollout.n)])
    trainer.model.eval()
    times = []
    for use_cache in (True, False):
        start = time.perf_counter()
        for _ in range(repeats):
            # eos_id=-1: never stop early, so both paths sample the same number of tokens
            trainer.model.generate(
                rows,
                torch.ones_like(rows),
                cfg.data.max_response_length,
                1.0,
                torch.Generator().manual_seed(0),
                -1,
                trainer.tok.pad_id,
                use_cache=use_cache,
            )
        times.append((time.perf_counter() - start) / repeats)
    return times[0], times[1]


class SeparateLogprobs(TinyPolicy):
    """TinyPolicy.logprobs as it was: autograd through the two separate functions."""

    def logprobs(self, input_ids, attention_mask, n_prompt):
        hidden = self.model(input_ids, attention_mask)[:, n_prompt - 1 : -1]
        real = attention_mask[:, n_prompt:].bool()
        logits = self.model.logits(hidden[real])
        logp, entropy = (hidden.new_zeros(real.shape) for _ in range(2))
        logp[real] = algos.token_log_probs(logits, input_ids[:, n_prompt:][real])
        entropy[real] = algos.entropy_from_logits(logits)
        return logp, entropy


def compare_logprobs(config: dict, steps: int) -> None:
    """Mean ms per step (and its update part) of the fused vs the separate log-prob path."""
    fused, separate = build_trainer(config), build_trainer(config)
    separate.policy = SeparateLogprobs(separate.model, separate.tok)
    separate.ref = SeparateLogprobs(separate.ref.model, separate.tok)
    fused.step(), separate.step()  # warm-up
    rows: dict[str, list[dict]] = {"fused": [], "separate": []}
    for _ in range(steps):
        rows["fused"].append(fused.step())
        rows["separate"].append(separate.step())
    ms = {
        k: {m: 1000 * statistics.mean(r[m] for r in v) for m in (M.TIME_STEP, M.TIME_UPDATE)}
        for k, v in rows.items()
    }
    print(f"log-prob path, threads={torch.get_num_threads()}, mean of {steps} alternating steps:")
    for name, t in ms.items():
        print(f"  {name:8s} step {t[M.TIME_STEP]:6.0f} ms  (update {t[M.TIME_UPDATE]:6.0f} ms)")
    f, s = ms["fused"], ms["separate"]
    print(
        f"  fused/separate: step {f[M.TIME_STEP] / s[M.TIME_STEP]:.2f}x, "
        f"update {f[M.TIME_UPDATE] / s[M.TIME_UPDATE]:.2f}x"
    )


def _baseline_sample(logits, temperature, generator):
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1)
    u = torch.rand(logits.shape[0], 1, generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp(max=logits.shape[-1] - 1)


@torch.no_grad()
def baseline_generate(model, prompt, prompt_mask, max_new_tokens, temperature, generator, eos_id, pad_id):
    """`TinyGPT.generate` as it was: the full batch to the end, a mask cast per step."""
    B, P = prompt.shape
    seq = torch.full((B, P + max_new_tokens), pad_id, dtype=torch.long)
    seq[:, :P] = prompt
    mask = torch.zeros_like(seq)
    mask[:, :P] = prompt_mask
    mask[:, P:] = 1
    pos = _positions(mask)
    caches = model._new_cache(B, P + max_new_tokens)
    finished = torch.zeros(B, dtype=torch.bool)
    hidden = model._hidden(prompt, _positions(prompt_mask), _full_mask(prompt_mask), caches)
    for t in range(P, P + max_new_tokens):
        token = _baseline_sample(model.logits(hidden[:, -1]), temperature, generator)
        seq[:, t] = torch.where(finished, pad_id, token)
        finished |= token == eos_id
        if bool(finished.all()) or t + 1 == P + max_new_tokens:
            return seq[:, P : t + 1]
        step_mask = mask[:, None, None, : t + 1].bool()
        hidden = model._hidden(seq[:, t : t + 1], pos[:, t : t + 1], step_mask, caches, t)
    return seq[:, P:]


class BaselinePolicy(TinyPolicy):
    """TinyPolicy as it was: `baseline_generate`, and fresh [N, V] tensors for the log-probs."""

    def _sample(self, prompt_ids, n, temperature, max_new_tokens, generator):
        prompt, mask = grpo_base.left_pad([p for p in prompt_ids for _ in range(n)], self.pad_id)
        return baseline_generate(
            self.model, prompt, mask, max_new_tokens, temperature, generator, self.eos_id, self.pad_id
        ).tolist()

    def logprobs(self, input_ids, attention_mask, n_prompt):
        hidden = self.model(input_ids, attention_mask)[:, n_prompt - 1 : -1]
        real = attention_mask[:, n_prompt:].bool()
        logits, tokens = self.model.logits(hidden[real]), input_ids[:, n_prompt:][real]
        logp = hidden.new_zeros(real.shape)
        if not self.entropy:
            logp[real] = algos.token_log_probs(logits, tokens)
            return logp, None
        entropy = hidden.new_zeros(real.shape)
        logp[real], entropy[real] = algos.log_probs_and_entropy(logits, tokens)
        return logp, entropy


def compare_baseline(config: dict, steps: int) -> None:
    """Step the current and the baseline trainer in turn; metrics must be equal, step for step."""
    current, baseline = build_trainer(config), build_trainer(config)
    baseline.policy = BaselinePolicy(baseline.model, baseline.tok)
    baseline.ref = BaselinePolicy(baseline.ref.model, baseline.tok, entropy=False)
    timed = lambda k: k.startswith(("timing_s/", "perf/"))
    rows: dict[str, list[dict]] = {"current": [], "baseline": []}
    for i in range(steps + 1):  # the first is a warm-up, checked but not timed
        for name, trainer in (("current", current), ("baseline", baseline)):
            cpu = time.process_time()
            out = trainer.step()
            rows[name].append(out | {"cpu": time.process_time() - cpu})
        a, b = (rows[k][-1] for k in rows)
        same = lambda x, y: x == y or (math.isnan(x) and math.isnan(y))
        diff = [k for k in a if not timed(k) and k != "cpu" and not same(a[k], b[k])]
        if diff:
            raise SystemExit(f"step {i + 1}: metrics differ from the baseline: {diff}")
    keys = {"step": M.TIME_STEP, "sampling": M.TIME_GEN, "update": M.TIME_UPDATE, "cpu": "cpu"}
    ms = {
        k: {n: 1000 * statistics.mean(r[m] for r in v[1:]) for n, m in keys.items()} for k, v in rows.items()
    }
    print(
        f"current vs baseline, threads={torch.get_num_threads()}, {steps + 1} alternating steps each, "
        f"every metric equal; mean ms of the last {steps} (load avg {os.getloadavg()[0]:.1f}):"
    )
    for name, t in ms.items():
        print(f"  {name:8s} " + "  ".join(f"{n} {v:6.0f}" for n, v in t.items()))
    c, b = ms["current"], ms["baseline"]
    print("  current/baseline: " + ", ".join(f"{n} {c[n] / b[n]:.2f}x" for n in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="trainer.threads override")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--compare-logprobs", action="store_true", help="fused vs separate log-prob path")
    parser.add_argument(
        "--compare-baseline", action="store_true", help="current vs baseline code, equal metrics"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = parse_sets(args.sets)
    if args.threads:
        config.setdefault("trainer", {})["threads"] = args.threads
    if args.compare_logprobs:
        return compare_logprobs(config, args.steps)
    if args.compare_baseline:
        return compare_baseline(config, args.steps)
    trainer = build_trainer(config)  # builds the warm start first if it is not cached
    trainer.step()  # warm-up (allocations, lazy init)
    rows = [trainer.step() for _ in range(args.steps)]
    mean = lambda k: statistics.mean(r[k] for r in rows)
    cfg = trainer.config
    print(
        f"tiny GRPO step at defaults ({cfg.data.train_batch_size} prompts x {cfg.rollout.n} "
        f"samples, <= {cfg.data.max_response_length} tokens, {cfg.model.n_layer} layers "
        f"d={cfg.model.d_model}, threads={torch.get_num_threads()}), mean of {args.steps}:"
    )
    print(
        f"  step {mean(M.TIME_STEP):.2f} s  (sampling {mean(M.TIME_GEN):.2f} s, "
        f"update {mean(M.TIME_UPDATE):.2f} s)"
    )
    print(f"  throughput {mean(M.THROUGHPUT):.0f} tokens/s, mean response {mean(M.RESP_LEN_MEAN):.1f} tokens")
    cached, full = kv_speedup(trainer)
    print(
        f"  sampling {cfg.data.train_batch_size * cfg.rollout.n} x "
        f"{cfg.data.max_response_length} tokens: KV cache {cached:.2f} s, recompute "
        f"{full:.2f} s -> speedup {full / cached:.1f}x"
    )


if __name__ == "__main__":
    main()

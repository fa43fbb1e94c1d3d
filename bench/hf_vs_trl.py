"""Step time of the hf backend against TRL's GRPOTrainer, side by side in one run.

Both train the same tiny Qwen3 (built from a config, saved once to a temp dir so
both load identical weights, TRL's reference model included) on the same task
prompts, group size, response length, learning rate, KL weight and clip, with one
optimizer step per generation batch, and the same reward function. Each runs
`--steps` steps; the first is warm-up; the reported time is the median of the rest.

    .venv/bin/python bench/hf_vs_trl.py [--steps 5] [--prompts 4] [--group 4] [--length 32]

Prints one line per trainer and `ratio hf/trl = X` (goal ≤ 1.0). By default both
use HF generate + torch AdamW on whatever device is present, an apples-to-apples
comparison; `--engines auto` lets the hf backend pick vLLM/DeepSpeed on a GPU.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no downloads: everything is built here
os.environ.setdefault("WANDB_MODE", "disabled")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from trainable import metrics as M
from trainable import rewards, tasks
from trainable.backends import hf
from trainable.config import HFGRPOConfig
from trainable.trainer import build_trainer

log = logging.getLogger("bench")
KL_COEF, CLIP, LR = 0.01, 0.2, 1e-5


def save_tiny_model(directory: str, seed: int) -> None:
    cfg = HFGRPOConfig.model_validate({"backend": "hf", "trainer": {"seed": seed}})
    model, tok = hf.load_model_and_tokenizer(cfg)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)


def run_ours(model_dir: str, a) -> list[float]:
    trainer = build_trainer(
        {
            "backend": "hf",
            "model": {
                "path": model_dir,
                "rollout_engine": "hf" if a.engines == "plain" else "auto",
                "update_engine": "torch" if a.engines == "plain" else "auto",
            },
            "data": {"train_batch_size": a.prompts, "max_response_length": a.length, "max_prompt_length": 16},
            "rollout": {"n": a.group, "temperature": 1.0},
            "actor": {"ppo_mini_batch_size": a.prompts, "ppo_epochs": 1, "lr": LR},
            "algorithm": {
                "kl_loss_coef": KL_COEF,
                "entropy_coeff": 0.0,
                "clip_ratio_low": CLIP,
                "clip_ratio_high": CLIP,
                "loss_agg_mode": "token-mean",
            },
            "trainer": {"total_steps": a.steps, "seed": a.seed, "threads": a.threads},
        }
    )
    times, lengths = [], []
    try:
        for _ in range(a.steps):
            t0 = time.perf_counter()
            lengths.append(trainer.step()[M.RESP_LEN_MEAN])
            times.append(time.perf_counter() - t0)
    finally:
        trainer.close()
    return times, statistics.mean(lengths)


def run_trl(model_dir: str, a) -> list[float]:
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    train, _ = tasks.split(hf.SPLIT_SEED)
    data = Dataset.from_dict(
        {"prompt": [f"{tok.bos_token} {p.prompt}" for p in train], "answer": [p.answer for p in train]}
    )

    def reward(prompts, completions, answer, **_):
        return [rewards.score(c, int(x)) for c, x in zip(completions, answer)]

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_train_begin(self, *args, **kwargs):
            self.marks.append(time.perf_counter())

        def on_step_end(self, *args, **kwargs):
            self.marks.append(time.perf_counter())

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out,
            max_steps=a.steps,
            per_device_train_batch_size=a.prompts * a.group,
            num_generations=a.group,
            gradient_accumulation_steps=1,
            steps_per_generation=1,
            num_iterations=1,
            max_completion_length=a.length,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            learning_rate=LR,
            lr_scheduler_type="constant",
            warmup_steps=0,
            beta=KL_COEF,
            epsilon=CLIP,
            loss_type="bnpo",
            max_grad_norm=1.0,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            seed=a.seed,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            fp16=False,
            dataloader_num_workers=0,
        )
        trainer = GRPOTrainer(
            model=model_dir,
            reward_funcs=reward,
            args=args,
            train_dataset=data,
            processing_class=tok,
            callbacks=[clock],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every step's log dict
        trainer.train()
        lengths = [
            h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h
        ]
    return [b - a_ for a_, b in zip(clock.marks, clock.marks[1:])], statistics.mean(lengths)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engines", choices=["plain", "auto"], default="plain")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"device={device} threads={a.threads} prompts={a.prompts} group={a.group} "
        f"response_length={a.length} steps={a.steps} (first is warm-up)"
    )
    with tempfile.TemporaryDirectory(prefix="archer-bench-") as model_dir:
        save_tiny_model(model_dir, a.seed)
        results = {}
        for name, fn in (("archer-sweep hf", run_ours), ("trl GRPOTrainer", run_trl)):
            times, length = fn(model_dir, a)
            steady = times[1:] or times
            results[name] = statistics.median(steady)
            print(
                f"{name:18s} median step {results[name]:.3f} s  mean response {length:.1f} "
                f"tokens  (all steps: {', '.join(f'{t:.3f}' for t in times)})"
            )
    ours, trl = results.values()
    print(f"ratio hf/trl = {ours / trl:.3f}  (goal <= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

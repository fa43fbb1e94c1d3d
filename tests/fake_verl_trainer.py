"""A stand-in for `python -m verl.trainer.main_ppo`: Hydra-style `key=value` arguments in,
verl-style metric logs out, for tests of the `command` backend. Standard library only.

Metrics come from its own seeded simulation, not from formulas of the hyperparameters:
a softmax policy over a 2048-token vocabulary (a few "answer" tokens, a block of
"reasoning" tokens, the rest gibberish) is trained by sampled policy gradients on
reward + entropy_coeff·H − kl_loss_coef·KL(π‖π_ref). A large entropy_coeff drives it
towards the uniform (gibberish) policy, so `actor/entropy` crosses the seed's 7-nat line.

Arguments it reads (all optional): the verl keys `actor_rollout_ref.actor.entropy_coeff`,
`actor_rollout_ref.actor.kl_loss_coef`, `trainer.total_training_steps`,
`trainer.experiment_name`, `trainer.default_local_dir`, `trainer.resume_mode`,
`trainer.save_freq` (its own checkpoint: the last step, every N steps), and
`fake.*`: `format` (console | jsonl | both), `crash_at`, `hang_at` (step), `children`
(sleeping child processes; one leaves the process group, one ignores SIGTERM),
`step_s` (seconds per step), `noise` (interleave log noise, Ray prefixes, split lines),
`seed`, `record` (write argv and secret presence to <output dir>/fake_record.json),
`start_s` (seconds of start-up before the first step, also after a resume), `jsonl_mode`
(`append`, default, or `wb`: like verl, open the JSONL file once with mode wb when training
starts), `shm` (create that many /dev/shm segments held open, an unheld `sem.mp-*` and a file in
$TMPDIR, all left behind).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time

V, ANSWER, REASON = 2048, 8, 120  # tokens 0..7 answer, 8..127 reasoning, rest gibberish
ETA, ENTROPY_SCALE = 0.3, 60.0  # logit step size; per-token entropy summed over a response


def parse_args(argv: list[str]) -> dict[str, str]:
    out = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if sep:
            out[key.lstrip("+~")] = value.strip("'")
    return out


def softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(x - m) for x in z]
    s = sum(e)
    return [x / s for x in e]


def ref_logits() -> list[float]:
    return [1.0 if i < ANSWER else 3.0 if i < ANSWER + REASON else -1.0 for i in range(V)]


class Policy:
    def __init__(self, seed: int, entropy_coeff: float, kl_coef: float):
        self.rng = random.Random(seed)
        self.z = ref_logits()
        self.ref = softmax(self.z)
        self.beta, self.kl_coef = entropy_coeff * ENTROPY_SCALE, kl_coef

    def step(self) -> dict[str, float]:
        p = softmax(self.z)
        samples = self.rng.choices(range(V), weights=p, k=256)
        rewards = [1.0 if t < ANSWER else 0.0 for t in samples]
        mean_r = sum(rewards) / len(rewards)
        grad = [0.0] * V
        for t, r in zip(samples, rewards):  # REINFORCE with a mean baseline
            grad[t] += (r - mean_r) / len(samples)
        ent = -sum(q * math.log(q) for q in p if q > 0)
        kl = sum(q * math.log(q / r) for q, r in zip(p, self.ref) if q > 0)
        for i, q in enumerate(p):
            grad[i] += self.beta * -q * (math.log(q) + ent)
            grad[i] -= self.kl_coef * q * (math.log(q / self.ref[i]) - kl)
        self.z = [z + ETA * g * V / 16 for z, g in zip(self.z, grad)]
        reason = sum(p[ANSWER : ANSWER + REASON])
        return {
            "actor/entropy": ent,
            "actor/kl_loss": kl,
            "actor/pg_loss": -mean_r,
            "critic/score/mean": mean_r,
            "critic/score/max": max(rewards),
            "critic/score/min": min(rewards),
            "response_length/pos/mean": 12.0 + 400.0 * reason,
            "response_length/mean": 12.0 + 300.0 * reason,
            "token/logical_connectives": 0.25 * reason,
            "batch/solve_none": float(sum(1 for i in range(0, 256, 16) if not any(rewards[i : i + 16]))),
            "timing_s/update_actor": 0.01,
            "fake/only_here": 1.0,
        }


def console_line(step: int, metrics: dict[str, float]) -> str:
    return " - ".join([f"step:{step}", *(f"{k}:{v:.3f}" for k, v in metrics.items())])


def spawn_children(count: int) -> None:
    code = {
        0: "import time; time.sleep(600)",
        1: "import os, time; os.setpgrp(); time.sleep(600)",
        2: "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
    }
    for i in range(count):
        subprocess.Popen([sys.executable, "-c", code[i % 3]])


def leave_shm(count: int, tag: str = "") -> list:
    """Like vLLM / Python shared memory: segments in /dev/shm never unlinked, held open.

    `tag` goes into the names so that a test sees only its own under pytest-xdist."""
    held = []
    for i in range(count):
        f = open(f"/dev/shm/psm_fake_{tag}{os.getpid()}_{i}", "wb")
        f.write(b"x" * 4096)
        f.flush()
        held.append(f)
    if count:  # like a multiprocessing semaphore a verl run leaks: created, closed, never unlinked
        with open(f"/dev/shm/sem.mp-fake{tag}{os.getpid()}", "wb") as f:
            f.write(b"s" * 32)
    if count and os.environ.get("TMPDIR"):
        with open(os.path.join(os.environ["TMPDIR"], "rl-colocate-zmq-01000000.sock"), "w") as f:
            f.write("")
    return held


def emit(text: str, noise: bool, rng: random.Random) -> None:
    if noise:
        print(f"(WorkerDict pid={os.getpid()}) INFO loading shard {rng.randint(0, 9)} step:x", flush=True)
        text = f"\x1b[36m(TaskRunner pid={os.getpid()})\x1b[0m {text}"
        cut = len(text) // 2  # a line written in two pieces
        sys.stdout.write(text[:cut])
        sys.stdout.flush()
        time.sleep(0.01)
        sys.stdout.write(text[cut:] + "\n")
        sys.stdout.flush()
        print("Training Progress:  40%|####      | 2/5 [00:01<00:01]", flush=True)
    else:
        print(text, flush=True)


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    fmt = a.get("fake.format", "console")
    total = int(a.get("trainer.total_training_steps", 10))
    out_dir = a.get("trainer.default_local_dir", ".")
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(int(a.get("fake.seed", 0)))
    policy = Policy(
        int(a.get("fake.seed", 0)),
        float(a.get("actor_rollout_ref.actor.entropy_coeff", 0.001)),
        float(a.get("actor_rollout_ref.actor.kl_loss_coef", 0.001)),
    )
    if a.get("fake.record"):
        with open(os.path.join(out_dir, "fake_record.json"), "w") as f:
            json.dump(
                {
                    "argv": argv,
                    "pid": os.getpid(),
                    "sid": os.getsid(0),
                    "has_wandb_key": bool(os.environ.get("WANDB_API_KEY")),
                    "ray_address": os.environ.get("RAY_ADDRESS"),
                    "tmpdir": os.environ.get("TMPDIR"),
                    "tag": os.environ.get("ARCHER_SWEEP_TRIAL_TAG"),
                },
                f,
            )
    spawn_children(int(a.get("fake.children", 0)))
    held = leave_shm(int(a.get("fake.shm", 0)), a.get("fake.shm_tag", ""))
    start = 0
    ckpt = os.path.join(out_dir, "latest_step.txt")
    if a.get("trainer.resume_mode") == "auto" and os.path.exists(ckpt):
        start = int(open(ckpt).read())
        for _ in range(start):
            policy.step()
    print(f"experiment {a.get('trainer.experiment_name')} starting at step {start}", flush=True)
    noise = a.get("fake.noise", "false").lower() == "true"
    jsonl = os.environ.get("VERL_FILE_LOGGER_PATH")
    time.sleep(float(a.get("fake.start_s", 0)))
    sink = open(jsonl, "wb") if jsonl and a.get("fake.jsonl_mode") == "wb" else None
    for step in range(start + 1, total + 1):
        time.sleep(float(a.get("fake.step_s", 0.02)))
        if step == int(a.get("fake.hang_at", -1)):
            print("waiting for rollout workers...", flush=True)
            time.sleep(3600)
        if step == int(a.get("fake.crash_at", -1)):
            print(
                'Traceback (most recent call last):\n  File "main_ppo.py", line 1\n'
                "torch.OutOfMemoryError: CUDA out of memory (fake)\n\n"
                "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
                flush=True,
            )
            return 3
        metrics = policy.step()
        if step % int(a.get("trainer.save_freq", 1)) == 0:  # verl saves before it logs the step
            os.makedirs(os.path.join(out_dir, f"global_step_{step}"), exist_ok=True)
            with open(os.path.join(out_dir, f"global_step_{step}", "model.bin"), "w") as f:
                f.write(f"weights of step {step}")
        if fmt in ("console", "both"):
            emit(console_line(step, metrics), noise, rng)
        if fmt in ("jsonl", "both") and sink is not None:
            sink.write((json.dumps({"step": step, "data": metrics}) + "\n").encode())
            sink.flush()
        elif fmt in ("jsonl", "both") and jsonl:
            with open(jsonl, "a") as f:
                f.write(json.dumps({"step": step, "data": metrics}) + "\n")
        if step % int(a.get("trainer.save_freq", 1)) == 0:
            with open(ckpt, "w") as f:
                f.write(str(step))
    print("training finished", flush=True)
    del held
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main(sys.argv[1:]))

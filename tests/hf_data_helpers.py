"""Small verl-layout parquet files and a saved tiny Qwen3 checkpoint, built by the tests themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: A chat template the task's word-level vocabulary can tokenize (every word is in it).
CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }} {% endfor %}"


def task_rows(n: int, source: str = "archer-sweep/arithmetic") -> list[dict[str, Any]]:
    """`n` rows of the arithmetic task in verl's layout (ground truth as a string, as verl writes it)."""
    from trainable import tasks

    problems = tasks.split(0)[0][:n]
    return [
        {
            "data_source": source,
            "prompt": [{"role": "user", "content": p.prompt}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": str(p.answer)},
            "extra_info": {"split": "train", "index": i},
        }
        for i, p in enumerate(problems)
    ]


def write_parquet(path: Path, rows: list[dict[str, Any]], schema=None) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema) if rows or schema is None else schema.empty_table()
    pq.write_table(table, path)
    return str(path)


def save_checkpoint(directory: Path, seed: int = 0, config: dict[str, Any] | None = None) -> str:
    """save_pretrained of a tiny random Qwen3 (`config` overrides `hf.TINY_QWEN3`) and the task
    tokenizer (with `CHAT_TEMPLATE`)."""
    from transformers import AutoTokenizer

    from trainable.trainer import build_trainer

    # Plain engines: building the model must not start vLLM or DeepSpeed on a GPU machine.
    model = {"config": config or {}, "rollout_engine": "hf", "update_engine": "torch"}
    src = build_trainer({"backend": "hf", "model": model, "trainer": {"total_steps": 1, "seed": seed}})
    src.model.save_pretrained(directory)
    src.tok.save_pretrained(directory)
    tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    tok.chat_template = CHAT_TEMPLATE  # on a reloaded copy: the task tokenizer is cached
    tok.save_pretrained(directory)
    return str(directory)

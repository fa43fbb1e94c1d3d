"""Build what the CPU-verl kit trains, locally (no download): a random-init tiny Qwen3 with a
ChatML byte-level BPE tokenizer trained here, and GSM8K-style parquet files in verl's layout.

    .venv-verl/bin/python scripts/verl_cpu/make_tiny_qwen3.py OUT_DIR [--rows 16]

writes OUT_DIR/model (config, weights, tokenizer, chat template) and OUT_DIR/{train,test}.parquet
(`data_source='openai/gsm8k'`, so verl's own GSM8K reward scores `#### N` answers). Same files
for the same arguments (seeded); runs in the kit's venv (transformers, tokenizers, pandas).
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

log = logging.getLogger("make_tiny_qwen3")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SUFFIX = ' Let\'s think step by step and output the final answer after "####".'
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MODEL = {  # ~100k parameters: start-up and steps are bound by verl, not by the model
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
    # peaked logits (entropy ≈ 3.5 of ln 378 ≈ 5.9 nats): a large entropy_coeff visibly raises it
    "initializer_range": 0.3,
}


def problems(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        out.append((f"Tom has {a} apples and buys {b} more. How many apples does he have?", a + b))
    return out


def build_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    tok.chat_template = CHATML
    return tok


def rows(items: list[tuple[str, int]], split: str) -> list[dict]:
    return [
        {
            "data_source": "openai/gsm8k",
            "prompt": [{"role": "user", "content": q + SUFFIX}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": str(answer)},
            "extra_info": {"split": split, "index": i},
        }
        for i, (q, answer) in enumerate(items)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import pandas as pd
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    train, test = problems(args.rows, args.seed), problems(max(args.rows // 2, 1), args.seed + 1)
    corpus = [f"{q} #### {a}" for q, a in train + test] + [
        "Let's think step by step. The answer is #### 0123456789"
    ]
    tok = build_tokenizer(corpus * 4)
    torch.manual_seed(args.seed)
    config = Qwen3Config(
        vocab_size=len(tok),
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        torch_dtype="float32",
        **MODEL,
    )
    model_dir = args.out / "model"
    Qwen3ForCausalLM(config).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows(train, "train")).to_parquet(args.out / "train.parquet")
    pd.DataFrame(rows(test, "test")).to_parquet(args.out / "test.parquet")
    log.info("tiny Qwen3 (%d tokens) and %d/%d rows in %s", len(tok), len(train), len(test), args.out)


if __name__ == "__main__":
    main()

"""A Hugging Face tokenizer built locally (no downloads) for hf-backend tests and benches.

It is the tiny task's word-level vocabulary (numbers 0–199, `คำตอบ:`, the connective
words, filler and gibberish symbols; `trainable.tokenizer`) wrapped as a
`tokenizers` WordLevel model in `PreTrainedTokenizerFast`, so a Qwen3 model built
from a config reads and writes the same task text as the tiny backend, and the
reward and connective metrics see the same words. `save_pretrained` gives a
directory that transformers, TRL and vLLM load like any other tokenizer.
"""

from __future__ import annotations

import functools

from trainable.tokenizer import BOS, EOS, PAD, UNK, get_tokenizer


@functools.lru_cache(maxsize=1)
def build_task_tokenizer():
    """`PreTrainedTokenizerFast` over the tiny task vocabulary (left padding, for generation)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(get_tokenizer().vocab)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Words come back joined by single spaces, as the tiny tokenizer's decode does.
    core.decoder = decoders.WordPiece(prefix="\0", cleanup=False)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, padding_side="left"
    )
    tok.model_max_length = 1 << 20
    return tok

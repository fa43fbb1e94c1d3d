import random

import pytest

from trainable import rewards, tasks
from trainable.metrics import count_connectives
from trainable.tokenizer import ANSWER, get_tokenizer


def test_split_is_seeded_disjoint_and_complete():
    train, val = tasks.split(0)
    assert len(train) + len(val) == len(tasks.all_problems()) == 750
    assert not set(train) & set(val)
    assert tasks.split(0) == (train, val)
    assert tasks.split(1)[0] != train


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        tasks.split(0, val_fraction=1.5)


def test_worked_solutions_reason_at_length_and_score_1():
    tok = get_tokenizer()
    rng = random.Random(0)
    train, _ = tasks.split(0)
    sols = [(p, tasks.worked_solution(p, rng, tok, direct_fraction=0.0)) for p in train[:100]]
    for p, text in sols:
        ids = tok.encode(text)
        assert tok.unk_id not in ids
        assert len(ids) >= 50
        assert count_connectives(text) >= 1
        assert rewards.score(text, p.answer) == 1.0
    assert len({text for _, text in sols}) == 100  # natural variation


def test_direct_answers_are_short():
    tok = get_tokenizer()
    p = tasks.Problem(12, 3, 4)
    text = tasks.worked_solution(p, random.Random(0), tok, direct_fraction=1.0)
    assert text == f"{ANSWER} 24"


def test_prompt_encoding():
    tok = get_tokenizer()
    ids = tasks.encode_prompt(tok, tasks.Problem(12, 3, 4))
    assert ids[0] == tok.bos_id and tok.decode(ids) == "12 + 3 * 4 ="

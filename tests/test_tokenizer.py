import math

from trainable.metrics import CONNECTIVE_WORDS
from trainable.tokenizer import ANSWER, VOCAB_SIZE, get_tokenizer


def test_vocabulary_size_and_entropy_scale():
    tok = get_tokenizer()
    assert len(tok) == VOCAB_SIZE == 4096
    assert abs(math.log(len(tok)) - 8.32) < 0.01
    assert tok.n_gibberish >= 2500
    assert len(tok.filler) == 500


def test_round_trip_keeps_answer_format_and_connectives():
    tok = get_tokenizer()
    text = f"first we compute 3 * 4 = 12 so therefore {ANSWER} 42"
    assert tok.decode(tok.encode(text)) == text
    assert all(w in tok.index for w in CONNECTIVE_WORDS)


def test_decode_drops_specials_and_unknown_words_map_to_unk():
    tok = get_tokenizer()
    ids = [tok.bos_id, *tok.encode("7 + 3"), tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "7 + 3"
    assert tok.encode("zzzqqq") == [tok.unk_id]


def test_gibberish_block_is_the_tail_and_has_no_spaces():
    tok = get_tokenizer()
    assert not tok.is_gibberish(tok.index["therefore"])
    assert all(tok.is_gibberish(i) for i in range(tok.gibberish_start, len(tok)))
    assert all(len(tok.vocab[i].split()) == 1 for i in range(tok.gibberish_start, len(tok)))

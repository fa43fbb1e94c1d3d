import math

from trainable import metrics as M


def test_all_keys_unique_and_include_step():
    assert len(set(M.ALL_KEYS)) == len(M.ALL_KEYS)
    assert M.STEP in M.ALL_KEYS


def test_connectives_lowercase_whole_words():
    assert M.count_connectives("So if A, then B; THEREFORE C. Sofa ifs") == 4


def test_batch_metrics_groups_and_pos_len():
    m = M.batch_metrics(
        scores=[1, 0, 0, 0, 1, 1],
        response_lengths=[10, 20, 30, 40, 50, 96],
        group_ids=[0, 0, 1, 1, 2, 2],
        texts=["and"] * 6,
        max_response_length=96,
    )
    assert m[M.VALID] == 1 and m[M.SOLVE_NONE] == 1 and m[M.SOLVE_ALL] == 1
    assert m[M.RESP_LEN_POS] == (10 + 50 + 96) / 3
    assert m[M.RESP_CLIP_RATIO] == 1 / 6
    assert m[M.LOGICAL_CONNECTIVES] == 1


def test_pos_len_is_nan_when_nothing_correct():
    m = M.batch_metrics([0, 0], [5, 6], [0, 0], ["", ""], 96)
    assert math.isnan(m[M.RESP_LEN_POS])

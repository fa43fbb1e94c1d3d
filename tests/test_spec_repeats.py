"""`search.repeats`: the exact one-line messages of its keys, and what a valid one means."""

import pytest

from archer_sweep.spec.load import SpecError, load_spec
from tests.spec_helpers import edit, write


def _with(repeats: str) -> str:
    return edit({10: f"  num_samples: 8\n  repeats: {repeats}"})


@pytest.mark.parametrize(
    "repeats, message",
    [
        ("0", "s.yaml:11: search.repeats.count: 0 is out of range (expected a value >= 1)"),
        ("{count: 0}", "s.yaml:11: search.repeats.count: 0 is out of range (expected a value >= 1)"),
        (
            "{count: 3, quorum: 4}",
            "s.yaml:11: search.repeats.quorum: 4 is more than the 3 seeds of search.repeats.count "
            "(expected at most 3)",
        ),
        (
            "{count: 3, quorum: 0}",
            "s.yaml:11: search.repeats.quorum: 0 is out of range (expected a value >= 1)",
        ),
        (
            "{count: 3, quorm: 2}",
            "s.yaml:11: search.repeats.quorm: unknown key; did you mean `quorum`? "
            "(expected one of count, quorum, stop_siblings)",
        ),
        (
            "{count: 3, stop_sibling: false}",
            "s.yaml:11: search.repeats.stop_sibling: unknown key; did you mean `stop_siblings`? "
            "(expected one of count, quorum, stop_siblings)",
        ),
        (
            "{count: 3, stop_siblings: maybe}",
            "s.yaml:11: search.repeats.stop_siblings: got 'maybe' (expected true or false)",
        ),
        ("three", "s.yaml:11: search.repeats: got 'three' (expected a mapping)"),
        (
            "{quorum: 2}",
            "s.yaml:11: search.repeats.count: missing (expected `count`: Seeds per proposed config: "
            "trainer.seed, trainer.seed + 1, … (one Optuna trial per config))",
        ),
    ],
)
def test_repeats_messages(tmp_path, repeats, message):
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, _with(repeats)))
    assert str(exc.value) == f"{tmp_path}/{message}"


def test_unknown_search_key_names_repeats(tmp_path):
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, edit({10: "  num_samples: 8\n  repeat: 3"})))
    assert str(exc.value).startswith(
        f"{tmp_path}/s.yaml:11: search.repeat: unknown key; did you mean `repeats`?"
    )


def test_a_searched_seed_is_refused_with_repeats(tmp_path):
    text = edit({10: "  num_samples: 8\n  repeats: 3", 15: "    trainer.seed: {type: int, low: 0, high: 4}"})
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, text))
    assert str(exc.value) == (
        f"{tmp_path}/s.yaml:16: search.space.trainer.seed: searched while search.repeats sets each trial's "
        "seed (expected trainer.seed out of the space, or no search.repeats)"
    )


def test_a_count_alone_is_all_seeds_healthy_and_sibling_stops(tmp_path):
    spec = load_spec(write(tmp_path, _with("3")))
    r = spec.search.repeats
    assert (r.count, r.quorum, r.needed, r.stop_siblings, spec.search.seeds) == (3, None, 3, True, 3)
    spec = load_spec(write(tmp_path, _with("{count: 3, quorum: 2, stop_siblings: false}")))
    assert (spec.search.repeats.needed, spec.search.repeats.stop_siblings) == (2, False)
    assert load_spec(write(tmp_path, edit())).search.seeds == 1

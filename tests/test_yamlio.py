import pytest

from archer_sweep.errors import SpecError
from archer_sweep.spec.yamlio import MAX_NODES, load_yaml, parse_yaml


def test_lines_of_nested_keys_and_items():
    data, lines = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\n", "f")
    assert data == {"a": {"b": 1, "c": ["x", {"d": 2}]}}
    assert lines.locate(("a", "b")) == ("f", 2)
    assert lines.locate(("a", "c", 1, "d")) == ("f", 5)
    assert lines.locate(("a", "zzz")) == ("f", 1)  # absent: nearest ancestor


def test_anchors_and_merge_keys_are_plain_data():
    text = "base: &b {x: 1, y: 2}\nrun:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n"
    data, lines = parse_yaml(text, "f")
    assert data["run"] == {"x": 1, "y": 3}  # explicit keys win over merged ones
    assert data["list"] == [{"x": 1, "y": 2}, {"x": 1, "y": 2}]
    assert lines.locate(("run", "y"))[1] == 4


def test_yaml_12_floats_and_bom():
    data, _ = parse_yaml("\ufeffa: 1e-4\nb: 1.0e-4\nc: -2E+3\nd: 1e\n", "f")
    assert data == {"a": 1e-4, "b": 1e-4, "c": -2000.0, "d": "1e"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\na: 2\n", "f:2: a: duplicate key (first at line 1) (expected each key once per mapping)"),
        (
            "a: !!set {x}\n",
            "f:1: YAML error: unsupported tag 'tag:yaml.org,2002:set' (expected plain values without tags)",
        ),
        (
            "a: !!python/name:os.system x\n",
            "f:1: YAML error: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/name:os.system' (expected plain values without tags)",
        ),
        ("1: x\n", "f:1: 1: key '1' is not a name (expected a string key; quote it as \"1\")"),
        ("a: [" * 70 + "]" * 70 + "\n", "f:1: nesting deeper than 64 levels (expected a plain spec)"),
    ],
)
def test_refusals(text, message):
    with pytest.raises(SpecError) as exc:
        parse_yaml(text, "f")
    assert str(exc.value) == message


def test_alias_bomb_is_refused_quickly():
    import time

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    start = time.perf_counter()
    with pytest.raises(SpecError, match=f"expands to more than {MAX_NODES} values"):
        parse_yaml("\n".join(lines), "f")
    assert time.perf_counter() - start < 2.0


def test_files(tmp_path):
    (tmp_path / "ok.yaml").write_text("name: x\n")
    assert load_yaml(tmp_path / "ok.yaml")[0] == {"name": "x"}
    (tmp_path / "bin.yaml").write_bytes(b"name: x\nb: \x80\n")
    with pytest.raises(SpecError) as exc:
        load_yaml(tmp_path / "bin.yaml")
    assert (
        str(exc.value)
        == f"{tmp_path / 'bin.yaml'}:2: byte 0x80 at column 4 is not UTF-8 (expected a UTF-8 text file)"
    )

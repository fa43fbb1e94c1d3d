"""Prompt datasets in verl's parquet layout, read and checked.

One row per prompt, the columns verl's RL datasets have (its `examples/data_preprocess`
scripts write them):

- `prompt`: the chat messages, a list of `{role, content}` strings;
- `reward_model`: a struct whose `ground_truth` (a string or an integer) the reward checks;
- `data_source`: a string that picks the reward (`data_rewards.SOURCES`);
- `extra_info` (optional): anything, kept on the row.

`check_file` reads only the schema, the row count and the `data_source` column, so
`archer-sweep validate` stays quick on a large file; `read_rows` reads everything and
also checks each row. Both raise `ConfigError(key, "FILE: column `C`: …")` for the config
key (`data.train_files` / `data.val_files`) that named the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainable.config import ConfigError

LAYOUT = "verl's layout: prompt, reward_model.ground_truth, data_source"


@dataclass(frozen=True)
class Row:
    """One prompt of a dataset and what its reward needs."""

    messages: tuple[dict[str, str], ...]
    ground_truth: str
    data_source: str
    extra_info: dict[str, Any] = field(default_factory=dict, compare=False)


def _pa():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:  # pandas' optional engine; ray[tune] brings it
        raise ImportError("reading data files needs pyarrow: pip install pyarrow") from None
    return pyarrow


def _is_text(t) -> bool:
    pa = _pa()
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_messages(t) -> bool:
    pa = _pa()
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return False
    item = t.value_type
    if not pa.types.is_struct(item):
        return False
    names = {item.field(i).name: item.field(i).type for i in range(item.num_fields)}
    return all(k in names and _is_text(names[k]) for k in ("role", "content"))


def _is_ground_truth(t) -> bool:
    pa = _pa()
    if not pa.types.is_struct(t) or t.get_field_index("ground_truth") < 0:
        return False
    gt = t.field("ground_truth").type
    return _is_text(gt) or pa.types.is_integer(gt)


#: column -> (type check, what the column must hold); `extra_info` may be anything or absent.
COLUMNS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "prompt": (_is_messages, "chat messages: a list of {role, content} strings"),
    "reward_model": (_is_ground_truth, "a struct with ground_truth (a string or an integer)"),
    "data_source": (_is_text, "a string"),
}


def _open(path: str, key: str):
    pa = _pa()
    if not os.path.isfile(path):
        raise ConfigError(key, f"{path}: no such file (expected a parquet file in {LAYOUT})")
    try:
        return pa.parquet.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(key, f"{path}: not a parquet file ({reason}) (expected {LAYOUT})") from None


def check_schema(path: str, key: str, sources: Callable[[str], object]) -> int:
    """Check `path`'s columns, that it has rows and that every `data_source` has a reward
    (`sources(name)` raises ValueError otherwise); the number of rows."""
    pf = _open(path, key)
    schema = pf.schema_arrow
    for column, (ok, what) in COLUMNS.items():
        if schema.get_field_index(column) < 0:
            raise ConfigError(key, f"{path}: column `{column}` is missing (expected {LAYOUT})")
        if not ok(schema.field(column).type):
            got = schema.field(column).type
            raise ConfigError(key, f"{path}: column `{column}` has type {got} (expected {what})")
    rows = pf.metadata.num_rows
    if rows == 0:
        raise ConfigError(key, f"{path}: no rows (expected at least one prompt)")
    names = pf.read(columns=["data_source"]).column("data_source").unique().to_pylist()
    if None in names:
        raise ConfigError(key, f"{path}: column `data_source`: a null value (expected a string in every row)")
    for name in names:
        try:
            sources(name)
        except ValueError as exc:
            raise ConfigError(key, f"{path}: column `data_source`: {exc}") from None
    return rows


def _row(raw: dict, i: int, path: str, key: str) -> Row:
    def bad(column: str, what: str) -> ConfigError:
        return ConfigError(key, f"{path}: column `{column}` row {i}: {what}")

    messages = raw["prompt"] or []
    if not messages:
        raise bad("prompt", "no messages (expected at least one {role, content})")
    for m in messages:
        if m is None or m.get("role") is None or m.get("content") is None:
            raise bad("prompt", "a message without role or content (expected strings)")
    truth = (raw["reward_model"] or {}).get("ground_truth")
    if truth is None:
        raise bad("reward_model", "ground_truth is null (expected a string or an integer)")
    extra = raw.get("extra_info")
    return Row(
        tuple({"role": m["role"], "content": m["content"]} for m in messages),
        str(truth),
        raw["data_source"],
        extra if isinstance(extra, dict) else {},
    )


def read_rows(path: str, key: str, sources: Callable[[str], object]) -> list[Row]:
    """Every row of `path` (after `check_schema`), each checked for nulls."""
    check_schema(path, key, sources)
    wanted = [*COLUMNS, "extra_info"]
    pf = _open(path, key)
    columns = [c for c in wanted if pf.schema_arrow.get_field_index(c) >= 0]
    table = pf.read(columns=columns)
    return [_row(raw, i, path, key) for i, raw in enumerate(table.to_pylist())]


def read_files(paths: list[str], key: str, sources: Callable[[str], object]) -> list[Row]:
    """The rows of every file in `paths`, in order (verl concatenates its files the same way)."""
    return [row for path in paths for row in read_rows(path, key, sources)]

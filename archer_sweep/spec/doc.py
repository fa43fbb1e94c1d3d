"""The spec reference, generated from the pydantic models (one definition drives the docs).

`python -m archer_sweep.spec.doc` prints a Markdown table: dotted key, type, default, meaning.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from archer_sweep.spec.errors import model_at
from trainable.backends import BACKENDS, load_object


def _type(ann: Any) -> str:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "mapping"
    if args and origin is not None:
        inner = [a for a in args if a is not type(None)]
        text = ", ".join(_type(a) for a in inner)
        name = getattr(origin, "__name__", str(origin))
        if name in ("Union", "UnionType", "Optional"):
            return f"{text} or null" if len(inner) < len(args) else text
        return f"{name}[{text}]"
    return getattr(ann, "__name__", str(ann))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else "(section)"
    return "null" if field.default is None else f"`{field.default}`"


def rows(model: type[BaseModel] = None, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) for every field, sections first-to-last."""
    if model is None:
        from archer_sweep.spec.model import SweepSpec

        model = SweepSpec
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = model_at(model, (name,))
        origin = typing.get_origin(field.annotation)
        item = typing.get_args(field.annotation)[-1] if origin in (list, dict) else None
        text = (field.description or "").replace("\n", " ").replace("|", "\\|")
        kind = "mapping" if sub is not None else _type(field.annotation)
        yield key, kind, _default(field), text
        if isinstance(item, type) and issubclass(item, BaseModel):
            sub = item
            key += "[]" if origin is list else ".<key>"
        if sub is not None:
            yield from rows(sub, key + ".")


def config_rows() -> Iterator[tuple[str, str, str, str]]:
    """`trainable.config.*` of every registered backend whose config is a pydantic model; a
    key that reads the same in several backends is one row, tagged with their names."""
    tagged: dict[tuple[str, str, str, str], list[str]] = {}
    for name, entry in BACKENDS.items():
        try:
            model = load_object(entry.config)
        except ImportError:  # an optional plugin that is not installed documents nothing
            continue
        for row in rows(model, "trainable.config."):
            if row[0] != "trainable.config.backend":
                tagged.setdefault(row, []).append(name)
    order: dict[str, int] = {}  # where each key first appears, in any backend
    for i, (key, *_) in enumerate(tagged):
        order.setdefault(key, i)

    def place(key: str) -> tuple[int, ...]:
        # Under its section: a key only one backend has (hf's data files) sits with its
        # siblings, not after every other backend's rows.
        parts = key.split(".")
        return tuple(order.get(".".join(parts[:n]), -1) for n in range(3, len(parts) + 1))

    for (k, t, d, m), names in sorted(tagged.items(), key=lambda kv: place(kv[0][0])):
        yield k, t, d, f"({', '.join(names)}) {m}"


def reference_markdown() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for k, t, d, m in rows():
        lines.append(f"| `{k}` | {t} | {d} | {m} |")
        if k == "trainable.config":
            lines += [f"| `{k2}` | {t2} | {d2} | {m2} |" for k2, t2, d2, m2 in config_rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")

"""`--set dotted.key=value` overrides of a parsed spec.

The key addresses the whole spec (`search.num_samples`, `trainable.config.trainer.total_steps`,
`criteria.entropy_high.value` or `criteria[0].value`, `search.space.algorithm.entropy_coeff.low`);
the value is parsed as YAML (`4` is an int, `[1, 2]` a list, `{type: fixed, value: 1}` a mapping).
Keys are checked against the spec's models and the backend's trainer config: an unknown key
is refused with a "did you mean" before anything runs or is written. Errors are located
as `--set:N` (the N-th `--set` option, counting from 1). Values are data: they never reach a
shell.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any, Optional

from pydantic import BaseModel

from archer_sweep.errors import SpecError
from archer_sweep.spec.errors import did_you_mean, model_at, render, show
from archer_sweep.spec.yamlio import LineMap, parse_yaml

PLACE = "--set"
_KEY = re.compile(r"^[A-Za-z0-9_./\[\]-]+$")


def parse_override(text: str, n: int) -> tuple[list[str], Any]:
    """`a.b[0].c=value` -> (["a", "b", "0", "c"], parsed value)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not _KEY.match(key):
        raise SpecError(
            PLACE, n, f"{show(text)}: not an override (expected dotted.key=value, e.g. search.num_samples=4)"
        )
    try:
        value, _ = parse_yaml(raw, PLACE)
    except SpecError as exc:
        problem = exc.message.split(": ", 1)[-1]
        raise SpecError(PLACE, n, f"{key}: value {show(raw)} is not valid YAML: {problem}") from None
    parts = [p for p in re.sub(r"\[(\d+)\]", r".\1", key).split(".") if p]
    return parts, value


def apply_overrides(data: dict, lines: LineMap, overrides: Sequence[str]) -> dict:
    """A copy of `data` with every override applied; `lines` learns where each came from."""
    if not overrides:
        return data
    out = copy.deepcopy(data)
    parsed = [parse_override(text, n) for n, text in enumerate(overrides, 1)]
    resolved = []
    for n, (parts, value) in enumerate(parsed, 1):
        path = _resolve(out, parts, n)
        _set(out, path, value)
        resolved.append(path)
    for n, path in enumerate(resolved, 1):  # forget the file's lines under replaced values
        for key in [k for k in lines.lines if k[: len(path)] == path]:
            del lines.lines[key]
        lines.sources[path] = (PLACE, n)
    for n, path in enumerate(resolved, 1):  # trainer keys depend on the (overridden) backend
        if path[:2] == ("trainable", "config") and len(path) > 2:
            _check_trainer_key(out, path[2:], n)
    return out


def _resolve(data: dict, parts: list[str], n: int) -> tuple:
    """Spec key path of an override (list items by index or rule name; space keys with dots)."""
    from archer_sweep.spec.model import SweepSpec

    path: list[Any] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        node = _get(data, path)
        if tuple(path[-2:]) == ("search", "space"):
            key = _space_key(node or {}, parts[i:])
            if key not in (node or {}) and len(key.split(".")) < len(parts) - i:
                raise SpecError(
                    PLACE,
                    n,
                    f"{render(path + [key])}: no such space key"
                    f"{did_you_mean(key, node or {})} (expected one of "
                    f"{', '.join(node or {}) or 'no keys: the space is empty'})",
                )
            path.append(key)
            i += len(key.split("."))
            continue
        if path == ["trainable", "config"]:  # checked against the trainer model later
            path.extend(parts[i:])
            break
        if len(path) == 3 and path[:2] == ["search", "points_to_evaluate"]:
            path.append(".".join(parts[i:]))  # a point's keys are dotted space keys
            break
        if isinstance(node, list) or (part.isdigit() and not isinstance(node, dict) and path):
            path.append(_list_index(node or [], part, path, n))
        else:
            parent = model_at(SweepSpec, path)
            if parent is not None and part not in parent.model_fields:
                valid = list(parent.model_fields)
                raise SpecError(
                    PLACE,
                    n,
                    f"{render(path + [part])}: unknown key"
                    f"{did_you_mean(part, valid)} (expected one of {', '.join(valid)})",
                )
            path.append(part)
        i += 1
    return tuple(path)


def _space_key(space: dict, rest: list[str]) -> str:
    """The space key a dotted remainder starts with (an existing key if one matches)."""
    for k in sorted(space, key=len, reverse=True):
        if rest[: len(k.split("."))] == k.split("."):
            return k
    from archer_sweep.spec.model import ParamSpec

    if len(rest) > 1 and rest[-1] in ParamSpec.model_fields:
        return ".".join(rest[:-1])
    return ".".join(rest)


def _list_index(items: list, part: str, path: list, n: int) -> int:
    names = [it.get("name") for it in items if isinstance(it, dict)]
    if part.isdigit() and int(part) < len(items):
        return int(part)
    if part in names:
        return names.index(part)
    hint = did_you_mean(part, [str(x) for x in names if x])
    raise SpecError(
        PLACE,
        n,
        f"{render(path)}.{part}: no such item{hint} (expected an index "
        f"below {len(items)} or a rule name: {', '.join(map(str, names))})",
    )


def _get(data: Any, path: Sequence[Any]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int):
            data = data[part]
        else:
            return None
    return data


def _set(data: dict, path: tuple, value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        nxt = node[part] if isinstance(node, list) else node.get(part)
        if not isinstance(nxt, (dict, list)):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def _trainer_model(data: dict) -> Optional[type[BaseModel]]:
    from trainable.backends import BACKENDS, load_object

    trainable = data.get("trainable") if isinstance(data.get("trainable"), dict) else {}
    entry = BACKENDS.get(str(trainable.get("backend", "tiny")))
    try:
        return load_object(entry.config) if entry else None
    except (ImportError, AttributeError):
        return None  # the spec check reports an unusable backend with its line


def _check_trainer_key(data: dict, keys: tuple, n: int) -> None:
    model = _trainer_model(data)
    if model is None:
        return
    for depth, part in enumerate(keys):
        parent = model_at(model, keys[:depth])
        if parent is None:  # a free-form section (e.g. hf model.config): anything goes
            return
        if part not in parent.model_fields:
            valid = list(parent.model_fields)
            where = render(("trainable", "config") + keys[: depth + 1])
            raise SpecError(
                PLACE,
                n,
                f"{where}: unknown key{did_you_mean(part, valid)} (expected one of {', '.join(valid)})",
            )

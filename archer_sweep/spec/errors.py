"""pydantic errors -> one `FILE:LINE: <key path>: <problem> (expected <what>)` line.

Shared by the sweep spec and the trainer config under `trainable.config` (validated
with the backend's own model, so its errors point at the offending line too).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from archer_sweep.errors import SpecError
from trainable.config import closest

NOUNS: dict[str, str] = {
    "type": "distribution",
    "op": "rule operator",
    "backend": "backend",
    "mode": "mode",
    "verdict": "verdict kind",
    "on_nan": "NaN policy",
    "objective_reduce": "objective reduction",
}
"""Field name -> what an unknown value of it is called (`unknown sampler `x``)."""
TYPE_WORDS: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "none_required": "null",
}
"""pydantic error type -> the kind of value that was expected."""
BOUNDS: dict[str, str] = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def render(path: Iterable[Any]) -> str:
    """("criteria", 2, "metric") -> `criteria[2].metric`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show(x: Any) -> str:
    """A short rendering of a user value for a message."""
    if isinstance(x, dict):
        return "a mapping"
    if isinstance(x, list):
        return "a list"
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    text = f"'{x}'" if isinstance(x, str) else f"{x!r}"
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """'; did you mean `x`?' or '': the spec's wording around `trainable.config.closest`."""
    best = closest(word, list(choices))
    return f"; did you mean `{best}`?" if best else ""


def _unwrap(ann: Any) -> Any:
    """The model/dict/list type inside Optional[...] / list[...] / dict[str, ...]."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else ann
    return ann


def model_at(model: type[BaseModel], loc: Iterable[Any]) -> Optional[type[BaseModel]]:
    """The submodel that `loc` addresses inside `model` (list indices and dict keys skipped)."""
    ann: Any = model
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(str(part))
            if field is None:
                return None
            ann = field.annotation
        elif typing.get_origin(ann) in (list, tuple, dict):
            ann = typing.get_args(ann)[-1] if typing.get_args(ann) else Any
        else:
            return None
    ann = _unwrap(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _field_doc(model: type[BaseModel], loc: tuple) -> str:
    parent = model_at(model, loc[:-1])
    field = parent.model_fields.get(str(loc[-1])) if parent else None
    doc = (field.description or "").strip() if field else ""
    return doc.split(". ")[0].rstrip(".") if doc else "a value"


def message_for(model: type[BaseModel], err: dict, label: tuple) -> str:
    """The `<key path>: <problem> (expected <what>)` text of one pydantic error."""
    loc, kind, value, ctx = tuple(err["loc"]), err["type"], err.get("input"), err.get("ctx") or {}
    where = render(label + loc)
    if kind == "extra_forbidden":
        parent = model_at(model, loc[:-1])
        valid = list(parent.model_fields) if parent else []
        return f"{where}: unknown key{did_you_mean(loc[-1], valid)} (expected one of {', '.join(valid)})"
    if kind == "missing":
        return f"{where}: missing (expected `{loc[-1]}`: {_field_doc(model, loc)})"
    if kind == "literal_error":
        noun = NOUNS.get(str(loc[-1]), "value")
        if loc[-2:-1] == ("sampler",) and loc[-1] == "type":
            noun = "sampler"
        choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return (
            f"{where}: unknown {noun} {show(value)}{did_you_mean(value, choices)} "
            f"(expected one of {', '.join(choices)})"
        )
    if kind in TYPE_WORDS:
        return f"{where}: got {show(value)} (expected {TYPE_WORDS[kind]})"
    if kind in BOUNDS:
        bound = next(iter(ctx.values()))
        bound = f"{bound:g}" if isinstance(bound, float) else bound
        return f"{where}: {show(value)} is out of range (expected a value {BOUNDS[kind]} {bound})"
    if kind in ("too_short", "too_long"):
        want = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        got = ctx.get("actual_length")
        return f"{where}: got {got} item{'s' if got != 1 else ''} (expected {want} items)"
    if kind == "string_pattern_mismatch":
        return (
            f"{where}: {show(value)} is not a valid name (expected letters, digits, `_`, `.`, `-`, "
            "starting with a letter or digit)"
        )
    if kind == "value_error":
        cause = ctx.get("error")
        text = getattr(cause, "message", None) or str(cause or err["msg"])
        return f"{where}: {_value_error_text(text)}"
    return f"{where}: {err['msg']} (got {show(value)})"


def _value_error_text(msg: str) -> str:
    """A model validator's sentence in the `problem (expected what)` form."""
    msg = msg.removeprefix("Value error, ")
    if "(expected" in msg:
        return msg
    head, sep, tail = (" " + msg).partition(" must ")
    if sep:
        return f"invalid value (expected {head.strip() or 'it'} to {tail})"
    return f"{msg} (expected a valid value)"


def error_loc(err: dict, data: Any) -> tuple:
    """Where to point for an error: the key it names, or for a model-level error the
    first `name=` the message mentions that exists under it (e.g. `n_head=3 must divide …`)."""
    loc = tuple(err["loc"])
    if err["type"] != "value_error":
        return loc
    cause_path = getattr((err.get("ctx") or {}).get("error"), "path", None)
    if cause_path:  # a validator that names its key (trainable.config.ConfigError)
        head, _, rest = str(cause_path).partition(".")
        return loc + ((head, rest) if rest else (head,))
    for name in re.findall(r"([A-Za-z_][\w.]*)=", str(err.get("msg", ""))):
        node = _get(data, loc)
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return loc + tuple(name.split("."))
    return loc


def _get(data: Any, loc: tuple) -> Any:
    for part in loc:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def validate_model(
    model: type[BaseModel], data: Any, lines: Any, prefix: tuple = (), label: Optional[tuple] = None
) -> BaseModel:
    """`model.model_validate(data)`, its first error raised as a located `SpecError`.

    `prefix` is where `data` sits in the spec (for the line); `label` how the key path
    is written in the message (defaults to `prefix`).
    """
    try:
        return model.model_validate(data, strict=True)  # YAML gives typed values: no coercion
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = error_loc(err, data)
        text = message_for(model, dict(err, loc=loc), prefix if label is None else label)
        raise lines.error(prefix + loc, text) from None


def located(lines: Any, path: tuple, problem: str) -> SpecError:
    """`FILE:LINE: <path>: <problem>` for a check outside pydantic."""
    return lines.error(path, f"{render(path)}: {problem}")


def given_fields(model: BaseModel) -> set[str]:
    """Fields the user set to something other than the default (a dumped spec repeats defaults)."""
    given = {f for f in model.model_fields_set if getattr(model, f) != type(model).model_fields[f].default}
    if getattr(model, "type", None) == "fixed" and "value" in model.model_fields_set:
        given.add("value")  # `value: null` is a real fixed value
    return given

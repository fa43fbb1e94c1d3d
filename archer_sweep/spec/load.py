"""Reading a spec file: YAML with line numbers → `--set` overrides → pydantic → cross-field
checks. Every error is one `FILE:LINE: what is wrong (expected …)` line (a `SpecError`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from archer_sweep.errors import SpecError, UserError
from archer_sweep.spec.checks import check_spec
from archer_sweep.spec.errors import validate_model
from archer_sweep.spec.model import SweepSpec
from archer_sweep.spec.overrides import apply_overrides
from archer_sweep.spec.yamlio import load_yaml


def load_spec(path: os.PathLike | str, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read, override (`--set dotted.key=value`), validate and check a spec file."""
    data, lines = load_yaml(path)
    return spec_from_data(data, lines, overrides)


def spec_from_data(data: Any, lines: Any, overrides: Sequence[str] = ()) -> SweepSpec:
    """Validate already-parsed YAML data (`lines` is its `yamlio.LineMap`)."""
    if data is None:
        raise SpecError(
            lines.file, 1, "the file is empty (expected a sweep spec mapping with at least `name`)"
        )
    if not isinstance(data, dict):
        raise lines.error(
            (),
            f"the top level is {_kind(data)} (expected a mapping of spec "
            "sections: name, trainable, search, criteria, …)",
        )
    data = apply_overrides(data, lines, overrides)
    spec = validate_model(SweepSpec, data, lines)
    check_spec(spec, data, lines)
    return spec


def _kind(x: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(x), type(x).__name__
    )


__all__ = ["SpecError", "load_spec", "read_spec", "spec_from_data"]


def read_spec(path: Path | str, overrides: Optional[list[str]] = None) -> SweepSpec:
    """Load a SweepSpec; a missing file is a UserError (SpecError already is one)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such spec file")
    return load_spec(path, overrides or [])

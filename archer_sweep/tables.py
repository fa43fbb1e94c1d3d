"""Small shared helpers of the read-the-results verbs: Markdown tables and number formatting."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def fmt(x: Any, digits: int = 3) -> str:
    """A cell: numbers with `digits` significant digits, None as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.{max(digits - 1, 1)}f}".rstrip("0").rstrip(".")
    return str(x)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table (cells formatted with `fmt`, pipes escaped)."""

    def cell(x: Any) -> str:
        return fmt(x).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def short_param(key: str) -> str:
    """`algorithm.entropy_coeff` -> `entropy_coeff` for table headers."""
    return key.rsplit(".", 1)[-1]


def param_pairs(params: Mapping[str, Any]) -> list[str]:
    """`entropy_coeff=0.005` per parameter: floats under their short name with 4 significant
    digits, anything else under its full key as it is."""
    return [f"{short_param(k)}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]

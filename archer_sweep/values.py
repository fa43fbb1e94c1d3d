"""Numbers as they cross JSON: one rule for writing non-finite floats and one for reading
metric values back. JSON has no NaN or inf, so they are written as the strings
"nan" / "inf" / "-inf" and read back as floats; everything else that is not a number
reads as None (the caller decides whether that is "not observed" or an error)."""

from __future__ import annotations

import math
from typing import Any, Optional


def jsonable(x: Any) -> Any:
    """`x` with every non-finite float (nested in dicts, lists, tuples) as its string."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def to_float(v: Any) -> Optional[float]:
    """A metric value as float: numbers, and numeric strings such as "nan"/"inf"; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def is_number(x: Any) -> bool:
    """A finite int or float (bool is not a number here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

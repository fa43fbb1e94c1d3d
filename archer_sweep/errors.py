"""`UserError`: bad input the CLI reports as one line and exit code 2 (no traceback).

`archer_sweep.spec.SpecError` subclasses it, so the CLI catches both.
"""
from __future__ import annotations


class UserError(ValueError):
    """Anything the user can fix: a bad spec, a missing directory, a malformed history line."""

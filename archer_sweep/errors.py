"""`UserError`: bad input the CLI reports as one line and exit code 2 (no traceback).

`archer_sweep.spec.model.SpecError` subclasses it, so the CLI catches both.
"""

from __future__ import annotations


class UserError(ValueError):
    """Anything the user can fix: a bad spec, a missing directory, a malformed history line."""


class SpecError(UserError):
    """A bad sweep spec: `str()` is the one line `FILE:LINE: what is wrong (expected …)`."""

    def __init__(self, file: str, line: int | None, message: str):
        self.file, self.line, self.message = file, line if line is not None else 1, message
        super().__init__(f"{self.file}:{self.line}: {message}")

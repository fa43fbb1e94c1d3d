"""Writing the files of a sweep dir so that a kill at any moment leaves the old or the new
content, never a mix: `atomic_write` (temp file, fsync, rename, fsync of the directory) for
whole files; for the JSONL files that are appended to, `mend_tail` before an append (a line a
kill cut short is dropped, not glued to the next one) and `complete_lines` when copying."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace `path` with `data`: readers see the old file or the new one, never a part."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or a new file in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def complete_lines(data: bytes) -> bytes:
    """`data` up to and including its last newline: a line cut by a kill is dropped."""
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""


def mend_tail(f: BinaryIO) -> None:
    """`f` is open for appending: cut a last line that has no newline (torn by a kill)."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    with open(f.name, "rb") as r:
        r.seek(max(0, end - 1))
        if r.read(1) == b"\n":
            return
        r.seek(0)
        keep = len(complete_lines(r.read()))
    f.truncate(keep)

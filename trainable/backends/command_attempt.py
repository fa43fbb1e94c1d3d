"""What each launch (attempt) of the `command` backend's trainer gets and is checked for: a
short TMPDIR of its own, the earlier attempt's metrics file set aside, and the watched keys
its first report must carry. Pure or file-local helpers; `command.py` drives them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from trainable import metrics as M


class UnreportedMetric(ValueError):
    """A rule watches a key the trainer's first report does not carry (it never will)."""


#: keys logged only every `trainer.test_freq` steps (verl's validation): not checked at step 1
_PERIODIC_PREFIXES = ("val-", "val/")


def unreported_message(watch: dict[str, str], reported: set[str], step: int) -> Optional[str]:
    """One line naming each (rule, key) of `watch` the report lacks, and the keys it has;
    None when every watched key is there."""
    missing = [
        (rule, key)
        for rule, key in watch.items()
        if key not in reported and not key.startswith(_PERIODIC_PREFIXES)
    ]
    if not missing:
        return None
    what = "; ".join(f"rule `{rule}` watches `{key}`" for rule, key in missing)
    keys = ", ".join(sorted(reported - {M.STEP}))
    return (
        f"{what}, which the trainer does not report (step {step}; it reports "
        f"{len(reported - {M.STEP})} keys: {keys}); "
        "map a key it logs with metric_map or drop the rule"
    )


def short_tmp_root() -> str:
    return "/tmp" if os.access("/tmp", os.W_OK) else tempfile.gettempdir()


def set_aside(path: Path) -> Optional[Path]:
    """Rename an earlier attempt's metrics file to `<name>.<n>` and return the new path, so
    that the relaunched trainer's tail reads only its own lines: verl reopens the file with
    `wb` only when `fit()` starts, minutes later, and would otherwise be read from past its end."""
    if not path.exists():
        return None
    n = 1
    while path.with_name(f"{path.name}.{n}").exists():
        n += 1
    aside = path.with_name(f"{path.name}.{n}")
    shutil.move(str(path), str(aside))
    return aside

"""The sweep's Optuna study storage before Ray starts: which URL, can it be reached, is the
study new.

The default study is a SQLite file inside the sweep dir, so `run`'s check for leftover
files already covers it. A `storage.study` database (PostgreSQL) lives outside the sweep
dir and may be shared by many sweeps: there a fresh `run` must not continue a study of
the same name that another sweep left, and an unreachable server is a one-line error
(exit 2), not a traceback from inside the searcher.
"""

from __future__ import annotations

import logging
from pathlib import Path

from archer_sweep.errors import UserError
from archer_sweep.results.sweepdir import study_url
from archer_sweep.spec.study import shown_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10  # libpq waits for ever on a host that drops packets


def url_of(spec, sweep_dir: Path) -> str:
    return spec.storage.study or study_url(sweep_dir)


def open_storage(url: str):
    """An `optuna.storages.RDBStorage` (schema created if new) or a UserError naming the key."""
    import optuna
    import sqlalchemy.exc

    kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}} if url.startswith("postgresql") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs or None)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        raise UserError(
            f"storage.study: cannot open {shown_url(url)}: {first} "
            f"(expected a reachable database the user may write to)"
        ) from None


def check_new_study(spec) -> None:
    """Before a fresh `run`: the study database answers and holds no study of this name."""
    if spec.storage.study is None:
        return
    storage = open_storage(spec.storage.study)
    try:
        names = {s.study_name for s in storage.get_all_studies()}
    finally:
        storage.remove_session()
    if spec.name in names:
        raise UserError(
            f"storage.study: {shown_url(spec.storage.study)} already holds a study named "
            f"{spec.name!r} (expected a new --name, or `archer-sweep resume` of the sweep that made it)"
        )
    log.info("optuna study %r goes to %s", spec.name, shown_url(spec.storage.study))


def check_reachable(spec) -> None:
    """Before `resume`: the study database answers (its study is continued as it is)."""
    if spec.storage.study is not None:
        open_storage(spec.storage.study).remove_session()

"""`storage.study`: the Optuna storage URL a sweep names (default: the sweep dir's SQLite file).

Checked when the spec is read, without connecting: the URL parses, names an installed
database driver, and holds no password. A password would be written to `spec.yaml` and
pickled into the Tune experiment state; archer-sweep keeps secrets in the environment
only, and libpq (PostgreSQL) reads `PGPASSWORD` or `~/.pgpass` by itself.
"""

from __future__ import annotations

# SQLAlchemy 2.1 maps `postgresql://` to psycopg 3; 2.0 mapped it to psycopg2.
INSTALL_HINTS = {
    "postgresql": "pip install 'archer-sweep[postgres]'",
    "mysql": "pip install mysqlclient",
}


def check_study_url(url: str) -> str:
    """`url` unchanged, or ValueError with the one-line problem (`… (expected …)`)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            f"{url!r} is not a database URL (expected e.g. postgresql://user@host:5432/db or "
            "sqlite:///path/study.db)"
        ) from None
    if parsed.password is not None or "password" in parsed.query:
        raise ValueError(
            "the URL holds a password, which would be written to spec.yaml (expected the "
            "password in PGPASSWORD or ~/.pgpass, and postgresql://user@host/db here)"
        )
    backend = parsed.get_backend_name()
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"unknown database {backend!r} in {shown_url(url)} (expected postgresql, mysql or sqlite)"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = INSTALL_HINTS.get(backend, f"pip install {dialect.driver}")
        raise ValueError(
            f"{shown_url(url)} needs the database driver {dialect.driver!r}, which is not "
            f"installed ({type(exc).__name__}: {exc}) (expected it installed: {hint})"
        ) from None
    return url


def shown_url(url: str) -> str:
    """The URL as printed: any password masked (the spec check refuses them; belt and braces)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url

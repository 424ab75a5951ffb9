"""Where the store lives: `[store] url` (or `db copy --from/--to`) parsed into a location.

* `sqlite:///relative/file.sqlite3` (relative to the config file's folder) or
  `sqlite:////absolute/file.sqlite3`; no URL at all: `centralita.sqlite3` in the data dir.
* `postgresql://user@host:port/database?sslmode=...` (also `postgres://`): any libpq URL.
  The password never sits in the URL (a config file or a command line is read by more
  people than the database): it comes from the environment variable `[store]
  password_env` names, or from libpq's own `PGPASSWORD` or `~/.pgpass`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from centralita.store.errors import StoreError


class StoreUrlError(StoreError, ValueError):
    """A store URL this Centralita cannot use."""


@dataclass(frozen=True)
class SqliteLocation:
    path: Path

    @property
    def display(self) -> str:
        return f"sqlite:///{self.path}"


@dataclass(frozen=True)
class PgLocation:
    conninfo: str  # the URL as given (no password in it)
    display: str  # user@host:port/database, for messages
    password: str | None = field(default=None, repr=False)

    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        """psycopg's connect() keywords besides the URL."""
        kwargs: dict[str, Any] = {"connect_timeout": 10, **extra}
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs


StoreLocation = SqliteLocation | PgLocation


def parse_store_url(
    url: str,
    *,
    base: Path,
    password_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreLocation:
    """The location `url` names (see the module's docstring); StoreUrlError says what is
    wrong with it."""
    environ = os.environ if environ is None else environ
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StoreUrlError(
            f"{url!r} is not a store URL: expected sqlite:///FILE or postgresql://HOST/DATABASE"
        )
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise StoreUrlError(
                f"{url!r}: a SQLite URL is sqlite:///relative/file or sqlite:////absolute/file"
            )
        path = Path(rest[1:])
        return SqliteLocation(path if path.is_absolute() else base / path)
    if scheme not in ("postgresql", "postgres"):
        raise StoreUrlError(
            f"{url!r}: unknown database {scheme!r}; Centralita stores in sqlite or postgresql"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise StoreUrlError(f"{url!r} is not a valid PostgreSQL URL: {exc}") from None
    if parts.password is not None:
        raise StoreUrlError(
            "the PostgreSQL URL must not hold the password: put it in the environment "
            "([store] password_env, or PGPASSWORD) or in ~/.pgpass"
        )
    password = None
    if password_env:
        password = environ.get(password_env)
        if password is None:
            raise StoreUrlError(
                f"[store] password_env names {password_env}, which is not set in the environment"
            )
    database = parts.path.lstrip("/") or "(default database)"
    host = parts.hostname or "(local socket)"
    user = f"{parts.username}@" if parts.username else ""
    display = f"{user}{host}{f':{port}' if port else ''}/{database}"
    return PgLocation(conninfo=url, display=display, password=password)

"""The store's exceptions: one base, so a caller can tell the store's refusals apart from
its own bugs.

`StoreInputError` is also a `ValueError`: a value the store refuses (too long, NUL, wrong
type, unknown field or status, a contact that does not exist). Nothing is written when it is
raised, and a web handler answers it with 400. `StoreSchemaError` is a database this
Centralita cannot use (written by a newer one).
"""

from __future__ import annotations


class StoreError(Exception):
    """The base of every error the store raises on purpose."""


class StoreInputError(StoreError, ValueError):
    """A value the store refuses; nothing was stored."""


class StoreSchemaError(StoreError, RuntimeError):
    """The database's schema is newer than this Centralita knows."""

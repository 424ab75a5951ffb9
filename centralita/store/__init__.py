"""The store: callbacks, ratings, call records, contacts, outcomes, passwords and the webhook
outbox, behind one async interface (`StoreBackend`), in one SQLite file (aiosqlite, WAL; the
default) or in PostgreSQL (psycopg 3; `[store] url`, see docs/cluster.md#the-store).

Everything written here is committed before the method returns, so a caller may acknowledge
it (principle 4 in docs/design.md#principles). All SQL is parameterised; values come from callers
and trunks.

Times: `created_at`/`updated_at` and outbox times are UTC ISO-8601; call-record times are
Asterisk's local wall-clock times (see `centralita.store.cdr`).

The package, one module per concern:

* `backends`: `open_store`, the store a configuration names; `url`: `[store] url` parsed.
* `sqlite`: `Store`, opening and closing the file; `postgres`: `PgStore`, the same mixins
  over a psycopg pool; `base`: the connection shape the mixins' SQL runs on.
* `copy`: `centralita db copy`, every table from one store to another.
* `callbacks`, `calls`, `contacts`, `agents`, `outbox`: the tables' methods, one mixin each.
* `records`: the record types, the checks on text values and the row mappings; `cdr`: call
  records as the store keeps them (the `CallRecord` type itself is `ami.cdr`'s, shared
  with the AMI listener) and Master.csv rows read as records.
* `callbacks`, `calls`, `contacts`, `agents`, `outbox`, `audit`: the tables' methods, one
  mixin each.
* `records`: the record types and the checks on text values; `cdr`: the call record type,
  its identity and its parsing from Master.csv and `Cdr` events.
* `schema`: the file's location, permissions and migrations; `passwords`: scrypt hashes.
* `errors`: `StoreError`, and `StoreInputError` (a `ValueError`) for a value it refuses.
* `fastpath`: the read-only connection used in the event loop's thread (the lookups a
  ringing call waits on: a pop's contacts, the returning caller's agent).
* `interface`: `StoreBackend`, the public interface as a Protocol (for a second backend).

Everything the rest of Centralita uses is imported from `centralita.store` itself.
"""

from ami.cdr import CallRecord
from centralita.store.audit import AuditEntry
from centralita.store.backends import open_location, open_store
from centralita.store.cdr import (
    CDR_COLUMNS,
    CallRow,
    ImportResult,
    cdr_from_csv_row,
    cdr_params,
)
from centralita.store.errors import StoreError, StoreInputError, StoreSchemaError
from centralita.store.fastpath import FAST_CONTACTS_S, FAST_LOOKUP_S
from centralita.store.interface import StoreBackend
from centralita.store.passwords import SCRYPT_N, SCRYPT_P, SCRYPT_R
from centralita.store.records import (
    ATTEMPT_RESULTS,
    CALLBACK_STATUSES,
    CONTACT_FIELDS,
    MAX_NOTES,
    MAX_TEXT,
    CallbackAttempt,
    CallbackRequest,
    Contact,
    OutboxEvent,
    Outcome,
    Rating,
)
from centralita.store.schema import DB_FILENAME, SCHEMA_VERSION, default_path, protect
from centralita.store.sqlite import Store, StoreOpening
from centralita.store.url import PgLocation, SqliteLocation, StoreLocation, StoreUrlError

__all__ = [
    "ATTEMPT_RESULTS",
    "CALLBACK_STATUSES",
    "CDR_COLUMNS",
    "CONTACT_FIELDS",
    "DB_FILENAME",
    "FAST_CONTACTS_S",
    "FAST_LOOKUP_S",
    "MAX_NOTES",
    "MAX_TEXT",
    "SCHEMA_VERSION",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "AuditEntry",
    "CallRecord",
    "CallRow",
    "CallbackAttempt",
    "CallbackRequest",
    "Contact",
    "ImportResult",
    "OutboxEvent",
    "Outcome",
    "PgLocation",
    "Rating",
    "SqliteLocation",
    "Store",
    "StoreBackend",
    "StoreError",
    "StoreInputError",
    "StoreLocation",
    "StoreOpening",
    "StoreSchemaError",
    "StoreUrlError",
    "cdr_from_csv_row",
    "cdr_params",
    "default_path",
    "open_location",
    "open_store",
    "protect",
]

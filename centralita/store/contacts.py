"""Contacts (with their phone numbers) and the outcomes agents save for calls."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from centralita.store.base import Connection, StoreBase, insert_id
from centralita.store.errors import StoreInputError
from centralita.store.records import (
    CONTACT_COLUMNS,
    CONTACT_FIELDS,
    MAX_NOTES,
    MAX_TEXT,
    OUTCOME_COLUMNS,
    Contact,
    Outcome,
    check_text,
    contact_from_row,
    now_iso,
    outcome_from_row,
)


class ContactsMixin(StoreBase):
    """The `contacts`, `contact_numbers` and `outcomes` tables."""

    # ----------------------------------------------------------------- contacts

    async def create_contact(
        self,
        *,
        name: str,
        company: str = "",
        numbers: Iterable[str] = (),
        notes: str = "",
        external_id: str = "",
        url: str = "",
    ) -> Contact:
        """Create a contact with its phone numbers."""
        check_text("name", name, empty=False)
        check_text("company", company)
        check_text("notes", notes, limit=MAX_NOTES)
        check_text("external_id", external_id)
        check_text("url", url)
        keyed = [self._number_key(n) for n in numbers]
        now = now_iso()
        async with self._tx() as db:
            contact_id = await insert_id(
                db,
                "INSERT INTO contacts (name, name_fold, company, notes, external_id, url, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (name, name.casefold(), company, notes, external_id, url, now, now),
            )
            await db.executemany(
                "INSERT INTO contact_numbers (contact_id, number, key) VALUES (?, ?, ?) "
                "ON CONFLICT (contact_id, key) DO NOTHING",
                [(contact_id, number, key) for number, key in keyed],
            )
            contact = await self._contact(db, contact_id)
        assert contact is not None
        return contact

    def _number_key(self, number: str) -> tuple[str, str]:
        check_text("number", number, limit=100)
        key = self.key(number)
        if key is None:
            raise StoreInputError(f"{number!r} is not a phone number that can be matched")
        return number.strip(), key

    async def update_contact(self, contact_id: int, **fields: Any) -> Contact | None:
        """Change a contact's name, company, notes, external_id, url (or, with `numbers`,
        replace its numbers); None when there is no such contact."""
        unknown = set(fields) - {*CONTACT_FIELDS, "numbers"}
        if unknown:
            raise StoreInputError(f"unknown contact field(s): {', '.join(sorted(unknown))}")
        numbers = fields.pop("numbers", None)
        for name, value in fields.items():
            limit = MAX_NOTES if name == "notes" else MAX_TEXT
            check_text(name, value, limit=limit, empty=name != "name")
        keyed = [self._number_key(n) for n in numbers] if numbers is not None else None
        async with self._tx() as db:
            if await self._contact(db, contact_id) is None:
                return None
            if "name" in fields:
                fields["name_fold"] = fields["name"].casefold()
            fields["updated_at"] = now_iso()
            # Column names come from the CONTACT_FIELDS allow-list above, never from input.
            assignments = ", ".join(f"{name} = ?" for name in fields)
            await db.execute(
                f"UPDATE contacts SET {assignments} WHERE id = ?",  # noqa: S608
                (*fields.values(), contact_id),
            )
            if keyed is not None:
                await db.execute("DELETE FROM contact_numbers WHERE contact_id = ?", (contact_id,))
                await db.executemany(
                    "INSERT INTO contact_numbers (contact_id, number, key) "
                    "VALUES (?, ?, ?) ON CONFLICT (contact_id, key) DO NOTHING",
                    [(contact_id, number, key) for number, key in keyed],
                )
            return await self._contact(db, contact_id)

    async def add_contact_number(self, contact_id: int, number: str) -> Contact | None:
        """Link one more number to a contact; None when there is no such contact."""
        number, key = self._number_key(number)
        async with self._tx() as db:
            if await self._contact(db, contact_id) is None:
                return None
            await db.execute(
                "INSERT INTO contact_numbers (contact_id, number, key) VALUES (?, ?, ?) "
                "ON CONFLICT (contact_id, key) DO NOTHING",
                (contact_id, number, key),
            )
            await db.execute(
                "UPDATE contacts SET updated_at = ? WHERE id = ?", (now_iso(), contact_id)
            )
            return await self._contact(db, contact_id)

    async def get_contact(self, contact_id: int) -> Contact | None:
        """One contact by id."""
        async with self._read() as db:
            return await self._contact(db, contact_id)

    async def contacts_for_number(self, number: str) -> list[Contact]:
        """Every contact with this number (by normalised key), by name."""
        key = self.key(number)
        if key is None:
            return []
        async with self._read() as db:
            async with db.execute(
                "SELECT c.id FROM contacts c WHERE c.id IN "
                "(SELECT contact_id FROM contact_numbers WHERE key = ?) ORDER BY c.name_fold, c.id",
                (key,),
            ) as cur:
                ids = [int(r["id"]) for r in await cur.fetchall()]
            return [c for i in ids if (c := await self._contact(db, i)) is not None]

    def contacts_for_number_now(self, number: str) -> list[Contact] | None:
        """`contacts_for_number`, answered at once in the event loop's thread (a ringing
        pop waits on it; see `fastpath`), or None when it cannot be: then await
        `contacts_for_number`."""
        key = self.key(number)
        if key is None:
            return []
        if self._fast is None:
            return None
        return self._fast.contacts(key)

    async def search_contacts(self, name_query: str, limit: int = 20) -> list[Contact]:
        """Contacts whose name contains `name_query` (case-insensitive), by name."""
        check_text("name_query", name_query, limit=200)
        limit = max(1, min(int(limit), 500))
        needle = name_query.strip().casefold()
        async with self._read() as db:
            async with db.execute(
                "SELECT id FROM contacts WHERE instr(name_fold, ?) > 0 "
                "ORDER BY name_fold, id LIMIT ?",
                (needle, limit),
            ) as cur:
                ids = [int(r["id"]) for r in await cur.fetchall()]
            return [c for i in ids if (c := await self._contact(db, i)) is not None]

    @staticmethod
    async def _contact(db: Connection, contact_id: int) -> Contact | None:
        async with db.execute(
            f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ?",  # noqa: S608
            (contact_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        async with db.execute(
            "SELECT number FROM contact_numbers WHERE contact_id = ? ORDER BY rowid",
            (contact_id,),
        ) as cur:
            numbers = tuple(str(r["number"]) for r in await cur.fetchall())
        return contact_from_row(row, numbers)

    # ----------------------------------------------------------------- outcomes

    async def save_outcome(
        self,
        *,
        call_id: str,
        agent: str,
        outcome: str,
        notes: str = "",
        follow_up: date | None = None,
        contact_id: int | None = None,
    ) -> Outcome:
        """Save an agent's outcome for a call; saving again for the same call and agent
        replaces it."""
        check_text("call_id", call_id, empty=False)
        check_text("agent", agent, empty=False)
        check_text("outcome", outcome, empty=False)
        check_text("notes", notes, limit=MAX_NOTES)
        if follow_up is not None and (
            not isinstance(follow_up, date) or isinstance(follow_up, datetime)
        ):
            raise StoreInputError("follow_up must be a date")
        now = now_iso()
        async with self._tx() as db:
            if contact_id is not None and await self._contact(db, contact_id) is None:
                raise StoreInputError(f"there is no contact {contact_id}")
            await db.execute(
                "INSERT INTO outcomes (call_id, agent, outcome, notes, follow_up, contact_id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (call_id, agent) DO UPDATE SET outcome = excluded.outcome, "
                "notes = excluded.notes, follow_up = excluded.follow_up, "
                "contact_id = excluded.contact_id, updated_at = excluded.updated_at",
                (
                    call_id,
                    agent,
                    outcome,
                    notes,
                    follow_up.isoformat() if follow_up else None,
                    contact_id,
                    now,
                    now,
                ),
            )
            async with db.execute(
                f"SELECT {OUTCOME_COLUMNS} FROM outcomes "  # noqa: S608 (constant columns)
                "WHERE call_id = ? AND agent = ?",
                (call_id, agent),
            ) as cur:
                row = await cur.fetchone()
        assert row is not None
        return outcome_from_row(row)

    async def get_outcomes(self, call_id: str) -> list[Outcome]:
        """Every agent's outcome for one call."""
        async with (
            self._read() as db,
            db.execute(
                f"SELECT {OUTCOME_COLUMNS} FROM outcomes "  # noqa: S608 (constant columns)
                "WHERE call_id = ? ORDER BY id",
                (call_id,),
            ) as cur,
        ):
            return [outcome_from_row(r) for r in await cur.fetchall()]

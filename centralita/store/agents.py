"""Agents' console passwords and the sessions they open."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from centralita.store import passwords
from centralita.store.base import Connection, StoreBase
from centralita.store.records import check_text, now_iso


class AgentsMixin(StoreBase):
    """The `agent_passwords`, `session_versions` and `revoked_sessions` tables."""

    # ----------------------------------------------------------------- passwords

    async def set_agent_password(self, extension: str, password: str) -> None:
        """Store a console password for `extension` as a salted scrypt hash; the agent's
        open sessions end (their session version moves on)."""
        check_text("extension", extension, limit=80, empty=False)
        check_text("password", password, limit=1024, empty=False)
        encoded = await asyncio.to_thread(passwords.hash_password, password)
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO agent_passwords (extension, hash, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (extension) DO UPDATE SET hash = excluded.hash, "
                "updated_at = excluded.updated_at",
                (extension, encoded, now_iso()),
            )
            await self._bump_session_version(db, extension)

    @staticmethod
    async def _bump_session_version(db: Connection, extension: str) -> None:
        await db.execute(
            "INSERT INTO session_versions (extension, version) VALUES (?, 1) "
            "ON CONFLICT (extension) DO UPDATE SET version = session_versions.version + 1",
            (extension,),
        )

    async def end_agent_sessions(self, extension: str) -> int:
        """End every console session of `extension` (agent removed); the new version."""
        check_text("extension", extension, limit=80, empty=False)
        async with self._tx() as db:
            await self._bump_session_version(db, extension)
        return await self.session_version(extension)

    async def session_version(self, extension: str) -> int:
        """The session version of `extension`: a cookie issued under another is void."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT version FROM session_versions WHERE extension = ?", (extension,)
            ) as cur,
        ):
            row = await cur.fetchone()
        return int(row["version"]) if row else 0

    async def session_valid(self, extension: str, sid: str, version: int) -> bool:
        """False when the session was logged out or its agent's version moved on."""
        sql = (
            "SELECT (SELECT version FROM session_versions WHERE extension = ?) AS version, "
            "EXISTS (SELECT 1 FROM revoked_sessions WHERE sid = ?) AS revoked"
        )
        row: Any = None
        # Every console request asks this (two primary-key probes): on the fast reader in
        # the loop's thread, as the returning-caller lookup, so a pause click does not wait
        # for aiosqlite's thread (bench/agent_state_bench.py); busy or slow: the worker.
        if self._fast is not None:
            try:
                row = self._fast.first_row(sql, (extension, sid))
            except sqlite3.OperationalError:
                row = None
        if row is None:
            async with self._read() as db, db.execute(sql, (extension, sid)) as cur:
                row = await cur.fetchone()
        assert row is not None
        return int(row["version"] or 0) == version and not row["revoked"]

    async def ended_sessions(self, sessions: Iterable[tuple[str, str, int]]) -> set[str]:
        """The ids among (extension, sid, version) whose session ended (see
        `session_valid`), in two queries for all of them."""
        async with self._read() as db:
            async with db.execute("SELECT extension, version FROM session_versions") as cur:
                versions = {str(r["extension"]): int(r["version"]) for r in await cur.fetchall()}
            async with db.execute(
                "SELECT sid FROM revoked_sessions WHERE expires_at >= ?", (time.time(),)
            ) as cur:
                revoked = {str(r["sid"]) for r in await cur.fetchall()}
        return {
            sid
            for extension, sid, version in sessions
            if sid in revoked or versions.get(extension, 0) != version
        }

    async def revoke_session(self, sid: str, expires_at: float) -> None:
        """Log one session out for good (kept until its cookie would expire anyway)."""
        check_text("sid", sid, limit=200, empty=False)
        async with self._tx() as db:
            await db.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (time.time(),))
            await db.execute(
                "INSERT INTO revoked_sessions (sid, expires_at) VALUES (?, ?) "
                "ON CONFLICT (sid) DO UPDATE SET expires_at = excluded.expires_at",
                (sid, float(expires_at)),
            )

    async def verify_agent_password(self, extension: str, password: str) -> bool:
        """True when `password` is the console password of `extension`."""
        if not isinstance(extension, str) or not isinstance(password, str):
            return False
        async with (
            self._read() as db,
            db.execute("SELECT hash FROM agent_passwords WHERE extension = ?", (extension,)) as cur,
        ):
            row = await cur.fetchone()
        if row is None or len(password) > 1024:
            # Hash anyway: an unknown extension takes as long as a wrong password, so the
            # login form does not tell which extensions exist.
            await asyncio.to_thread(passwords.hash_password, password[:1024])
            return False
        return await asyncio.to_thread(passwords.check_password, password, str(row["hash"]))

    async def remove_agent_password(self, extension: str) -> bool:
        """Forget an extension's console password and end its sessions; False when it had
        no password."""
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM agent_passwords WHERE extension = ?", (extension,))
            await self._bump_session_version(db, extension)
            return cur.rowcount > 0

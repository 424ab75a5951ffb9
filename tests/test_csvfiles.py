"""Who writes callbacks.csv and complaints.csv (centralita/csvfiles.py): with PostgreSQL, the
one instance holding the writer's lease, from the database; then the next when it stops. Two
whole apps (tests/test_web_support.py) on one PostgreSQL, each with its own data folder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_settings, start_flow_env
from test_web_support import WebEnv, console_env

from agi.flows.context import CallbackEntry, RatingEntry
from centralita import csvfiles
from centralita.cli import main
from centralita.csvfiles import CsvFiles
from centralita.csvlog import read_rows
from centralita.keys import FLOW_CONTEXT
from centralita.store import CallbackRequest, open_store
from centralita.store.postgres import PgStore


def _on(url: str) -> Callable[[str], str]:
    return lambda text: text + f'\n[store]\nurl = "{url}"\n'


def _entry(number: str) -> CallbackEntry:
    return CallbackEntry(
        callerid=f"+34{number}",
        language="en",
        queue="support-en",
        number=number,
        alternative="",
        uniqueid=f"{number}.1",
    )


def _files(env: WebEnv) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    data = env.settings.data_dir
    return read_rows(data / "callbacks.csv"), read_rows(data / "complaints.csv")


async def _until(check: Callable[[], bool]) -> bool:
    """Readiness poll (the writer runs every POLL_S), not a time limit on the result."""
    for _ in range(300):
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_two_instances_on_one_postgresql_elect_one_csv_writer(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvfiles, "POLL_S", 0.1)
    monkeypatch.setattr(csvfiles, "ELECT_EVERY_S", 0.1)
    stacks = {name: AsyncExitStack() for name in ("a", "b")}
    envs = {}
    try:
        for name, stack in stacks.items():
            (tmp_path / name).mkdir()
            envs[name] = await stack.enter_async_context(
                console_env(tmp_path / name, edit=_on(pg_url))
            )
        writing = [n for n, e in envs.items() if e.app[FLOW_CONTEXT].csv_files.writing]
        assert len(writing) == 1
        writer, other = envs[writing[0]], envs["b" if writing[0] == "a" else "a"]
        # A flow on the other instance and one on the writer: both rows, in the writer's
        # files only, once each.
        await other.app[FLOW_CONTEXT].save_callback(_entry("600000001"))
        await writer.app[FLOW_CONTEXT].save_rating(
            RatingEntry(callerid="+34600000002", agent="1002", queue="support-en", rating=3,
                        call_id="2.1")
        )  # fmt: skip
        assert await _until(lambda: len(_files(writer)[0]) == 1 and len(_files(writer)[1]) == 1)
        (callback,) = await writer.store.list_callbacks()
        # Assigned on the other instance: a change, but not of its status (no row, as with
        # SQLite's direct writes) ...
        await other.store.assign_callback(callback.id, "1002")
        await writer.app[FLOW_CONTEXT].csv_files.sync()
        assert len(_files(writer)[0]) == 1
        # ... then closed there (its console): that reaches the file.
        await other.store.close_callback(callback.id, status="done", by="1002")
        assert await _until(lambda: len(_files(writer)[0]) == 2)
        callbacks, ratings = _files(writer)
        assert [(r["id"], r["status"], r["number"]) for r in callbacks] == [
            (str(callback.id), "pending", "600000001"),
            (str(callback.id), "done", "600000001"),
        ]
        assert [r["call_id"] for r in ratings] == ["2.1"]
        assert _files(other) == ([], [])
        assert not (other.settings.data_dir / "callbacks.csv").exists()

        # The writer stops: the other takes the lease over, catches its own files up from
        # the database, then writes what comes next.
        await stacks[writing[0]].aclose()
        assert await _until(lambda: other.app[FLOW_CONTEXT].csv_files.writing)
        await other.app[FLOW_CONTEXT].save_callback(_entry("600000003"))
        callbacks, ratings = _files(other)
        assert [(r["number"], r["status"]) for r in callbacks] == [
            ("600000001", "done"),
            ("600000003", "pending"),
        ]
        assert [r["call_id"] for r in ratings] == ["2.1"]
        # The stopped writer's files got nothing more.
        assert len(_files(writer)[0]) == 2
    finally:
        for stack in stacks.values():
            await stack.aclose()


async def test_csv_files_off_leaves_data_dir_without_them(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, lambda text: text.replace("csv_files = true", "csv_files = false")
    )
    assert settings.server.csv_files is False
    async for env in start_flow_env(settings):
        await env.context.save_callback(_entry("600000001"))
        await env.context.save_rating(
            RatingEntry(callerid="+34600000002", agent="1002", queue="support-en", rating=3,
                        call_id="2.1")
        )  # fmt: skip
        assert len(await env.store.list_callbacks()) == 1  # stored all the same
    assert not (settings.data_dir / "callbacks.csv").exists()
    assert not (settings.data_dir / "complaints.csv").exists()


async def test_the_command_line_rebuild_waits_for_no_writer(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, _on(pg_url))
    config = str(tmp_path / "centralita.toml")
    async with open_store(settings) as store:
        await store.add_callback(
            callerid="+34600000001",
            language="en",
            queue="support-en",
            number="600000001",
            alternative="",
            uniqueid="1.1",
        )
        writer = CsvFiles(store, settings)
        await writer.start()
        try:
            assert writer.writing
            # The running writer's files are its own: the command says so and leaves them.
            assert await asyncio.to_thread(main, ["callbacks", "--config", config, "--csv"]) == 1
            assert "export with --csv FILE" in capsys.readouterr().err
        finally:
            await writer.stop()
    (settings.data_dir / "callbacks.csv").unlink()
    assert await asyncio.to_thread(main, ["callbacks", "--config", config, "--csv"]) == 0
    assert "rebuilt" in capsys.readouterr().out
    assert [r["number"] for r in read_rows(settings.data_dir / "callbacks.csv")] == ["600000001"]


async def _lease_backends(store: PgStore) -> tuple[list[int], list[int]]:
    """The server processes holding an advisory lock (the lease), and those whose last query
    asked for one and hold none (the candidates), other than the asker's."""
    async with store._read() as db:
        holders = await db.execute_fetchall(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid <> pg_backend_pid() AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        asking = await db.execute_fetchall(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_try_advisory_lock(%' "
            "AND pid <> pg_backend_pid() AND datname = current_database()"
        )
    held = sorted({int(row[0]) for row in holders})
    return held, sorted({int(row[0]) for row in asking} - set(held))


async def test_a_candidate_asks_for_the_lease_on_one_kept_connection(
    pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings_a = make_settings(tmp_path / "a", _on(pg_url))
    settings_b = make_settings(tmp_path / "b", _on(pg_url))
    async with open_store(settings_a) as store:
        assert isinstance(store, PgStore)
        writer, candidate = CsvFiles(store, settings_a), CsvFiles(store, settings_b)
        await writer.start()
        try:
            await candidate.start()
            assert writer.writing and not candidate.writing
            holders, candidates = await _lease_backends(store)
            assert len(holders) == 1 and len(candidates) == 1
            # Asking again and again: one connection, the same server process each time
            # (a new connection per ask cost the database a process every ELECT_EVERY_S).
            for _ in range(3):
                await candidate._campaign()
                assert not candidate.writing
                assert await _lease_backends(store) == (holders, candidates)
            # The writer stops: an ask of the candidate wins, on that same connection
            # (readiness poll: the server frees the lock once it has read the close).
            await writer.stop()
            for _ in range(300):
                await candidate._campaign()
                if candidate.writing:
                    break
                await asyncio.sleep(0.05)
            assert candidate.writing
            assert (await _lease_backends(store))[0] == candidates
        finally:
            await candidate.stop()
            await writer.stop()
        # A stop gives every connection up (readiness poll, as above).
        for _ in range(300):
            if await _lease_backends(store) == ([], []):
                break
            await asyncio.sleep(0.05)
        assert await _lease_backends(store) == ([], [])


async def test_the_writer_reads_recent_changes_and_sweeps_the_window(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, _on(pg_url))

    def numbers() -> list[str]:
        return [r["number"] for r in read_rows(settings.data_dir / "callbacks.csv")]

    async with open_store(settings) as store:
        assert isinstance(store, PgStore)
        writer = CsvFiles(store, settings)
        await writer.start()
        try:
            assert writer.writing
            await writer.sync()  # the whole window: the next polls read from the newest on

            async def stored(number: str) -> CallbackRequest:  # by another instance
                return await store.add_callback(
                    callerid=f"+34{number}", language="en", queue="support-en",
                    number=number, alternative="", uniqueid=f"{number}.1",
                )  # fmt: skip

            await stored("600000001")
            await writer.sync()
            assert numbers() == ["600000001"]
            # A row committed late by another instance, with a time 10 s older than the rows
            # read (past RECENT_S): the next poll reads from the newest time it saw ...
            late = await stored("600000002")
            old = (datetime.now(UTC) - timedelta(seconds=10)).isoformat(timespec="seconds")
            async with store._tx() as db:
                await db.execute(
                    "UPDATE callbacks SET created_at = ?, updated_at = ? WHERE id = ?",
                    (old, old, late.id),
                )
            await stored("600000003")
            await writer.sync()
            assert numbers() == ["600000001", "600000003"]
            # ... and the sweep of the whole OVERLAP_S window finds it, once.
            monkeypatch.setattr(csvfiles, "SWEEP_EVERY_S", 0.0)
            await writer.sync()
            await writer.sync()
            assert numbers() == ["600000001", "600000003", "600000002"]
        finally:
            await writer.stop()

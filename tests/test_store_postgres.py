"""The store on PostgreSQL beyond what every store test checks on both backends: `[store] url`,
clear errors, the migrations run once by many instances, the returning-caller lookup's
deadline, and `centralita db migrate|copy`. A real server: tests/pgcluster.py."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_cli_serve import free_port, healthz

from agi.testing import Caller, place_call
from centralita import cli
from centralita.settings import demo_text, load_settings
from centralita.store import (
    SCHEMA_VERSION,
    CallRecord,
    PgLocation,
    SqliteLocation,
    Store,
    StoreError,
    StoreSchemaError,
    StoreUrlError,
    default_path,
    open_location,
    open_store,
)
from centralita.store.copy import CopyError, copy_store
from centralita.store.postgres import PgStore, pg_sql, text_array
from centralita.store.url import parse_store_url
from dialplan.validate import ConfigError

# ------------------------------------------------------------------ [store] url


def test_store_urls_name_sqlite_files_and_postgresql_servers(tmp_path: Path) -> None:
    assert parse_store_url("sqlite:///data/c.db", base=tmp_path) == SqliteLocation(
        tmp_path / "data" / "c.db"
    )
    absolute = tmp_path / "elsewhere" / "c.db"  # an absolute path: four slashes
    assert parse_store_url(f"sqlite:///{absolute}", base=tmp_path / "data") == SqliteLocation(
        absolute
    )
    pg = parse_store_url("postgresql://centralita@db.example:5433/cc", base=tmp_path)
    assert isinstance(pg, PgLocation)
    assert pg.display == "centralita@db.example:5433/cc" and pg.password is None
    with_env = parse_store_url(
        "postgres://u@h/d", base=tmp_path, password_env="DBPW", environ={"DBPW": "s3cret"}
    )
    assert isinstance(with_env, PgLocation) and with_env.password == "s3cret"
    assert "s3cret" not in repr(with_env)  # a logged location never shows it
    for bad, reason in [
        ("centralita.sqlite3", "not a store URL"),
        ("mysql://h/d", "unknown database 'mysql'"),
        ("sqlite://", "sqlite:///relative/file"),
        ("postgresql://u:pw@h/d", "must not hold the password"),
        ("postgresql://h:99999/d", "not a valid PostgreSQL URL"),
    ]:
        with pytest.raises(StoreUrlError, match=reason):
            parse_store_url(bad, base=tmp_path)
    with pytest.raises(StoreUrlError, match="DBPW, which is not set"):
        parse_store_url("postgresql://u@h/d", base=tmp_path, password_env="DBPW", environ={})


def _config(tmp_path: Path, store: str) -> Path:
    """The demo config with a `[store]` section."""
    path = tmp_path / "centralita.toml"
    path.write_text(f"{demo_text()}\n[store]\n{store}\n", encoding="utf-8")
    return path


def test_the_store_section_is_checked_with_the_config(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, "pool_size = 4"))
    assert settings.store_location() == SqliteLocation(default_path(tmp_path / "data"))
    settings = load_settings(_config(tmp_path, 'url = "sqlite:///other.sqlite3"'))
    assert settings.store_location() == SqliteLocation(tmp_path / "other.sqlite3")
    settings = load_settings(
        _config(tmp_path, 'url = "postgresql://cc@db/cc"\npassword_env = "CC_DB_PASSWORD"')
    )
    assert settings.store.pool_size == 10
    location = settings.store_location({"CC_DB_PASSWORD": "pw"})
    assert isinstance(location, PgLocation) and location.password == "pw"
    for text, key, reason in [
        ('url = "postgresql://cc:pw@db/cc"', "store.url", "must not hold the password"),
        ('url = "oracle://db"', "store.url", "unknown database"),
        ('url = "sqlite:///x"\npassword_env = "X"', "store.password_env", "postgresql"),
        ("pool_size = 0", "store.pool_size", ""),
        ('colour = "blue"', "store.colour", ""),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as caught:
            load_settings(_config(tmp_path, text))
        assert reason in str(caught.value)


def test_a_missing_password_variable_is_a_clear_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CC_NOT_SET", raising=False)
    config = _config(tmp_path, 'url = "postgresql://cc@db/cc"\npassword_env = "CC_NOT_SET"')
    assert cli.main(["db", "migrate", "--config", str(config)]) == 2
    assert "CC_NOT_SET, which is not set" in capsys.readouterr().err
    args = ["db", "copy", "--from", "mysql://h/d", "--to", "sqlite:///c.sqlite3"]
    assert cli.main(args) == 2
    assert "unknown database 'mysql'" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_server_is_a_store_error_naming_it(tmp_path: Path) -> None:
    port = _closed_port()
    location = parse_store_url(f"postgresql://cc@127.0.0.1:{port}/cc", base=tmp_path)
    with pytest.raises(
        StoreError, match=rf"cannot connect to PostgreSQL at cc@127\.0\.0\.1:{port}/cc"
    ):
        await open_location(location)


def test_placeholders_become_psycopgs_outside_literals() -> None:
    # psycopg reads `%` everywhere, literals included: doubled there too.
    assert pg_sql("SELECT a FROM t WHERE b = ? AND c LIKE '%?%' AND d = :name") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE '%%?%%' AND d = %(name)s"
    )
    assert pg_sql('SELECT x::text, "we?ird" FROM t WHERE y = ?') == (
        'SELECT x::text, "we?ird" FROM t WHERE y = %s'
    )


# ------------------------------------------------------------------ opening and migrating


async def test_postgres_tables_are_created_once_by_instances_starting_together(
    pg_url: str, tmp_path: Path
) -> None:
    location = parse_store_url(pg_url, base=tmp_path)
    stores = await asyncio.gather(*(open_location(location) for _ in range(4)))
    try:
        assert [await s.schema_version() for s in stores] == [SCHEMA_VERSION] * 4
        added = await stores[0].add_callback(
            callerid="1",
            language="en",
            queue="q",
            number="915550123",
            alternative="",
            uniqueid="1.1",
        )
        assert [c.id for c in await stores[3].list_callbacks()] == [added.id]
    finally:
        for store in stores:
            await store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreSchemaError, match="newer"):
        await open_location(location)


async def test_the_lookup_past_its_deadline_is_answered_by_the_pool(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = parse_store_url(pg_url, base=tmp_path)
    async with open_location(location) as store:
        assert isinstance(store, PgStore)
        start = datetime(2026, 3, 1, 9, 0)
        await store.upsert_cdr(
            CallRecord(
                uniqueid="1.1", linkedid="", src="915550123", dst="300", dcontext="queue-sip",
                clid="", channel="SIP/trunk-1", dstchannel="SIP/1001-00000001", lastapp="Queue",
                start=start, answer=start, end=start + timedelta(seconds=9), duration=9,
                billsec=9, disposition="ANSWERED",
            )
        )  # fmt: skip
        pooled: list[str] = []
        real_read = store._read

        def spy_read() -> Any:
            pooled.append("read")
            return real_read()

        monkeypatch.setattr(store, "_read", spy_read)
        key = store.key("915550123")
        assert key is not None
        for _ in range(3):
            lookup = store.last_agent_for(
                key, since=start, dispositions=["ANSWERED"], agents={"1001"}
            )
            assert await lookup == "1001"
        # On the connection of its own (a lookup past the deadline on a busy machine may
        # still go to the pool: the point is that they need not).
        assert len(pooled) < 3
        pooled.clear()
        # A statement the server runs past PG_FAST_LOOKUP_TIMEOUT_MS: cancelled there, asked
        # again of the pool (without a deadline), and the lookup connection still works after.
        row = await store._first_row_soon("SELECT pg_sleep(0.2) AS slept, ? AS agent", ("x",))
        assert row is not None and row["agent"] == "x" and pooled == ["read"]
        assert store._fast_pg is not None and not store._fast_pg.closed


async def test_the_pop_lookups_in_the_loops_thread_defer_to_the_store_on_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    async with open_location(parse_store_url(pg_url, base=tmp_path)) as store:
        await store.create_contact(name="Ann", numbers=["915550123"])
        assert store.contacts_for_number_now("915550123") is None  # ask the store instead
        assert [c.name for c in await store.contacts_for_number("915550123")] == ["Ann"]
        assert store.caller_history_now("915550123", "915550123", 5) is None


# ------------------------------------------------------------------ db copy


async def _fill(store: Any) -> None:
    ann = await store.create_contact(name="Ann", numbers=["915550123", "600000001"])
    await store.add_contact_number(ann.id, "600000000")  # numbers keep their order
    await store.add_callback(
        callerid="1", language="en", queue="q", number="915550123", alternative="", uniqueid="1.1"
    )
    second = await store.add_callback(
        callerid="2", language="fr", queue="q", number="915550124", alternative="", uniqueid="2.1"
    )
    await store.set_callback_status(second.id - 1, "done")
    await store.add_rating(callerid="1", agent="1001", queue="q", rating=3, call_id="1.1")
    await store.save_outcome(call_id="1.1", agent="1001", outcome="sale", contact_id=ann.id)
    await store.set_agent_password("1001", "correct horse")
    await store.revoke_session("sid-1", 4_000_000_000.5)
    await store.enqueue_event("https://example.invalid/hook", {"n": 1})
    await store.add_audit(actor="1001", action="member.add", subject="1002", changes="+x")
    await store.set_agent_preferences("1001", '{"theme":"dark"}')
    start = datetime(2026, 3, 1, 9, 0)
    for n in range(3):
        await store.upsert_cdr(
            CallRecord(
                uniqueid=f"{n}.1", linkedid=f"{n}.1", src="915550123", dst="300",
                dcontext="queue-sip", clid="", channel="SIP/trunk-1",
                dstchannel=f"SIP/100{n}-0000000{n}", lastapp="Queue",
                start=start + timedelta(minutes=n),
                answer=None, end=start + timedelta(minutes=n, seconds=9), duration=9,
                billsec=0, disposition="NO ANSWER",
            )
        )  # fmt: skip


async def test_db_copy_moves_every_row_with_its_id_and_new_rows_follow(
    pg_url: str, tmp_path: Path
) -> None:
    async with Store.open(tmp_path / "old.sqlite3") as old:
        await _fill(old)
        old_callbacks = await old.list_callbacks()
        old_contact = await old.get_contact(1)
        old_cdrs = await old.get_cdrs("2.1")
    target = parse_store_url(pg_url, base=tmp_path)
    source = SqliteLocation(tmp_path / "old.sqlite3")
    async with open_location(source) as src, open_location(target) as dst:
        report = await copy_store(src, dst)
        assert report.tables["cdr"] == 3 and report.tables["contact_numbers"] == 3
        assert report.tables["callbacks"] == 2 and report.rows == sum(report.tables.values())
        assert set(report.tables) >= {"ratings", "outcomes", "outbox", "audit_log"}
        with pytest.raises(CopyError, match="already holds rows"):
            await copy_store(src, dst)  # nothing is touched: the rows are there once
        assert await dst.count_cdrs() == 3
    async with open_location(target) as pg:
        assert await pg.list_callbacks() == old_callbacks  # ids, times, statuses
        assert await pg.get_contact(1) == old_contact  # the numbers in their order
        assert await pg.get_cdrs("2.1") == old_cdrs
        assert await pg.verify_agent_password("1001", "correct horse")
        assert await pg.session_valid("1001", "sid-1", await pg.session_version("1001")) is False
        assert await pg.agent_preferences("1001") == '{"theme":"dark"}'
        [event] = await pg.due_events(datetime(2100, 1, 1))
        assert event.payload == {"n": 1}
        # The sequences moved past the copied ids: a new row takes the next one.
        added = await pg.add_callback(
            callerid="3",
            language="en",
            queue="q",
            number="915550125",
            alternative="",
            uniqueid="3.1",
        )
        assert added.id == max(c.id for c in old_callbacks) + 1
        bob = await pg.create_contact(name="Bob", numbers=["915550999"])
        assert bob.id == 2 and bob.numbers == ("915550999",)


def test_db_copy_and_migrate_from_the_command_line(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fill() -> None:
        async with Store.open(tmp_path / "site.sqlite3") as store:
            await _fill(store)

    asyncio.run(fill())
    monkeypatch.chdir(tmp_path)
    assert cli.main(["db", "copy", "--from", "sqlite:///site.sqlite3", "--to", pg_url]) == 0
    out = capsys.readouterr().out
    assert "cdr: 3 rows" in out and "counts match" in out
    assert cli.main(["db", "copy", "--from", "sqlite:///site.sqlite3", "--to", pg_url]) == 1
    assert "--replace" in capsys.readouterr().err
    args = ["db", "copy", "--from", "sqlite:///site.sqlite3", "--to", pg_url, "--replace"]
    assert cli.main(args) == 0
    assert "copied" in capsys.readouterr().out
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM callbacks").fetchone() == (2,)
    # The way back, into a new SQLite file (any direction works).
    assert cli.main(["db", "copy", "--from", pg_url, "--to", "sqlite:///back.sqlite3"]) == 0
    capsys.readouterr()

    config = _config(tmp_path, f'url = "{pg_url}"')
    assert cli.main(["db", "migrate", "--config", str(config)]) == 0
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out

    async def read_back() -> None:
        async with open_store(load_settings(config)) as store:
            assert len(await store.list_callbacks()) == 2
        async with Store.open(tmp_path / "back.sqlite3") as back:
            assert len(await back.list_callbacks()) == 2 and await back.count_cdrs() == 3

    asyncio.run(read_back())


def test_text_arrays_keep_quotes_and_backslashes(pg_url: str) -> None:
    values = ("1001", 'a"b', "c\\d", "e,f", "{g}", " h ", "NULL")
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT %s::text[]", (text_array(values),)).fetchone()
    assert row is not None and tuple(row[0]) == values


# ------------------------------------------------------------------ serve on PostgreSQL


async def test_two_serve_processes_keep_their_callers_callbacks_in_one_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    processes = []
    ports = []
    try:
        for name in ("one", "two"):
            agi_port, web_port, ami_port = free_port(), free_port(), free_port()
            folder = tmp_path / name
            folder.mkdir()
            config = folder / "centralita.toml"
            config.write_text(
                demo_text()
                .replace("agi_port = 4573", f"agi_port = {agi_port}")
                .replace("web_port = 8080", f"web_port = {web_port}")
                .replace("ami_port = 5038", f"ami_port = {ami_port}")  # no AMI: not needed
                .replace('spool_dir = "/var/spool/asterisk"', 'spool_dir = "spool"')
                + f'\n[store]\nurl = "{pg_url}"\n',
                encoding="utf-8",
            )
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
                    [sys.executable, "-m", "centralita", "serve", "--config", str(config)],
                    cwd=folder,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            )
            ports.append((agi_port, web_port))
        for process, (_, web_port) in zip(processes, ports, strict=True):
            health = None
            for _ in range(300):  # readiness poll, not a time limit
                health = await asyncio.to_thread(healthz, web_port)
                if health is not None or process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            assert health is not None, process.stdout.read() if process.stdout else ""
        for n, (agi_port, _) in enumerate(ports):
            caller = Caller(
                script="callback", args=["support-en"], keys=[f"60012345{n}#", "1", "#"]
            )
            result = await place_call("127.0.0.1", agi_port, caller)
            assert result.route == "hangup"
    finally:
        outputs = []
        for process in processes:
            process.send_signal(signal.SIGTERM)
            outputs.append(process.communicate(timeout=30)[0].decode())
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert not (tmp_path / "one" / "data" / "centralita.sqlite3").exists()
    async with open_location(parse_store_url(pg_url, base=tmp_path)) as store:
        stored = await store.list_callbacks()
    assert sorted(c.number for c in stored) == ["600123450", "600123451"]

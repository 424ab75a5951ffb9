"""The log subcommands, run through `centralita.cli.main` against a real store."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from centralita import cli
from centralita.csvlog import CALLBACKS_HEADER, read_rows
from centralita.settings import demo_text
from centralita.store import AuditEntry, CallbackRequest, CallRecord, Store, default_path

# A cdr_csv Master.csv in the three layouts (16 columns; 17 with loguniqueid; 21 with
# loguniqueid, loguserfield and newcdrcolumns) plus two garbage rows: tests/fixtures/cdr.
MASTER_CSV = (Path(__file__).parent / "fixtures" / "cdr" / "Master.csv").read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _available_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other command modules are written in parallel; run with those that exist today.
    present = tuple(m for m in cli.COMMAND_MODULES if importlib.util.find_spec(m) is not None)
    monkeypatch.setattr(cli, "COMMAND_MODULES", present)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    text = demo_text()
    assert 'data_dir = "data"' in text
    path = tmp_path / "centralita.toml"
    path.write_text(text.replace('data_dir = "data"', 'data_dir = "store-data"'), encoding="utf-8")
    return path


def data_dir(config: Path) -> Path:
    return config.parent / "store-data"


def seed(config: Path) -> dict[str, int]:
    """Fill the store the way the flows would, outside any running event loop."""

    async def run() -> dict[str, int]:
        async with Store.open(default_path(data_dir(config))) as store:
            a = await store.add_callback(
                callerid='"Bob" <+34915550123>',
                language="en",
                queue="support-en",
                number="915550123",
                alternative="612345678",
                uniqueid="1.0",
            )
            b = await store.add_callback(
                callerid="\x1b[31mevil",
                language="fr",
                queue="support-fr",
                number="=2+5",
                alternative="",
                uniqueid="2.0",
            )
            await store.add_rating(
                callerid="915550123", agent="1001", queue="support-en", rating=2, call_id="1.0"
            )
            await store.add_rating(
                callerid="699000111", agent="1002", queue="support-en", rating=9, call_id="3.0"
            )
            contact = await store.create_contact(name="Bob Customer", numbers=["915550123"])
            await store.upsert_cdr(
                CallRecord(
                    uniqueid="1.1",
                    linkedid="1.0",
                    src="+34915550123",
                    dst="300",
                    dcontext="queue-sip",
                    clid='"Bob" <+34915550123>',
                    channel="SIP/trunk-00000001",
                    dstchannel="SIP/1001-00000002",
                    lastapp="Queue",
                    start=datetime(2026, 3, 1, 10, 0, 0),
                    answer=datetime(2026, 3, 1, 10, 0, 5),
                    end=datetime(2026, 3, 1, 10, 1, 0),
                    duration=60,
                    billsec=55,
                    disposition="ANSWERED",
                )
            )
            await store.save_outcome(
                call_id="1.0",
                agent="1001",
                outcome="sale",
                notes="two units",
                contact_id=contact.id,
            )
            return {"a": a.id, "b": b.id}

    return asyncio.run(run())


def test_callbacks_list_and_done(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = seed(config)
    assert cli.main(["callbacks", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "915550123" in out and "612345678" in out and "pending" in out
    assert "\x1b" not in out and "\\x1b[31mevil" in out  # no terminal escapes from callers

    assert cli.main(["callbacks", "done", str(ids["a"]), "--config", str(config)]) == 0
    assert "is done" in capsys.readouterr().out
    assert cli.main(["callbacks", "--config", str(config), "--status", "pending"]) == 0
    out = capsys.readouterr().out
    assert "=2+5" in out and "612345678" not in out
    assert cli.main(["callbacks", "--status", "done", "--config", str(config)]) == 0
    assert "612345678" in capsys.readouterr().out

    # The change is logged to callbacks.csv.
    [row] = read_rows(data_dir(config) / "callbacks.csv")
    assert (row["id"], row["status"], row["number"]) == (str(ids["a"]), "done", "915550123")


def test_callbacks_done_unknown_id(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(config)
    assert cli.main(["callbacks", "--config", str(config), "done", "999"]) == 1
    err = capsys.readouterr().err
    assert "no callback request 999" in err


def test_callbacks_empty(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["callbacks", "--config", str(config)]) == 0
    assert "no callback requests" in capsys.readouterr().out


def test_complaints(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(config)
    assert cli.main(["complaints", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1001" in out and "1002" not in out  # demo threshold is 5
    assert cli.main(["complaints", "--all", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1001" in out and "1002" in out


def test_calls(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(config)
    assert cli.main(["calls", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Bob Customer" in out and "sale" in out and "two units" in out
    assert "1-1 of 1 calls" in out
    assert (
        cli.main(["calls", "--config", str(config), "--agent", "1001", "--from", "2026-03-01"]) == 0
    )
    assert "Bob Customer" in capsys.readouterr().out
    assert cli.main(["calls", "--config", str(config), "--to", "2026-02-28"]) == 0
    assert "no calls" in capsys.readouterr().out
    assert cli.main(["calls", "--config", str(config), "--customer", "bob"]) == 0
    assert "two units" in capsys.readouterr().out
    assert cli.main(["calls", "--config", str(config), "--customer", "nobody"]) == 0
    assert "no calls" in capsys.readouterr().out


def test_calls_csv(config: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    seed(config)
    assert cli.main(["calls", "--config", str(config), "--csv"]) == 0
    lines = capsysbinary.readouterr().out.split(b"\r\n")
    assert lines[0].startswith(b"time,uniqueid,linkedid,caller")
    assert b"'+34915550123" in lines[1] and b"two units" in lines[1]


def test_calls_bad_date(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["calls", "--config", str(config), "--from", "yesterday"])
    assert exc.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_cdr_import(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    master = tmp_path / "Master.csv"
    master.write_text(MASTER_CSV, encoding="utf-8")
    assert cli.main(["cdr", "import", str(master), "--config", str(config)]) == 0
    # Duplicates and unreadable rows are told apart: only the latter need a look.
    assert "imported 3, already stored 0, unreadable 2" in capsys.readouterr().out
    assert cli.main(["cdr", "import", str(master), "--config", str(config)]) == 0
    assert "imported 0, already stored 3, unreadable 2" in capsys.readouterr().out
    assert cli.main(["calls", "--config", str(config), "--customer", "5551234567"]) == 0
    assert "1-1 of 1 calls" in capsys.readouterr().out


def test_cdr_import_missing_file(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["cdr", "import", str(tmp_path / "nope.csv"), "--config", str(config)]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["callbacks"],
        ["callbacks", "--csv"],
        ["callbacks", "done", "1"],
        ["complaints"],
        ["calls"],
        ["calls", "--csv"],
    ],
)
def test_reading_commands_create_no_database(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    # Run where there is no config: the built-in demo, data_dir ./data.
    monkeypatch.chdir(tmp_path)
    assert cli.main(command) in (0, 1)
    database = tmp_path / "data" / "centralita.sqlite3"
    assert f"no database at {database} yet" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def bogota(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC-5 all year (no summer time), whatever the machine's zone."""
    monkeypatch.setenv("TZ", "America/Bogota")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("bogota")
def test_every_log_shows_local_time_with_its_offset(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(config)
    local = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d-05:00")
    for command in (["callbacks"], ["complaints"], ["calls"]):
        assert cli.main([*command, "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert local.search(out), (command, out)
        assert "+00:00" not in out, (command, out)
    # The call record's wall-clock time, with the offset it was written in.
    assert cli.main(["calls", "--config", str(config)]) == 0
    assert "2026-03-01 10:00:00-05:00" in capsys.readouterr().out


def test_callbacks_cancel_with_a_note(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = seed(config)
    command = ["callbacks", "cancel", str(ids["b"]), "--note", "Asked twice", "--config"]
    assert cli.main([*command, str(config)]) == 0
    assert "is cancelled" in capsys.readouterr().out

    async def read() -> tuple[CallbackRequest | None, list[AuditEntry]]:
        async with Store.open(default_path(data_dir(config))) as store:
            return await store.get_callback(ids["b"]), await store.list_audit()

    closed, audit = asyncio.run(read())
    assert closed is not None
    assert (closed.status, closed.closed_by, closed.note) == ("cancelled", "cli", "Asked twice")
    assert [(a.actor, a.action, a.subject, a.changes) for a in audit] == [
        ("cli", "callback.cancel", f"callback {ids['b']}", "Asked twice")
    ]


# ------------------------------------------------------------------ CSV exports of the database


def test_callbacks_and_complaints_export_csv_from_the_database(
    config: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ids = seed(config)
    assert cli.main(["callbacks", "--config", str(config), "--csv", "-"]) == 0
    records = list(csv.reader(io.StringIO(capsysbinary.readouterr().out.decode(), newline="")))
    assert records[0] == list(CALLBACKS_HEADER)
    by_id = {r[7]: r for r in records[1:]}
    assert set(by_id) == {str(ids["a"]), str(ids["b"])}
    # The one encoder: a caller's formula reaches the spreadsheet as text.
    assert by_id[str(ids["b"])][4] == "'=2+5"
    # Only the low ratings, unless --all; to a file, replaced whole.
    out = tmp_path / "complaints-export.csv"
    assert cli.main(["complaints", "--config", str(config), "--csv", str(out)]) == 0
    assert [r["call_id"] for r in read_rows(out)] == ["1.0"]
    assert cli.main(["complaints", "--all", "--config", str(config), "--csv", str(out)]) == 0
    assert sorted(r["call_id"] for r in read_rows(out)) == ["1.0", "3.0"]
    # An export is not the data_dir's log: nothing was written there.
    assert not (data_dir(config) / "callbacks.csv").exists()
    assert not (data_dir(config) / "complaints.csv").exists()


def test_csv_files_off_writes_no_log_from_the_command_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(
        config.read_text(encoding="utf-8").replace("csv_files = true", "csv_files = false"),
        encoding="utf-8",
    )
    ids = seed(config)
    assert cli.main(["callbacks", "done", str(ids["a"]), "--config", str(config)]) == 0
    assert "is done" in capsys.readouterr().out
    assert not (data_dir(config) / "callbacks.csv").exists()

"""`centralita backup DIR`: a consistent copy of the data folder while the store is written."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from centralita.cli import main
from centralita.settings import demo_text, load_settings
from centralita.store import Store, default_path


def config_in(tmp_path: Path) -> Path:
    path = tmp_path / "site" / "centralita.toml"
    path.parent.mkdir()
    path.write_text(demo_text(), encoding="utf-8")
    return path


async def add_callbacks(store: Store, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await store.add_callback(
            callerid=f"6000{n:05d}",
            language="en",
            queue="support-en",
            number=f"6000{n:05d}",
            alternative="",
            uniqueid=f"{n}.0",
        )


async def test_backup_while_the_store_is_written_then_restore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_in(tmp_path)
    settings = load_settings(config)
    data = settings.server.data_dir
    dest = tmp_path / "backup"
    async with Store.open(default_path(data)) as store:
        await add_callbacks(store, 50)
        (data / "callbacks.csv").write_bytes(b"id,time\n1,2026-01-01\n2,half a li")
        (data / "secret_key").write_bytes(b"k" * 32)
        # The server goes on writing while the backup runs (in another thread, as a CLI).
        writer = asyncio.create_task(add_callbacks(store, 100, start=50))
        code = await asyncio.to_thread(main, ["backup", "--config", str(config), str(dest)])
        await writer
    assert code == 0, capsys.readouterr().err
    assert "integrity ok" in capsys.readouterr().out

    copy = sqlite3.connect(dest / "centralita.sqlite3")
    try:
        (copied,) = copy.execute("SELECT count(*) FROM callbacks").fetchone()
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        copy.close()
    assert 50 <= copied <= 150
    # The line being written is left out; everything is private.
    assert (dest / "callbacks.csv").read_bytes() == b"id,time\n1,2026-01-01\n"
    assert (dest / "centralita.toml").read_text(encoding="utf-8") == demo_text()
    for path in dest.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # Restore (docs/deploy.md): the files back into an empty data_dir, then it opens.
    restored = tmp_path / "restored"
    restored.mkdir()
    for name in ("centralita.sqlite3", "callbacks.csv", "secret_key"):
        shutil.copy2(dest / name, restored / name)
    async with Store.open(default_path(restored)) as store:
        assert len(await store.list_callbacks()) == copied


def test_backup_refuses_a_used_folder_and_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_in(tmp_path)
    assert main(["backup", "--config", str(config), str(tmp_path / "b")]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()

    async def create() -> None:
        async with Store.open(default_path(config.parent / "data")) as store:
            await add_callbacks(store, 1)

    asyncio.run(create())
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x", encoding="utf-8")
    assert main(["backup", "--config", str(config), str(used)]) == 1
    assert "is not an empty folder" in capsys.readouterr().err

"""Files and processes (issue 10): file modes and ownership, one server per data folder, the
outbox under a kill, agent names, the CSV projection."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from centralita.agents_admin import save_config
from centralita.store import Store, default_path
from dialplan.render import write_rendered

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------ finding 7


async def test_database_is_not_world_readable(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        async with Store.open(default_path(tmp_path / "data")) as store:
            await store.add_rating(callerid="1", agent="1001", queue="q", rating=3, call_id="1.1")
    finally:
        os.umask(old)
    db = default_path(tmp_path / "data")
    assert _mode(db) == 0o600
    for side in db.parent.glob(db.name + "-*"):
        assert _mode(side) & 0o077 == 0, side


async def test_an_existing_world_readable_database_loses_world_access(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    async with Store.open(db):
        pass
    db.chmod(0o644)
    async with Store.open(db):
        pass
    assert _mode(db) == 0o640  # the group bit an admin gave is kept; the world's is gone


@needs_root
def test_config_rewrite_keeps_owner_group_and_mode(tmp_path: Path) -> None:
    config = tmp_path / "centralita.toml"
    config.write_text("# x\n", encoding="utf-8")
    os.chown(config, 4321, 5432)
    config.chmod(0o640)
    save_config(config, "# y\n")
    st = config.stat()
    assert (st.st_uid, st.st_gid, _mode(config)) == (4321, 5432, 0o640)


@needs_root
def test_rendered_files_keep_owner_group_and_mode(tmp_path: Path) -> None:
    write_rendered(tmp_path, {"manager.conf": "; one\n", "queues.conf": "; q\n"})
    target = tmp_path / "manager.conf"
    os.chown(target, 4321, 5432)
    write_rendered(tmp_path, {"manager.conf": "; two\n", "queues.conf": "; q\n"})
    st = target.stat()
    assert (st.st_uid, st.st_gid, _mode(target)) == (4321, 5432, 0o640)
    backup = (tmp_path / "manager.conf.bak").stat()
    assert (backup.st_uid, backup.st_gid) == (4321, 5432)

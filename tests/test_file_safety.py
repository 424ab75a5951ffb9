"""Files and processes (issue 10): file modes and ownership, one server per data folder, the
outbox under a kill, agent names, the CSV projection."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_cli_serve import free_port, healthz, serve
from test_web_support import console_env

from centralita.agents_admin import save_config
from centralita.cli import main
from centralita.csvlog import callback_row, callbacks_log, read_rows
from centralita.datadir import lock_data_dir
from centralita.settings import Webhook, demo_text
from centralita.store import Store, default_path
from centralita.webhooks import WebhookSender
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


# ------------------------------------------------------------------ finding 10


def _serve_config(folder: Path, data_dir: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "centralita.toml"
    config.write_text(
        demo_text()
        .replace("agi_port = 4573", f"agi_port = {free_port()}")
        .replace("web_port = 8080", f"web_port = {free_port()}")
        .replace("ami_port = 5038", f"ami_port = {free_port()}")  # nothing listens there
        .replace('data_dir = "data"', f'data_dir = "{data_dir}"'),
        encoding="utf-8",
    )
    return config


async def test_a_second_serve_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first_config = _serve_config(tmp_path / "one", data)
    second_config = _serve_config(tmp_path / "two", data)  # other ports, same data
    web_port = int(re.findall(r"web_port = (\d+)", first_config.read_text())[0])
    first = serve(first_config)
    try:
        for _ in range(200):  # readiness poll, not a time limit
            if await asyncio.to_thread(healthz, web_port) is not None or first.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert first.poll() is None
        second = serve(second_config)
        output = (await asyncio.to_thread(second.communicate, None, 60))[0].decode()
        assert second.returncode == 1, output
        assert "is in use by another centralita serve" in output
        assert f"pid {first.pid}" in output
        assert first.poll() is None  # the first one serves on
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    # Once it stopped, the folder is free again (flock goes with the process).
    fd = lock_data_dir(data)
    os.close(fd)


# A sender in its own process: delivers the outbox of DB to URL, with a short claim.
SENDER = """
import asyncio, sys
from centralita.settings import Webhook
from centralita.store import Store
from centralita.webhooks import WebhookSender

async def main() -> None:
    async with Store.open(sys.argv[1]) as store:
        sender = WebhookSender(store, [Webhook(sys.argv[2])], claim_s=1.0, base_backoff_s=0.2)
        while await store.outbox_backlog():
            await sender.deliver_due()
            await asyncio.sleep(0.05)
        await sender.stop()

asyncio.run(main())
"""


async def test_an_outbox_drained_by_a_killed_process_loses_no_event(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    received: list[int] = []
    hung = asyncio.Event()
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        n = int((await request.json())["n"])
        received.append(n)
        if n == 7 and not hung.is_set():
            hung.set()  # the sender is now mid-send: it gets killed here
            await release.wait()
        return web.json_response({"ack": "ok"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/hook"))
    try:
        async with Store.open(db) as store:
            for n in range(20):
                await store.enqueue_event(url, {"n": n})
        first = subprocess.Popen([sys.executable, "-c", SENDER, str(db), url])  # noqa: ASYNC220
        try:
            await asyncio.wait_for(hung.wait(), 60)
        finally:
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)
        release.set()
        second = subprocess.Popen([sys.executable, "-c", SENDER, str(db), url])  # noqa: ASYNC220
        assert await asyncio.to_thread(second.wait, 120) == 0
        async with Store.open(db) as store:
            assert await store.outbox_backlog() == 0
    finally:
        await server.close()
    assert sorted(set(received)) == list(range(20))  # none dropped
    twice = sorted(n for n in set(received) if received.count(n) > 1)
    assert twice == [7] or twice == []  # only the one in flight at the kill may repeat


async def test_two_senders_on_one_outbox_deliver_each_event_once(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    received: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(int((await request.json())["n"]))
        await asyncio.sleep(0.01)  # a slow receiver: the two senders overlap
        return web.json_response({"ack": "ok"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/hook"))
    try:
        async with Store.open(db) as one, Store.open(db) as two:
            for n in range(60):
                await one.enqueue_event(url, {"n": n})
            senders = [WebhookSender(s, [Webhook(url)]) for s in (one, two)]
            try:
                results = await asyncio.gather(*(s.deliver_due() for s in senders))
            finally:
                for sender in senders:
                    await sender.stop()
            assert sum(sent for sent, _ in results) == 60
            assert await one.outbox_backlog() == 0
    finally:
        await server.close()
    assert sorted(received) == list(range(60))


# ------------------------------------------------------------------ finding 13


async def _lagging_data(data: Path) -> None:
    """What a kill -9 between the commit and the CSV append leaves: rows in the store that
    the CSV logs lack, and a status change the CSV never saw."""
    async with Store.open(default_path(data)) as store:
        first = await store.add_callback(
            callerid="+34600000001",
            language="en",
            queue="support-en",
            number="600000001",
            alternative="",
            uniqueid="1.1",
        )
        await callbacks_log(data).append(callback_row(first))
        await store.add_callback(
            callerid="+34600000002",
            language="en",
            queue="support-en",
            number="600000002",
            alternative="",
            uniqueid="1.2",
        )
        await store.set_callback_status(first.id, "done")
        await store.add_rating(
            callerid="+34600000003", agent="1002", queue="support-en", rating=2, call_id="1.3"
        )


def _csv_state(data: Path) -> tuple[dict[str, str], list[str]]:
    callbacks = {r["id"]: r["status"] for r in read_rows(data / "callbacks.csv")}
    complaints = [r["call_id"] for r in read_rows(data / "complaints.csv")]
    return callbacks, complaints


async def test_csv_logs_that_lag_the_database_are_rebuilt_on_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _lagging_data(data)
    assert _csv_state(data) == ({"1": "pending"}, [])
    async with console_env(tmp_path):
        pass
    assert _csv_state(data) == ({"1": "done", "2": "pending"}, ["1.3"])


async def test_callbacks_csv_regenerates_the_csv_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    await _lagging_data(data)
    (data / "complaints.csv").unlink(missing_ok=True)
    config = tmp_path / "centralita.toml"
    config.write_text(demo_text(), encoding="utf-8")
    code = await asyncio.to_thread(main, ["callbacks", "--config", str(config), "--csv"])
    assert code == 0
    assert "rebuilt" in capsys.readouterr().out
    assert _csv_state(data) == ({"1": "done", "2": "pending"}, ["1.3"])

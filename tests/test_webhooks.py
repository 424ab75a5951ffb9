"""CallMyWay webhooks: the event shape, the outbox with retries, restarts, end to end."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_web_support import TRACES, console_env

from ami.protocol import parse_trace
from ami.tracker import CallTracker
from centralita.settings import Webhook
from centralita.store import Store, StoreLocation, open_location
from centralita.store.url import parse_store_url
from centralita.webhooks import CallEvents, WebhookSender, backoff_s, payload, redact_url

TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@dataclass
class Receiver:
    """A CallMyWay-like endpoint on loopback: answers with `answers` in turn, then ack ok."""

    server: TestServer
    answers: list[tuple[int, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    rec = Receiver(TestServer(app, host="127.0.0.1"))

    async def hook(request: web.Request) -> web.Response:
        rec.received.append(await request.json())
        rec.arrived.set()
        status, body = rec.answers.pop(0) if rec.answers else (200, {"ack": "ok"})
        return web.json_response(body, status=status)

    app.router.add_post("/hook", hook)
    await rec.server.start_server()
    yield rec
    await rec.server.close()


def queue_changes() -> list[Any]:
    tracker = CallTracker(["1001"], ("SIP",))
    raw = (TRACES / "ami-queue-sip-call.txt").read_bytes()
    return [c for m in parse_trace(raw) for c in tracker.handle(m)]


def test_call_events_from_a_queue_call() -> None:
    events = CallEvents(internal_numbers=["1001", "1002"])
    t0 = datetime(2026, 11, 21, 22, 44, 46)
    times = [t0, t0 + timedelta(seconds=1), t0 + timedelta(seconds=7)]
    out = [e for c, t in zip(queue_changes(), times, strict=True) for e in events.handle(c, t)]
    assert out == [
        (
            "callStart",
            {
                "callid": "1795301086.0",
                "endpoint_id": "1001",
                "ani": "+34915550123",
                "dnis": "1001",
                "detect_time": "2026-11-21 22:44:46",
                "connect_time": "",
                "disconnect_time": "",
                "duration": 0,
                "type": "in",
                "cost": 0,
            },
        ),
        (
            "callEnd",
            {
                "callid": "1795301086.0",
                "endpoint_id": "1001",
                "ani": "+34915550123",
                "dnis": "1001",
                "detect_time": "2026-11-21 22:44:46",
                "connect_time": "2026-11-21 22:44:47",
                "disconnect_time": "2026-11-21 22:44:53",
                "duration": 6,
                "type": "in",
                "cost": 0,
            },
        ),
    ]
    assert payload("callEnd", out[1][1], "acct-7")["data"]["account_id"] == "acct-7"
    assert list(payload("callStart", out[0][1], "a")["data"]) == [
        "callid",
        "account_id",
        "endpoint_id",
        "ani",
        "dnis",
        "detect_time",
        "connect_time",
        "disconnect_time",
        "duration",
        "type",
        "cost",
    ]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 2.0, 60.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff_s(10_000, 2.0, 600.0) == 600.0


async def test_failed_delivery_is_retried_with_backoff(
    store_location: StoreLocation, receiver: Receiver
) -> None:
    receiver.answers = [(500, {"error": "busy"}), (200, {"ack": "no"})]
    async with open_location(store_location) as store:
        sender = WebhookSender(store, [Webhook(receiver.url, "acct-1")], base_backoff_s=5.0)
        try:
            event_id = await store.enqueue_event(receiver.url, {"action": "callStart", "data": {}})
            now = datetime.now(UTC)
            assert await sender.deliver_due(now) == (0, 1)
            (pending,) = await store.due_events(now + timedelta(seconds=5))
            assert pending.id == event_id
            assert pending.attempts == 1
            assert pending.last_error == "HTTP 500"
            # Not due again before the backoff.
            assert await store.due_events(now + timedelta(seconds=4)) == []
            # A 200 without {"ack": "ok"} is a failure too; the next wait doubles.
            assert await sender.deliver_due(now + timedelta(seconds=5)) == (0, 1)
            assert await store.due_events(now + timedelta(seconds=14)) == []
            (again,) = await store.due_events(now + timedelta(seconds=15))
            assert again.last_error == 'the answer is not {"ack": "ok"}'
            assert await sender.deliver_due(now + timedelta(seconds=15)) == (1, 0)
            assert await store.outbox_backlog() == 0
            assert len(receiver.received) == 3
            assert receiver.received[-1] == {"action": "callStart", "data": {}}
        finally:
            await sender.stop()


async def test_a_restart_loses_no_event(store_location: StoreLocation, receiver: Receiver) -> None:
    hook = Webhook(receiver.url, "acct-1")
    # First run: events are queued, and the app stops before its sender delivers them.
    async with open_location(store_location) as store:
        sender = WebhookSender(store, [hook])
        for change in queue_changes():
            await sender.on_change(change)
        assert await store.outbox_backlog() == 2
        await sender.stop()
    assert receiver.received == []
    # Second run: the sender starts and delivers what the first left behind.
    async with open_location(store_location) as store:
        sender = WebhookSender(store, [hook], poll_s=0.05)
        sender.start()
        try:
            for _ in range(200):
                if len(receiver.received) == 2:
                    break
                await asyncio.sleep(0.02)
            for _ in range(100):
                if await store.outbox_backlog() == 0:
                    break
                await asyncio.sleep(0.02)
        finally:
            await sender.stop()
        assert [r["action"] for r in receiver.received] == ["callStart", "callEnd"]
        assert await store.outbox_backlog() == 0


async def test_a_stop_absorbed_by_a_delivery_round_still_ends_the_sender(
    store_location: StoreLocation, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A round whose store call swallows the stop's cancellation and returns as if nothing
    # happened (as a PostgreSQL rollback did): the sender must end after that round, not go
    # back to waiting for work with the stop lost.
    hook = Webhook(receiver.url, "acct-1")
    async with open_location(store_location) as store:
        sender = WebhookSender(store, [hook], poll_s=3600)
        in_round = asyncio.Event()
        rounds = 0

        async def absorbing_round() -> None:
            nonlocal rounds
            rounds += 1
            in_round.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass  # absorbed: the round ends normally

        monkeypatch.setattr(sender, "deliver_due", absorbing_round)
        sender.start()
        await in_round.wait()
        task = sender._task
        assert task is not None
        task.cancel()
        for _ in range(10):  # a few turns of the loop, no clock involved
            await asyncio.sleep(0)
        assert task.done() and task.cancelled()
        assert rounds == 1
        await sender.stop()


async def test_instances_following_one_asterisk_send_each_event_once(
    store_location: StoreLocation, receiver: Receiver
) -> None:
    """Three instances on one store see the same AMI events and each queues them; one row
    per event goes in, and their three senders post it once (docs/cluster.md)."""
    hook = Webhook(receiver.url, "acct-1")
    async with open_location(store_location) as store:
        senders = [WebhookSender(store, [hook]) for _ in range(3)]
        queued = []
        # The same call twice: it rang, was left, and rang again (two starts, two ends).
        for change in [*queue_changes(), *queue_changes()]:
            for sender in senders:
                queued.append(await sender.on_change(change))
        assert sum(queued) == 4  # the first instance to queue an event wins
        assert await store.outbox_backlog() == 4
        rounds = await asyncio.gather(*(s.deliver_due() for s in senders))
        for sender in senders:
            await sender.stop()
        assert sum(sent for sent, _ in rounds) == 4
        # Three senders post at once: the order among them is theirs, the count is not.
        actions = [r["action"] for r in receiver.received]
        assert sorted(actions) == ["callEnd", "callEnd", "callStart", "callStart"]
        assert await store.outbox_backlog() == 0


async def test_an_event_key_is_queued_once_per_url(store_location: StoreLocation) -> None:
    async with open_location(store_location) as store:
        first = await store.enqueue_event("http://a.example/h", {"n": 1}, key="c1/callStart/1")
        again = await store.enqueue_event("http://a.example/h", {"n": 2}, key="c1/callStart/1")
        other = await store.enqueue_event("http://b.example/h", {"n": 1}, key="c1/callStart/1")
        unkeyed = [await store.enqueue_event("http://a.example/h", {"n": n}) for n in (3, 4)]
        assert first > 0 and again == 0 and other > 0 and 0 not in unkeyed
        due = await store.due_events(datetime.now(UTC) + timedelta(seconds=1))
        assert sorted((e.url, e.payload["n"]) for e in due) == [
            ("http://a.example/h", 1),
            ("http://a.example/h", 3),
            ("http://a.example/h", 4),
            ("http://b.example/h", 1),
        ]


async def test_set_internal_numbers_changes_the_type_of_the_next_events(
    store_location: StoreLocation,
) -> None:
    async with open_location(store_location) as store:
        sender = WebhookSender(store, [Webhook("http://a.example/h", "acct-1")])
        ringing, *rest = queue_changes()
        await sender.on_change(ringing)
        # The caller's number is now one of the site's own: the call's end says internal.
        sender.set_internal_numbers(["+34915550123"])
        for change in rest:
            await sender.on_change(change)
        due = await store.due_events(datetime.now(UTC) + timedelta(seconds=1))
        assert [(e.payload["action"], e.payload["data"]["type"]) for e in due] == [
            ("callStart", "in"),
            ("callEnd", "internal"),
        ]
        await sender.stop()


async def test_webhooks_set_by_a_reload_get_the_events_that_follow(
    store_location: StoreLocation, receiver: Receiver
) -> None:
    """A server started with no webhook, then a reload adds one: the delivery loop starts,
    and the URL gets the events of the changes from then on (none before). Removed again:
    no more events are queued."""
    async with open_location(store_location) as store:
        sender = WebhookSender(store, [], poll_s=0.05)
        ringing, *rest = queue_changes()
        assert await sender.on_change(ringing) == 0  # no webhook: nothing queued
        sender.set_webhooks([Webhook(receiver.url, "acct-1")])
        try:
            for change in rest:
                await sender.on_change(change)
            for _ in range(200):  # until delivered, not a time limit
                if receiver.received and not await store.outbox_backlog():
                    break
                await asyncio.sleep(0.02)
            # The call was first seen ringing while no webhook was set: its events start
            # with the next change it makes.
            assert [r["action"] for r in receiver.received] == ["callStart", "callEnd"]
            assert await store.outbox_backlog() == 0
            sender.set_webhooks([])
            for change in queue_changes():
                assert await sender.on_change(change) == 0
        finally:
            await sender.stop()


# An instance's sender in its own process: delivers the outbox of the store at STORE_URL to
# HOOK_URL, with a short claim, until the outbox is empty.
SENDER = """
import asyncio, sys
from pathlib import Path
from centralita.settings import Webhook
from centralita.store import open_location
from centralita.store.url import parse_store_url
from centralita.webhooks import WebhookSender

async def main() -> None:
    async with open_location(parse_store_url(sys.argv[1], base=Path.cwd())) as store:
        sender = WebhookSender(store, [Webhook(sys.argv[2])], claim_s=1.0, base_backoff_s=0.2)
        while await store.outbox_backlog():
            await sender.deliver_due()
            await asyncio.sleep(0.05)
        await sender.stop()

asyncio.run(main())
"""


async def test_an_event_claimed_by_a_killed_instance_goes_out_once_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    """SIGKILL an instance's sender while it posts; two others on the same PostgreSQL share
    the rest (FOR UPDATE SKIP LOCKED), and the killed one's event goes out once its claim
    lapses: none lost, and none twice but the one in flight at the kill."""
    hung, release = asyncio.Event(), asyncio.Event()
    received: list[int] = []

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

    def sender() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", SENDER, pg_url, url], cwd=tmp_path)

    try:
        async with open_location(parse_store_url(pg_url, base=tmp_path)) as store:
            for n in range(20):
                await store.enqueue_event(url, {"n": n})
        first = sender()
        try:
            await asyncio.wait_for(hung.wait(), 60)
        finally:
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)
        release.set()
        others = [sender(), sender()]
        codes = [await asyncio.to_thread(p.wait, 120) for p in others]
        assert codes == [0, 0]
        async with open_location(parse_store_url(pg_url, base=tmp_path)) as store:
            assert await store.outbox_backlog() == 0
    finally:
        await server.close()
    assert sorted(set(received)) == list(range(20))  # none lost
    twice = sorted(n for n in set(received) if received.count(n) > 1)
    assert twice in ([7], [])  # only the one in flight at the kill may repeat


async def test_app_posts_callmyway_events_for_a_replayed_call(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with console_env(tmp_path, sip=True, webhooks=(receiver.url,)) as env:
        await env.wait_ami()
        await env.ami.replay_trace(TRACES / "ami-queue-sip-call.txt")
        await env.drain()
        for _ in range(250):
            if len(receiver.received) >= 2:
                break
            await asyncio.sleep(0.02)
    start, end = receiver.received
    assert start["action"] == "callStart"
    assert end["action"] == "callEnd"
    for event in (start, end):
        data = event["data"]
        assert data["callid"] == "1795301086.0"
        assert data["account_id"] == "acct-7"
        assert data["endpoint_id"] == "1001"
        assert (data["ani"], data["dnis"], data["type"], data["cost"]) == (
            "+34915550123",
            "1001",
            "in",
            0,
        )
        assert TIME.match(data["detect_time"])
    assert start["data"]["disconnect_time"] == ""
    assert TIME.match(end["data"]["connect_time"])
    assert TIME.match(end["data"]["disconnect_time"])
    assert isinstance(end["data"]["duration"], int)


# ------------------------------------------------------------------ issue 10, finding 6


async def test_redirects_are_not_followed(tmp_path: Path, receiver: Receiver) -> None:
    evil_app = web.Application()
    stolen: list[Any] = []

    async def evil(request: web.Request) -> web.Response:
        stolen.append(await request.json())
        return web.json_response({"ack": "ok"})

    evil_app.router.add_post("/steal", evil)
    evil_server = TestServer(evil_app, host="127.0.0.1")
    await evil_server.start_server()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(str(evil_server.make_url("/steal")))

    hook_app = web.Application()
    hook_app.router.add_post("/hook", redirect)
    hook_server = TestServer(hook_app, host="127.0.0.1")
    await hook_server.start_server()
    url = str(hook_server.make_url("/hook"))
    try:
        async with Store.open(tmp_path / "c.db") as store:
            sender = WebhookSender(store, [Webhook(url, "acct-1")])
            try:
                await store.enqueue_event(url, {"action": "callStart", "data": {}})
                assert await sender.deliver_due(datetime.now(UTC)) == (0, 1)
                (pending,) = await store.due_events(datetime.now(UTC) + timedelta(days=1))
                assert pending.last_error == "HTTP 307"
            finally:
                await sender.stop()
        assert stolen == []
    finally:
        await hook_server.close()
        await evil_server.close()


async def test_retry_log_lines_hide_credentials(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [(500, {"error": "busy"})]
    port = receiver.server.port
    url = f"http://hookuser:hunter2-pass@127.0.0.1:{port}/hook?token=tok-s3cret&x=1"
    async with Store.open(tmp_path / "c.db") as store:
        sender = WebhookSender(store, [Webhook(url, "acct-1")])
        try:
            await store.enqueue_event(url, {"action": "callStart", "data": {}})
            with caplog.at_level("WARNING", logger="centralita.webhooks"):
                assert await sender.deliver_due(datetime.now(UTC)) == (0, 1)
        finally:
            await sender.stop()
    text = caplog.text
    assert "webhook http://hookuser:***@127.0.0.1" in text
    assert "hunter2-pass" not in text and "tok-s3cret" not in text
    assert "token=***" in text


def test_redact_url() -> None:
    assert (
        redact_url("https://u:p@h.example:8443/a/b?t=1&k")
        == "https://u:***@h.example:8443/a/b?t=***&k=***"
    )
    assert redact_url("https://h.example/a") == "https://h.example/a"
    assert redact_url("http://[::1]:99/x") == "http://[::1]:99/x"

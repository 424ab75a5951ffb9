"""Quality over HTTP on the real app: /complaints with names, customers, call links and the
caller's message; playback of messages and recordings (by object id, ranges, 403 for agents,
404 with a reason, the audit log)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from quality_support import (
    AGENT,
    CALL_ID,
    CALLER,
    QUALITY,
    SUPERVISOR,
    QualityEnv,
    quality_env,
    write_wav,
)
from test_web_support import WebEnv


@pytest.fixture
async def quality(tmp_path: Path) -> AsyncIterator[QualityEnv]:
    async with quality_env(tmp_path) as env:
        yield env


async def logged_in(env: WebEnv, extension: str) -> aiohttp.ClientSession:
    client = env.session()
    await env.login(client, extension)
    return client


async def test_complaints_show_names_customers_calls_and_the_message(
    quality: QualityEnv,
) -> None:
    env = quality.env
    async with await logged_in(env, QUALITY) as client, client.get("/complaints") as resp:
        assert resp.status == 200
        html = await resp.text()
    rows = html.split('<tr data-rating-id="')[1:]
    assert [row.split('"', 1)[0] for row in rows] == [
        str(quality.rating_id + 1),
        str(quality.rating_id),
    ]
    newest, complaint = rows
    assert "John Smith" in complaint and AGENT in complaint  # the agent's name and number
    assert "Lucía Fernández" in complaint and f'data-number="{CALLER}"' in complaint
    assert "support-en" in complaint and "<td>2</td>" in complaint
    assert f'href="/calls?call={CALL_ID}"' in complaint
    assert f'src="/api/ratings/{quality.rating_id}/voicemail"' in complaint
    # No contact for this number: the number itself; no message: said so.
    assert "Élodie Martin" in newest and 'data-number="600999000"' in newest
    assert "<audio" not in newest and "No message" in newest


async def test_the_message_streams_in_ranges_and_each_playback_is_audited(
    quality: QualityEnv,
) -> None:
    env = quality.env
    url = f"/api/ratings/{quality.rating_id}/voicemail"
    async with await logged_in(env, QUALITY) as client:
        async with client.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "audio/wav"
            assert resp.headers["Accept-Ranges"] == "bytes"
            assert "no-store" in resp.headers["Cache-Control"]
            assert await resp.read() == quality.message_wav
        async with client.get(url, headers={"Range": "bytes=100-1099"}) as resp:
            assert resp.status == 206
            size = len(quality.message_wav)
            assert resp.headers["Content-Range"] == f"bytes 100-1099/{size}"
            assert await resp.read() == quality.message_wav[100:1100]
        async with client.get(url, headers={"Range": f"bytes={size - 10}-"}) as resp:
            assert resp.status == 206
            assert await resp.read() == quality.message_wav[-10:]
    # The three requests of one playback are one entry; another listener is another.
    async with await logged_in(env, SUPERVISOR) as client, client.get(url) as resp:
        assert resp.status == 200
    entries = [e for e in await env.store.list_audit() if e.action == "playback.voicemail"]
    assert [(e.actor, e.subject, e.changes) for e in entries] == [
        (SUPERVISOR, f"rating {quality.rating_id}", "box 600 INBOX/msg0000"),
        (QUALITY, f"rating {quality.rating_id}", "box 600 INBOX/msg0000"),
    ]


async def test_a_recording_plays_from_its_call_and_is_audited(quality: QualityEnv) -> None:
    env = quality.env
    url = f"/api/calls/{CALL_ID}/recording"
    async with await logged_in(env, SUPERVISOR) as client:
        async with client.get(url, headers={"Range": "bytes=0-43"}) as resp:
            assert resp.status == 206
            header = await resp.read()
        assert header == quality.recording_wav[:44] and header.startswith(b"RIFF")
        async with client.get(url) as resp:
            assert await resp.read() == quality.recording_wav
    [entry] = [e for e in await env.store.list_audit() if e.action == "playback.recording"]
    assert (entry.actor, entry.subject, entry.changes) == (
        SUPERVISOR,
        f"call {CALL_ID}",
        f"{CALL_ID}.wav",
    )


async def test_calls_offer_the_recording_to_those_who_may_listen(quality: QualityEnv) -> None:
    env = quality.env
    button = f'data-src="/api/calls/{CALL_ID}/recording"'
    for extension, shown in ((QUALITY, True), (SUPERVISOR, True), (AGENT, False)):
        async with await logged_in(env, extension) as client, client.get("/calls") as resp:
            html = await resp.text()
        assert (button in html) == shown, extension
        assert CALL_ID in html  # the agent's own call is listed to them too
    assert "play-recording" not in html  # the agent's page
    # Only the call with a file on disk has the button.
    async with await logged_in(env, QUALITY) as client, client.get("/calls") as resp:
        html = await resp.text()
    assert html.count('class="button ghost small play-recording"') == 1
    assert "1795943999.20" in html  # quality staff see every agent's calls


async def test_a_complaints_call_link_shows_that_call_only(quality: QualityEnv) -> None:
    env = quality.env
    async with await logged_in(env, QUALITY) as client:
        async with client.get("/calls", params={"call": CALL_ID}) as resp:
            html = await resp.text()
        assert f'data-uniqueid="{CALL_ID}"' in html
        assert 'data-uniqueid="1795943999.20"' not in html
        assert 'id="one-call"' in html
        async with client.get("/api/calls", params={"call": "1795943999.20"}) as resp:
            body = await resp.json()
    assert [c["uniqueid"] for c in body["calls"]] == ["1795943999.20"]


def routes(quality: QualityEnv) -> list[str]:
    return [
        "/complaints",
        f"/api/ratings/{quality.rating_id}/voicemail",
        f"/api/calls/{CALL_ID}/recording",
    ]


async def test_an_agent_gets_403_on_every_quality_route(quality: QualityEnv) -> None:
    env = quality.env
    async with await logged_in(env, AGENT) as client:
        for path in routes(quality):
            async with client.get(path, headers={"Range": "bytes=0-"}) as resp:
                assert resp.status == 403, path
                assert b"RIFF" not in await resp.read()
    assert [e for e in await env.store.list_audit() if e.action.startswith("playback.")] == []


async def test_without_a_session_nothing_plays(quality: QualityEnv) -> None:
    async with quality.env.session() as client:
        for path in routes(quality):
            async with client.get(path, allow_redirects=False) as resp:
                assert resp.status in (303, 401), path
                assert b"RIFF" not in await resp.read()


async def test_missing_objects_and_files_get_404_with_a_reason(quality: QualityEnv) -> None:
    env = quality.env
    json_headers = {"Accept": "application/json"}
    async with await logged_in(env, QUALITY) as client:

        async def reason(path: str) -> str:
            async with client.get(path, headers=json_headers) as resp:
                assert resp.status == 404, path
                return str((await resp.json())["error"])

        assert reason_ok(await reason("/api/ratings/999999/voicemail"), "no such rating")
        other = quality.rating_id + 1  # its caller left no message
        assert reason_ok(await reason(f"/api/ratings/{other}/voicemail"), "left no message")
        assert reason_ok(await reason("/api/calls/1795000000.1/recording"), "no such call")
        assert reason_ok(await reason("/api/calls/1795943999.20/recording"), "no recording")
        (quality.box / "INBOX/msg0000.wav").unlink()
        assert reason_ok(
            await reason(f"/api/ratings/{quality.rating_id}/voicemail"), "left no message"
        )
    assert [e for e in await env.store.list_audit() if e.action.startswith("playback.")] == []


def reason_ok(text: str, expected: str) -> bool:
    return expected in text


async def test_a_file_that_leads_out_of_the_spool_is_not_served(
    quality: QualityEnv, tmp_path: Path
) -> None:
    env = quality.env
    secret = tmp_path / "outside.wav"
    write_wav(secret, seconds=0.5)
    message = quality.box / "INBOX/msg0000.wav"
    message.unlink()
    os.symlink(secret, message)
    recording = quality.recordings / f"{CALL_ID}.wav"
    recording.unlink()
    os.symlink(secret, recording)
    async with await logged_in(env, SUPERVISOR) as client:
        for path in (
            f"/api/ratings/{quality.rating_id}/voicemail",
            f"/api/calls/{CALL_ID}/recording",
        ):
            async with client.get(path) as resp:
                assert resp.status == 404, path
                assert b"RIFF" not in await resp.read()
        # Names from the request never reach the disk: only a stored call's Uniqueid does.
        for path in ("/api/calls/..%2F..%2Foutside/recording", "/api/calls/../recording"):
            async with client.get(path) as resp:
                assert resp.status == 404, path
                assert b"RIFF" not in await resp.read()


def test_one_playback_is_one_audit_entry_per_listener_and_window() -> None:
    from centralita.web.quality import AUDIT_WINDOW_S, PlaybackAudit

    audit = PlaybackAudit({})
    key = (QUALITY, "playback.recording", "call 1.2")
    assert audit.due(key, 1000.0)
    assert not audit.due(key, 1000.0 + AUDIT_WINDOW_S - 1)  # the same playback's ranges
    assert audit.due((SUPERVISOR, *key[1:]), 1001.0)  # another listener
    assert audit.due((QUALITY, "playback.recording", "call 1.3"), 1001.0)  # another file
    assert audit.due(key, 1000.0 + AUDIT_WINDOW_S)  # a later playback

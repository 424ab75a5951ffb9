"""The post-call survey on a real Asterisk: call file, rating by DTMF, a complaint message.

An English caller is answered by an agent's phone and hangs up. The hangup handler asks flow
`survey-schedule` for a call file in the scratch spool; Asterisk's pbx_spool dials it through
OUTBOUND_CONTEXT, whose trunk reaches a customer in `centralita-test-customer` who presses
the keys the test sets. The rating must reach the store and complaints.csv, and a low
rating with 1 must leave a message in box 600 that says who complained and names the rated
call, so that /complaints finds it; and the queue call itself was recorded by MixMonitor.
"""

from __future__ import annotations

import sqlite3
import wave
from pathlib import Path
from typing import Any

import pytest

from centralita.csvlog import read_rows
from centralita.recordings import recording_path
from centralita.store.records import Rating
from centralita.voicemail import match_messages, read_box
from dialplan.names import MAILBOX_CONTEXT, OUTBOUND_CONTEXT

from .amiwatch import AmiWatch, matches
from .people import Call, place_call
from .site import Site
from .steps import Menu

pytestmark = pytest.mark.asterisk

COMPANY_NUMBER = "0777"  # [survey] callerid: the survey call file's CallerID
LOW_RATING = "3"  # below [survey] threshold = 5


def ratings_for(site: Site, number: str) -> list[dict[str, Any]]:
    with sqlite3.connect(site.database) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM ratings WHERE callerid = ?", (number,)).fetchall()
    return [dict(r) for r in rows]


def messages(box: Path) -> set[Path]:
    return set((box / "INBOX").glob("msg*.txt"))


def message_fields(path: Path) -> dict[str, str]:
    """A voicemail message's metadata (app_voicemail writes `key=value` lines)."""
    fields = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith((";", "[")):
            fields[key.strip()] = value.strip()
    return fields


async def answered_queue_call(ami: AmiWatch, number: str) -> tuple[Call, str]:
    """An English caller, answered by an agent's phone; returns the call and the agent."""
    call = await place_call(ami, number=number)
    await call.listening("STREAM FILE")  # a key interrupts the welcome (flow language)
    await call.press("2")
    connect = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
    assert connect.get("Queue") == "support-en"
    interface = connect.value("Interface")  # PJSIP/1002 or SIP/1002
    return call, interface.split("/", 1)[1]


async def test_a_low_rating_reaches_the_complaints_log_and_leaves_a_message_in_box_600(
    site: Site, ami: AmiWatch, number: str
) -> None:
    box = site.voicemail / "600"
    before = messages(box)
    call, agent = await answered_queue_call(ami, number)
    await call.hangup()
    await call.ended()

    # Asterisk dials the call file: the survey runs on the ;1 half of its Local channel and
    # the customer, reached through the outbound trunk, is the far end pressing keys.
    mark = call.mark
    survey = await ami.wait_for(
        matches("Newchannel", Channel=f"Local/{number}@{OUTBOUND_CONTEXT}-*"), after=mark
    )
    customer = await ami.wait_for(
        matches("Newchannel", Channel=f"Local/{number}@centralita-test-customer-*"), after=mark
    )
    survey_channel = survey.value("Channel")
    customer_channel = customer.value("Channel")[:-1] + "2"  # the half running the customer
    assert survey_channel.endswith(";1")
    rated = Call(
        ami=ami,
        far=customer_channel,
        near=survey_channel,
        uniqueid=survey.value("Uniqueid"),
        linkedid=survey.value("Linkedid"),
        number=number,
        mark=ami.events.index(survey, mark),
    )
    await rated.reached("centralita-survey", "s")
    assert await rated.variable("CENTRALITA_CALL_ID") == call.linkedid
    assert await rated.variable("CENTRALITA_AGENT") == agent

    menu = Menu(rated)
    await menu.answer("rate-call", LOW_RATING + "#")
    # The message offer comes only after the rating is stored and logged.
    await menu.answer("leave-message", "1")

    [stored] = ratings_for(site, number)
    assert (stored["rating"], stored["agent"], stored["queue"]) == (3, agent, "support-en")
    assert stored["call_id"] == call.linkedid
    logged = [r for r in read_rows(site.data_dir / "complaints.csv") if r["caller"] == number]
    assert [(r["rating"], r["agent"], r["call_id"]) for r in logged] == [
        (LOW_RATING, agent, call.linkedid)
    ]

    recording = await ami.wait_for(
        matches("Newexten", Channel=survey_channel, Application="VoiceMail"), after=rated.mark
    )
    assert (recording.get("AppData") or "").startswith("600@")
    # The customer speaks (a recording of a few seconds), then hangs up.
    redirect = await ami.action(
        "Redirect", Channel=customer_channel, Context="centralita-test-speak", Exten="s",
        Priority="1",
    )  # fmt: skip
    assert redirect.get("Response") == "Success", redirect
    await ami.wait_for(matches("Hangup", Channel=survey_channel), after=rated.mark)
    await ami.wait_for(matches("MessageWaiting", Mailbox="600@*"), after=rated.mark)

    [message] = messages(box) - before
    fields = message_fields(message)
    # Issue 9 finding: the message carried the company number (the survey call's own
    # CallerID), so quality staff could not tell who complained.
    assert number in fields["callerid"], fields
    assert COMPANY_NUMBER not in fields["callerid"], fields
    assert int(fields["duration"]) >= 2  # voicemail.conf minsecs: a real message was kept
    # Flow survey set VM_CATEGORY to the rated call's id; app_voicemail wrote it as category=,
    # and the reader of /complaints matches the message to the stored rating by it.
    assert fields["category"] == call.linkedid, fields
    rating = Rating(**{k: stored[k] for k in Rating.__dataclass_fields__})
    found = match_messages([rating], read_box(site.asterisk.spool, MAILBOX_CONTEXT, "600"))
    left = found[rating.id]
    assert left.txt == message
    assert left.audio is not None and left.audio.is_file()

    # The queue call was recorded, to the file /calls plays: named by the caller's Uniqueid.
    recorded = recording_path(site.asterisk.spool / "monitor", call.uniqueid)
    assert recorded is not None, sorted((site.asterisk.spool / "monitor").glob("*"))
    with wave.open(str(recorded)) as audio:
        assert (audio.getframerate(), audio.getsampwidth()) == (8000, 2)

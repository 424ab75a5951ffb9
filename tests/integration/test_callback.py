"""The callback offer on a real Asterisk: nobody answers in support-fr, the caller leaves a number.

support-fr's only member (1004) has no phone, so Queue() ends unanswered and the dialplan runs
flow `callback`. Everything asserted is what Asterisk and the files say: the AGI commands
Asterisk ran, the SQLite store read directly, callbacks.csv, the call records cdr_manager sent
and `centralita calls` as a supervisor reads them.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import pytest

from centralita.csvlog import read_rows

from .amiwatch import WAIT_S, AmiWatch, matches
from .people import Call, place_call
from .site import Site
from .steps import Menu

pytestmark = pytest.mark.asterisk

# Six digits, [callback] min_digits: each number is read back digit by digit.
MAIN = "612345"
ALTERNATIVE = "698765"


def callbacks_for(site: Site, number: str) -> list[dict[str, Any]]:
    """The callback requests stored for caller `number`, read from the SQLite file itself."""
    with sqlite3.connect(site.database) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM callbacks WHERE callerid = ? ORDER BY id", (number,)
        ).fetchall()
    return [dict(r) for r in rows]


async def stored_callbacks(site: Site, number: str) -> list[dict[str, Any]]:
    """Wait until the store holds a request from `number` (nothing on the AMI marks the write)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not (rows := callbacks_for(site, number)):
        if loop.time() > deadline:
            raise AssertionError(f"no callback request from {number}:\n{site.centralita_log()}")
        await asyncio.sleep(0.2)
    return rows


async def reach_callback(ami: AmiWatch, number: str) -> tuple[Call, Menu]:
    """A French caller waits in support-fr, where nobody can answer, until the callback flow."""
    call = await place_call(ami, number=number)
    menu = Menu(call)
    await menu.next("STREAM FILE", "welcome")  # a key interrupts the welcome (flow language)
    await call.press("3")
    joined = await ami.wait_for(matches("QueueCallerJoin", Channel=call.near), after=call.mark)
    assert joined.get("Queue") == "support-fr"
    await call.reached("centralita-callback", "s")
    return call, menu


async def test_a_caller_nobody_answers_leaves_a_number_and_an_alternative(
    site: Site, ami: AmiWatch, number: str
) -> None:
    call, menu = await reach_callback(ami, number)
    left = await ami.wait_for(matches("QueueCallerLeave", Channel=call.near), after=call.mark)
    assert left.get("Queue") == "support-fr"
    assert await call.variable("QUEUESTATUS") in ("TIMEOUT", "JOINUNAVAIL", "LEAVEUNAVAIL")

    await menu.answer("enter-phone-number", MAIN + "#")
    said = await menu.next("SAY DIGITS")
    assert MAIN in (said.get("Command") or "")
    await menu.answer("confirm-reenter", "1")
    await menu.answer("enter-alternative", ALTERNATIVE + "#")
    said = await menu.next("SAY DIGITS")
    assert ALTERNATIVE in (said.get("Command") or "")
    await menu.answer("confirm-reenter", "1")
    # "We will call you back" is played only after the request is stored and logged.
    await menu.next("STREAM FILE", "callback-thanks")

    [stored] = callbacks_for(site, number)
    assert (stored["number"], stored["alternative"]) == (MAIN, ALTERNATIVE)
    assert (stored["queue"], stored["language"]) == ("support-fr", "fr")
    assert stored["status"] == "pending"
    assert stored["uniqueid"] == call.uniqueid
    logged = [r for r in read_rows(site.data_dir / "callbacks.csv") if r["callerid"] == number]
    assert [(r["number"], r["alternative"], r["queue"], r["id"]) for r in logged] == [
        (MAIN, ALTERNATIVE, "support-fr", str(stored["id"]))
    ]
    await call.ended()  # the flow routes to hangup: Asterisk ends the call itself


async def test_a_caller_who_hangs_up_after_confirming_keeps_the_request(
    site: Site, ami: AmiWatch, number: str
) -> None:
    call, menu = await reach_callback(ami, number)
    await menu.answer("enter-phone-number", MAIN + "#")
    await menu.answer("confirm-reenter", "1")
    await menu.next("GET DATA", "enter-alternative")
    await call.hangup()
    await call.ended()

    [stored] = await stored_callbacks(site, number)
    assert (stored["number"], stored["alternative"], stored["status"]) == (MAIN, "", "pending")
    logged = [r for r in read_rows(site.data_dir / "callbacks.csv") if r["callerid"] == number]
    assert [(r["number"], r["alternative"]) for r in logged] == [(MAIN, "")]


def stored_cdr(site: Site, uniqueid: str) -> list[dict[str, Any]]:
    with sqlite3.connect(site.database) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM cdr WHERE uniqueid = ?", (uniqueid,)).fetchall()
    return [dict(r) for r in rows]


def table_column(output: str, column: str) -> list[str]:
    """One column of a `centralita calls` table, cut at the header's offsets (blank cells)."""
    lines = output.splitlines()
    header = lines[0]
    start = header.index(column)
    following = re.search(r"\S", header[start + len(column) :])
    end = start + len(column) + following.start() if following else None
    rows = [line for line in lines[2:] if line.strip() and not line.endswith(" calls")]
    return [line[start:end].strip() for line in rows]


async def test_centralita_calls_shows_no_agent_for_a_call_no_agent_took(
    site: Site, ami: AmiWatch, number: str
) -> None:
    """Issue 9 finding: `centralita calls` showed the last extension (`s`) as the agent."""
    call, menu = await reach_callback(ami, number)
    await menu.next("GET DATA", "enter-phone-number")
    await call.hangup()
    await call.ended()
    # cdr_manager's record of our dialplan's half of the call, as Asterisk sent it.
    cdr = await ami.wait_for(matches("Cdr", UniqueID=call.uniqueid), after=call.mark)
    assert cdr.get("DestinationChannel") in (None, "")
    assert cdr.get("Source") == number

    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not stored_cdr(site, call.uniqueid):  # Centralita stores it after the event
        assert loop.time() < deadline, f"CDR {call.uniqueid} never stored:\n{site.centralita_log()}"
        await asyncio.sleep(0.2)
    shown = site.cli("calls", "--customer", number).stdout
    agents = table_column(shown, "agent")
    assert agents, shown
    assert agents == [""] * len(agents), shown
    [record] = stored_cdr(site, call.uniqueid)
    assert record["dst"] == cdr.get("Destination")
    assert record["agent"] == ""

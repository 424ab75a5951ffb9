"""Three Centralita instances on one PostgreSQL behind the real Asterisk; one is SIGKILLed
in the middle of a run of calls (issue 14, part 4; docs/cluster.md, "When a part fails").

The instances are `centralita serve` processes configured from the site's own config: each
with its FastAGI and web ports and its data folder, all on one scratch PostgreSQL
(tests/pgcluster.py), with no `[server] secret_key` (the session signing key is the store's),
each following AMI, each sending the webhooks to a receiver of the test's own. The dialplan
is rendered with `[server] agi_instances` listing the three, so a refused AGI() goes to the
next instance (res_agi.c launch_netscript), and reloaded; the site's own dialplan is put
back afterwards.

Callers arrive one after another: French callers that nobody answers leave a callback
request, English callers reach an agent's phone (a pop is due on that agent's console) and
then rate the call in the survey. The first instance (the one Asterisk tries first) runs
every flow; once it has stored a request and a rating, and while a callback caller is being
asked for a number on it, it is killed with SIGKILL. Every count is read from what Asterisk
said (the suite's own AMI session), from PostgreSQL and from the receiver, never from the
instances' own word, and printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ami.protocol import AmiMessage
from dialplan.names import FALLBACK_CONTEXT, OUTBOUND_CONTEXT

from .amiwatch import WAIT_S, AmiWatch, matches
from .cluster import Cluster, RoamingConsole, WebhookReceiver
from .people import Call, place_call
from .site import PHONE_AGENTS, Site

pytestmark = pytest.mark.asterisk

CALLBACK_CALLERS = 6
SURVEY_CALLERS = 6
BETWEEN_CALLERS_S = 1.5  # how the callers arrive: one every so often, overlapping
KILLED = 0  # the first instance of agi_instances: it runs every flow while it lives
KILL_ON_CALLBACK_CALLER = 3  # killed while this callback caller is asked for a number
# ... and once a request and a rating were stored (by the instance about to die), at most
# this long after the caller was asked: less than [callback] timeout_s, the prompt's wait.
KILL_WAITS_S = 8.0
MAIN, ALTERNATIVE = "612345", "698765"
RATING = "9"  # at or above [survey] threshold: no voicemail offer

_numbers = itertools.count(1)


# ------------------------------------------------------------------- one caller's dialog


class Diverted(Exception):
    """The call left its flow: it reached the fallback, or it ended."""


class Dialog:
    """Follows one call's AGI commands in order (as steps.Menu), but gives up at once when
    the call reaches the fallback or ends instead of asking the next question."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.position = call.mark

    def _left(self, message: AmiMessage) -> bool:
        near = self.call.near
        if message.get("Channel") != near:
            return False
        return message.name == "Hangup" or (
            message.name == "Newexten" and message.get("Context") == FALLBACK_CONTEXT
        )

    async def next(self, command: str, prompt: str = "") -> AmiMessage:
        ami = self.call.ami

        def wanted(m: AmiMessage) -> bool:
            return (
                m.name == "AGIExecStart"
                and m.get("Channel") == self.call.near
                and (m.get("Command") or "").upper().startswith(command)
                and prompt in (m.get("Command") or "")
            )

        event = await ami.wait_for(lambda m: wanted(m) or self._left(m), after=self.position)
        self.position = ami.events.index(event, self.position) + 1
        if not wanted(event):
            raise Diverted(f"{event.name} {event.get('Context') or ''}")
        return event

    async def answer(self, prompt: str, keys: str) -> None:
        await self.next("GET DATA", prompt)
        await press(self.call, keys)


async def press(call: Call, keys: str) -> None:
    """The caller presses keys; a call already gone was diverted (it ended)."""
    reply = await call.ami.action("Setvar", Channel=call.far, Variable="KEYS", Value=keys)
    if reply.get("Response") != "Success":
        raise Diverted(f"pressing {keys}: {reply.get('Message')}")


def trail(call: Call) -> list[str]:
    """What Asterisk did with the call's dialplan half: contexts entered, AGI, hangup."""
    steps = []
    for m in call.ami.seen(lambda m: m.get("Channel") == call.near, after=call.mark):
        if m.name == "Newexten":
            steps.append(
                f"{m.get('Context')},{m.get('Extension')}: {m.get('Application')}"
                f"({(m.get('AppData') or '')[:60]})"
            )
        elif m.name in ("AGIExecStart", "AGIExecEnd"):
            steps.append(f"{m.name} {(m.get('Command') or '')[:40]} {m.get('Result') or ''}")
        elif m.name == "Hangup":
            steps.append(f"Hangup cause {m.get('Cause')} {m.get('Cause-txt')}")
    return steps


def around_fallback(steps: list[str]) -> list[str]:
    """The steps that led a diverted call away from its flow, and the first one after."""
    for index, step in enumerate(steps):
        if step.startswith((FALLBACK_CONTEXT, "Hangup")):
            return steps[max(0, index - 4) : index + 1]
    return steps[-5:]


@dataclass
class Caller:
    kind: str  # "callback" or "survey"
    number: str
    call: Call | None = None
    diverted: str = ""  # where the flow was left, when it was
    request_made: bool = False  # the flow went on past the confirmation: stored
    request_maybe: bool = False  # confirmed, then the instance died before the next question
    rating_made: bool = False  # the flow thanked for the rating: stored
    answered_by: str = ""
    trail: list[str] = field(default_factory=list)


async def hang_up_after_fallback(ami: AmiWatch, call: Call) -> None:
    """A diverted caller reaches the fallback (queue support-en): wait for an agent, leave."""
    try:
        await ami.wait_for(
            lambda m: m.get("Channel") == call.near and m.name in ("AgentConnect", "Hangup"),
            after=call.mark,
            timeout=40,
        )
    except AssertionError:
        pass
    await call.hangup()
    await call.ended()


@dataclass
class Kill:
    """The moment of the kill: `asked` when the caller chosen is asked for a number on the
    first instance, `done` once that instance is dead."""

    asked: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def callback_caller(ami: AmiWatch, caller: Caller, kill: Kill | None) -> None:
    """A French caller nobody answers leaves a number and an alternative (test_callback.py)."""
    call = caller.call = await place_call(ami, number=caller.number)
    dialog = Dialog(call)
    confirmed = False
    try:
        await dialog.next("STREAM FILE", "welcome")
        await press(call, "3")
        await dialog.next("GET DATA", "enter-phone-number")
        if kill is not None:
            kill.asked.set()  # the test kills the instance running this flow now
            await asyncio.wait_for(kill.done.wait(), WAIT_S)
            await asyncio.sleep(0.5)
        await press(call, MAIN + "#")
        await dialog.answer("confirm-reenter", "1")
        confirmed = True
        await dialog.answer("enter-alternative", ALTERNATIVE + "#")
        caller.request_made = True  # asked only after the request was stored
        await dialog.answer("confirm-reenter", "1")
        await dialog.next("STREAM FILE", "callback-thanks")
        await call.ended()
    except Diverted as why:
        caller.diverted = str(why)
        caller.trail = trail(call)
        caller.request_maybe = confirmed and not caller.request_made
        await hang_up_after_fallback(ami, call)


async def survey_caller(ami: AmiWatch, caller: Caller) -> None:
    """An English caller talks to an agent, hangs up, and rates the call when called back."""
    call = caller.call = await place_call(ami, number=caller.number)
    dialog = Dialog(call)
    try:
        await dialog.next("STREAM FILE", "welcome")
        await press(call, "2")
    except Diverted as why:
        caller.diverted = str(why)
        caller.trail = trail(call)
        await hang_up_after_fallback(ami, call)
        return
    connect = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
    caller.answered_by = connect.value("Interface").split("/", 1)[1]
    await asyncio.sleep(1)  # a word with the agent
    await call.hangup()
    await call.ended()

    # The survey call file: Asterisk dials it through the outbound trunk to our customer.
    survey = await ami.wait_for(
        matches("Newchannel", Channel=f"Local/{caller.number}@{OUTBOUND_CONTEXT}-*"),
        after=call.mark,
    )
    customer = await ami.wait_for(
        matches("Newchannel", Channel=f"Local/{caller.number}@centralita-test-customer-*"),
        after=call.mark,
    )
    rated = Call(
        ami=ami,
        far=customer.value("Channel")[:-1] + "2",
        near=survey.value("Channel"),
        uniqueid=survey.value("Uniqueid"),
        linkedid=survey.value("Linkedid"),
        number=caller.number,
        mark=ami.events.index(survey, call.mark),
    )
    dialog = Dialog(rated)
    try:
        await dialog.answer("rate-call", RATING + "#")
        await dialog.next("STREAM FILE", "rating-thanks")  # after the rating is stored
        caller.rating_made = True
        await rated.ended()
    except Diverted as why:
        caller.diverted = f"survey: {why}"
        caller.trail = trail(rated)
        await hang_up_after_fallback(ami, rated)


# -------------------------------------------------------------------------- the database


def query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as db:
        return list(db.execute(sql, params).fetchall())


async def wait_until(check: Any, what: str, timeout: float = WAIT_S) -> None:
    """Poll `check()` until true (a bound, not a speed requirement: fail with `what`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened within {timeout:g} s: {what}")
        await asyncio.sleep(0.5)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


@pytest.fixture
def cluster(site: Site, pg_url: str, receiver: WebhookReceiver) -> Iterator[Cluster]:
    """Three instances on the scratch PostgreSQL, the dialplan rendered for them; afterwards
    the instances stopped and the site's own dialplan back."""
    built = Cluster(site, pg_url, receiver.url)
    built.write_configs()
    try:
        built.render()
        built.start()
        yield built
    finally:
        built.stop()
        site.render()
        site.asterisk.cli("dialplan reload")


# ------------------------------------------------------------------------------ the test


async def test_killing_one_of_three_instances_loses_no_caller_request_event_or_pop(
    site: Site,
    ami: AmiWatch,
    cluster: Cluster,
    receiver: WebhookReceiver,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loaded = site.asterisk.cli("dialplan show main@centralita-ivr")
    for instance in cluster.instances:
        assert f"agi://127.0.0.1:{instance.agi_port}/language" in loaded, loaded
    await cluster.set_passwords(PHONE_AGENTS)

    # Each agent with a phone logs in on an instance of its own.
    consoles = {
        agent: RoamingConsole(agent, cluster, first=index)
        for index, agent in enumerate(PHONE_AGENTS)
    }
    for console in consoles.values():
        await console.__aenter__()
    mark = ami.mark()
    callers: list[Caller] = []
    try:
        kill = Kill()
        stored_before = (0, 0)
        runs: list[asyncio.Task[None]] = []
        kinds = ["callback", "survey"] * max(CALLBACK_CALLERS, SURVEY_CALLERS)
        callback_index = 0
        for kind in kinds:
            if sum(c.kind == kind for c in callers) >= (
                CALLBACK_CALLERS if kind == "callback" else SURVEY_CALLERS
            ):
                continue
            caller = Caller(kind, f"+3469{next(_numbers):07d}")
            callers.append(caller)
            if kind == "callback":
                trigger = kill if callback_index == KILL_ON_CALLBACK_CALLER else None
                runs.append(asyncio.create_task(callback_caller(ami, caller, trigger)))
                callback_index += 1
            else:
                runs.append(asyncio.create_task(survey_caller(ami, caller)))
            if callback_index > KILL_ON_CALLBACK_CALLER and not cluster.instances[KILLED].killed:
                await asyncio.wait_for(kill.asked.wait(), WAIT_S)
                with contextlib.suppress(AssertionError):
                    await wait_until(
                        lambda: (
                            any(c.request_made for c in callers)
                            and any(c.rating_made for c in callers)
                        ),
                        "a request and a rating stored before the kill",
                        timeout=KILL_WAITS_S,
                    )
                stored_before = (
                    sum(c.request_made for c in callers),
                    sum(c.rating_made for c in callers),
                )
                cluster.instances[KILLED].kill()
                kill.done.set()
            await asyncio.sleep(BETWEEN_CALLERS_S)
        results = await asyncio.gather(*runs, return_exceptions=True)
        failures = [
            f"{c.kind} caller {c.number} ({c.call.near if c.call else 'no call'}): {r!r}"
            for c, r in zip(callers, results, strict=True)
            if isinstance(r, BaseException)
        ]
        assert not failures, "\n".join([*failures, cluster.logs()])
        await report_and_check(
            site, ami, cluster, receiver, pg_url, callers, consoles, mark, stored_before, capsys
        )
    finally:
        for console in consoles.values():
            await console.__aexit__(None, None, None)


async def report_and_check(
    site: Site,
    ami: AmiWatch,
    cluster: Cluster,
    receiver: WebhookReceiver,
    pg_url: str,
    callers: list[Caller],
    consoles: dict[str, RoamingConsole],
    mark: int,
    stored_before: tuple[int, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cluster.instances[KILLED].killed
    calls = [c.call for c in callers if c.call is not None]
    assert len(calls) == len(callers)

    # 1. Every caller reached a flow or the fallback: Asterisk ran an AGI command on the
    # caller's channel, or the channel entered [centralita-fallback].
    reached_flow = {
        c.near for c in calls if ami.seen(matches("AGIExecStart", Channel=c.near), after=c.mark)
    }
    reached_fallback = {
        c.near
        for c in calls
        if ami.seen(matches("Newexten", Channel=c.near, Context=FALLBACK_CONTEXT), after=c.mark)
    }
    lost = [c.number for c in calls if c.near not in reached_flow | reached_fallback]

    # 2. Callback requests and ratings: each made one stored exactly once.
    stored_callbacks = {
        r["callerid"]: r["n"]
        for r in query(pg_url, "SELECT callerid, count(*) AS n FROM callbacks GROUP BY callerid")
    }
    stored_ratings = {
        r["callerid"]: r["n"]
        for r in query(pg_url, "SELECT callerid, count(*) AS n FROM ratings GROUP BY callerid")
    }
    requests = [c for c in callers if c.request_made]
    ratings = [c for c in callers if c.rating_made]

    # 3. Call records: cdr_manager's Cdr event for each caller's channel, stored once.
    uniqueids = [c.uniqueid for c in calls]
    for uniqueid in uniqueids:
        await ami.wait_for(matches("Cdr", UniqueID=uniqueid), after=mark)

    def cdr_counts() -> dict[str, int]:
        rows = query(
            pg_url,
            "SELECT uniqueid, count(*) AS n FROM cdr WHERE uniqueid = ANY(%s) GROUP BY uniqueid",
            uniqueids,
        )
        return {r["uniqueid"]: r["n"] for r in rows}

    await wait_until(lambda: len(cdr_counts()) == len(uniqueids), "every call record stored")
    cdr_duplicates = query(
        pg_url, "SELECT cdr_key, count(*) AS n FROM cdr GROUP BY cdr_key HAVING count(*) > 1"
    )

    # 4. Webhooks: one callStart and one callEnd for every call that rang an agent.
    rang = ami.seen(lambda m: m.name == "AgentCalled", after=mark)
    hooked_calls = sorted({m.value("Linkedid") for m in rang})

    def delivered_all() -> bool:
        return all(
            receiver.count(action, callid) >= 1
            for callid in hooked_calls
            for action in ("callStart", "callEnd")
        )

    await wait_until(delivered_all, "every webhook event delivered", timeout=240)
    await wait_until(
        lambda: (
            query(pg_url, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")[0]["n"] == 0
        ),
        "the outbox emptied",
        timeout=240,
    )
    expected_events = 2 * len(hooked_calls)
    duplicates = len(receiver.deliveries) - expected_events
    per_event = {
        (action, callid): receiver.count(action, callid)
        for callid in hooked_calls
        for action in ("callStart", "callEnd")
    }

    # 5. Pops: every agent a call rang got that call on its console, wherever it was.
    due_ringing = {(m.value("Interface").split("/", 1)[1], m.value("Linkedid")) for m in rang}
    connected = ami.seen(lambda m: m.name == "AgentConnect", after=mark)
    due_answered = {(m.value("Interface").split("/", 1)[1], m.value("Linkedid")) for m in connected}
    due = due_ringing | due_answered
    missed = sorted((agent, call_id) for agent, call_id in due if not consoles[agent].got(call_id))
    moved = {
        agent: [c.instance for c in console.connections] for agent, console in consoles.items()
    }

    killed_agent = PHONE_AGENTS[KILLED]
    diverted = [c for c in callers if c.diverted]
    lines = [
        f"kill-one-instance run (3 instances, instance {KILLED} SIGKILLed):",
        f"  calls placed: {len(calls)} ({sum(c.kind == 'callback' for c in callers)} callback, "
        f"{sum(c.kind == 'survey' for c in callers)} survey)",
        f"  reached a flow: {len(reached_flow)}; the fallback: {len(reached_fallback)}; "
        f"neither: {len(lost)}",
        f"  diverted by the kill: {[(c.number, c.diverted) for c in diverted]}",
        *(f"    {c.number}: {around_fallback(c.trail)}" for c in diverted),
        f"  callback requests made: {len(requests)} ({stored_before[0]} before the kill; "
        f"{sum(c.request_maybe for c in callers)} more confirmed as the instance died); "
        f"stored rows: {sum(stored_callbacks.values())}",
        f"  ratings made: {len(ratings)} ({stored_before[1]} before the kill); stored rows: "
        f"{sum(stored_ratings.values())}",
        f"  call records: {len(uniqueids)} callers' channels stored, duplicates "
        f"{len(cdr_duplicates)}",
        f"  webhook events due: {expected_events}; delivered: {len(receiver.deliveries)}; "
        f"duplicates: {duplicates}",
        f"  pops due: {len(due)} ({len(due_answered)} answered); delivered: "
        f"{len(due) - len(missed)}",
        f"  consoles (instances in order): {moved}; refused: "
        f"{ {a: c.refused for a, c in consoles.items()} }",
    ]
    with capsys.disabled():  # the counts are the test's report: shown even when it passes
        print("\n" + "\n".join(lines))

    assert not lost, lost
    for caller in requests:
        assert stored_callbacks.get(caller.number) == 1, (caller, stored_callbacks)
    for caller in callers:
        if caller.kind == "callback" and not caller.request_made:
            assert stored_callbacks.get(caller.number, 0) <= (1 if caller.request_maybe else 0)
    for caller in ratings:
        assert stored_ratings.get(caller.number) == 1, (caller, stored_ratings)
    assert requests and ratings, "the run made no request or no rating: nothing was tested"
    assert len(calls) == CALLBACK_CALLERS + SURVEY_CALLERS
    assert any(c.diverted for c in callers), "the kill diverted no call: it hit nothing"
    assert cdr_duplicates == []
    assert set(cdr_counts().values()) == {1}
    assert hooked_calls, "no call rang an agent"
    assert {k: v for k, v in per_event.items() if v != 1} == {}, per_event
    assert duplicates == 0
    assert missed == [], (missed, {a: c.messages for a, c in consoles.items()})
    # The agent whose console was on the killed instance moved to a living one.
    assert moved[killed_agent][0] == KILLED and len(moved[killed_agent]) >= 2, moved
    assert all(i != KILLED for i in moved[killed_agent][1:]), moved
    assert all(KILLED not in moved[a] for a in PHONE_AGENTS if a != killed_agent), moved

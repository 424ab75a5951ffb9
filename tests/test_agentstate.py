"""The agent-state mirror (centralita/agentstate.py), the fake AMI's queues
(ami/fake_queues.py) and the `[console]` settings of issue 11."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from test_web_support import web_settings

from ami.fake_queues import FakeQueues
from ami.protocol import AmiMessage
from centralita.agentstate import AgentStates
from centralita.pop import PopHub
from centralita.settings import demo_text, parse_settings
from dialplan.validate import ConfigError


def states(tmp_path: Path, now: float = 1_800_000_000.0) -> AgentStates:
    settings = web_settings(tmp_path, 5038)
    return AgentStates(
        settings.site,
        PopHub(),
        login_queues=settings.console.login_queues,
        clock=lambda: now,
    )


def member_event(name: str, **fields: str) -> AmiMessage:
    base = {
        "Queue": "support-en",
        "MemberName": "Amira Haddad",
        "Interface": "PJSIP/1001",
        "StateInterface": "PJSIP/1001",
        "Membership": "static",
        "Penalty": "0",
        "CallsTaken": "0",
        "LastCall": "0",
        "LastPause": "0",
        "LoginTime": "1799999000",
        "InCall": "0",
        "Status": "1",
        "Paused": "0",
        "PausedReason": "",
        "Ringinuse": "0",
        "Wrapuptime": "0",
    }
    base.update(fields)
    return AmiMessage.build([("Event", name), ("Privilege", "agent,all"), *base.items()])


def test_member_events_make_the_state(tmp_path: Path) -> None:
    mirror = states(tmp_path)
    assert mirror.handle(member_event("QueueMemberAdded")) == "1001"
    assert mirror.handle(member_event("QueueMemberAdded", Queue="support-ar")) == "1001"
    state = mirror.state("1001")
    assert [(q["queue"], q["member"], q["status"]) for q in state["queues"]] == [
        ("support-ar", True, "idle"),
        ("support-en", True, "idle"),
        ("support-fr", False, "out"),
    ]
    # Paused in one queue only: not paused as an agent.
    mirror.handle(member_event("QueueMemberPause", Paused="1", PausedReason="lunch"))
    assert mirror.state("1001")["paused"] is False
    # Asterisk 1.8-11 called it QueueMemberPaused; the interface's case does not matter
    # (app_queue compares interfaces with strcasecmp).
    mirror.handle(
        member_event(
            "QueueMemberPaused",
            Queue="support-ar",
            Interface="pjsip/1001",
            Paused="1",
            PausedReason="lunch",
        )
    )
    state = mirror.state("1001")
    assert (state["paused"], state["reason"], state["since"]) == (True, "lunch", 1_800_000_000.0)
    # Unpaused with a reason: Asterisk sends the reason once; it is not shown as a pause.
    mirror.handle(member_event("QueueMemberPause", Paused="0", PausedReason="back"))
    en = next(q for q in mirror.state("1001")["queues"] if q["queue"] == "support-en")
    assert (en["paused"], en["reason"]) == (False, "")
    # Device states: ringing, on a call, unreachable.
    for status, shown in (("6", "ringing"), ("2", "in_call"), ("5", "unavailable")):
        mirror.handle(member_event("QueueMemberStatus", Status=status))
        en = next(q for q in mirror.state("1001")["queues"] if q["queue"] == "support-en")
        assert en["status"] == shown
    mirror.handle(member_event("QueueMemberRemoved", Queue="support-ar"))
    ar = next(q for q in mirror.state("1001")["queues"] if q["queue"] == "support-ar")
    assert (ar["member"], ar["status"]) == (False, "out")


def test_events_of_others_and_list_items_are_not_applied(tmp_path: Path) -> None:
    mirror = states(tmp_path)
    assert mirror.handle(member_event("QueueMemberAdded", Interface="PJSIP/9999")) is None
    assert mirror.handle(member_event("QueueCallerJoin")) is None
    item = AmiMessage.build([("Event", "QueueMemberAdded"), ("Queue", "support-en")])
    assert mirror.handle(item) is None  # no Privilege: a list item, for rebuild()


def test_wrapup_runs_from_lastcall_for_the_queues_wrapuptime(tmp_path: Path) -> None:
    settings = web_settings(
        tmp_path, 5038, edit=lambda t: t.replace("wrapup_s = 0 ", "wrapup_s = 30", 1)
    )
    now = 1_800_000_000.0
    mirror = AgentStates(settings.site, PopHub(), clock=lambda: now)
    mirror.handle(
        member_event("QueueMemberStatus", Queue="support-ar", LastCall=str(int(now) - 10))
    )
    state = mirror.state("1001")
    assert state["wrapup_until"] == now + 20
    assert state["queues"][0]["status"] == "wrapup"
    # A member's own Wrapuptime wins over the queue's (app_queue get_wrapuptime).
    mirror.handle(
        member_event(
            "QueueMemberStatus", Queue="support-ar", LastCall=str(int(now) - 10), Wrapuptime="5"
        )
    )
    assert mirror.state("1001")["wrapup_until"] is None


def test_rebuild_replaces_the_mirror_and_names_who_changed(tmp_path: Path) -> None:
    mirror = states(tmp_path)
    mirror.handle(member_event("QueueMemberAdded", Queue="support-fr", Membership="dynamic"))
    fake = FakeQueues()
    fake.add_queue("support-en", [("PJSIP/1001", "Amira Haddad"), ("PJSIP/1002", "John Smith")])
    member = fake.member("support-en", "PJSIP/1002")
    assert member is not None
    member.paused, member.reason = True, "break"
    items = fake.status_items(AmiMessage.build([("Action", "QueueStatus"), ("ActionID", "7")]))
    assert [i.name for i in items] == ["QueueParams", "QueueMember", "QueueMember"]
    assert items[0].headers[-1] == ("ActionID", "7")  # ActionID last, as Asterisk writes it
    changed = mirror.rebuild(items)
    assert changed == {"1001", "1002"}
    fr = next(q for q in mirror.state("1001")["queues"] if q["queue"] == "support-fr")
    assert fr["member"] is False  # gone while the link was down
    assert (mirror.state("1002")["paused"], mirror.state("1002")["reason"]) == (True, "break")
    assert mirror.rebuild(items) == set()  # nothing moved


def test_fake_queues_answer_as_app_queue() -> None:
    fake = FakeQueues()
    fake.add_queue("support-en", [("PJSIP/1001", "Amira")])

    def act(*headers: tuple[str, str]) -> tuple[str, list[str]]:
        reply, events = fake.act(AmiMessage.build(list(headers)))
        return dict(reply)["Message"], [e.name for e in events]

    assert act(("Action", "QueueRemove"), ("Queue", "support-en"), ("Interface", "PJSIP/1001")) == (
        "Member not dynamic",
        [],
    )
    assert act(("Action", "QueueAdd"), ("Queue", "support-en"), ("Interface", "PJSIP/1001")) == (
        "Unable to add interface: Already there",
        [],
    )
    assert act(("Action", "QueueAdd"), ("Queue", "nope"), ("Interface", "PJSIP/1002")) == (
        "Unable to add interface to queue: No such queue",
        [],
    )
    assert act(("Action", "QueueAdd"), ("Queue", "support-en"), ("Interface", "PJSIP/1002")) == (
        "Added interface to queue",
        ["QueueMemberAdded"],
    )
    assert act(("Action", "QueuePause"), ("Interface", "PJSIP/1002"), ("Paused", "1")) == (
        "Interface paused successfully",
        ["QueueMemberPause"],
    )
    assert act(("Action", "QueuePause"), ("Interface", "PJSIP/9"), ("Paused", "1")) == (
        "Interface not found",
        [],
    )
    assert act(("Action", "QueuePause"), ("Interface", "PJSIP/1002")) == (
        "Need 'Interface' and 'Paused' parameters.",
        [],
    )
    assert act(("Action", "QueueRemove"), ("Queue", "support-en"), ("Interface", "PJSIP/1002")) == (
        "Removed interface from queue",
        ["QueueMemberRemoved"],
    )
    assert act(("Action", "QueueRemove"), ("Queue", "support-en"), ("Interface", "PJSIP/1002")) == (
        "Unable to remove interface: Not there",
        [],
    )


def test_console_settings_defaults_and_checks(tmp_path: Path) -> None:
    settings = parse_settings(demo_text(), "demo", tmp_path, None)
    assert settings.console.pause_reasons == ("break", "lunch", "training", "meeting")
    assert settings.console.login_queues == ("support-ar", "support-en", "support-fr")
    assert settings.console.default_region == "ES"

    def parse(console_lines: str) -> object:
        text = demo_text().replace("[console]\n", "[console]\n" + console_lines, 1)
        text = text.replace('pause_reasons = ["break", "lunch", "training", "meeting"]', "", 1)
        text = text.replace('login_queues = ["support-ar", "support-en", "support-fr"]', "", 1)
        return parse_settings(text, "c.toml", tmp_path, None)

    ok = parse('pause_reasons = ["tea", "coaching"]\ndefault_region = "ma"\n')
    assert ok.console.pause_reasons == ("tea", "coaching")  # type: ignore[attr-defined]
    assert ok.console.default_region == "MA"  # type: ignore[attr-defined]
    for lines, key in (
        ("pause_reasons = []\n", "console.pause_reasons"),
        ('pause_reasons = ["a b"]\n', "console.pause_reasons"),
        ('pause_reasons = ["x\\r\\nAction: Command"]\n', "console.pause_reasons"),
        ('pause_reasons = ["tea", "tea"]\n', "console.pause_reasons"),
        ('login_queues = ["nope"]\n', "console.login_queues"),
        ('default_region = "XX"\n', "console.default_region"),
        ('pause_reason = ["tea"]\n', "console.pause_reason"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse(lines)
        assert caught.value.key == key, lines


class Socket:
    """A console socket that keeps what it is sent."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(json.loads(text))


async def test_configure_keeps_the_state_of_agents_still_configured(tmp_path: Path) -> None:
    settings = web_settings(tmp_path, 5038)
    hub = PopHub()
    now = [1_800_000_000.0]
    mirror = AgentStates(settings.site, hub, clock=lambda: now[0])
    mirror.handle(member_event("QueueMemberAdded", Paused="1", PausedReason="lunch"))
    mirror.handle(member_event("QueueMemberAdded", Interface="PJSIP/1002", Paused="1"))
    site = settings.site
    newcomer = replace(site.agents[0], extension="1010", name="Nadia Ben", queues=("support-fr",))
    amira = replace(site.agents[0], queues=("support-fr",))
    members = (amira, *(m for m in site.members[1:] if m.extension != "1002"), newcomer)
    sockets = {agent: Socket() for agent in ("1001", "1010")}
    for agent, socket in sockets.items():
        hub.add(agent, cast(web.WebSocketResponse, socket))

    now[0] += 600  # ten minutes after the start
    mirror.configure(replace(site, members=members), login_queues=())
    # The newcomer has been logged out since the reload; Amira's pause keeps its start.
    assert mirror.state("1010")["since"] == now[0]
    assert mirror.state("1001")["since"] == now[0] - 600

    state = mirror.state("1001")
    assert (state["paused"], state["reason"]) == (True, "lunch")
    # Its allowed queues are the new ones; the queue Asterisk still has it in shows too.
    assert [(q["queue"], q["member"]) for q in state["queues"]] == [
        ("support-fr", False),
        ("support-en", True),
    ]
    assert mirror.agent_of("PJSIP/1002") is None
    assert mirror.handle(member_event("QueueMemberPause", Interface="PJSIP/1002")) is None
    assert mirror.agent_of("PJSIP/1010") == "1010"
    assert mirror.device("1010") == "PJSIP/1010"
    assert mirror.state("1010")["queues"] == [
        {
            "queue": "support-fr",
            "member": False,
            "dynamic": False,
            "paused": False,
            "reason": "",
            "status": "out",
        }
    ]
    # Every open console is sent its agent's state again, without any event from Asterisk.
    runner = asyncio.create_task(mirror.run())
    for _ in range(20):
        if all(s.sent for s in sockets.values()):
            break
        await asyncio.sleep(0)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    assert [m["queues"][0]["queue"] for m in sockets["1001"].sent] == ["support-fr"]
    assert [m["extension"] for m in sockets["1010"].sent] == ["1010"]

"""The rendered configs on a real Asterisk: they load cleanly, and a reload adds an agent live."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from .amiwatch import AmiWatch, matches
from .asterisk import Ports, ScratchAsterisk
from .people import place_call
from .site import Site, free_udp_port

pytestmark = pytest.mark.asterisk


def _normalised(problems: list[str], root: str) -> set[str]:
    return {re.sub(r"\b0x[0-9a-f]+\b", "0x…", p.replace(root, "<root>")) for p in problems}


def test_rendered_configs_load_with_no_warning_of_their_own(site: Site) -> None:
    """Every WARNING/ERROR at boot must also appear in a bare boot of the same Asterisk."""
    bare = ScratchAsterisk(
        site.target, site.root / "bare-asterisk", Ports(sip=0, ami=0, rtp_start=30000)
    )
    bare.prepare()
    # The SIP driver loaded with no endpoint at all, so that its own start-up warnings
    # (chan_sip's deprecation notice) count as the baseline, not as ours.
    if site.driver == "sip":
        # On loopback at a free port: chan_sip would take 0.0.0.0:5060 otherwise.
        bare.write("sip.conf", f"[general]\nudpbindaddr = 127.0.0.1:{free_udp_port()}\n")
    else:
        bare.write("pjsip.conf", "; no endpoints\n")
    bare.start()
    try:
        if site.driver == "sip":
            # chan_sip prints its deprecation notice from its monitor thread, sometimes after
            # "Asterisk Ready.": wait for it, so that the baseline holds it.
            for _ in range(200):  # readiness poll of the logger
                if "no official maintainer" in "\n".join(bare.log_problems()):
                    break
                time.sleep(0.05)
        # Waiting for "Asterisk Ready." as ours was read (the logger thread writes after
        # `core waitfullybooted` returns: read at once, a loaded machine's baseline missed the
        # loader's lines), and whatever came after it too.
        baseline = _normalised(
            bare.log_problems(until_ready=True) + bare.log_problems(), str(bare.root)
        )
    finally:
        bare.stop()
    assert baseline, "a bare boot always warns about missing files: is the log read at all?"
    ours = _normalised(site.boot_problems, str(site.asterisk.root))
    assert sorted(ours - baseline) == []


async def test_agent_add_then_render_reload_keeps_calls_up(
    site: Site, ami: AmiWatch, number: str
) -> None:
    call = await place_call(ami, number=number)
    await call.listening("WAIT FOR DIGIT")
    await call.press("2")
    connected = await ami.wait_for(matches("AgentConnect", Channel=call.near), after=call.mark)
    before_reload = ami.mark()

    added = site.cli("agent", "add", "1005", "--name", "Nadia Reload", "--queues", "support-en")
    assert added.returncode == 0, added.stderr
    try:
        reloaded = site.cli("render", "--out", str(site.rendered), "--reload", check=False)
        assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr

        if site.driver == "pjsip":
            endpoint = await ami.command("pjsip show endpoint 1005")
            assert "Endpoint:  1005" in endpoint, endpoint
        else:
            # chan_sip reloads in its monitor thread, after the command has returned
            # (chan_sip.c sip_reload only flags it): poll until the reload is done.
            for _ in range(100):  # readiness poll
                peer = await ami.command("sip show peer 1005")
                if "not found" not in peer:
                    break
                await asyncio.sleep(0.1)
            assert "Name       : 1005" in peer, peer
        members = await ami.command("queue show support-en")
        assert f"{site.device('1005')} " in members or f"({site.device('1005')}" in members, members
        # The call that was up across the reload is still up, still bridged to its agent.
        assert ami.seen(matches("Hangup", Channel=call.near), after=before_reload) == []
        channels = await ami.command("core show channels concise")
        assert call.near in channels
        assert connected.value("DestChannel").split("-")[0] in channels
    finally:
        removed = site.cli("agent", "remove", "1005", check=False)
        site.cli("render", "--out", str(site.rendered), "--reload", check=False)
        await call.hangup()
    assert removed.returncode == 0, removed.stderr
    await call.ended()


def _documented_ami_users() -> dict[str, dict[str, str]]:
    """The manager.conf users docs/ami.md shows, as {user: {key: value}}."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "ami.md").read_text(encoding="utf-8")
    block = text[text.index("```ini\n; manager.conf") :]
    users: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in block[: block.index("```", 3)].splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = users.setdefault(line[1:-1], {})
        elif current is not None and " = " in line:
            key, _, value = line.partition(" = ")
            current[key] = value
    users.pop("general", None)
    return users


async def test_asterisk_grants_the_ami_users_exactly_what_the_docs_say(
    site: Site, ami: AmiWatch
) -> None:
    """What Asterisk itself parsed from the rendered manager.conf, against docs/ami.md."""
    documented = _documented_ami_users()
    assert "centralita" in documented
    for user, keys in documented.items():
        shown = await ami.command(f"manager show user {user}")
        granted = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in shown.splitlines())
        )
        assert granted.get("username") == user, shown
        for kind in ("read", "write"):
            assert set(granted[f"{kind} perm"].split(",")) == set(keys[kind].split(",")), (
                user,
                kind,
                shown,
            )
    # The user `serve` logs in as cannot run CLI commands (no `command` class).
    async with AmiWatch(
        "127.0.0.1", site.ami_port, "centralita", "centralita-ami-secret"
    ) as runtime:
        refused = await runtime.action("Command", Command="core show version")
        assert refused.get("Response") == "Error", refused
        assert "Permission denied" in (refused.get("Message") or ""), refused

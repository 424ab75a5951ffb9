"""Two real Asterisk processes followed by one `centralita serve` (`[[asterisk]]`).

Servers `a` and `b` get the files `centralita render` writes for each (a folder per server:
their AMI ports and SIP binds differ), each its own `systemname` (so their Uniqueids never
meet). Agent 1003's phone registers on a, agent 1002's on b; both servers may host every
member, so where a click-to-dial goes is read from the registrations Asterisk reports over
AMI (DeviceStateList after login, then DeviceStateChange). Each call's record comes from the
server that carried it; an agent whose phone is registered nowhere is refused (409).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from centralita.settings import demo_text

from .amiwatch import WAIT_S
from .asterisk import Ports, ScratchAsterisk, Target
from .people import Console
from .site import (
    AMI_TEST_SECRET,
    AMI_TEST_USER,
    HERE,
    Phone,
    Site,
    free_tcp_port,
    free_udp_port,
)

pytestmark = pytest.mark.asterisk

NAMES = ("a", "b")
PHONE_ON = {"1003": "a", "1002": "b"}  # whose phone registers where
AMI_SECRET = "centralita-ami-secret"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pair" in metafunc.fixturenames:
        targets = metafunc.config.integration_targets  # type: ignore[attr-defined]
        metafunc.parametrize(
            "pair", [pytest.param(t, id=t.name) for t in targets], indirect=True, scope="module"
        )


class Pair(Site):
    """A `Site` (its Centralita, ports and helpers) with a second Asterisk beside the first."""

    def __init__(self, target: Target, root: Path) -> None:
        super().__init__(target, root, index=7)
        self.ami_port_b = free_tcp_port()
        self.sip_port_b = free_udp_port()
        self.asterisk_b = ScratchAsterisk(
            target,
            root / "asterisk-b",
            Ports(sip=self.sip_port_b, ami=self.ami_port_b, rtp_start=21000 + 400 * 8),
        )

    @property
    def rendered(self) -> Path:
        return self.root / "rendered"  # holds a/ and b/, each linked as its etc/centralita

    @property
    def servers(self) -> dict[str, ScratchAsterisk]:
        return {"a": self.asterisk, "b": self.asterisk_b}

    def write_config(self) -> None:
        doc = tomlkit.parse(demo_text())
        server: Any = doc["server"]
        server["agi_port"] = self.agi_port
        server["web_port"] = self.web_port
        server["data_dir"] = str(self.data_dir)
        first: Any = doc["asterisk"]
        first["ami_port"] = self.ami_port
        first["ami_secret"] = AMI_SECRET
        first["spool_dir"] = str(self.asterisk.spool)
        first["recordings_dir"] = str(self.asterisk.spool / "monitor")
        first["sip_driver"] = self.driver
        first["sip_bind"] = f"127.0.0.1:{self.sip_port}"
        first["outbound_trunk"] = "Local/{number}@centralita-test-customer"
        a = tomlkit.table()
        a.update({"name": "a", **{k: v for k, v in first.items()}})
        b = tomlkit.table()
        b.update(
            {
                "name": "b",
                "ami_port": self.ami_port_b,
                "ami_secret": AMI_SECRET,
                "spool_dir": str(self.asterisk_b.spool),
                "sip_bind": f"127.0.0.1:{self.sip_port_b}",
            }
        )
        servers = tomlkit.aot()
        servers.append(a)
        servers.append(b)
        del doc["asterisk"]
        doc["asterisk"] = servers
        self.config.write_text(tomlkit.dumps(doc), encoding="utf-8")

    def write_server_files(self, name: str, asterisk: ScratchAsterisk) -> None:
        """The rendered set of this server, and what the admin adds around it."""
        (asterisk.etc / "centralita").symlink_to(self.rendered / name)
        sip = "pjsip" if self.driver == "pjsip" else "sip"
        for conf in ("queues", "voicemail", "features", sip):
            asterisk.write(f"{conf}.conf", f"#include centralita/{conf}.conf\n")
        asterisk.write(
            "extensions.conf", "#include centralita/extensions.conf\n#include callers.conf\n"
        )
        shutil.copyfile(HERE / "callers.conf", asterisk.etc / "callers.conf")
        asterisk.write(
            "manager.conf",
            "#include centralita/manager.conf\n\n"
            f"[{AMI_TEST_USER}]\nsecret = {AMI_TEST_SECRET}\n"
            "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
            "read = all\nwrite = all\n",
        )
        asterisk.write("cdr.conf", "[general]\nenable = yes\n")
        asterisk.write("cdr_manager.conf", "[general]\nenabled = yes\n")
        # Each server makes Uniqueids of its own (main/channel.c __ast_channel_alloc_ap).
        text = asterisk.conf.read_text(encoding="utf-8")
        asterisk.conf.write_text(
            text.replace("[options]\n", f"[options]\nsystemname = {name}\n"), encoding="utf-8"
        )

    def start(self) -> None:
        self.crm.start()  # the site's test CRM: unused here, started so that it stops cleanly
        self.write_config()
        self.render()
        asyncio.run(self._set_passwords(("1001", "1002", "1003")))
        for name, asterisk in self.servers.items():
            asterisk.prepare()
            self.write_server_files(name, asterisk)
            asterisk.start()
        secrets = _member_secrets(self.config)
        ports = {"a": self.sip_port, "b": self.sip_port_b}
        for extension, name in PHONE_ON.items():
            phone = Phone(extension, secrets[extension], free_udp_port(), free_udp_port())
            self.phones[extension] = phone
            phone.start(ports[name], self.root)
        self.start_centralita()  # ready once /healthz says AMI connected: every server

    def stop(self) -> None:
        self.stop_centralita()
        for phone in self.phones.values():
            phone.stop()
        for asterisk in self.servers.values():
            asterisk.stop()
        self.crm.stop()


def _member_secrets(config: Path) -> dict[str, str]:
    """Each member's SIP password, from the config."""
    doc = tomlkit.parse(config.read_text("utf-8"))
    members: Any = doc["members"]
    return {str(m["extension"]): str(m["secret"]) for m in members}


@pytest.fixture(scope="module")
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    built = Pair(request.param, tmp_path_factory.mktemp(f"pair-{request.param.name}"))
    try:
        built.start()
        yield built
    finally:
        built.stop()


def agent_of(channel: str) -> str:
    """`PJSIP/1002-0000000a` -> `1002`."""
    return channel.partition("/")[2].rpartition("-")[0]


async def records_of(pair: Pair, agents: set[str]) -> dict[str, str]:
    """{agent: uniqueid} of the stored call records whose channel is an agent's, once every
    one of `agents` has one (bounded: Centralita writes a record when its Cdr event comes)."""
    uri = pair.database.resolve().as_uri() + "?mode=ro"
    deadline = asyncio.get_running_loop().time() + WAIT_S
    found: dict[str, str] = {}
    while asyncio.get_running_loop().time() < deadline:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute("SELECT uniqueid, channel FROM cdr ORDER BY id").fetchall()
        found = {agent_of(channel): uid for uid, channel in rows if agent_of(channel) in agents}
        if set(found) >= agents:
            break
        await asyncio.sleep(0.2)
    return found


async def test_each_click_to_dial_goes_to_the_server_of_the_phone(pair: Pair) -> None:
    assert sorted(p.name for p in pair.rendered.iterdir()) == ["a", "b"]
    for extension, name in PHONE_ON.items():
        async with Console(pair, extension) as console:
            # The phone registered a moment ago: wait until that server reported it.
            for _ in range(100):
                status, body = await console.post("/api/dial", {"number": "+34600000001"})
                if status != 409:
                    break
                await asyncio.sleep(0.2)
            assert status == 200, body
            assert (body["ok"], body["reason"]) == (True, 4), body
        # Hang the call up on its server, so that its record is written.
        pair.servers[name].cli("channel request hangup all")
    # Each server's record, with that server's Uniqueids (systemname-...).
    by_agent = await records_of(pair, set(PHONE_ON))
    assert by_agent["1003"].startswith("a-"), by_agent
    assert by_agent["1002"].startswith("b-"), by_agent


async def test_a_phone_registered_nowhere_is_refused(pair: Pair) -> None:
    async with Console(pair, "1001") as console:
        status, body = await console.post("/api/dial", {"number": "+34600000002"})
    assert (status, body["code"]) == (409, "not_registered"), body
    assert "a, b" in body["error"]
    health = pair.health() or {}
    assert [s["name"] for s in health["ami"]["servers"]] == list(NAMES)

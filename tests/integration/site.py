"""The whole call center for one combination: Asterisk, Centralita, phones, a CRM.

The config is the demo's, edited only where a test site must differ (ports, folders, short
timeouts, a CRM on loopback, a closed time condition); every Asterisk file Centralita owns is
written by `centralita render`, and the harness adds only what a real site adds around them:
the `#include` lines, a manager user for the tests, cdr_manager, and the test-only contexts
that play callers and customers (`callers.conf`).

Who is who:
- agents 1001 (a supervisor), 1002, 1003 have phones (sipp, registered with their rendered
  secrets);
- agent 1004 has none, and is the only member of `support-fr`, so a French caller waits
  unanswered and reaches the callback flow;
- the CEO 1100, the manager 1101 (the admin of /admin) and the quality member 1200 have no
  phones: the call matrix is tested on their roles' contexts (test_roles.py);
- customers are Local channels in `centralita-test-customer` (the outbound trunk), callers
  are Local channels originated into `incoming`; both press the keys the test sets.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import tomlkit
from aiohttp import web

from centralita.settings import demo_text
from centralita.store import Store, default_path

from .asterisk import Ports, ScratchAsterisk, Target

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SIPP = HERE / "sipp"

AMI_TEST_USER = "centralita-test"
AMI_TEST_SECRET = "test-secret-for-the-suite"
CONSOLE_PASSWORD = "console-pass-1"
PHONE_AGENTS = ("1001", "1002", "1003")
NO_PHONE_AGENT = "1004"
ADMIN = "1101"  # the demo's manager: console permission admin
TIMEZONE = "Europe/Madrid"

# Customer IDs the test CRM knows (POST idContact=..., centralita/crm.py).
CRM_TRUE, CRM_FALSE, CRM_DESTINATION, CRM_SLOW = "111111", "222222", "333333", "444444"
CRM_SLOW_S = 8.0  # longer than [crm] timeout_s below


# A port is free when picked and bound later by `serve`, Asterisk or sipp, so the kernel
# may give it to another bind(0) meanwhile: once a site got FastAGI and the web on one port,
# and in the same run another combination's FastAGI port was taken, and `serve` could not
# start ("address already in use"). So no port is handed out twice by this process, and
# parallel.py gives each combination's process a slot `i/n`: it takes only ports equal to
# i modulo n, never those of another combination.
PORT_SLOT_VAR = "CENTRALITA_PORT_SLOT"
_HANDED_OUT: set[tuple[int, int]] = set()


def _port_slot() -> tuple[int, int]:
    slot, _, count = os.environ.get(PORT_SLOT_VAR, "0/1").partition("/")
    return int(slot), max(int(count or 1), 1)


def _free_port(kind: int) -> int:
    slot, count = _port_slot()
    while True:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port % count == slot and (kind, port) not in _HANDED_OUT:
            _HANDED_OUT.add((kind, port))
            return port


def free_tcp_port() -> int:
    return _free_port(socket.SOCK_STREAM)


def free_udp_port() -> int:
    return _free_port(socket.SOCK_DGRAM)


# --------------------------------------------------------------------------- the CRM


class Crm:
    """A real aiohttp server on loopback, in a thread of its own, answering the CRM contract."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        self.asked: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _customer(self, request: web.Request) -> web.Response:
        form = await request.post()
        customer = str(form.get("idContact", ""))
        self.asked.append(customer)
        # The slow answer is "true": a caller routed to success would prove that Centralita
        # waited past [crm] timeout_s instead of taking the failure destination.
        answers = {CRM_TRUE: "true", CRM_FALSE: "false", CRM_DESTINATION: "1,3", CRM_SLOW: "true"}
        if customer == CRM_SLOW:
            await asyncio.sleep(CRM_SLOW_S)
        return web.json_response({"status": "ok", "destination": answers.get(customer, "false")})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/customer", self._customer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


# --------------------------------------------------------------------------- phones


@dataclass
class Phone:
    """An agent's phone: sipp registers with the agent's secret, then answers every call."""

    extension: str
    secret: str
    port: int
    media_port: int
    pid: int | None = None
    error_log: Path | None = None  # sipp's -error_file, once started

    def start(self, sip_port: int, log_dir: Path) -> None:
        self.error_log = log_dir / f"sipp-{self.extension}-errors.log"
        out = subprocess.run(
            [
                "sipp",
                f"127.0.0.1:{sip_port}",
                "-sf",
                str(SIPP / "register.xml"),
                "-oocsf",
                str(SIPP / "answer.xml"),
                "-aa",  # 200 to OPTIONS (qualify) and NOTIFY (MWI) out of call
                "-s",
                self.extension,
                "-au",
                self.extension,
                "-ap",
                self.secret,
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-mp",
                str(self.media_port),
                "-m",
                "1",
                "-bg",
                "-trace_err",
                "-error_file",
                str(self.error_log),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            cwd=log_dir,
        )
        match = re.search(r"PID=\[(\d+)\]", out.stdout + out.stderr)
        if not match:
            raise RuntimeError(f"sipp for {self.extension} did not start: {out.stdout}{out.stderr}")
        self.pid = int(match.group(1))

    def stop(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = None


# --------------------------------------------------------------------------- the site


def _closed_today(now: datetime) -> list[str]:
    """Holidays that make a condition closed now, even across midnight while the suite runs."""
    return [(now + timedelta(days=d)).date().isoformat() for d in (-1, 0, 1)]


@dataclass
class Site:
    target: Target
    root: Path
    index: int = 0
    agi_port: int = field(default_factory=free_tcp_port)
    web_port: int = field(default_factory=free_tcp_port)
    ami_port: int = field(default_factory=free_tcp_port)
    sip_port: int = field(default_factory=free_udp_port)
    down_port: int = field(default_factory=free_tcp_port)  # nothing listens: a CRM that is down
    crm: Crm = field(default_factory=Crm)
    phones: dict[str, Phone] = field(default_factory=dict)
    centralita: subprocess.Popen[bytes] | None = None
    asterisk: ScratchAsterisk = field(init=False)
    boot_problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.asterisk = ScratchAsterisk(
            self.target,
            self.root / "asterisk",
            Ports(sip=self.sip_port, ami=self.ami_port, rtp_start=21000 + 400 * self.index),
        )

    # ------------------------------------------------------------------ paths

    @property
    def config(self) -> Path:
        return self.root / "centralita.toml"

    @property
    def rendered(self) -> Path:
        return self.asterisk.etc / "centralita"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def database(self) -> Path:
        return self.data_dir / "centralita.sqlite3"

    @property
    def voicemail(self) -> Path:
        return self.asterisk.spool / "voicemail" / "VoiceMail"

    @property
    def driver(self) -> str:
        return self.target.driver

    def device(self, extension: str) -> str:
        return f"{'PJSIP' if self.driver == 'pjsip' else 'SIP'}/{extension}"

    # ------------------------------------------------------------------ config

    def write_config(self) -> None:
        doc = tomlkit.parse(demo_text())
        server: Any = doc["server"]
        server["agi_port"] = self.agi_port
        server["web_port"] = self.web_port
        server["data_dir"] = str(self.data_dir)
        ast: Any = doc["asterisk"]
        ast["ami_port"] = self.ami_port
        ast["ami_secret"] = "centralita-ami-secret"
        ast["spool_dir"] = str(self.asterisk.spool)
        ast["recordings_dir"] = str(self.asterisk.spool / "monitor")
        ast["sip_driver"] = self.driver
        ast["sip_bind"] = f"127.0.0.1:{self.sip_port}"
        ast["entry"] = "ivr:main"
        ast["outbound_trunk"] = "Local/{number}@centralita-test-customer"
        ivr: Any = doc["ivr"]
        ivr["timeout_s"] = 3
        ivr["retries"] = 1
        for queue in doc["queues"]:
            queue["timeout_s"] = 6 if queue["name"] == "support-fr" else 30
        ast["conf_dir"] = str(self.rendered)  # where /admin renders after a save
        agents: Any = doc["members"]
        agents[0]["queues"] = ["support-ar", "support-en"]
        agents[2]["queues"] = ["support-en"]
        extra = tomlkit.table()
        extra.update(
            {
                "extension": NO_PHONE_AGENT,
                "name": "Noor Phoneless",
                "role": "agent",
                "queues": ["support-fr"],
                "secret": "demo-secret-1004",
                "language": "fr",
            }
        )
        agents.append(extra)
        nodes: Any = doc["customer_id"]
        nodes[0]["url"] = f"http://127.0.0.1:{self.crm.port}/customer"
        nodes[0]["timeout_s"] = 5
        for name, mode, url in (
            ("crm-destination", "crm-destination", f"http://127.0.0.1:{self.crm.port}/customer"),
            ("crm-down", "crm-bool", f"http://127.0.0.1:{self.down_port}/customer"),
        ):
            node = tomlkit.table()
            node.update(
                {
                    "name": name,
                    "id": len(nodes) + 1,
                    "mode": mode,
                    "url": url,
                    "id_length": 6,
                    "timeout_s": 5,
                    "retries": 2,
                    "success": "queue:support-en",
                    "failure": "queue:support-ar",
                }
            )
            nodes.append(node)
        crm: Any = doc["crm"]
        crm["timeout_s"] = 2.0
        crm["breaker_failures"] = 100  # each scenario must see the CRM, not an open circuit
        closed = tomlkit.table()
        closed.update(
            {
                "name": "closed",
                "id": 2,
                "timezone": TIMEZONE,
                "inside": "queue:support-en",
                "outside": "voicemail:600",
                "holidays": _closed_today(datetime.now(ZoneInfo(TIMEZONE))),
            }
        )
        closed_range = tomlkit.table()
        closed_range.update({"days": "mon-sun", "start": "00:00", "end": "24:00"})
        aot = tomlkit.aot()
        aot.append(closed_range)
        closed["ranges"] = aot
        doc["time_conditions"].append(closed)
        console: Any = doc["console"]
        console["login_queues"] = ["support-fr"]  # QueueAdd/QueueRemove (test_agent_state.py)
        survey: Any = doc["survey"]
        survey["delay_s"] = 1
        survey["wait_time_s"] = 20
        survey["timeout_s"] = 6
        self.config.write_text(tomlkit.dumps(doc), encoding="utf-8")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`centralita ARGS --config <site>`, as an admin types it."""
        return subprocess.run(
            [sys.executable, "-m", "centralita", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            check=check,
            cwd=self.root,
            timeout=120,
        )

    def render(self) -> subprocess.CompletedProcess[str]:
        return self.cli("render", "--out", str(self.rendered))

    async def _set_passwords(self, extensions: tuple[str, ...]) -> None:
        async with Store.open(default_path(self.data_dir)) as store:
            for extension in extensions:
                await store.set_agent_password(extension, CONSOLE_PASSWORD)

    def write_asterisk_files(self) -> None:
        """What the admin adds around the rendered files (README: 'link the generated files')."""
        sip = "pjsip" if self.driver == "pjsip" else "sip"
        for name in ("queues", "voicemail", "features", sip):
            self.asterisk.write(f"{name}.conf", f"#include centralita/{name}.conf\n")
        self.asterisk.write(
            "extensions.conf",
            "#include centralita/extensions.conf\n#include callers.conf\n",
        )
        shutil.copyfile(HERE / "callers.conf", self.asterisk.etc / "callers.conf")
        self.asterisk.write(
            "manager.conf",
            "#include centralita/manager.conf\n\n"
            f"[{AMI_TEST_USER}]\nsecret = {AMI_TEST_SECRET}\n"
            "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
            "read = all\nwrite = all\n",
        )
        # What a packaged Asterisk installs too (its sample indications.conf): the transfer
        # features collect the extension with ast_app_dtget, which plays the `dial` tone; with
        # no tones Asterisk logs "no dial for indications?" and nothing drives the channel's
        # reads while it waits, so a key received then is not seen until the next frame.
        self.asterisk.write(
            "indications.conf",
            "[general]\ncountry = es\n\n[es]\ndescription = Spain\nringcadence = 1500,3000\n"
            "dial = 425\nbusy = 425/200,0/200\nring = 425/1500,0/3000\n"
            "congestion = 425/200,0/200,425/200,0/200,425/200,0/600\n",
        )
        self.asterisk.write("cdr.conf", "[general]\nenable = yes\n")
        self.asterisk.write("cdr_manager.conf", "[general]\nenabled = yes\n")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.crm.start()
        self.write_config()
        self.render()
        # One `agent passwd` as the admin types it; the others straight into the store.
        self.cli("agent", "passwd", PHONE_AGENTS[0], "--password", CONSOLE_PASSWORD)
        asyncio.run(self._set_passwords((*PHONE_AGENTS[1:], NO_PHONE_AGENT, ADMIN)))
        self.asterisk.prepare()
        self.write_asterisk_files()
        self.asterisk.link_sounds(REPO / "sounds")
        self.asterisk.start()
        self.boot_problems = self.asterisk.log_problems(until_ready=True)
        self.start_phones()
        self.wait_phones_reachable()
        self.start_centralita()

    def wait_phones_reachable(self) -> None:
        """Until every phone is registered and qualified: before that, a queue skips the agent
        as unavailable (a contact is qualified on registration).

        A qualify that found the phone too slow (all three combinations boot at once on two
        cores) is not tried again for qualify_frequency (60 s): a phone still not reachable
        after a few seconds is qualified again at once, as an admin would from the CLI."""
        if self.driver == "pjsip":
            command, ok = "pjsip show contacts", re.compile(r"^\s*Contact:\s+(\d+)/\S+.*\bAvail\b")
            qualify = "pjsip qualify {}"
        else:
            command, ok = "sip show peers", re.compile(r"^(\d+)(?:/\S+)?\s+127\.0\.0\.1\b.*\bOK\b")
            qualify = "sip qualify peer {}"
        seen: set[str] = set()
        started = time.monotonic()
        asked_again = started
        while time.monotonic() - started < 120:  # readiness poll
            text = self.asterisk.cli(command)
            seen = {m.group(1) for line in text.splitlines() if (m := ok.match(line))}
            if seen >= set(PHONE_AGENTS):
                return
            if time.monotonic() - asked_again > 5:
                for extension in sorted(set(PHONE_AGENTS) - seen):
                    self.asterisk.cli(qualify.format(extension))
                asked_again = time.monotonic()
            time.sleep(0.1)
        raise RuntimeError(f"phones not reachable: only {sorted(seen)}:\n{text}")

    def start_phones(self) -> None:
        secrets = _secrets(self.config)
        for extension in PHONE_AGENTS:
            phone = self.phones.get(extension)
            if phone is None:
                phone = Phone(extension, secrets[extension], free_udp_port(), free_udp_port())
                self.phones[extension] = phone
            phone.start(self.sip_port, self.root)

    def start_centralita(self) -> None:
        log = (self.root / "centralita.log").open("ab")
        self.centralita = subprocess.Popen(
            [sys.executable, "-m", "centralita", "serve", "--config", str(self.config)],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        for _ in range(600):  # readiness poll: web up and AMI logged in
            if self.centralita.poll() is not None:
                raise RuntimeError(f"centralita serve exited:\n{self.centralita_log()}")
            health = self.health()
            if health is not None and health.get("ami", {}).get("connected"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"centralita never reached AMI:\n{self.centralita_log()}")

    def stop_centralita(self) -> int | None:
        process, self.centralita = self.centralita, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
        return process.returncode

    def health(self) -> dict[str, Any] | None:
        try:
            url = f"http://127.0.0.1:{self.web_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except (OSError, ValueError):
            return None

    def centralita_log(self, lines: int = 60) -> str:
        try:
            text = (self.root / "centralita.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def state_report(self) -> str:
        """What Asterisk and the phones were doing: printed with a failed test, so that a
        failure in CI (a queue member that stays ringing, a call that never connects) can be
        read afterwards. The CLI's own views: channels, queues, and the SIP peers' call
        counters (chan_sip's `sip show inuse`: a peer counted as ringing with no call is
        one app_queue will not ring) or pjsip's contacts."""
        commands = [
            "core show channels concise",
            "queue show",
            "sip show inuse" if self.driver == "sip" else "pjsip show contacts",
        ]
        parts = []
        for command in commands:
            try:
                out = self.asterisk.cli(command, timeout=10)
            except (OSError, subprocess.SubprocessError) as exc:
                out = f"(could not run: {exc})"
            parts.append(f"--- asterisk -rx '{command}'\n{out.rstrip()}")
        for extension, phone in sorted(self.phones.items()):
            if phone.error_log is None:
                continue
            try:
                text = phone.error_log.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            # sipp writes its warnings without line breaks; each starts with a date.
            entries = re.split(r"(?=\d{4}-\d{2}-\d{2}\t)", text)
            shown = [e.strip()[:300] for e in entries[-8:] if e.strip()]
            parts.append(f"--- phone {extension}: sipp's last warnings\n" + "\n".join(shown))
        return "\n".join(parts)

    def stop(self) -> None:
        self.stop_centralita()
        for phone in self.phones.values():
            phone.stop()
        self.asterisk.stop()
        self.crm.stop()


def _secrets(config: Path) -> dict[str, str]:
    doc = tomlkit.parse(config.read_text(encoding="utf-8"))
    members: Any = doc["members"]
    return {str(a["extension"]): str(a["secret"]) for a in members}

"""`centralita demo`: the demo call center with a pretend Asterisk, to watch pops without one.

It serves the built-in demo config on loopback, with `ami.testing.FakeAmiServer` in place of
Asterisk's AMI and `centralita.demo.player.CallPlayer` placing a recorded call to agent 1001
every few seconds. Agent 1001 gets a known console password, printed with the URL: fine on
127.0.0.1 for a demo, which is why the demo listens nowhere else. Its data lives in a
temporary folder (removed on exit) unless `--data DIR` says where to keep it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from ami.testing import FakeAmiServer
from centralita.app import create_app
from centralita.demo.player import CALLERS, CallPlayer
from centralita.keys import AMI, STORE
from centralita.logs import setup_logging
from centralita.settings import Settings, demo_text, parse_settings

HOST = "127.0.0.1"  # never anything else: the demo's password is printed for all to see
DEMO_AGENT = "1001"
DEMO_PASSWORD = "centralita-demo"  # noqa: S105 - printed on purpose, loopback only
DEMO_QUEUE = "support-en"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register `centralita demo`."""
    parser = subparsers.add_parser(
        "demo",
        help="serve the demo with a pretend Asterisk that calls agent 1001 every few seconds",
        description="Serve the built-in demo on 127.0.0.1 with a fake Asterisk manager port "
        "that replays a recorded queue call to agent 1001 every few seconds, so the console's "
        "screen pop can be watched without an Asterisk. Prints the console URL and a login.",
    )
    parser.add_argument("--port", type=int, default=8080, help="console port (default 8080)")
    parser.add_argument(
        "--agi-port", type=int, default=4573, help="FastAGI port (default 4573; 0: any free one)"
    )
    parser.add_argument(
        "--every", type=float, default=12.0, metavar="SECONDS", help="a call this often"
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="keep the demo's data here (default: a temporary folder, removed on exit)",
    )
    parser.set_defaults(func=cmd_demo)


def demo_settings(data_dir: Path, web_port: int, agi_port: int, ami_port: int) -> Settings:
    """The built-in demo on loopback, its data and spool in `data_dir`, AMI on `ami_port`."""
    text = demo_text()
    replacements = {
        'web_host = "127.0.0.1"': f'web_host = "{HOST}"',
        'agi_host = "127.0.0.1"': f'agi_host = "{HOST}"',
        "web_port = 8080": f"web_port = {web_port}",
        "agi_port = 4573": f"agi_port = {agi_port}",
        "ami_port = 5038": f"ami_port = {ami_port}",
        # json.dumps: a TOML basic string, whatever the folder's name holds.
        'data_dir = "data"': f"data_dir = {json.dumps(str(data_dir))}",
        'spool_dir = "/var/spool/asterisk"': f"spool_dir = {json.dumps(str(data_dir / 'spool'))}",
    }
    for old, new in replacements.items():
        if old not in text:
            raise RuntimeError(f"the demo config no longer has {old!r}")
        text = text.replace(old, new, 1)
    return parse_settings(text, "<demo centralita.toml>", data_dir, None)


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging("text", "INFO")
    with contextlib.ExitStack() as stack:
        if args.data is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="centralita-")))
        else:
            data_dir = args.data.resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
        try:
            return asyncio.run(serve_demo(data_dir, args.port, args.agi_port, args.every))
        except OSError as exc:
            print(f"centralita: cannot serve the demo: {exc}", file=sys.stderr)
            return 1
    return 0  # not reached: mypy cannot tell that ExitStack swallows nothing


async def serve_demo(data_dir: Path, web_port: int, agi_port: int, every_s: float) -> int:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with FakeAmiServer(login_failure_delay=1.0) as fake:
        settings = demo_settings(data_dir, web_port, agi_port, fake.port)
        # The fake lets in what the demo config logs in with.
        fake.username = settings.asterisk.ami_user
        fake.secret = settings.asterisk.ami_secret or ""
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, HOST, web_port).start()
            store = app[STORE]
            await store.set_agent_password(DEMO_AGENT, DEMO_PASSWORD)
            for caller in CALLERS:
                if caller.contact and not await store.contacts_for_number(caller.number):
                    await store.create_contact(
                        name=caller.contact, company=caller.company, numbers=[caller.number]
                    )
            agent = settings.site.agent(DEMO_AGENT)
            name = agent.name if agent else DEMO_AGENT
            print(
                f"\nCentralita demo: a pretend Asterisk calls {name} (agent {DEMO_AGENT}) "
                f"every {every_s:g} s.\n"
                f"  console:  http://{HOST}:{web_port}/\n"
                f"  login:    extension {DEMO_AGENT}, password {DEMO_PASSWORD}\n"
                f"  data:     {data_dir}\n"
                "Ctrl-C stops it.\n",
                flush=True,
            )
            player = CallPlayer(
                fake,
                agent=DEMO_AGENT,
                queue=DEMO_QUEUE,
                driver=settings.site.sip_driver,
                every_s=every_s,
            )
            # Calls start once the listener has logged in and rebuilt its state, as they
            # would reach a Centralita that is already connected to Asterisk.
            await app[AMI].wait_connected(30.0)
            task = asyncio.create_task(player.run(), name="centralita-demo-calls")
            await stop.wait()
            player.stopping = True  # in case a cancellation is lost in a wait_for (3.11)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 30.0)
        finally:
            await runner.cleanup()
    return 0

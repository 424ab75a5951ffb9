"""Login flood benchmark: 1,000 concurrent wrong console logins against `centralita serve`.

    .venv/bin/python bench/login_flood.py [--logins 1000]

Runs `centralita serve` in a child process (demo config, free ports, a temporary data_dir,
no Asterisk) and measures that process only:

* phase A: `--logins` concurrent wrong passwords for one extension from one address. The
  per-extension limit (5 failures in 300 s) must stop all but 5 before hashing.
* phase B: `--logins` concurrent wrong logins for distinct unknown extensions, spread over
  50 loopback addresses (127.0.0.10-59, 20 each: the per-address limit), so that the rate
  limits let every one through to scrypt and only the bound on concurrent hashes
  (`centralita.web.auth.MAX_HASHES`) keeps memory down.

Hashes are counted by the server itself (`centralita_logins_total{result="failed"}`: every
401 was hashed; refusals before the hash count as `limited`). RSS is read from
/proc/PID/status: the baseline after one warm-up login, the peak (VmHWM), and after each
phase once the server is idle again. Target: at most 5 hashed in phase A; RSS back within
10 % of the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from centralita.settings import demo_text, parse_settings  # noqa: E402
from centralita.store import Store, default_path  # noqa: E402

PASSWORD = "the-right-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    assert match, field
    return int(match.group(1))


async def login(session: aiohttp.ClientSession, url: str, extension: str, password: str) -> int:
    async with session.post(
        url + "/login",
        data={"extension": extension, "password": password},
        headers={"Accept": "application/json"},
    ) as resp:
        await resp.read()
        return resp.status


async def failed_count(url: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    match = re.search(r'^centralita_logins_total\{result="failed"\} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def settle(pid: int, seconds: float = 3.0) -> int:
    """RSS once the server has been idle for a while (freed memory handed back)."""
    await asyncio.sleep(seconds)
    return rss_kib(pid)


async def flood(url: str, jobs: list[tuple[str, str, str]]) -> dict[int, int]:
    """Every (local address, extension, password) at once; returns the status counts."""
    sessions: dict[str, aiohttp.ClientSession] = {}
    for address, _, _ in jobs:
        if address not in sessions:
            connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0))
            sessions[address] = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=300)
            )
    try:
        statuses = await asyncio.gather(
            *(login(sessions[a], url, e, p) for a, e, p in jobs), return_exceptions=True
        )
    finally:
        for session in sessions.values():
            await session.close()
    counts: dict[int, int] = {}
    for status in statuses:
        key = status if isinstance(status, int) else -1
        counts[key] = counts.get(key, 0) + 1
    return counts


async def run(logins: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        web_port = free_port()
        text = demo_text()
        text = text.replace("agi_port = 4573", f"agi_port = {free_port()}")
        text = text.replace("web_port = 8080", f"web_port = {web_port}")
        text = text.replace("ami_port = 5038", f"ami_port = {free_port()}")  # nobody there
        text = text.replace('log_format = "text"', 'log_format = "text"\nlog_level = "WARNING"')
        config = folder / "centralita.toml"
        config.write_text(text, encoding="utf-8")
        settings = parse_settings(text, str(config), folder, config)
        async with Store.open(default_path(settings.data_dir)) as store:
            await store.set_agent_password("1002", PASSWORD)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "centralita",
            "serve",
            "--config",
            str(config),
            cwd=folder,
            env=env,
        )
        url = f"http://127.0.0.1:{web_port}"
        try:
            for _ in range(200):
                try:
                    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            started_rss = await settle(proc.pid)
            # Warm-up: one right login hashes once, so the baseline holds scrypt's code
            # paths; then as many concurrent requests as the flood, none of them a login
            # (GET /login), so the baseline is a server that has held that many connections
            # and what follows measures what the logins themselves keep.
            async with aiohttp.ClientSession() as s:
                assert await login(s, url, "1002", PASSWORD) == 200
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as s:

                async def page() -> None:
                    async with s.get(url + "/login") as resp:
                        await resp.read()

                await asyncio.gather(*(page() for _ in range(logins)))
            baseline = await settle(proc.pid)
            print(
                f"RSS at start {started_rss / 1024:.1f} MiB; baseline after {logins} "
                f"concurrent GET /login: {baseline / 1024:.1f} MiB"
            )

            before = await failed_count(url)
            started = time.perf_counter()
            jobs = [("127.0.0.1", "1002", f"wrong-{i}") for i in range(logins)]
            counts = await flood(url, jobs)
            hashed_a = await failed_count(url) - before
            after_a = await settle(proc.pid)
            print(
                f"phase A: {logins} concurrent wrong logins, one extension, one address, "
                f"{time.perf_counter() - started:.1f} s: statuses {dict(sorted(counts.items()))}, "
                f"hashed {hashed_a:.0f} (limit 5); RSS after {after_a / 1024:.1f} MiB "
                f"({100 * (after_a - baseline) / baseline:+.1f} %)"
            )

            before = await failed_count(url)
            started = time.perf_counter()
            jobs = [(f"127.0.0.{10 + i % 50}", f"8{i:05d}", "guess") for i in range(logins)]
            counts = await flood(url, jobs)
            hashed_b = await failed_count(url) - before
            peak = rss_kib(proc.pid, "VmHWM")
            after_b = await settle(proc.pid)
            print(
                f"phase B: {logins} concurrent wrong logins, distinct extensions, 50 addresses, "
                f"{time.perf_counter() - started:.1f} s: statuses {dict(sorted(counts.items()))}, "
                f"hashed {hashed_b:.0f}; peak RSS {peak / 1024:.1f} MiB; RSS after "
                f"{after_b / 1024:.1f} MiB ({100 * (after_b - baseline) / baseline:+.1f} %)"
            )
            ok = hashed_a <= 5 and after_b <= baseline * 1.10 and after_a <= baseline * 1.10
            print("target met" if ok else "TARGET MISSED")
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logins", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.logins))


if __name__ == "__main__":
    main()

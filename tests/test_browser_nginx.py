"""HTTPS through nginx: docs/deploy.md's proxy in front of `centralita serve`, in Chromium.

nginx (the Debian package) runs as a child process with docs/deploy.md's server block, a
self-signed certificate made here with `openssl`, and every path (pid, logs, temp) in the
test's folder, on a free loopback port. `centralita serve` runs as a user runs it, with
`trusted_proxies` naming nginx and a fake AMI replaying a recorded queue call. The browser logs
in over https and receives the pop over wss: this needs the `Origin` check to see https, the
cookie to be `Secure`, and the WebSocket upgrade to pass the proxy.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import ARGS, CHROMIUM
from test_browser_console import ARTIFACTS
from test_cli_serve import free_port, healthz
from test_web_support import AMI_SECRET, PASSWORD, TRACES

from ami.testing import FakeAmiServer, load_trace
from centralita.settings import demo_text

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl")
CALLER = "+34915550123"

if not Path(NGINX).exists():
    pytest.skip(
        "nginx is not installed: `apt-get install -y nginx` to run the HTTPS proxy test",
        allow_module_level=True,
    )
if OPENSSL is None:
    pytest.skip("openssl is not installed: `apt-get install -y openssl`", allow_module_level=True)
if not Path(CHROMIUM).exists():
    pytest.skip(
        "chromium is not installed: `apt-get install -y chromium` to run the browser tests",
        allow_module_level=True,
    )

from playwright.async_api import async_playwright, expect  # noqa: E402


def deploy_nginx_block() -> str:
    """The nginx configuration that docs/deploy.md tells admins to use."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    match = re.search(r"^```nginx\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/deploy.md has no nginx block"
    return match.group(1)


def nginx_conf(folder: Path, https_port: int, web_port: int) -> str:
    """docs/deploy.md's block on test ports and files, in a config nginx runs in the foreground."""
    block = deploy_nginx_block()
    for old, new in {
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "/etc/ssl/certs/callcenter.pem": str(folder / "cert.pem"),
        "/etc/ssl/private/callcenter.key": str(folder / "key.pem"),
        "proxy_pass http://127.0.0.1:8080;": f"proxy_pass http://127.0.0.1:{web_port};",
    }.items():
        assert old in block, old
        block = block.replace(old, new)
    temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    # master_process off: one process that stays who it is (no switch to www-data, which
    # could not enter the test's folder), in the foreground, as a child of the test.
    return f"""
daemon off;
master_process off;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    access_log {folder / "access.log"};
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{block}
}}
"""


def self_signed(folder: Path) -> None:
    subprocess.run(
        [
            str(OPENSSL),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    out, _ = await process.communicate()
    return out.decode(errors="replace") if out else ""


async def wait_for_port(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(300):  # readiness poll, not a time limit
        if process.returncode is not None:
            return
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def start(*argv: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
async def fake_ami() -> AsyncIterator[FakeAmiServer]:
    async with FakeAmiServer(username="centralita", secret=AMI_SECRET) as fake:
        yield fake


async def test_login_and_a_pop_over_https_through_nginx(
    tmp_path: Path, fake_ami: FakeAmiServer
) -> None:
    web_port, https_port = free_port(), free_port()
    config = tmp_path / "centralita.toml"
    config.write_text(
        demo_text()
        .replace("agi_port = 4573", "agi_port = 0")
        .replace("web_port = 8080", f"web_port = {web_port}")
        .replace("ami_port = 5038", f"ami_port = {fake_ami.port}")
        .replace('ami_secret = "change-me-centralita"', f'ami_secret = "{AMI_SECRET}"')
        .replace('sip_driver = "pjsip"', 'sip_driver = "sip"')  # the trace's SIP/1001
        .replace('spool_dir = "/var/spool/asterisk"', 'spool_dir = "spool"')
        .replace("trusted_proxies = []", 'trusted_proxies = ["127.0.0.1/32"]'),
        encoding="utf-8",
    )
    centralita = [sys.executable, "-m", "centralita"]
    passwd = await start(
        *centralita,
        "agent",
        "passwd",
        "1001",
        "--password",
        PASSWORD,
        "--config",
        str(config),
        cwd=tmp_path,
    )
    assert await passwd.wait() == 0, await stop(passwd)

    self_signed(tmp_path)
    (tmp_path / "nginx.conf").write_text(nginx_conf(tmp_path, https_port, web_port), "utf-8")
    serve = await start(*centralita, "serve", "--config", str(config), cwd=tmp_path)
    nginx = await start(
        NGINX, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
        "-c", str(tmp_path / "nginx.conf"), cwd=tmp_path,
    )  # fmt: skip
    try:
        for _ in range(300):  # readiness poll, not a time limit
            if await asyncio.to_thread(healthz, web_port) or serve.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await wait_for_port(https_port, nginx)
        assert serve.returncode is None, await stop(serve)
        assert nginx.returncode is None, (tmp_path / "error.log").read_text()
        await fake_ami.wait_for_sessions(1, timeout_s=30.0)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                context = await browser.new_context(ignore_https_errors=True)
                page = await context.new_page()
                page.set_default_timeout(20_000)
                url = f"https://127.0.0.1:{https_port}/"
                await page.goto(url)
                assert page.url == url + "login"
                await page.fill("#extension", "1001")
                await page.fill("#password", PASSWORD)
                await page.click("#login-button")
                await expect(page.locator("#ws-state")).to_have_attribute("data-state", "open")
                (cookie,) = [
                    c for c in await context.cookies() if c["name"] == "centralita_session"
                ]
                assert cookie["secure"] is True
                await fake_ami.replay_trace(load_trace(TRACES / "ami-queue-sip-call.txt"))
                await expect(page.locator("#pop")).to_be_visible()
                await expect(page.locator("#pop-number")).to_have_text(CALLER)
                await expect(page.locator("#pop")).to_have_attribute("data-state", "ended")
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "nginx-https-pop.png"), full_page=True)
            finally:
                await browser.close()
    finally:
        nginx_out = await stop(nginx)
        serve_out = await stop(serve)
    # Every request went through nginx, and the console saw an https login from the client.
    access = (tmp_path / "access.log").read_text(encoding="utf-8")
    assert '"POST /login HTTP/1.1" 303' in access, access + nginx_out
    assert '"GET /ws HTTP/1.1" 101' in access, access
    assert "agent 1001 logged in to the console from 127.0.0.1" in serve_out, serve_out

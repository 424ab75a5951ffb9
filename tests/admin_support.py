"""Helpers for the /admin tests (no tests here): the app with the demo config, and forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from test_web_support import PASSWORD, WebEnv, console_env

from centralita.agentprefs import save_preferences

ADMIN = "1101"  # the demo's manager: the role with the admin console
VERSION_RE = re.compile(r'name="version" value="([0-9a-f]{64})"')
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


@asynccontextmanager
async def admin_env(
    tmp_path: Path, conf_dir: Path | None = None, *, ui_language: str = "en"
) -> AsyncIterator[WebEnv]:
    """The app serving the demo config from tmp_path (optionally rendering into conf_dir),
    its pages in `ui_language` for the admin (the demo's manager speaks French; most tests
    read the English text)."""

    def edit(text: str) -> str:
        if conf_dir is None:
            return text
        return text.replace('# conf_dir = "/etc/asterisk/centralita"', f'conf_dir = "{conf_dir}"')

    async with console_env(tmp_path, edit=edit) as env:
        await save_preferences(
            env.store, ADMIN, {"ui_language": ui_language}, default_language=ui_language
        )
        yield env


async def form_version(client: aiohttp.ClientSession, path: str) -> str:
    """The file version (hash) a form page carries."""
    async with client.get(path) as resp:
        assert resp.status == 200, await resp.text()
        match = VERSION_RE.search(await resp.text())
    assert match, f"no version field in {path}"
    return match.group(1)


async def post_form(
    client: aiohttp.ClientSession,
    path: str,
    csrf: str,
    version: str,
    **fields: str | list[str],
) -> tuple[int, str]:
    """POST a form as a browser does (repeated fields for lists); the status and page."""
    data = aiohttp.FormData()
    data.add_field("csrf", csrf)
    data.add_field("version", version)
    for name, value in fields.items():
        for one in [value] if isinstance(value, str) else value:
            data.add_field(name, one)
    async with client.post(path, data=data) as resp:
        return resp.status, await resp.text()


async def second_login(env: WebEnv, client: aiohttp.ClientSession, extension: str) -> str:
    """Log in again with the password the first `env.login` set (setting it anew would end
    the first session: a password change revokes sessions); returns the CSRF token."""
    async with client.post(
        "/login",
        data={"extension": extension, "password": PASSWORD},
        headers={"Accept": "application/json"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["csrf"])

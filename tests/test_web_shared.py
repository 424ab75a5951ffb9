"""Console sessions and login limits shared by instances on one database: two whole apps
(tests/test_web_support.py) on one PostgreSQL, each with its own data folder; and the key an
older Centralita kept in data_dir/secret_key, moved into the store."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from test_web_support import PASSWORD, console_env

from centralita.keys import AUTH
from centralita.store.shared import SESSION_KEY
from centralita.web.auth import COOKIE


def _on(url: str) -> Callable[[str], str]:
    return lambda text: text + f'\n[store]\nurl = "{url}"\n'


def _cookie(client: aiohttp.ClientSession) -> str:
    return next(c.value for c in client.cookie_jar if c.key == COOKIE)


async def _login(client: aiohttp.ClientSession, extension: str, password: str) -> int:
    async with client.post(
        "/login",
        data={"extension": extension, "password": password},
        headers={"Accept": "application/json"},
    ) as resp:
        return resp.status


async def test_a_session_opened_on_one_instance_is_honoured_by_another(
    pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        console_env(tmp_path / "a", edit=_on(pg_url)) as one,
        console_env(tmp_path / "b", edit=_on(pg_url)) as two,
    ):
        async with one.session() as client:
            token = await one.login(client, "1002")
            cookie = _cookie(client)
        async with two.session() as other:
            other.cookie_jar.update_cookies({COOKIE: cookie})
            async with other.get("/api/calls") as resp:
                assert resp.status == 200
            # The CSRF token of the first instance is good on the second: log out there.
            async with other.post("/logout", headers={"X-CSRF-Token": token}) as resp:
                assert resp.status == 200
        async with one.session() as again:
            again.cookie_jar.update_cookies({COOKIE: cookie})
            async with again.get("/api/calls") as resp:
                assert resp.status == 401
    # The key is the store's: no file in either data folder.
    assert not (tmp_path / "a" / "data" / "secret_key").exists()
    assert not (tmp_path / "b" / "data" / "secret_key").exists()


async def test_a_login_flood_spread_over_two_instances_is_limited_as_one(
    pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        console_env(tmp_path / "a", edit=_on(pg_url)) as one,
        console_env(tmp_path / "b", edit=_on(pg_url)) as two,
        one.session() as first,
        two.session() as second,
    ):
        await one.store.set_agent_password("1001", PASSWORD)
        statuses = [
            await _login(client, "1001", f"wrong-{n}")
            for n, client in enumerate((first, second) * 3)
        ]
        # The extension's limit is 5 failures, wherever they were tried.
        assert statuses == [401] * 5 + [429]
        assert await _login(first, "1001", PASSWORD) == 429
        assert await _login(second, "1001", PASSWORD) == 429


async def test_the_key_file_of_an_older_centralita_moves_into_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "data"
    data.mkdir()
    old_key = secrets.token_bytes(32)
    (data / "secret_key").write_text(old_key.hex() + "\n", encoding="ascii")
    async with console_env(tmp_path) as env, env.session() as client:
        assert await env.store.shared_secret(SESSION_KEY, b"x" * 32) == old_key
        await env.login(client, "1002")
        cookie = _cookie(client)
        # Signed with the old key: a session an older Centralita issued is read alike.
        assert env.app[AUTH].read(cookie) is not None
    # The store keeps it now: without the file, the session is still good.
    (data / "secret_key").unlink()
    async with console_env(tmp_path) as env, env.session() as client:
        client.cookie_jar.update_cookies({COOKIE: cookie})
        async with client.get("/api/calls") as resp:
            assert resp.status == 200
    assert old_key.hex() not in caplog.text

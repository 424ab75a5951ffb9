"""What instances on one database share (centralita/store/shared.py), on both backends: the
console's signing key, made once whoever asks first, and the login rate limits' failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

from centralita.store import Store, StoreBackend, StoreLocation, open_location
from centralita.store.copy import copy_store
from centralita.store.shared import LoginLimit

NOW = 1_800_000_000.0
EXT = LoginLimit("ext:1001", 3, 300.0)
IP = LoginLimit("ip:192.0.2.7", 5, 300.0)


async def test_a_secret_is_made_once_and_read_by_everyone_after(any_store: StoreBackend) -> None:
    first = await any_store.shared_secret("k", b"\x00first-key\xff" * 3)
    assert first == b"\x00first-key\xff" * 3
    assert await any_store.shared_secret("k", b"another") == first
    assert await any_store.shared_secret("other", b"its own") == b"its own"


async def test_instances_starting_together_agree_on_one_secret(
    store_location: StoreLocation,
) -> None:
    async with open_location(store_location) as a, open_location(store_location) as b:
        keys = await asyncio.gather(
            *(store.shared_secret("k", bytes([n]) * 32) for n, store in enumerate((a, b) * 4))
        )
        assert len(set(keys)) == 1
        assert keys[0] in {bytes([n]) * 32 for n in range(8)}


async def test_failures_over_the_limit_are_refused_with_the_wait(any_store: StoreBackend) -> None:
    attempts = [await any_store.record_login_attempt((IP, EXT), NOW + n) for n in range(3)]
    assert all(a.allowed and len(a.ids) == 2 for a in attempts)
    refused = await any_store.record_login_attempt((IP, EXT), NOW + 10)
    # The oldest of the last three leaves the window at NOW + 300.
    assert not refused.allowed and refused.ids == ()
    assert refused.retry_after_s == 290.0
    # Refused attempts are not counted: the address has 3 of its 5.
    assert (await any_store.record_login_attempt((IP,), NOW + 11)).allowed
    # Once the first failure is out of the window, one more is allowed.
    assert (await any_store.record_login_attempt((IP, EXT), NOW + 300.5)).allowed


async def test_taken_back_attempts_and_a_success_free_the_key(any_store: StoreBackend) -> None:
    attempts = [await any_store.record_login_attempt((IP, EXT), NOW) for _ in range(3)]
    assert not (await any_store.record_login_attempt((EXT,), NOW)).allowed
    await any_store.forget_login_attempts(attempts[0].ids)  # never tried
    assert (await any_store.record_login_attempt((EXT,), NOW)).allowed
    # A success clears the extension's failures, not the address's other ones.
    await any_store.forget_login_attempts(attempts[1].ids, EXT.key)
    for _ in range(3):
        assert (await any_store.record_login_attempt((EXT,), NOW)).allowed
    # The address keeps the third attempt's failure (the others were taken back).
    assert not (await any_store.record_login_attempt((LoginLimit(IP.key, 1, 300),), NOW)).allowed
    assert (await any_store.record_login_attempt((LoginLimit(IP.key, 2, 300),), NOW)).allowed


async def test_old_failures_are_pruned(any_store: StoreBackend) -> None:
    await any_store.record_login_attempt((IP, EXT), NOW - 400)
    await any_store.record_login_attempt((IP, EXT), NOW)
    assert await any_store.prune_login_failures(NOW - 300) == 2
    assert await any_store.prune_login_failures(NOW - 300) == 0
    for _ in range(2):
        assert (await any_store.record_login_attempt((EXT,), NOW)).allowed
    assert not (await any_store.record_login_attempt((EXT,), NOW)).allowed


async def test_a_flood_over_two_instances_is_limited_as_one(store_location: StoreLocation) -> None:
    async with open_location(store_location) as a, open_location(store_location) as b:
        results = await asyncio.gather(
            *(store.record_login_attempt((EXT,), NOW) for store in (a, b) * 20)
        )
        allowed = [r for r in results if r.allowed]
        # Never more than the limit. Attempts that race past the check together all see
        # each other afterwards and yield (a flood may refuse them all), never all pass.
        assert len(allowed) <= EXT.limit
        assert all(r.retry_after_s > 0 for r in results if not r.allowed)
        # One at a time, each instance sees the other's failures.
        await a.forget_login_attempts([i for r in allowed for i in r.ids])
        turns = [await s.record_login_attempt((EXT,), NOW) for s in (a, b, a, b)]
        assert [t.allowed for t in turns] == [True, True, True, False]


async def test_db_copy_leaves_the_signing_key_and_the_failures_behind(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "old.sqlite3") as old:
        await old.shared_secret("session_signing_key", b"s" * 32)
        await old.record_login_attempt((EXT,), NOW)
        await old.add_rating(callerid="1", agent="1001", queue="q", rating=3, call_id="1.1")
    async with (
        Store.open(tmp_path / "old.sqlite3") as src,
        Store.open(tmp_path / "new.sqlite3") as dst,
    ):
        report = await copy_store(src, dst)
        assert report.tables["ratings"] == 1
        assert "shared_secrets" not in report.tables and "login_failures" not in report.tables
        assert await dst.shared_secret("session_signing_key", b"n" * 32) == b"n" * 32
        assert (await dst.record_login_attempt((LoginLimit(EXT.key, 1, 300.0),), NOW)).allowed

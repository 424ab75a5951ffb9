"""Shared fixtures: the demo settings in a temp folder, and a real flow server over SQLite."""

from __future__ import annotations

import argparse
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgcluster import Cluster, PostgresUnavailable, start_cluster

from agi.flows import load_flows
from agi.router import FLOWS
from agi.server import AgiServer, ServerLimits
from centralita.context import AppFlowContext, Crm
from centralita.settings import Settings, demo_text, parse_settings
from centralita.store import (
    SqliteLocation,
    Store,
    StoreBackend,
    StoreLocation,
    default_path,
    open_location,
)
from centralita.store.url import parse_store_url

load_flows()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of an argparse parser, by name (argparse keeps them in a private action)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the parser has no subcommands")


def make_settings(tmp_path: Path, edit: Callable[[str], str] | None = None) -> Settings:
    """The demo config with its data and spool folders under tmp_path (optionally edited)."""
    text = demo_text().replace('spool_dir = "/var/spool/asterisk"', 'spool_dir = "data/spool"')
    if edit is not None:
        text = edit(text)
    config = tmp_path / "centralita.toml"
    config.write_text(text, encoding="utf-8")
    return parse_settings(text, str(config), tmp_path, config)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@dataclass
class FlowEnv:
    """A running FastAGI server with Centralita's flows, over a real SQLite store."""

    port: int
    settings: Settings
    store: Store
    context: AppFlowContext
    server: AgiServer


async def start_flow_env(settings: Settings, crm: Crm | None = None) -> AsyncIterator[FlowEnv]:
    store = await Store.open(
        default_path(settings.data_dir),
        region=settings.site.manager.default_region,
        match_digits=settings.site.manager.match_digits,
    )
    try:
        context = AppFlowContext(settings, store, crm)
        server = AgiServer(
            FLOWS,
            context=context,
            port=0,
            fallback_route=str(settings.server.fallback),
            limits=ServerLimits(reply_timeout_s=30, header_timeout_s=30),
        )
        await server.start()
        try:
            yield FlowEnv(server.port, settings, store, context, server)
        finally:
            await server.stop()
    finally:
        await store.close()


# Browser tests drive Debian's Chromium: Playwright cannot download its own browser here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium for one test (the browser tests skip when it is not installed)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def flow_env(settings: Settings) -> AsyncIterator[FlowEnv]:
    async for env in start_flow_env(settings):
        yield env


# --------------------------------------------------------------------------- the real Asterisk
# The integration suite (tests/integration, marker `asterisk`) runs on every combination of
# install and SIP driver that CENTRALITA_ASTERISK names. These hooks live here, at the root,
# so that they see every item (tests/integration/parallel.py runs one process per combination).


def pytest_configure(config: pytest.Config) -> None:
    from integration.asterisk import targets_from_env

    config.integration_targets = targets_from_env()  # type: ignore[attr-defined]
    config.integration_counts = {}  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "site" not in metafunc.fixturenames or not _in_integration(metafunc.definition.nodeid):
        return
    targets = metafunc.config.integration_targets  # type: ignore[attr-defined]
    metafunc.parametrize(
        "site",
        [pytest.param(t, id=t.name) for t in targets],
        indirect=True,
        scope="session",
    )


def _in_integration(nodeid: str) -> bool:
    return nodeid.startswith("tests/integration/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, dropped = [], []
    for item in items:
        if _in_integration(item.nodeid):
            item.add_marker(pytest.mark.asterisk)
            if not config.integration_targets:  # type: ignore[attr-defined]
                dropped.append(item)
                continue
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        config.integration_skipped = len(dropped)  # type: ignore[attr-defined]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _in_integration(report.nodeid) or "[" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        found = re.search(r"\d+(?:\.\d+)+[^-\]]*-(?:pjsip|sip)", report.nodeid.rsplit("[", 1)[1])
        if found is None:
            return
        counts = _COUNTS.setdefault(found.group(0), {})
        counts[report.outcome] = counts.get(report.outcome, 0) + 1


_COUNTS: dict[str, dict[str, int]] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # `make test` runs the integration suite on its own; with no Asterisk configured every
    # test is deselected, which pytest reports as "no tests ran" (5). That is not a failure.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and getattr(
        session.config, "integration_skipped", False
    ):
        session.exitstatus = pytest.ExitCode.OK


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from integration.asterisk import HOW_TO

    config = terminalreporter.config
    if getattr(config, "integration_skipped", 0):
        terminalreporter.write_line(f"integration suite skipped: {HOW_TO}")
    for name, counts in sorted(_COUNTS.items()):
        shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        terminalreporter.write_line(f"integration suite on Asterisk {name}: {shown}")


# ------------------------------------------------------------------ the store on both backends


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster | PostgresUnavailable]:
    """A scratch PostgreSQL for the whole run (tests/pgcluster.py), stopped at the end; or
    why there is none (the PostgreSQL variants then skip with that reason; CI has one)."""
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        yield exc
        return
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster | PostgresUnavailable) -> Iterator[str]:
    """A PostgreSQL URL whose tables are this test's own (a fresh schema), dropped after."""
    if isinstance(pg_cluster, PostgresUnavailable):
        if os.environ.get("CENTRALITA_REQUIRE_POSTGRES"):  # set by .ci/run
            pytest.fail(f"PostgreSQL is required here: {pg_cluster}")
        pytest.skip(f"PostgreSQL: {pg_cluster}")
    schema = pg_cluster.next_schema()
    with psycopg.connect(pg_cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg_cluster.schema_url(schema)
    finally:
        with psycopg.connect(pg_cluster.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    """Where a store test's store lives: each store test runs on both backends."""
    if request.param == "sqlite":
        return SqliteLocation(default_path(tmp_path))
    url: str = request.getfixturevalue("pg_url")
    return parse_store_url(url, base=tmp_path)


@pytest.fixture
async def any_store(store_location: StoreLocation) -> AsyncIterator[StoreBackend]:
    """An empty store on each backend in turn."""
    async with open_location(store_location) as store:
        yield store

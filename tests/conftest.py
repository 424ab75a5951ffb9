"""Shared fixtures: the demo settings in a temp folder, and a real flow server over SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agi.flows import load_flows
from agi.router import FLOWS
from agi.server import AgiServer, ServerLimits
from centralita.context import AppFlowContext, Crm
from centralita.settings import Settings, demo_text, parse_settings
from centralita.store import Store, default_path

load_flows()


def make_settings(tmp_path: Path, edit: Callable[[str], str] | None = None) -> Settings:
    """The demo config with its data and spool folders under tmp_path (optionally edited)."""
    text = demo_text()
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


@pytest.fixture
async def flow_env(settings: Settings) -> AsyncIterator[FlowEnv]:
    async for env in start_flow_env(settings):
        yield env

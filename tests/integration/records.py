"""What Asterisk and Centralita wrote down: the SQLite store, read as a supervisor's tool would."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from typing import Any

from .amiwatch import WAIT_S
from .site import Site


def agent_of(channel: str) -> str:
    """`PJSIP/1002-0000000a` or `SIP/1002-0000000a` -> `1002`."""
    return channel.partition("/")[2].rpartition("-")[0]


def store_agent_of(channel: str) -> str:
    """The agent behind a CDR's DestinationChannel, Local channels too
    (`Local/1003@agents-00000001;1` -> `1003`), as call records name it."""
    resource = channel.partition("/")[2].split(";", 1)[0].rpartition("-")[0]
    return resource.split("@", 1)[0]


async def stored_rows(site: Site, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows from the store, read-only, waiting (bounded) until the query finds some.

    Centralita writes a call record when it reads the `Cdr` event; nothing tells the test when
    that commit happened, so the read is repeated until it finds rows or WAIT_S passes.
    """
    uri = site.database.resolve().as_uri() + "?mode=ro"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute(sql, params).fetchall()
        if rows or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.1)

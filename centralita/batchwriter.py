"""A writer of items to the store on its own task, in order, a batch per write: what the AMI
reader's hooks hand over (call records, `feed.CdrWriter`; queue events,
`queuelog.QueueEventWriter`) without ever waiting for a commit themselves.

Items queue here (bounded: beyond `maxsize` they are dropped with an error). Each write takes
what is queued, up to `batch`; with `linger_s`, a write that would take fewer waits that long
first, so that a steady stream is written in batches of many items rather than one by one
(each write costs a transaction and, on SQLite, a trip to the store's worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Calls `write(items)` (it returns how many it stored, and deals with the items it
    refuses) on its own task, in the order the items were put."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[int]],
        *,
        name: str,
        log: logging.Logger,
        maxsize: int = 100_000,
        batch: int = 500,
        linger_s: float = 0.0,
    ) -> None:
        self._write = write
        self.name = name  # what an item is, for the log ("queue event", "call record")
        self.log = log
        self.batch = batch
        self.linger_s = linger_s
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize)
        self.written = 0
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def put(self, item: T) -> None:
        """Queue one item (dropped with an error when the queue is full)."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            self.log.error("%s queue full: %r not stored", self.name, item)

    async def _run(self) -> None:
        while True:
            items = [await self.queue.get()]
            if self.linger_s > 0 and self.queue.qsize() < self.batch - 1:
                await asyncio.sleep(self.linger_s)
            while len(items) < self.batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
            try:
                self.written += await self._write(items)
            except Exception:
                self.log.exception("%d %ss not stored", len(items), self.name)
            finally:
                for _ in items:
                    self.queue.task_done()

    def start(self, task_name: str) -> None:
        """Start writing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=task_name)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued item is written."""
        await asyncio.wait_for(self.queue.join(), timeout_s)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (within `timeout_s`), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

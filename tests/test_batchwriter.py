"""centralita/batchwriter.py: items written in order, in batches; with a linger, what is put
in a burst goes in one write; a failing write loses only its own batch."""

from __future__ import annotations

import asyncio
import logging

import pytest

from centralita.batchwriter import BatchWriter

log = logging.getLogger("test.batchwriter")


class Sink:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    async def write(self, items: list[int]) -> int:
        await asyncio.sleep(0)  # a real write awaits the store
        self.batches.append(list(items))
        if self.fail_on in items:
            raise RuntimeError("the store is away")
        return len(items)


async def test_a_burst_within_the_linger_is_one_write() -> None:
    sink = Sink()
    writer = BatchWriter(sink.write, name="item", log=log, linger_s=0.05)
    writer.start("test-writer")
    for i in range(5):
        writer.put(i)
        await asyncio.sleep(0.001)  # put one by one, the writer running in between
    await writer.drain()
    await writer.stop()
    assert sink.batches == [[0, 1, 2, 3, 4]]
    assert (writer.written, writer.dropped) == (5, 0)


async def test_without_linger_each_write_takes_what_is_queued_up_to_the_batch() -> None:
    sink = Sink()
    writer = BatchWriter(sink.write, name="item", log=log, batch=3)
    writer.start("test-writer")
    writer.put(0)
    await asyncio.sleep(0.01)  # written alone: nothing else was queued
    for i in range(1, 8):
        writer.put(i)
    await writer.drain()
    await writer.stop()
    assert sink.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert writer.written == 8


async def test_a_full_batch_does_not_wait_for_the_linger() -> None:
    sink = Sink()
    writer = BatchWriter(sink.write, name="item", log=log, batch=4, linger_s=3600)
    writer.start("test-writer")
    for i in range(4):
        writer.put(i)
    await writer.drain(5)  # an hour's linger would time this out
    await writer.stop()
    assert sink.batches == [[0, 1, 2, 3]]


async def test_a_failed_write_loses_its_batch_only(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink(fail_on=1)
    writer = BatchWriter(sink.write, name="item", log=log, batch=2)
    writer.start("test-writer")
    for i in range(4):
        writer.put(i)
    await writer.drain()
    await writer.stop()
    assert sink.batches == [[0, 1], [2, 3]]
    assert writer.written == 2
    assert "2 items not stored" in caplog.text


async def test_a_full_queue_drops_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    writer = BatchWriter(sink.write, name="item", log=log, maxsize=2)
    for i in range(3):
        writer.put(i)  # not started: nothing is taken yet
    assert writer.dropped == 1
    assert "item queue full: 2 not stored" in caplog.text
    writer.start("test-writer")
    await writer.drain()
    await writer.stop()
    assert sink.batches == [[0, 1]]

"""The soak's rows, without a broker: a run reports as many rows as its length
holds, and every sample sent lands in exactly one of them."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest

from bench import soak
from infra.settings import Settings
from producers.kafka import Published

EVERY_S = 1.0
OFFSETS_S = 0.4  # a group's offsets take a while to read


def _publisher(seconds: float, startup_s: float = 0.2):
    """Sends one sample every 10 ms for ``seconds``, after a producer's startup."""

    async def publish(settings, messages, speed=None, on_send=None):
        await asyncio.sleep(startup_s)
        began, sent = time.monotonic(), 0
        while time.monotonic() - began < seconds:
            on_send(SimpleNamespace(time=float(sent), samples=1))
            sent += 1
            await asyncio.sleep(0.01)
        return Published(messages=sent, samples=sent, wall_s=time.monotonic() - began)

    return publish


async def _slow_offsets(settings, group, topics):
    await asyncio.sleep(OFFSETS_S)
    return {}


async def _no_reports(self):
    await asyncio.Event().wait()


@pytest.fixture
def run_soak(monkeypatch):
    monkeypatch.setattr(soak, "group_offsets", _slow_offsets)
    monkeypatch.setattr(soak._Soak, "read_reports", _no_reports)
    worker = SimpleNamespace(proc=SimpleNamespace(pid=os.getpid()), alive=True, tail=str)

    def run(seconds: float, publishing_s: float) -> list[soak.Row]:
        monkeypatch.setattr(soak, "publish", _publisher(publishing_s))
        settings = Settings(kafka_bootstrap="127.0.0.1:9")
        run = soak._Soak(settings, worker, lambda row: None, EVERY_S, seconds)
        messages = asyncio.run(run.run(iter(()), 1.0))
        assert sum(r.samples for r in run.rows) == messages
        return run.rows

    return run


def test_a_run_reports_the_rows_its_length_holds_and_no_more(run_soak):
    # Publishing starts after the clock and ends just past the last row's time.
    rows = run_soak(seconds=3 * EVERY_S, publishing_s=3 * EVERY_S)
    assert [r.minute for r in rows] == [1, 2, 3]
    assert all(r.samples > 0 for r in rows)


def test_a_run_that_ends_while_a_row_is_taken_reports_that_row_once(run_soak):
    rows = run_soak(seconds=3 * EVERY_S, publishing_s=EVERY_S)
    assert [r.minute for r in rows] == [1]
    assert rows[0].samples > 0

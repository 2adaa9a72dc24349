"""Delivery: every page to every sink its routes name, until each accepts.

A sink that answers "try again" (429, 5xx, no answer) is tried again after
an exponential backoff with full jitter (or when it asked, by Retry-After);
after ``breaker_failures`` failures in a row its circuit opens: nothing is
sent to that endpoint for ``breaker_open_s``, then one page tries it
(half-open) and closes the circuit if accepted. A page is never dropped for
a sink being down: ``deliver`` returns once every sink accepted it, or
refused it for good (a 4xx other than 429: logged and counted, since
sending the same again cannot help). Counters per sink, the circuit's state
and the last error go to the metrics registry given.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from streams.alerts.page import Page
from streams.alerts.routing import Routes
from streams.alerts.runbooks import Runbooks
from streams.alerts.sinks import AlertSink, Refused, Retry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    base_s: float = 1.0  # the first retry waits up to this, the next up to twice...
    max_backoff_s: float = 60.0
    breaker_failures: int = 5
    breaker_open_s: float = 30.0


class Breaker:
    """One endpoint's circuit: closed, open until ``until``, or half-open."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.failures = 0
        self.until = 0.0  # open until this monotonic time; then the next page tries it

    def is_open(self, now: float) -> bool:
        return now < self.until

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.policy.breaker_failures:
            self.until = now + self.policy.breaker_open_s

    def passed(self) -> None:
        self.failures, self.until = 0, 0.0


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "foreshock_alert_deliveries",
            "Pages sent to a sink, by outcome (accepted, retried, refused)",
            ["sink", "outcome"],
            registry=registry,
        )
        self.breaker_open = Gauge(
            "foreshock_alert_breaker_open",
            "1 while a sink's circuit is open (nothing sent to it)",
            ["sink"],
            registry=registry,
        )
        self.last_error = Info(
            "foreshock_alert_last_error", "A sink's last error", ["sink"], registry=registry
        )


class Deliverer:
    """Delivers pages through the routes; use ``async with``."""

    def __init__(
        self,
        routes: Routes,
        runbooks: Runbooks | None = None,
        registry: CollectorRegistry | None = None,
        policy: Policy | None = None,
        muted: Callable[[Page], str | None] = lambda page: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.routes = routes
        self.runbooks = runbooks
        self.policy = policy or Policy()
        self.metrics = Metrics(registry or CollectorRegistry())
        self.muted = muted  # the id of the silence a page falls under, if any
        self.sleep = sleep
        self._breakers = {sink.endpoint: Breaker(self.policy) for sink in routes.sinks.values()}
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Deliverer:
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    def prepared(self, page: Page) -> Page:
        return self.runbooks.attach(page) if self.runbooks is not None else page

    async def deliver(self, page: Page) -> list[str]:
        """Send a page to its sinks, concurrently; the names of those that
        accepted it. A silenced page goes nowhere (logged)."""
        silence = self.muted(page)
        if silence is not None:
            log.info("%s %s: silenced by %s, not paged", page.id, page.kind, silence)
            return []
        page = self.prepared(page)
        sinks = self.routes.sinks_for(page)
        accepted = await asyncio.gather(*(self.until_taken(sink, page) for sink in sinks))
        return [sink.name for sink, ok in zip(sinks, accepted, strict=True) if ok]

    async def deliver_all(self, pages: Iterable[Page]) -> None:
        """Every page, in order: each is delivered before the next is sent."""
        for page in pages:
            await self.deliver(page)

    async def tick(self) -> None:
        """Let each sink send what it sends unasked (Alertmanager's re-sends)."""
        assert self._http is not None, "a Deliverer is used inside `async with`"
        for sink in self.routes.sinks.values():
            try:
                await sink.tick(self._http, time.time())
            except (Retry, Refused) as exc:
                self._failed(sink, exc)

    async def until_taken(self, sink: AlertSink, page: Page) -> bool:
        assert self._http is not None, "a Deliverer is used inside `async with`"
        breaker = self._breakers[sink.endpoint]
        attempt = 0
        while True:
            wait = breaker.until - time.monotonic()
            if wait > 0:
                await self.sleep(wait)
            try:
                await sink.send(page, self._http)
            except Refused as exc:
                self._failed(sink, exc)
                self.metrics.deliveries.labels(sink.name, "refused").inc()
                log.error("%s refused %s %s for good: %s", sink.name, page.id, page.kind, exc)
                return False
            except Retry as exc:
                attempt += 1
                breaker.failed(time.monotonic())
                self._failed(sink, exc)
                self.metrics.deliveries.labels(sink.name, "retried").inc()
                delay = exc.after or random.uniform(0, self._backoff(attempt))
            else:
                breaker.passed()
                self.metrics.breaker_open.labels(sink.name).set(0)
                self.metrics.deliveries.labels(sink.name, "accepted").inc()
                return True
            self.metrics.breaker_open.labels(sink.name).set(
                float(breaker.is_open(time.monotonic()))
            )
            log.warning("%s: %s %s not taken (try %d), again in %.1f s", sink.name, page.id,
                        page.kind, attempt, delay)  # fmt: skip
            await self.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.policy.max_backoff_s, self.policy.base_s * 2 ** (attempt - 1)))

    def _failed(self, sink: AlertSink, exc: Exception) -> None:
        self.metrics.last_error.labels(sink.name).info({"error": str(exc)[:300]})


class Pager:
    """A worker's delivery: each sink takes its pages in order from a queue
    of its own, so that a sink that is down holds back only its own pages.
    Queues are bounded: when one is full, ``submit`` waits, and no more is read.

    Each sink's progress (the last offset it took, per source partition) is
    ``record``-ed as it goes and given back at start (``delivered``): pages
    read again (the reader goes back to the earliest page a sink has not
    taken) go only to the sinks that had not taken them, so a sink sees at
    most the one page it took as the worker stopped twice.
    """

    def __init__(
        self,
        deliverer: Deliverer,
        delivered: dict[tuple[str, str], int],
        record: Callable[[str, str, int], Awaitable[None]],
        queue_size: int = 10_000,
    ) -> None:
        self.deliverer = deliverer
        self.delivered = delivered  # (sink, source) -> last offset taken
        self.handed = dict(delivered)  # ... or queued for it
        self.record = record
        self._queues: dict[str, asyncio.Queue[tuple[Page, str, int]]] = {
            name: asyncio.Queue(queue_size) for name in deliverer.routes.sinks
        }
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Pager:
        for name, queue in self._queues.items():
            sink = self.deliverer.routes.sinks[name]
            self._tasks.append(asyncio.create_task(self._drain(sink, queue)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, page: Page, source: str, offset: int) -> None:
        """Queue a page, read at ``offset`` of ``source``, for its sinks."""
        silence = self.deliverer.muted(page)
        if silence is not None:
            log.info("%s %s: silenced by %s, not paged", page.id, page.kind, silence)
            return
        sinks = [
            sink
            for sink in self.deliverer.routes.sinks_for(page)
            if self.handed.get((sink.name, source), -1) < offset
        ]
        prepared = self.deliverer.prepared(page)
        for sink in sinks:
            self.handed[(sink.name, source)] = offset
            await self._queues[sink.name].put((prepared, source, offset))

    async def _drain(self, sink: AlertSink, queue: asyncio.Queue[tuple[Page, str, int]]) -> None:
        while True:
            page, source, offset = await queue.get()
            await self.deliverer.until_taken(sink, page)
            self.delivered[(sink.name, source)] = offset
            await self.record(sink.name, source, offset)


def first_untaken(delivered: dict[tuple[str, str], int], source: str) -> int | None:
    """The first offset of ``source`` some sink has not taken, by the
    progress recorded; None if no sink recorded any.

    >>> first_untaken({("chat", "t:0"): 41, ("oncall", "t:0"): 17}, "t:0")
    18
    """
    taken = [offset for (_, src), offset in delivered.items() if src == source]
    return min(taken) + 1 if taken else None

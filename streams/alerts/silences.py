"""Silences: pages that match are recorded but not sent, for a while.

A silence matches a page on every one of its matchers, each ``key=value``
(``value`` a pattern, matched in full): ``service`` the probable root cause,
``component`` any component of the incident, ``sev``, ``region`` and
``incident`` (its id). It holds from ``starts`` to ``ends`` (epoch seconds);
expiring it ends it now. Silences live on a compacted topic keyed by id
(``foreshock silence``), which every worker reads whole, or in a JSON file
for the embedded engine.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

from infra import kafka
from infra.settings import Settings
from streams.alerts.page import Page

log = logging.getLogger(__name__)

KEYS = ("service", "component", "sev", "region", "incident")


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[tuple[str, str], ...]
    starts: float
    ends: float
    comment: str = ""
    created_by: str = ""

    @classmethod
    def new(
        cls, matchers: Iterable[str], for_s: float, comment: str, created_by: str = ""
    ) -> Silence:
        """A silence from ``key=value`` matchers, from now for ``for_s``;
        ``ValueError`` naming a matcher that cannot be used.

        >>> s = Silence.new(["service=redis-.*"], 3600, "leak fix rolling out")
        >>> [m for m in s.matchers], s.ends - s.starts
        ([('service', 'redis-.*')], 3600.0)
        """
        pairs = []
        for text in matchers:
            key, sep, value = text.partition("=")
            if not sep or key not in KEYS or not value:
                raise ValueError(f"--match {text!r}: give KEY=VALUE, KEY one of {', '.join(KEYS)}")
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"--match {text!r}: not a pattern ({exc})") from None
            pairs.append((key, value))
        if not pairs:
            raise ValueError("a silence needs at least one --match")
        if for_s <= 0:
            raise ValueError("--for must be a positive duration")
        now = time.time()
        return cls(uuid.uuid4().hex[:12], tuple(pairs), now, now + for_s, comment, created_by)

    def active(self, now: float) -> bool:
        return self.starts <= now < self.ends

    def covers(self, page: Page) -> bool:
        values = {
            "service": (page.root_cause,),
            "component": page.components,
            "sev": (str(page.sev),),
            "region": (page.region,),
            "incident": (page.id,),
        }
        return all(
            any(re.fullmatch(pattern, v) for v in values[key]) for key, pattern in self.matchers
        )

    def expired(self, now: float) -> Silence:
        return replace(self, ends=min(self.ends, now))

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Silence:
        """``ValueError`` if the bytes are not a silence."""
        try:
            body: dict[str, Any] = orjson.loads(raw)
            matchers = tuple((str(k), str(v)) for k, v in body["matchers"])
            return cls(
                str(body["id"]),
                matchers,
                float(body["starts"]),
                float(body["ends"]),
                str(body.get("comment", "")),
                str(body.get("created_by", "")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a silence: {exc!r}") from None


class Silences:
    """The silences known, by id; the latest version of each wins."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self.by_id = {s.id: s for s in silences}

    def put(self, silence: Silence) -> None:
        self.by_id[silence.id] = silence

    def muted(self, page: Page, now: float | None = None) -> str | None:
        """The id of an active silence covering the page, if any."""
        at = time.time() if now is None else now
        return next((s.id for s in self.by_id.values() if s.active(at) and s.covers(page)), None)

    @classmethod
    def from_file(cls, raw: bytes) -> Silences:
        """A JSON list of silences, as ``foreshock silence list --json`` prints them."""
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(items, list):
            raise ValueError("a list of silences is expected")
        return cls(Silence.from_json(orjson.dumps(item)) for item in items)


# On Kafka: one compacted partition, so every reader sees every silence in order.


async def publish(settings: Settings, silence: Silence) -> None:
    """Write a silence (new, or a new version of one) to the silences topic."""
    topic = await _topic(settings)
    async with kafka.producer(settings, acks="all") as producer:
        await producer.send_and_wait(topic, silence.to_json(), key=silence.id.encode())


async def read(settings: Settings) -> Silences:
    """Every silence on the topic now."""
    known = Silences()
    async for record in kafka.follow(settings, await _topic(settings), to_end=True):
        _take(known, record.value)
    return known


async def follow(settings: Settings, known: Silences, read: asyncio.Event) -> None:
    """Keep ``known`` up to date with the topic; ``read`` is set once every
    silence on it when called is known."""
    topic = await _topic(settings)
    async for record in kafka.follow(settings, topic, to_end=True):
        _take(known, record.value)
    read.set()
    async for record in kafka.follow(settings, topic):  # again from the first: the latest wins
        _take(known, record.value)


async def _topic(settings: Settings) -> str:
    topic = settings.topic(kafka.SILENCES)
    await kafka.ensure_topics(settings, {topic: 1}, {topic: {"cleanup.policy": "compact"}})
    return topic


def _take(known: Silences, raw: bytes | None) -> None:
    try:
        known.put(Silence.from_json(raw or b""))
    except ValueError as exc:  # a foreign record: the others still count
        log.warning("silences: a record skipped (%s)", exc)

"""Dead letters that always fit on their topic.

A refused message is kept verbatim when it fits in one produce request; a
larger one (the broker accepts compressed batches whose records decompress
to far more) keeps a bounded prefix with its original size and the SHA-256
of the whole value, so that it can still be matched against the source.
The rejection's detail is bounded too: it may echo a field of the message.
A dead letter that could not be sent would stop the agent and lose the
message's place in the counters' agreement with the topic.

Rejections are logged as a summary (``RejectionLog``): a flood of bad input
must not become a flood of log.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from models.schema import MAX_MESSAGE_BYTES, Rejection

DETAIL_CHARS = 1000  # of a rejection's detail, in a dead letter
SAMPLE_CHARS = 200  # of a rejection's detail, in a log line
SUMMARY_S = 10.0  # rejections are summarised in the log at most this often
HEADROOM = 64 * 1024  # of a produce request, for the key, the headers and the framing
TRIES = 4  # times a dead letter is handed to the producer before it is given up


def bounded(detail: str, limit: int = DETAIL_CHARS) -> str:
    """At most ``limit`` characters of ``detail``, saying how much was cut.

    >>> bounded("x" * 5, 3)
    'xxx… (5 characters)'
    >>> bounded("short")
    'short'
    """
    return detail if len(detail) <= limit else f"{detail[:limit]}… ({len(detail)} characters)"


@dataclass(frozen=True)
class DeadLetter:
    key: bytes
    value: bytes
    headers: dict[str, bytes]

    def emptied(self) -> DeadLetter:
        """The same letter without the value, its size and digest kept: what
        is left to send when a topic refuses even the bounded prefix."""
        if not self.value:
            return self
        digest = self.headers.get("sha256", hashlib.sha256(self.value).hexdigest().encode())
        size = self.headers.get("original_size", str(len(self.value)).encode())
        return replace(
            self, value=b"", headers={**self.headers, "original_size": size, "sha256": digest}
        )


def letter_limit(request_bytes: int, topic_bytes: int | None) -> int:
    """The most bytes a dead letter's produce request may carry: the
    producer's request limit, or the dead-letter topic's message limit if
    lower (the broker checks it on the compressed batch; checking the
    uncompressed size is the safe side).

    >>> letter_limit(1_048_576, None), letter_limit(1_048_576, 200_000)
    (1048576, 200000)
    """
    return min(request_bytes, topic_bytes or request_bytes)


def dead_letter(
    value: bytes, rejection: Rejection, topic: str, partition: int, offset: int, request_bytes: int
) -> DeadLetter:
    """The dead letter of a message refused for ``rejection``, sized to fit a
    produce request of ``request_bytes``.

    Its ``id`` header (topic:partition:offset) is the same however often the
    message is dead-lettered: a consumer keeps the first of each id.

    >>> r = Rejection("oversized", "too big")
    >>> small = dead_letter(b"{}", r, "t", 0, 7, 1_000_000)
    >>> small.value, small.headers["id"], "sha256" in small.headers
    (b'{}', b't:0:7', False)
    >>> big = dead_letter(b" " * 2_000_000, r, "t", 0, 8, 1_000_000)
    >>> len(big.value) <= 1_000_000, big.headers["original_size"]
    (True, b'2000000')
    """
    headers = {
        "reason": rejection.reason.encode(),
        "detail": bounded(rejection.detail).encode(),
        "topic": topic.encode(),
        "partition": str(partition).encode(),
        "offset": str(offset).encode(),
        "id": f"{topic}:{partition}:{offset}".encode(),
    }
    room = max(0, request_bytes - HEADROOM)
    if len(value) > room:
        headers["original_size"] = str(len(value)).encode()
        headers["sha256"] = hashlib.sha256(value).hexdigest().encode()
        value = value[: min(MAX_MESSAGE_BYTES, room)]
    return DeadLetter(topic.encode(), value, headers)


# Hands a letter to the producer; what it gives is awaited for its delivery.
Send = Callable[["DeadLetter"], Awaitable[Awaitable[Any]]]


async def hand(send: Send, letter: DeadLetter) -> Awaitable[Any] | Exception:
    """Hand a letter to the producer: its delivery, or why it was refused."""
    try:
        return await send(letter)
    except Exception as exc:  # whatever the producer refuses it with
        return exc


async def deliver(
    letter: DeadLetter,
    sent: Awaitable[Any] | Exception,
    send: Send,
    tries: int = TRIES,
    backoff_s: float = 0.5,
) -> Exception | None:
    """Await a letter's delivery (``sent``, from ``hand``), handing it again
    after a failure, ``tries`` times in all; the last failure if none was
    delivered. A topic that finds the letter too large is sent it without
    its value (its size and digest stay in the headers).

    >>> async def send(letter):
    ...     sends.append(letter.value)
    ...     if len(sends) < 3:
    ...         raise RuntimeError("MessageSizeTooLargeError")
    ...     return asyncio.sleep(0)
    >>> sends, letter = [], DeadLetter(b"t", b"v" * 10, {})
    >>> asyncio.run(deliver(letter, RuntimeError("broker down"), send, backoff_s=0)), sends
    (None, [b'vvvvvvvvvv', b'', b''])
    >>> async def refuse(letter):
    ...     raise RuntimeError("broker down")
    >>> asyncio.run(deliver(letter, RuntimeError("broker down"), refuse, backoff_s=0))
    RuntimeError('broker down')
    """
    for attempt in range(tries):
        if attempt:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
            sent = await hand(send, letter)
        try:
            await (_raise(sent) if isinstance(sent, Exception) else sent)
            return None
        except Exception as exc:
            if "MessageSizeTooLarge" in repr(exc):  # the topic's limit is below ours
                letter = letter.emptied()
            sent = exc
    return sent if isinstance(sent, Exception) else None


async def _raise(exc: Exception) -> None:
    raise exc


class RejectionLog:
    """Rejections in the log as a summary: the first of a stretch as one
    sample line (its detail cut short, never the payload), then the count
    per reason of the whole stretch, at most every ``every_s`` seconds.

    >>> lines = []
    >>> clock = iter([0, 1, 2, 12]).__next__
    >>> rejections = RejectionLog(lambda m, *a: lines.append(m % a), clock=clock)
    >>> for detail in "abcd":
    ...     rejections.note("t:0@5", Rejection("not_json", detail))
    >>> for line in lines:
    ...     print(line)
    rejected t:0@5: not_json (a); rejections are summarised every 10 s
    rejected 4 messages in 12 s: not_json 4
    """

    def __init__(
        self,
        log: Callable[..., None],
        every_s: float = SUMMARY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.every_s, self.clock = log, every_s, clock
        self.counts: Counter[str] = Counter()
        self.since: float | None = None

    def note(self, where: str, rejection: Rejection) -> None:
        now = self.clock()
        if self.since is None:
            self.since = now
            self.log(
                "rejected %s: %s (%s); rejections are summarised every %.0f s",
                where,
                rejection.reason,
                bounded(rejection.detail, SAMPLE_CHARS),
                self.every_s,
            )
        self.counts[rejection.reason] += 1
        self.flush_if_due(now)

    def flush_if_due(self, now: float | None = None) -> None:
        """``flush`` once the stretch is ``every_s`` long (a timer calls it
        too, so that a stretch gone quiet is still summarised)."""
        now = self.clock() if now is None else now
        if self.since is not None and now - self.since >= self.every_s:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Log the counts of the stretch so far (if more than its sample), and start anew."""
        if self.since is None:
            return
        now = self.clock() if now is None else now
        if self.counts.total() > 1:
            counts = ", ".join(f"{reason} {n}" for reason, n in self.counts.most_common())
            self.log(
                "rejected %d messages in %.0f s: %s", self.counts.total(), now - self.since, counts
            )
        self.counts.clear()
        self.since = None

"""Dead letters that always fit on their topic.

A refused message is kept verbatim when it fits in one produce request; a
larger one (the broker accepts compressed batches whose records decompress
to far more) keeps a bounded prefix with its original size and the SHA-256
of the whole value, so that it can still be matched against the source.
The rejection's detail is bounded too: it may echo a field of the message.
A dead letter that could not be sent would stop the agent and lose the
message's place in the counters' agreement with the topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from models.schema import MAX_MESSAGE_BYTES, Rejection

DETAIL_CHARS = 1000  # of a rejection's detail, in a dead letter and in a log line
HEADROOM = 64 * 1024  # of a produce request, for the key, the headers and the framing


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
    if len(value) > request_bytes - HEADROOM:
        headers["original_size"] = str(len(value)).encode()
        headers["sha256"] = hashlib.sha256(value).hexdigest().encode()
        value = value[: min(MAX_MESSAGE_BYTES, request_bytes - HEADROOM)]
    return DeadLetter(topic.encode(), value, headers)

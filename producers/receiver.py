"""``foreshock ingest``: an HTTP receiver for Prometheus remote_write and
OTLP/HTTP metrics, publishing what it translates into the telemetry topics.

Answers as the protocols ask, so that senders retry what may succeed later
and drop what never will:

- 2xx: taken (what no rule maps is counted and dropped, not refused);
- 400: a body that breaks the protocol, or every sample refused as invalid;
- 413: over the size or series limits; 415: the wrong content type or encoding;
- 503 with ``Retry-After``: Kafka did not acknowledge in time, or too many
  requests are already waiting on it. The receiver holds at most
  ``Limits.inflight`` bodies at once, so it never buffers without bound.

``GET /metrics`` counts requests, samples taken and dropped, by reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from infra.ingest import MAX_LABEL, MAX_SERIES, BadBody, Mapping, Translator
from infra.settings import Settings
from models.schema import Telemetry
from models.topology import Topology
from producers.kafka import Publisher
from producers.sources.outside import Otlp, RemoteWrite

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Samples refused for what they hold (not for lacking a rule): when every
# sample of a body is, the body is refused as a whole.
INVALID = {"non_finite", "negative_value", "ratio_out_of_range", "implausible_time"}


@dataclass(frozen=True)
class Limits:
    """What one request may carry, and how long Kafka may keep it waiting."""

    body_bytes: int = 8 << 20  # as sent (compressed)
    uncompressed_bytes: int = 64 << 20
    series: int = MAX_SERIES  # per request
    label_chars: int = MAX_LABEL
    inflight: int = 4  # bodies being translated or published at once
    wait_s: float = 5.0  # for a free place before answering 503
    kafka_s: float = 10.0  # for Kafka's acknowledgements before answering 503


Deliver = Callable[[list[Telemetry]], Awaitable[None]]


class Receiver:
    """The HTTP endpoints; ``deliver`` publishes a batch and returns once
    Kafka has all of it (``producers.kafka.Publisher.deliver``)."""

    def __init__(
        self,
        translator: Translator,
        deliver: Deliver,
        limits: Limits | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.translator = translator
        self.deliver = deliver
        self.limits = limits or Limits()
        self.registry = registry or CollectorRegistry()
        self._slots = asyncio.Semaphore(self.limits.inflight)
        self.requests = Counter(
            "foreshock_ingest_requests",
            "Requests answered, by protocol and status code",
            ["protocol", "code"],
            registry=self.registry,
        )
        self.samples = Counter(
            "foreshock_ingest_samples",
            "Samples published into the telemetry topics",
            ["protocol"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "foreshock_ingest_dropped",
            "Samples or bodies not published, by reason",
            ["protocol", "reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "foreshock_ingest_request_seconds",
            "Time to answer a request, Kafka's acknowledgement included",
            ["protocol"],
            registry=self.registry,
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.body_bytes)
        app.router.add_post("/api/v1/write", self.remote_write)
        app.router.add_post("/v1/metrics", self.otlp)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/-/healthy", self.healthy)
        return app

    async def remote_write(self, request: web.Request) -> web.StreamResponse:
        def parse(body: bytes) -> RemoteWrite:
            if request.content_type != PROTOBUF:
                raise BadBody("wrong_content_type", f"Content-Type must be {PROTOBUF}")
            if request.headers.get("Content-Encoding", "snappy").lower() != "snappy":
                raise BadBody("wrong_content_type", "Content-Encoding must be snappy")
            return RemoteWrite(
                body,
                self.translator,
                max_bytes=self.limits.uncompressed_bytes,
                max_series=self.limits.series,
                max_label=self.limits.label_chars,
            )

        return await self._take("remote_write", request, parse, lambda: web.Response(status=204))

    async def otlp(self, request: web.Request) -> web.StreamResponse:
        json = request.content_type == JSON

        def parse(body: bytes) -> Otlp:
            if request.content_type not in (PROTOBUF, JSON):
                raise BadBody("wrong_content_type", f"Content-Type must be {PROTOBUF} or {JSON}")
            if request.headers.get("Content-Encoding", "").lower() == "gzip":
                body = _gunzip(body, self.limits.uncompressed_bytes)
            return Otlp(
                body,
                self.translator,
                json=json,
                max_series=self.limits.series,
                max_label=self.limits.label_chars,
            )

        def answer() -> web.Response:
            # An empty ExportMetricsServiceResponse, in the request's encoding.
            if json:
                return web.Response(body=b"{}", content_type=JSON)
            return web.Response(body=b"", content_type=PROTOBUF)

        return await self._take("otlp", request, parse, answer)

    async def _take(
        self,
        protocol: str,
        request: web.Request,
        parse: Callable[[bytes], RemoteWrite | Otlp],
        answer: Callable[[], web.Response],
    ) -> web.StreamResponse:
        began = time.monotonic()
        response = await self._answer(protocol, request, parse, answer)
        self.requests.labels(protocol, str(response.status)).inc()
        self.latency.labels(protocol).observe(time.monotonic() - began)
        return response

    async def _answer(
        self,
        protocol: str,
        request: web.Request,
        parse: Callable[[bytes], RemoteWrite | Otlp],
        answer: Callable[[], web.Response],
    ) -> web.StreamResponse:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.limits.wait_s)
        except TimeoutError:
            return self._refuse(protocol, 503, "busy", "too many requests waiting on Kafka")
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                limit = self.limits.body_bytes
                return self._refuse(
                    protocol, 413, "too_large", f"a body of at most {limit:,} bytes"
                )
            self.translator.dropped.clear()
            try:
                messages = list(parse(body).messages())
            except BadBody as bad:
                status = {"too_large": 413, "too_many_series": 413, "wrong_content_type": 415}
                return self._refuse(protocol, status.get(bad.reason, 400), bad.reason, str(bad))
            dropped = dict(self.translator.dropped)
            for reason, count in dropped.items():
                self.dropped.labels(protocol, reason).inc(count)
            if not messages and dropped and set(dropped) <= INVALID:
                why = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()))
                return self._refuse(protocol, 400, None, f"every sample refused: {why}")
            try:
                await asyncio.wait_for(self.deliver(messages), self.limits.kafka_s)
            except Exception as exc:  # Kafka slow or down: the sender retries
                return self._refuse(protocol, 503, "kafka", f"Kafka did not take it: {exc!r}")
            self.samples.labels(protocol).inc(sum(m.samples for m in messages))
            return answer()
        finally:
            self._slots.release()

    def _refuse(self, protocol: str, status: int, reason: str | None, detail: str) -> web.Response:
        if reason is not None:
            self.dropped.labels(protocol, reason).inc()
        headers = {"Retry-After": "1"} if status == 503 else None
        return web.Response(status=status, text=detail + "\n", headers=headers)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")


def _gunzip(body: bytes, limit: int) -> bytes:
    """A gzip body, refused once it would grow past ``limit``."""
    inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        out = inflate.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise BadBody("not_gzip", f"Content-Encoding gzip, but not gzip: {exc}") from None
    if len(out) > limit:
        raise BadBody("too_large", f"over {limit:,} bytes uncompressed")
    return out


async def serve(
    settings: Settings,
    mapping: Mapping,
    topology: Topology,
    host: str,
    port: int,
    limits: Limits | None = None,
    started: Callable[[Receiver, int], None] | None = None,
) -> None:
    """Receive and publish until cancelled; ``started`` is told the port
    bound (``port`` 0 picks a free one)."""
    async with Publisher(settings) as publisher:
        receiver = Receiver(Translator(mapping, topology.knows), publisher.deliver, limits)
        runner = web.AppRunner(receiver.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0][1]
            if started is not None:
                started(receiver, bound)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


class Background:
    """A receiver serving from a thread of its own (its own event loop), for
    the lab and the tests: ``url`` once started; a context manager, or
    stopped by ``close``."""

    def __init__(
        self,
        settings: Settings,
        mapping: Mapping,
        topology: Topology,
        limits: Limits | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        started: list[tuple[Receiver, int]] = []
        self._loop = asyncio.new_event_loop()
        self._task = self._loop.create_task(
            serve(
                settings, mapping, topology, "127.0.0.1", 0, limits,
                lambda receiver, port: started.append((receiver, port)),
            )
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the receiver did not start within {timeout_s:g} s")
            time.sleep(0.05)
        self.receiver, port = started[0]
        self.url = f"http://127.0.0.1:{port}"

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=30)

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

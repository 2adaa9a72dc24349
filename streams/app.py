"""Foreshock as a streaming deployment: the Faust app.

Run a worker with ``foreshock worker`` (or ``faust -A streams.app worker``);
run more of them, with the same ``FORESHOCK_APP_ID``, to share the work.

    telemetry.{redis,pods,logins,social}  --detect-->  foreshock.windows
        (partitioned by entity)               |        (one partition)
                                              v              |
                                     foreshock.anomalies  correlate
                                                             v
    bad input  -->  foreshock.deadletter           foreshock.incidents

``detect`` runs the detection stage of the models for each telemetry
partition it owns; ``correlate`` joins the window reports of every partition
and tracks incidents. Both keep their model state in changelog-backed tables
(see ``streams.checkpoint``), so a restarted worker, or the worker a
partition moves to, resumes with the baselines already learned.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, cast

import faust
import orjson

from foreshock.settings import SecurityProtocol, Settings
from models.incident import IncidentEvent
from models.pipeline import CorrelateStage, DetectStage, PipelineConfig, WindowReport
from models.schema import Rejection, Telemetry, decode
from producers.kafka import TELEMETRY_TOPICS, partition_name, partitions_with_data
from streams import metrics
from streams.checkpoint import Checkpointed, Next
from streams.sinks import event_to_dict

log = logging.getLogger(__name__)

settings = Settings()
topology = settings.load_topology()
business = settings.load_business()
config = PipelineConfig(maintenance=settings.load_maintenance(topology))

SNAPSHOT_WINDOWS = 30  # a partition's detectors are snapshotted every 30 windows
SNAPSHOT_REPORTS = 300  # the correlator every 300 reports, and after every incident change
IDLE_SOURCE_S = 60.0  # wall seconds without a report before a partition is not waited for
QUIET_S = 5.0  # wall seconds without a message before a partition is snapshotted anyway
MAINTENANCE_RELOAD_S = 15.0  # how often the maintenance calendar is re-read


def credentials(s: Settings) -> faust.types.auth.CredentialsT | None:
    protocol = s.kafka_security_protocol
    context = s.ssl_context()
    if protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None
        return faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=password,
            mechanism=s.kafka_sasl_mechanism.value,
            ssl_context=context,
        )
    if protocol is SecurityProtocol.SSL:
        return faust.SSLCredentials(context)
    return None


app = faust.App(
    settings.app_id,
    broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
    broker_credentials=credentials(settings),
    store="memory://",
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    producer_compression_type="lz4",
    producer_linger=0.02,  # window reports and anomalies go out in batches
    # Events are acknowledged only once a snapshot covers them; a rebalance
    # must not wait for that, the next owner is redelivered what it lacks.
    stream_wait_empty=False,
    web_enabled=settings.web_enabled,
    web_bind=settings.web_host,
    web_port=settings.web_port,
)


def _topic(name: str, partitions: int | None = None, **options: Any) -> faust.TopicT:
    return app.topic(
        settings.topic(name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions or settings.partitions,
        internal=True,  # the app creates it, with its partition count, if missing
        **options,
    )


telemetry = app.topic(
    *(settings.topic(t) for t in TELEMETRY_TOPICS.values()),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    internal=True,
)
windows = _topic("foreshock.windows", partitions=1)
anomalies = _topic("foreshock.anomalies")
incidents = _topic("foreshock.incidents")
deadletter = _topic("foreshock.deadletter")

# Every topic the app reads or writes, with its partition count.
TOPICS = {
    name: t.partitions or settings.partitions
    for t in (telemetry, windows, anomalies, incidents, deadletter)
    for name in t.topics
}


@app.task
async def declare_outputs() -> None:
    # Faust creates the topics it consumes; these it only writes to.
    for topic in (anomalies, incidents, deadletter):
        await topic.maybe_declare()


# Snapshots are opaque bytes, keyed by the partition they belong to.
detect_state = app.Table("detect-state", default=None, key_type=str, value_type=bytes)
correlate_state = app.Table(
    "correlate-state", default=None, key_type=str, value_type=bytes, partitions=1
)

family_of_topic = {settings.topic(t): family for family, t in TELEMETRY_TOPICS.items()}
live_detectors: dict[str, Checkpointed[DetectStage]] = {}  # source -> state
live_correlator: dict[str, Checkpointed[CorrelateStage]] = {}
last_report: dict[str, float] = {}  # source -> wall clock of its latest report
last_taken: dict[str, float] = {}  # source -> wall clock its latest message was folded in
quiet_streams: dict[str, faust.Stream] = {}  # source -> the stream that acknowledges it
# Held while a partition's state takes a message (or retires a silent source):
# a timer must not snapshot it halfway, with decisions made but not yet sent.
busy: dict[str, asyncio.Lock] = {}
landing: dict[str, asyncio.Future[None]] = {}  # source -> its latest snapshot on its way


def _source(message: Any) -> str:
    return partition_name(message.topic, message.partition)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types a sync signature
async def _keep_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    # State of a partition we no longer own may be stale when it comes back:
    # it is restored from its snapshot then.
    owned = {partition_name(tp.topic, tp.partition) for tp in app.consumer.assignment()}
    for live in (live_detectors, live_correlator):
        for source in set(live) - owned:
            del live[source]


async def _dead_letter(message: Any, rejection: Rejection) -> Awaitable[Any]:
    """Keep a refused message verbatim, with where it came from and why."""
    log.warning("rejected %s: %s (%s)", _source(message), rejection.reason, rejection.detail)
    metrics.rejected.labels(rejection.reason).inc()
    return await deadletter.send(
        key=message.topic.encode(),
        value=message.value,
        headers={
            "reason": rejection.reason.encode(),
            "detail": rejection.detail.encode(),
            "topic": message.topic.encode(),
            "partition": str(message.partition).encode(),
            "offset": str(message.offset).encode(),
        },
    )


def _manual(stream: faust.StreamT) -> faust.Stream:
    """The stream with acknowledgement left to us (see ``streams.checkpoint``)."""
    return cast(faust.Stream, cast(faust.Stream, stream).noack())


def _checkpoint(
    table: faust.types.TableT[str, bytes],
    source: str,
    live: Checkpointed[Any],
    stream: faust.Stream,
) -> None:
    """Snapshot a partition's state now; land it in the background.

    The agent goes on at once: waiting here for the broker stalled every
    partition the agent serves, once per snapshot.
    """
    blob, acked, sent = live.checkpoint()
    previous = landing.get(source)
    task = asyncio.ensure_future(_land(previous, table, source, blob, acked, sent, stream))
    task.add_done_callback(functools.partial(_landed, source))
    landing[source] = task


async def _land(
    previous: asyncio.Future[None] | None,
    table: faust.types.TableT[str, bytes],
    source: str,
    blob: bytes,
    acked: list[Any],
    sent: list[Awaitable[Any]],
    stream: faust.Stream,
) -> None:
    """Deliver a snapshot after what its messages made, then acknowledge them.

    First the earlier snapshot of the partition, so that they land in order;
    then what the covered messages made, then the snapshot (Faust's own table
    writes are not awaited), then the acknowledgements: a worker killed at any
    point leaves neither a snapshot claiming sends that never landed nor
    offsets committed past a snapshot that never landed.
    """
    if previous is not None:
        await asyncio.wait([previous])  # its failure is logged; this one covers more
    await asyncio.gather(*sent)
    await table.send_changelog(int(source.rpartition(":")[2]), source, blob)
    table.data[source] = blob
    for event in acked:
        await stream.ack(event)


def _landed(source: str, task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # Its messages stay unacknowledged: redelivered to whoever resumes.
        log.error("%s: a snapshot did not land: %r", source, task.exception())
    if landing.get(source) is task:
        del landing[source]


async def _resume(
    message: Any, live: dict[str, Checkpointed[Any]], blob: bytes | None, **how: Any
) -> Checkpointed[Any]:
    """The state of a partition this worker starts on, from its snapshot or fresh."""
    source = _source(message)
    state = live[source] = Checkpointed.resume(blob, **how)
    if blob is None:  # fresh: it needs the partition from its first message
        state.offset = (await app.consumer.earliest_offsets(message.tp))[message.tp] - 1
    doing = "detecting on" if live is live_detectors else "correlating"
    if state.refused is not None:
        metrics.refused_snapshots.inc()
        log.error(
            "%s %s: the snapshot at offset %d cannot be restored (%s); "
            "going on from offset %d with models that learn afresh",
            doing,
            source,
            state.offset,
            state.refused,
            state.offset + 1,
        )
    elif blob is None:
        log.info("%s %s: from scratch", doing, source)
    else:
        log.info("%s %s: resumed from the snapshot at offset %d", doing, source, state.offset)
    return state


async def _in_order(live: Checkpointed[Any], event: Any, manual: faust.Stream) -> bool:
    """Whether to fold this message in: the next one the state lacks.

    One already folded in is skipped (and acknowledged once a snapshot covers
    it). A jump past messages the state never saw is an error, logged with
    the offsets.
    """
    message = event.message
    step = live.place(message.offset)
    if step is Next.SEEN:
        if not live.hold(event, message.offset):
            await manual.ack(event)
        return False
    if step is Next.GAP:
        log.error(
            "%s: offsets %d to %d never reached the detectors; going on without them",
            _source(message),
            live.offset + 1,
            message.offset - 1,
        )
    return True


@app.agent(telemetry)
async def detect(stream: faust.StreamT) -> None:
    """Decode, validate, run the detection stage, send what it decides."""
    manual = _manual(stream)
    async for event in manual.events():
        message = event.message
        source = _source(message)
        live = live_detectors.get(source)
        if live is None:
            live = await _resume(
                message,
                live_detectors,
                detect_state.get(source),
                restore=lambda blob: DetectStage.restore(blob, topology, config),
                fresh=functools.partial(DetectStage, topology, config, source=source),
            )
            if live.state.monitors:
                log.info("%s: %d series learned", source, len(live.state.monitors))
        quiet_streams[source] = manual
        async with busy.setdefault(source, asyncio.Lock()):
            if not await _in_order(live, event, manual):
                continue
            live.take(event, message.offset)
            last_taken[source] = time.monotonic()
            tel = decode(message.value or b"", topology.knows, family_of_topic[message.topic])
            outcome = tel if isinstance(tel, Rejection) else live.state.process(tel)
            if isinstance(outcome, Rejection):
                live.sent.append(await _dead_letter(message, outcome))
                continue
            metrics.processed.labels(message.topic, str(message.partition)).inc()
            metrics.samples.inc(cast(Telemetry, tel).samples)
            for decided in outcome:
                if isinstance(decided, WindowReport):
                    report = orjson.dumps(decided.to_dict())
                    live.sent.append(await windows.send(key=source.encode(), value=report))
                    live.changes += 1
                else:
                    body = event_to_dict(decided)
                    key = f"{body['entity']}:{body.get('metric', '')}".encode()
                    live.sent.append(await anomalies.send(key=key, value=orjson.dumps(body)))
            if live.changes >= SNAPSHOT_WINDOWS:
                _checkpoint(detect_state, source, live, manual)


@app.timer(interval=QUIET_S)
async def snapshot_quiet_partitions() -> None:
    """Snapshot a partition that has gone quiet with messages not yet covered.

    Otherwise its last messages (up to ``SNAPSHOT_WINDOWS`` windows' worth, or
    ``SNAPSHOT_REPORTS`` reports) stay uncommitted until more arrive: nothing
    is lost, they would be redelivered, but the committed offsets would never
    reach the end, and the group's lag would never fall to 0.
    """
    now = time.monotonic()
    owned = {partition_name(tp.topic, tp.partition) for tp in app.consumer.assignment()}
    for source, detectors in list(live_detectors.items()):
        _snapshot_if_quiet(detect_state, source, detectors, owned, now)
    for source, correlator in list(live_correlator.items()):
        _snapshot_if_quiet(correlate_state, source, correlator, owned, now)


def _snapshot_if_quiet(
    table: faust.types.TableT[str, bytes],
    source: str,
    live: Checkpointed[Any],
    owned: set[str],
    now: float,
) -> None:
    lock = busy.get(source)
    if source not in owned or lock is None or lock.locked() or not live.pending():
        return
    if now - last_taken.get(source, float("-inf")) >= QUIET_S:
        _checkpoint(table, source, live, quiet_streams[source])


async def _publish(live: Checkpointed[CorrelateStage], changes: list[IncidentEvent]) -> None:
    for change in changes:
        body = event_to_dict(change)
        live.sent.append(await incidents.send(key=body["id"].encode(), value=orjson.dumps(body)))
        log.info("incident %s %s: %s", body["id"], change.kind, change.text)


@app.agent(windows)
async def correlate(stream: faust.StreamT) -> None:
    """Join the window reports of every partition into incidents."""
    manual = _manual(stream)
    async for event in manual.events():
        message = event.message
        source = _source(message)
        live = live_correlator.get(source)
        if live is None:
            live = await _resume(
                message,
                live_correlator,
                correlate_state.get(source),
                restore=lambda blob: CorrelateStage.restore(blob, topology, config),
                fresh=lambda: CorrelateStage(topology, business, config),
            )
            # Wait for every partition that holds telemetry, not only those
            # that happen to report first; each gets the usual grace to speak up.
            live.state.expect(
                await partitions_with_data(settings.kafka_client_options(), family_of_topic)
            )
            last_report.update(dict.fromkeys(live.state.progress, time.monotonic()))
        quiet_streams[source] = manual
        async with busy.setdefault(source, asyncio.Lock()):
            if not await _in_order(live, event, manual):
                continue
            report = WindowReport.parse(message.value or b"")
            last_taken[source] = time.monotonic()
            if isinstance(report, Rejection):
                live.take(event, message.offset)  # acknowledged with the next snapshot
                live.sent.append(await _dead_letter(message, report))
                continue
            last_report[report.source] = time.monotonic()
            # A report is acknowledged once its window is correlated and
            # snapshotted; those still waiting (left out of the snapshot) are
            # what a restored correlator must be redelivered.
            live.take(event, message.offset, due=report.start)
            changes = live.state.add(report)
            await _publish(live, changes)
            live.changes += 1
            if changes or live.changes >= SNAPSHOT_REPORTS:
                _checkpoint(correlate_state, source, live, manual)


@app.page("/metrics/")
async def prometheus_metrics(self: faust.web.View, request: faust.web.Request) -> Any:
    """The worker's counters (rejections per reason, messages processed).

    Like every page the worker serves, it answers GET only; the server binds
    FORESHOCK_WEB_HOST, 127.0.0.1 unless told otherwise.
    """
    # The content type carries parameters, which aiohttp takes only as a header.
    return self.bytes(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


@app.timer(interval=MAINTENANCE_RELOAD_S)
async def reload_maintenance() -> None:
    """Pick up edits to the maintenance calendar without a restart."""
    global config
    try:
        calendar = settings.load_maintenance(topology)
    except (OSError, ValueError) as exc:
        log.error("maintenance calendar not re-read (%s): the last one read stays in force", exc)
        return
    if calendar != config.maintenance:
        config = replace(config, maintenance=calendar)
        for live in live_correlator.values():
            live.state.config = config
        log.info("maintenance calendar: %d windows", len(calendar))


@app.timer(interval=10.0)
async def retire_idle_sources() -> None:
    """Stop waiting for partitions that have sent no report for a while."""
    now = time.monotonic()
    for source, live in list(live_correlator.items()):
        async with busy.setdefault(source, asyncio.Lock()):
            retired = []
            for idle in list(live.state.progress):
                if now - last_report.get(idle, now) > IDLE_SOURCE_S:
                    log.warning(
                        "no window report from %s for %.0f s: not waiting for it",
                        idle,
                        now - last_report[idle],
                    )
                    retired += live.state.retire(idle)
            if retired:
                await _publish(live, retired)
                # Incident changes are snapshotted as soon as they are sent.
                _checkpoint(correlate_state, source, live, quiet_streams[source])

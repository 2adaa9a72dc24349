"""Foreshock as a streaming deployment: the Faust app.

Run a worker with ``foreshock worker`` (or ``faust -A streams.app worker``);
run more of them, with the same ``FORESHOCK_APP_ID``, to share the work.

    otlp_metrics  --take_otlp--.
        (an OpenTelemetry       v
         Collector's)
    telemetry.{redis,pods,logins,social}  --detect-->  foreshock.windows
        (partitioned by entity)               |        (one partition)
                                              |         ^    |
    telemetry.changes  --take_changes---------|---------'    |
        (deploys, config pushes...)           v              v
                                     foreshock.anomalies  correlate
                                                             v
    bad input  -->  foreshock.deadletter           foreshock.incidents

``detect`` runs the detection stage of the models for each telemetry
partition it owns; ``correlate`` joins the window reports of every partition
and tracks incidents. ``take_changes`` validates each change event and
forwards it onto ``foreshock.windows`` (as ``{"change": {...}}``), so that the
correlator receives it in order with the reports and keeps it in its
snapshot. ``take_otlp`` translates the OTLP metrics a Collector writes to
Kafka into telemetry, by the mapping ``foreshock ingest`` uses. ``detect``
and ``correlate`` keep their model state in changelog-backed tables (see
``streams.checkpoint`` and ``streams.partitions``), so a restarted
worker, or the worker a partition moves to, resumes with the baselines
already learned.

Importing this module reads the settings from the environment and builds
the app; the topology and business files are read when the worker first
needs them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import faust
import mode
import orjson
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as aiokafka_transport

from infra import kafka
from infra.ingest import MAX_LABEL, MAX_SERIES, BadBody, Translator
from infra.ingest import otlp as otlp_format
from infra.settings import Settings
from models.changes import ChangeEvent
from models.config import PipelineConfig
from models.correlate import CorrelateStage
from models.detect_stage import DetectStage
from models.impact import Business
from models.incident import Change, IncidentEvent
from models.report import WindowReport
from models.schema import Rejection, Telemetry, decode, encode
from models.snapshot import IncompatibleSnapshot
from models.topology import Topology
from streams import metrics
from streams.alerts import Deliverer, Page, Runbooks
from streams.alerts.delivery import Pager, first_untaken
from streams.alerts.routing import load as load_routes
from streams.alerts.silences import Silences
from streams.alerts.silences import follow as follow_silences
from streams.board import Board
from streams.deadletters import (
    DeadLetter,
    RejectionLog,
    dead_letter,
    deliver,
    hand,
    letter_limit,
)
from streams.partitions import REWIND_S, Partition, Partitions, source_of
from streams.sinks import event_to_dict
from streams.sinks.kafka import KafkaSink
from streams.web import operators_app, serve

log = logging.getLogger(__name__)

SNAPSHOT_WINDOWS = 30  # a partition's detectors are snapshotted every 30 windows
SNAPSHOT_REPORTS = 300  # the correlator every 300 reports, and after every incident change
IDLE_SOURCE_S = 60.0  # wall seconds without a report before a partition is not waited for
QUIET_S = 5.0  # wall seconds without a message before a partition is snapshotted anyway
MAINTENANCE_RELOAD_S = 15.0  # how often the maintenance calendar is re-read
RESEND_EVERY_S = 10.0  # how often sinks may send again what they keep open


class ModelInputs:
    """What the models run with: topology (and the metrics the mapping adds),
    business and configuration, read
    from the settings once first needed (at the latest when the worker is
    given its partitions, ``load``); the maintenance calendar in the
    configuration is re-read while the worker runs (``reload``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @functools.cached_property
    def topology(self) -> Topology:
        # The mapping's new metrics first: the topology and telemetry may name them.
        self.settings.load_mapping()
        return self.settings.load_topology()

    @functools.cached_property
    def translator(self) -> Translator:
        """OTLP from the Collector into telemetry, by the mapping."""
        return Translator(self.settings.load_mapping(), self.topology.knows)

    @functools.cached_property
    def business(self) -> Business:
        return self.settings.load_business()

    @functools.cached_property
    def config(self) -> PipelineConfig:
        return self.settings.pipeline_config(self.topology)

    def load(self) -> None:
        """Read them all now, if not read yet."""
        _ = self.topology, self.business, self.config

    def reload(self) -> bool:
        """Re-read the maintenance calendar; whether it changed. A calendar
        that cannot be read leaves the last one in force."""
        self.load()  # the calendar in force, if none was read yet
        try:
            calendar = self.settings.load_maintenance(self.topology)
        except (OSError, ValueError) as exc:
            log.error(
                "maintenance calendar not re-read (%s): the last one read stays in force", exc
            )
            return False
        if calendar == self.config.maintenance:
            return False
        self.config = replace(self.config, maintenance=calendar)
        log.info("maintenance calendar: %d windows", len(calendar))
        return True


settings = Settings()
given = ModelInputs(settings)

app = kafka.faust_app(
    settings,
    producer_compression_type="lz4",
    producer_linger=0.02,  # window reports and anomalies go out in batches
    # Events are acknowledged only once a snapshot covers them; a rebalance
    # must not wait for that, the next owner is redelivered what it lacks.
    stream_wait_empty=False,
    # Faust's own pages would show the cluster's hosts and the raw model
    # state; the worker serves only its own (``OperatorsView``).
    web_enabled=False,
)

telemetry = kafka.raw_topic(app, settings, *kafka.TELEMETRY.values())
windows = kafka.raw_topic(app, settings, kafka.WINDOWS, partitions=1)
changes = kafka.raw_topic(app, settings, kafka.CHANGES)
anomalies = kafka.raw_topic(app, settings, kafka.ANOMALIES)
incidents = kafka.raw_topic(app, settings, kafka.INCIDENTS)
deadletter = kafka.raw_topic(app, settings, kafka.DEADLETTER)
paged = kafka.raw_topic(app, settings, kafka.PAGED, partitions=1)
# Telemetry made here (of OTLP), sent to its family's topic.
telemetry_out = {
    family: kafka.raw_topic(app, settings, topic) for family, topic in kafka.TELEMETRY.items()
}
# The Collector's topic is its own: not prefixed.
otlp = (
    app.topic(
        settings.otlp_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    if settings.otlp_topic
    else None
)

# Every topic the app reads or writes, with its partition count.
TOPICS = {
    name: t.partitions or settings.partitions
    for t in (telemetry, changes, windows, anomalies, incidents, deadletter, otlp)
    if t is not None
    for name in t.topics
}
family_of_topic = {topic: family for family, topic in kafka.telemetry_topics(settings).items()}

# Snapshots are opaque bytes, keyed by the partition they belong to.
detect_state = app.Table(kafka.DETECT_STATE, default=None, key_type=str, value_type=bytes)
correlate_state = app.Table(
    kafka.CORRELATE_STATE, default=None, key_type=str, value_type=bytes, partitions=1
)


async def _learned(p: Partition[DetectStage]) -> None:
    if p.checkpointed.state.monitors:
        log.info("%s: %d series learned", p.source, len(p.checkpointed.state.monitors))


heard: dict[str, float] = {}  # telemetry partition -> wall clock of its latest window report
first_heard: dict[float, float] = {}  # window waiting -> wall clock of its first report
holding_back: set[str] = set()  # partitions gone quiet while others report on


def _decided(until: float) -> None:
    """Time the windows correlated up to ``until`` waited for their decision."""
    for start in [s for s in first_heard if s <= until]:
        metrics.window_decision.observe(time.monotonic() - first_heard.pop(start))


async def _expect_every_source(p: Partition[CorrelateStage]) -> None:
    # Wait for every partition that holds telemetry, not only those that
    # happen to report first; each gets the usual grace to speak up.
    correlator = p.checkpointed.state
    correlator.expect(await kafka.partitions_with_data(settings))
    heard.update(dict.fromkeys(correlator.progress, time.monotonic()))


def beyond_the_clock(t: float) -> str | None:
    """Why event time ``t`` is further ahead of this worker's clock than one
    may be ahead of its stream, if it is: a live stream's bound."""
    ahead, limit = t - time.time(), given.config.max_ahead_s
    if ahead <= limit:
        return None
    return f"{ahead:.0f} s ahead of this worker's clock; at most {limit:.0f}"


def restored_detectors(blob: bytes) -> DetectStage:
    """A partition's detection stage from its snapshot; one whose event time
    is ahead of this worker's clock (state that no real stream made) is
    refused, as ``ahead_of_the_clock`` refuses such a message."""
    stage = DetectStage.restore(blob, given.topology, given.config)
    why = beyond_the_clock(stage.windows.watermark)
    if why is not None:
        raise IncompatibleSnapshot(f"its event time is {why}")
    return stage


detectors: Partitions[DetectStage] = Partitions(
    app,
    detect_state,
    "detecting on",
    restore=restored_detectors,
    fresh=lambda source: DetectStage(given.topology, given.config, source=source),
    sink=lambda: KafkaSink(anomalies=anomalies),
    resumed=_learned,
)
correlators: Partitions[CorrelateStage] = Partitions(
    app,
    correlate_state,
    "correlating",
    restore=lambda blob: CorrelateStage.restore(blob, given.topology, given.config),
    fresh=lambda source: CorrelateStage(given.topology, given.business, given.config),
    sink=lambda: KafkaSink(incidents=incidents),
    resumed=_expect_every_source,
)
# The agent keeping state for each topic it reads.
partitions_of: dict[str, Partitions[Any]] = {topic: detectors for topic in telemetry.topics} | {
    topic: correlators for topic in windows.topics
}


class Consumer(aiokafka_transport.Consumer):
    """Faust's Kafka consumer, but a rebalance leaves each partition an
    agent keeps state for where that state needs it.

    Faust seeks every assigned partition to the group's committed offset,
    and leaves one without a commit wherever its fetcher was: a partition
    this worker keeps was fetched far past it, and what was fetched is
    dropped with the rebalance. And the previous owner of a partition may
    commit past the snapshot this worker read. Either way the consumer
    skipped offsets and had to be sent back mid-stream. So each partition is
    read from the first offset its state lacks (its first offset, without
    state), or from the committed one if that is lower: the messages between
    are in the state, but are committed only once read and acknowledged again.
    """

    async def perform_seek(self) -> None:
        kept = [tp for tp in self.assignment() if tp.topic in partitions_of]
        # Not fetched from meanwhile: the client would read them on from
        # where it left them, or from the committed offsets.
        self.pause_partitions(kept)
        try:
            needed = {
                tp: partitions_of[tp.topic].resume_offset(
                    kafka.partition_name(tp.topic, tp.partition)
                )
                for tp in kept
            }
            earliest = await self.earliest_offsets(*kept) if kept else {}
            await super().perform_seek()  # and Faust's own record of the committed offsets
            start = {}
            for tp, offset in needed.items():
                committed = self._committed_offset.get(tp)
                floor = committed if committed is not None and committed > 0 else earliest[tp]
                start[tp] = min(floor, earliest[tp] if offset is None else offset)
            start |= await self._pages_untaken()
            await self.seek_wait(start)
        finally:
            self.resume_partitions(kept)

    async def _pages_untaken(self) -> dict[Any, int]:
        """Incident changes some alert sink has not taken, read again (the
        page agent acknowledges a change as soon as it is queued)."""
        if settings.alerts is None:
            return {}
        await load_paged()
        start = {}
        for tp in self.assignment():
            if tp.topic not in incidents.topics:
                continue
            first = first_untaken(paged_offsets, kafka.partition_name(tp.topic, tp.partition))
            committed = self._committed_offset.get(tp)
            if first is not None and committed is not None and first < committed:
                start[tp] = first
        return start


cast(Any, app.transport).Consumer = Consumer

rejections = RejectionLog(log.warning)
# The most a dead letter's request may carry (see ``_letter_limit``).
letter_bytes: int | None = None


@app.task
async def declare_outputs() -> None:
    # Faust creates the topics it consumes; these it only writes to.
    for topic in (anomalies, incidents):
        await topic.maybe_declare()


async def _letter_limit() -> int:
    """The producer's request limit, or the dead-letter topic's own limit if
    lower: read from the broker with the first dead letter."""
    global letter_bytes
    if letter_bytes is not None:
        return letter_bytes
    await deadletter.maybe_declare()
    name = settings.topic(kafka.DEADLETTER)
    try:
        topic_bytes = await kafka.topic_config(settings, name, "max.message.bytes")
    except KafkaError as exc:  # e.g. not allowed to describe it: the broker's default holds
        log.warning("%s: its max.message.bytes not read (%r)", name, exc)
        topic_bytes = None
    letter_bytes = letter_limit(
        app.conf.producer_max_request_size, int(topic_bytes) if topic_bytes else None
    )
    log.info("dead letters: at most %d bytes a request", letter_bytes)
    return letter_bytes


def _owned() -> set[str]:
    return {kafka.partition_name(tp.topic, tp.partition) for tp in app.consumer.assignment()}


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust types a sync signature
async def _keep_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    given.load()  # before the first message, and before the calendar is first re-read
    owned = _owned()
    detectors.keep_only(owned)
    correlators.keep_only(owned)


async def _dead_letter(message: Any, rejection: Rejection) -> Awaitable[None]:
    """Keep a refused message, with where it came from and why (see
    ``streams.deadletters``: verbatim when it fits); what delivers it.

    The letter is handed to the producer here, so that the agent waits for
    room like for any other send; its delivery is awaited with the snapshot.
    """
    rejections.note(source_of(message), rejection)
    metrics.rejected.labels(rejection.reason).inc()
    letter = dead_letter(
        message.value or b"",
        rejection,
        message.topic,
        message.partition,
        message.offset,
        await _letter_limit(),
    )
    return asyncio.ensure_future(_deliver(letter, await hand(_send, letter)))


async def _send(letter: DeadLetter) -> Awaitable[Any]:
    return await deadletter.send(key=letter.key, value=letter.value, headers=letter.headers)


async def _deliver(letter: DeadLetter, sent: Awaitable[Any] | Exception) -> None:
    """A dead letter the topic still refuses after every try is counted and
    logged once; it never stops the agent."""
    failure = await deliver(letter, sent, _send)
    if failure is not None:
        metrics.lost_dead_letters.inc()
        log.error("dead letter %s not sent: %r", letter.headers["id"].decode(), failure)


def ahead_of_the_clock(tel: Telemetry) -> Rejection | None:
    """A live stream's bound on event time: no message is dated further ahead
    of this worker's clock than one may be ahead of its stream. It holds the
    first message of a partition too, which has no stream to be judged by."""
    why = beyond_the_clock(tel.time)
    return None if why is None else Rejection("too_far_ahead", f"time is {why}")


@app.agent(telemetry)
async def detect(stream: faust.StreamT) -> None:
    """Decode, validate, run the detection stage, send what it decides."""
    async for p, event in detectors.events(stream):
        message, live = event.message, p.checkpointed
        live.take(event, message.offset)
        tel = decode(message.value or b"", given.topology.knows, family_of_topic[message.topic])
        if isinstance(tel, Telemetry):
            tel = ahead_of_the_clock(tel) or tel
        outcome = tel if isinstance(tel, Rejection) else live.state.process(tel)
        if isinstance(outcome, Rejection):
            live.sent.append(await _dead_letter(message, outcome))
            continue
        metrics.processed.labels(message.topic, str(message.partition)).inc()
        metrics.samples.labels(family_of_topic[message.topic]).inc(cast(Telemetry, tel).samples)
        board.sample(cast(Telemetry, tel))  # the charts of what an open incident shows
        for decided in outcome:
            if isinstance(decided, WindowReport):
                report = orjson.dumps(decided.to_dict())
                live.sent.append(await windows.send(key=p.source.encode(), value=report))
                live.changes += not decided.early  # snapshots come every so many windows
            else:
                p.sink.emit(decided)
        if live.changes >= SNAPSHOT_WINDOWS:
            detectors.checkpoint(p)


# A change event forwarded to the correlator on ``foreshock.windows``
# begins so; a window report never does.
FORWARDED = b'{"change":'


def forward(change: ChangeEvent) -> bytes:
    """A change event as a record of ``foreshock.windows``.

    >>> from models.changes import ChangeKind
    >>> forward(ChangeEvent(1e9, "lb", ChangeKind.DEPLOY))[:20]
    b'{"change":{"v":1,"ti'
    """
    return orjson.dumps({"change": change.to_wire()})


def forwarded(raw: bytes, known: Callable[[str], bool]) -> ChangeEvent | Rejection | None:
    """The change event a record of ``foreshock.windows`` forwards, why it
    is not a valid one, or None: the record is not a change (but a report).

    >>> from models.changes import ChangeKind
    >>> str(forwarded(forward(ChangeEvent(1e9, "lb", ChangeKind.DEPLOY)), bool))
    'deploy of lb at 01:46:40'
    >>> forwarded(b'{"source": "telemetry.pods:0"}', bool), forwarded(b'{"change":1}', bool).reason
    (None, 'not_object')
    """
    if not raw.startswith(FORWARDED):
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not valid JSON: {exc}")
    return ChangeEvent.validate(body["change"], known)


@app.agent(changes)
async def take_changes(stream: faust.StreamT) -> None:
    """Validate each change event; hand the valid ones to the correlator."""
    async for event in stream.events():
        message = event.message
        change = ChangeEvent.parse(message.value or b"", given.topology.names)
        if isinstance(change, Rejection):
            await (await _dead_letter(message, change))
            continue
        # Awaited: the change is acknowledged only once it is on its way.
        await (await windows.send(key=b"change", value=forward(change)))
        metrics.processed.labels(message.topic, str(message.partition)).inc()
        log.info("change: %s", change)


async def take_otlp(stream: faust.StreamT) -> None:
    """OTLP metrics as the Collector's kafka exporter writes them (an
    ExportMetricsServiceRequest a record), into telemetry by the same
    mapping as ``foreshock ingest``; a record that is not one is a dead letter."""
    async for event in stream.events():
        message = event.message
        try:
            request = otlp_format.decode(message.value or b"", False, MAX_SERIES, MAX_LABEL)
        except BadBody as bad:
            await (await _dead_letter(message, Rejection(bad.reason, str(bad))))
            continue
        made = given.translator.translate(otlp_format.series(request))
        # Awaited: the record is acknowledged only once its telemetry is on its way.
        sent = [
            await telemetry_out[tel.family].send(key=tel.entity.encode(), value=encode(tel))
            for tel in made
        ]
        await asyncio.gather(*sent)
        metrics.processed.labels(message.topic, str(message.partition)).inc()


if otlp is not None:
    app.agent(otlp, name="take_otlp")(take_otlp)


# Pages: each incident change to the sinks the routes name (FORESHOCK_ALERTS).
silenced = Silences()  # every silence, from foreshock.silences
delivering: list[Deliverer] = []  # the page agent's, while it runs


async def page(stream: faust.StreamT) -> None:
    """Deliver each incident change to its sinks, each sink in order and on
    its own (one that is down holds back only its pages). Each sink's
    progress is recorded on foreshock.paged; a worker that starts reads again
    from the first change some sink has not taken, and sends it only to those
    sinks: a worker stopped between a sink's acceptance and the record sends
    that one change again (PagerDuty folds it by its dedup_key). Detection
    never waits: this agent reads its own topic, and acknowledges at once."""
    routes = load_routes(cast(Path, settings.alerts))
    runbooks = Runbooks(given.topology, settings.runbooks, settings.runbook_url)
    await silences_read.wait()  # no page before the silences in force are known
    await load_paged()

    async def progress(sink: str, source: str, offset: int) -> None:
        await (await paged.send(key=f"{sink}|{source}".encode(), value=str(offset).encode()))

    async with (
        Deliverer(routes, runbooks, metrics.registry, muted=silenced.muted) as deliverer,
        Pager(deliverer, paged_offsets, progress) as pager,
    ):
        delivering.append(deliverer)
        try:
            async for event in stream.events():
                message = event.message
                try:
                    change = Page.from_record(orjson.loads(message.value or b""))
                except (orjson.JSONDecodeError, ValueError) as exc:
                    await (await _dead_letter(message, Rejection("not_incident", str(exc))))
                    continue
                # Acknowledged once queued, never held while a sink is down (a
                # rebalance waits for what is unacknowledged): what a sink has
                # not taken is read again on restart, from its recorded progress.
                await pager.submit(change, source_of(message), message.offset)
        finally:
            delivering.remove(deliverer)


paged_offsets: dict[tuple[str, str], int] = {}  # (sink, partition) -> last offset it took
paged_loaded = asyncio.Lock()
paged_read: list[bool] = []


async def load_paged() -> None:
    """Every sink's progress, read from foreshock.paged once per worker."""
    async with paged_loaded:
        if paged_read:
            return
        topic = settings.topic(kafka.PAGED)
        await kafka.ensure_topics(settings, {topic: 1}, {topic: {"cleanup.policy": "compact"}})
        async for record in kafka.follow(settings, topic, to_end=True):
            sink, _, source = (record.key or b"").decode().partition("|")
            paged_offsets[(sink, source)] = int(record.value or b"-1")
        paged_read.append(True)


silences_read = asyncio.Event()  # set once every silence on the topic was read


async def keep_silences() -> None:
    await follow_silences(settings, silenced, silences_read)


async def resend_alerts() -> None:
    """What sinks send again unasked: Alertmanager forgets an alert not sent for a while."""
    for deliverer in delivering:
        await deliverer.tick()


if settings.alerts is not None:
    app.agent(incidents, name="page")(page)
    app.task(keep_silences)
    app.timer(RESEND_EVERY_S)(resend_alerts)


def _publish(p: Partition[CorrelateStage], changes: list[IncidentEvent]) -> None:
    for change in changes:
        p.sink.emit(change)
        metrics.incident_changes.labels(change.kind.value).inc()
        if change.kind is Change.OPENED:
            metrics.detection_latency.observe(change.at - change.incident.onset)
        log.info("incident %s %s: %s", event_to_dict(change)["id"], change.kind, change.text)


@app.agent(windows)
async def correlate(stream: faust.StreamT) -> None:
    """Join the window reports of every partition, and the change events
    forwarded among them, into incidents."""
    async for p, event in correlators.events(stream):
        message, live = event.message, p.checkpointed
        change = forwarded(message.value or b"", given.topology.names)
        if change is not None:
            live.take(event, message.offset)  # acknowledged with the next snapshot
            if isinstance(change, Rejection):
                live.sent.append(await _dead_letter(message, change))
                continue
            live.state.record_change(change)
            live.changes += 1
            correlators.checkpoint(p)  # a change is rare: kept at once
            continue
        report = WindowReport.parse(message.value or b"")
        if isinstance(report, Rejection):
            live.take(event, message.offset)  # acknowledged with the next snapshot
            live.sent.append(await _dead_letter(message, report))
            continue
        heard[report.source] = time.monotonic()
        holding_back.discard(report.source)
        if report.start > live.state.correlated_until and not report.early:
            first_heard.setdefault(report.start, time.monotonic())
        # A report is acknowledged once its window is correlated and
        # snapshotted; those still waiting (left out of the snapshot) are
        # what a restored correlator must be redelivered. An early look is
        # kept in the snapshot itself (and its window may never close).
        live.take(event, message.offset, due=float("-inf") if report.early else report.start)
        changes = live.state.add(report)
        _decided(live.state.correlated_until)
        _publish(p, changes)
        live.changes += 1
        if changes or live.changes >= SNAPSHOT_REPORTS:
            correlators.checkpoint(p)


@app.timer(interval=QUIET_S)
async def snapshot_quiet_partitions() -> None:
    """Snapshot the partitions gone quiet with messages not yet covered
    (see ``Partitions.snapshot_quiet``)."""
    owned = _owned()
    detectors.snapshot_quiet(owned, QUIET_S)
    correlators.snapshot_quiet(owned, QUIET_S)


@app.timer(interval=QUIET_S)
async def summarise_rejections() -> None:
    """Log the rejections of a stretch that has gone quiet."""
    rejections.flush_if_due()


@app.timer(interval=REWIND_S)
async def seek_again() -> None:
    """Seek again the partitions whose rewind has not arrived (see
    ``Partitions.seek_again``)."""
    owned = _owned()
    await detectors.seek_again(owned)
    await correlators.seek_again(owned)


@app.timer(interval=10.0)
async def retire_idle_sources() -> None:
    """Stop waiting for partitions that have sent no report for a while."""
    now = time.monotonic()
    for p in correlators.live():
        async with p.lock:
            if p.live is None:  # moved away meanwhile
                continue
            retired = []
            progress = p.live.state.progress
            quiet = {s for s in progress if now - heard.get(s, now) > IDLE_SOURCE_S}
            for idle in sorted(quiet):
                # Alarming only when it holds back others (not at a replay's end).
                behind = p.live.state.holds_back(idle, progress.keys() - quiet)
                if behind:
                    holding_back.add(idle)
                (log.warning if behind else log.info)(
                    "no window report from %s for %.0f s%s: not waiting for it",
                    idle,
                    now - heard[idle],
                    ", while others report later windows" if behind else "",
                )
                retired += p.live.state.retire(idle)
            if retired:
                _publish(p, retired)
                # Incident changes are snapshotted as soon as they are sent.
                correlators.checkpoint(p)


@app.timer(interval=MAINTENANCE_RELOAD_S)
async def reload_maintenance() -> None:
    """Pick up edits to the maintenance calendar without a restart."""
    if given.reload():
        for p in correlators.live():
            p.checkpointed.state.config = given.config


# The operator's view: the page, its API and the metrics (streams/web), fed
# from foreshock.incidents and foreshock.anomalies, so that every worker shows
# every incident; its charts from the telemetry this worker reads.
LAGGING_MESSAGES = 10_000  # behind by more than this on its partitions: the page says so

board = Board()  # given the topology, runbooks and silences once the worker starts


def worker_health() -> dict[str, Any]:
    """What the page says of this worker: how far behind it reads, and the
    partitions whose reports stopped while others go on."""
    behind = sum(_lag().values())
    return {
        "lag": behind,
        "lagging": behind > LAGGING_MESSAGES,
        "silent_sources": sorted(holding_back),
        "partitions": sorted(_owned()),
    }


def _lag() -> dict[tuple[str, int], int]:
    """Messages between each owned partition's last read and its high watermark."""
    consumer = cast(Any, app.consumer)
    lag = {}
    for tp in consumer.assignment():
        read = consumer._read_offset.get(tp)  # the offset a stream last took
        try:
            high = consumer.highwater(tp)
        except (AssertionError, KeyError, TypeError):  # not fetched from yet
            continue
        lag[(tp.topic, tp.partition)] = max(0, high - (read + 1 if read is not None else 0))
    return lag


def worker_exposition() -> bytes:
    """The counters, with the gauges read at the time of the scrape."""
    metrics.consumer_lag.clear()
    for (topic, partition), behind in _lag().items():
        metrics.consumer_lag.labels(topic, str(partition)).set(behind)
    open_by_sev = dict.fromkeys(range(1, 5), 0)
    for p in correlators.live():
        for inc in p.checkpointed.state.open_incidents:
            open_by_sev[inc.sev] += 1
    for sev, n in open_by_sev.items():
        metrics.incidents_open.labels(str(sev)).set(n)
    return metrics.exposition()


async def _show(topic: str) -> None:
    """Every event on one of the worker's output topics, onto the board."""
    name = settings.topic(topic)
    while True:
        try:
            async for record in kafka.follow(settings, name):
                try:
                    board.take(orjson.loads(record.value or b""))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.warning("%s:%d: not shown (%r)", name, record.offset, exc)
        except LookupError:  # not declared yet
            await asyncio.sleep(2.0)


if settings.web_enabled:

    @app.service
    class OperatorsView(mode.Service):
        """Serves the page, the API and the metrics while the worker runs."""

        runner: Any = None

        async def on_start(self) -> None:
            board.topology = given.topology
            board.runbooks = Runbooks(given.topology, settings.runbooks, settings.runbook_url)
            board.muted = silenced.muted
            token = settings.web_token.get_secret_value() if settings.web_token else None
            view = operators_app(
                board, token=token, health=worker_health, exposition=worker_exposition
            )
            self.runner = await serve(view, settings.web_host, settings.web_port)
            log.info("the operator's view on http://%s:%d/", settings.web_host, settings.web_port)

        @mode.Service.task
        async def _incidents(self) -> None:
            await _show(kafka.INCIDENTS)

        @mode.Service.task
        async def _anomalies(self) -> None:
            await _show(kafka.ANOMALIES)

        async def on_stop(self) -> None:
            if self.runner is not None:
                await self.runner.cleanup()

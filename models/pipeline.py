"""The decision path: window, detect, forecast, correlate, classify, estimate,
track. It reads no clock and does no I/O.

It runs in two stages so that the first can be split across workers:

- ``DetectStage`` owns the series of one source (all telemetry in the
  embedded engine, one topic partition in the Faust app): it windows them,
  runs their detectors and forecasts, and reports each decided window;
- ``CorrelateStage`` joins the reports of every source, window by window, and
  turns what the components show into incidents.

``DetectionPipeline`` chains the two in one process.

Besides anomalies, the detection stage reports slow drifts (``CreepWarning``,
against a long-run baseline) and entities that stopped reporting while the
others go on (``TelemetryGap``); both reach correlation as notes in the
window report. A drift is evidence like an anomaly, and on a user-facing
series it counts as users hurt. A gap is kept apart: it is never an outage
by itself, and a silent series keeps the state it was last known in. The
correlation stage also honours announced maintenance (``config.maintenance``):
announced components do not page and are not named root cause while their
window runs.
"""

from __future__ import annotations

import math
import pickle
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self

import orjson

from models.correlate import blast_radius, rank_root_causes
from models.detect import Anomaly, SeriesMonitor
from models.gaps import GapWatch, TelemetryGap
from models.impact import Business, ImpactMeter
from models.incident import IncidentEvent, IncidentTracker
from models.maintenance import MaintenanceWindow, under_maintenance
from models.schema import SERIES_METRICS, Bad, MetricSpec, Rejection, Telemetry
from models.severity import UserImpact
from models.topology import Topology
from models.trend import CreepWarning, CreepWatch, ExhaustionWarning, ExhaustionWatch
from models.window import ClosedWindow, SeriesKey, Windower


@dataclass(frozen=True)
class PipelineConfig:
    window_s: float = 10.0
    lateness_s: float = 5.0
    max_ahead_s: float = 3600.0  # refuse a message this far ahead of the stream's watermark
    enter: float = 6.0  # anomaly score that starts an anomaly
    leave: float = 3.0  # ... and under which it calms down
    clear_windows: int = 3
    fading_factor: float = 0.02
    warm_up_windows: int = 30
    max_hold_windows: int = 2160  # relearn after 6 h of a lasting change
    horizon_s: float = 7200.0  # warn when a resource runs out within this
    trend_window_s: float = 1200.0
    page_persist_windows: int = 3  # one user-facing series alone pages after this long
    resolve_after_s: float = 600.0
    reopen_within_s: float = 1800.0
    gap_after_s: float = 60.0  # an entity silent this long while others report is a gap
    creep_rel: float = 0.5  # a drift of this share of the long-run baseline is a creep
    creep_confirm_windows: int = 30  # ... when it lasts this long
    creep_warm_up_windows: int = 180
    creep_fast: float = 1 / 30  # weight of a window in the recent level (5 min)
    creep_slow: float = 1 / 720  # ... and in the long-run baseline (2 h)
    # Announced maintenance: these components do not page during their window.
    maintenance: tuple[MaintenanceWindow, ...] = ()


# Series watched for slow drifts besides the user-facing ones.
CREEP_METRICS = frozenset({"p99_latency_ms", "latency_ms"})
GAP = "telemetry_gap"


@dataclass(frozen=True, slots=True)
class LatePoints:
    """Points that arrived for a window already decided."""

    entity: str
    points: int
    at: float


@dataclass(frozen=True, slots=True)
class Note:
    """A component started or stopped showing one piece of evidence."""

    entity: str
    evidence: str  # "entity:metric", or "entity:metric:exhaustion" for a forecast
    onset: float
    active: bool


@dataclass(frozen=True, slots=True)
class WindowReport:
    """What one source decided about one window: the hand-off to correlation."""

    source: str
    start: float
    decided_at: float
    notes: tuple[Note, ...]
    # Share of users failing, for each user-facing series anomalous in this window.
    losses: dict[SeriesKey, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": self.start,
            "decided_at": self.decided_at,
            "notes": [[n.entity, n.evidence, n.onset, n.active] for n in self.notes],
            "losses": [[e, m, lost] for (e, m), lost in self.losses.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowReport:
        """
        >>> r = WindowReport("p0", 10.0, 15.0, (Note("a", "a:x", 0.0, True),), {("a", "x"): 0.5})
        >>> WindowReport.from_dict(r.to_dict()) == r
        True
        """
        return cls(
            str(d["source"]),
            float(d["start"]),
            float(d["decided_at"]),
            tuple(Note(str(e), str(ev), float(o), bool(a)) for e, ev, o, a in d["notes"]),
            {(str(e), str(m)): float(lost) for e, m, lost in d["losses"]},
        )

    @classmethod
    def parse(cls, raw: bytes) -> WindowReport | Rejection:
        """A report from the wire, or why it is not one.

        >>> WindowReport.parse(b'{"source": "p0"}').reason
        'not_a_window_report'
        """
        try:
            return cls.from_dict(orjson.loads(raw))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
            return Rejection("not_a_window_report", detail)


Event = Anomaly | ExhaustionWarning | CreepWarning | TelemetryGap | IncidentEvent | LatePoints
Detected = Anomaly | ExhaustionWarning | CreepWarning | TelemetryGap | LatePoints | WindowReport


def degradation(spec: MetricSpec, value: float, baseline: float) -> float:
    """Share of users failing a journey, from a user-facing series and its baseline.

    >>> from models.schema import SERIES_METRICS
    >>> round(degradation(SERIES_METRICS["logins"]["success_ratio"], 0.05, 0.95), 3)
    0.947
    """
    if spec.bad is Bad.LOW:
        lost = (baseline - value) / baseline if baseline > 0 else 0.0
    elif spec.ratio:
        lost = (value - baseline) / (1 - baseline) if baseline < 1 else 0.0
    else:
        lost = (value - baseline) / value if value > 0 else 0.0
    return min(1.0, max(0.0, lost))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# Bumped whenever learned state changes shape, so that a worker never loads
# state it would misread; it refuses the snapshot and learns afresh instead.
SNAPSHOT_FORMAT = 2
_SNAPSHOT_TAG = b"foreshock-snapshot:"


class IncompatibleSnapshot(ValueError):
    """A snapshot this version cannot restore; the message says why."""


class Snapshotted:
    """Learned state that pickles without its topology and settings, which are
    configuration: a restored stage runs with the worker's own (so that an
    edited maintenance calendar, say, applies to it)."""

    topology: Topology
    config: PipelineConfig

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("topology", "config")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @classmethod
    def restore(cls, snapshot: bytes, topology: Topology, config: PipelineConfig) -> Self:
        """The state in a snapshot, or ``IncompatibleSnapshot``.

        >>> DetectStage.restore(b"foreshock-snapshot:1:...", None, PipelineConfig())
        Traceback (most recent call last):
        ...
        models.pipeline.IncompatibleSnapshot: snapshot format 1; this version reads format 2
        """
        tag, _, body = snapshot.partition(b":")
        version, _, pickled = body.partition(b":")
        if tag + b":" != _SNAPSHOT_TAG or not version.isdigit():
            raise IncompatibleSnapshot("written before snapshot formats were numbered")
        if int(version) != SNAPSHOT_FORMAT:
            raise IncompatibleSnapshot(
                f"snapshot format {int(version)}; this version reads format {SNAPSHOT_FORMAT}"
            )
        try:
            stage = pickle.loads(pickled)
        except Exception as exc:  # the changelog holds bytes; any failure is a refusal
            raise IncompatibleSnapshot(f"unreadable: {exc!r}") from exc
        if not isinstance(stage, cls):
            raise IncompatibleSnapshot(f"holds a {type(stage).__name__}, not a {cls.__name__}")
        stage.topology, stage.config = topology, config
        return stage

    @property
    def done(self) -> float:
        """Messages due up to here are done with (a stage that waits for more
        than one message before acting says so by overriding this)."""
        return float("inf")

    def snapshot(self) -> bytes:
        header = _SNAPSHOT_TAG + str(SNAPSHOT_FORMAT).encode() + b":"
        return header + pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)


# A batch's identity: entity, cut time, first and last timestamp, size, columns.
BatchKey = tuple[str, float, float, float, int, tuple[str, ...]]


def _batch_key(tel: Telemetry) -> BatchKey:
    first, last = (tel.ts[0], tel.ts[-1]) if tel.ts else (tel.time, tel.time)
    return tel.entity, tel.time, first, last, len(tel.ts), tuple(sorted(tel.metrics))


class DetectStage(Snapshotted):
    """Windows, detectors and forecasts for the series of one source.

    Feed it validated telemetry in any order the watermark allows; it returns
    anomalies and warnings as they start and end, and a report of every
    window it decides.
    """

    def __init__(
        self, topology: Topology, config: PipelineConfig | None = None, source: str = "all"
    ) -> None:
        self.topology = topology
        self.config = cfg = config or PipelineConfig()
        self.source = source
        self.windows = Windower(cfg.window_s, cfg.lateness_s)
        self.monitors: dict[SeriesKey, SeriesMonitor] = {}
        self.watches: dict[SeriesKey, ExhaustionWatch] = {}
        self.creeps: dict[SeriesKey, CreepWatch] = {}
        self.gaps = GapWatch(cfg.window_s, cfg.gap_after_s)
        self.samples = 0
        self.late_points = 0
        # Batches folded in whose time is not yet behind the decided windows:
        # enough to know a batch delivered twice (an older one is late anyway).
        self.batches: dict[BatchKey, float] = {}

    def process(self, tel: Telemetry) -> list[Detected] | Rejection:
        """Fold one valid message in and decide every window it closes.

        A message far ahead of the stream would close every open window at
        once, one wholly behind the decided windows can change nothing, and
        one already folded in would count its samples twice: all are
        refused, with the reason, rather than folded in. So is an entity the
        topology does not hold under the message's family, whose series
        would have no metric to be judged by.
        """
        family = self.topology.family_of.get(tel.entity)
        if family != tel.family:
            return Rejection(
                "unknown_entity",
                f"entity {tel.entity!r} is {'not in the topology' if family is None else family}"
                f", not {tel.family}",
            )
        ahead = tel.time - self.windows.watermark  # infinite on the first message
        if math.isfinite(ahead) and ahead > self.config.max_ahead_s:
            return Rejection(
                "too_far_ahead",
                f"time is {ahead:.0f} s ahead of the stream; at most {self.config.max_ahead_s:.0f}",
            )
        key = _batch_key(tel)
        if key in self.batches:
            return Rejection("duplicate", f"the batch of {tel.entity} at {tel.time} came before")
        if tel.ts and max(tel.ts) < self.windows.closed_until:
            return Rejection(
                "late",
                f"every point is before {self.windows.closed_until}, where windows are decided",
            )
        self.batches[key] = tel.time
        self.samples += tel.samples
        until = self.windows.closed_until
        closed, late = self.windows.add(tel)
        if self.windows.closed_until > until:
            until = self.windows.closed_until
            self.batches = {k: t for k, t in self.batches.items() if t >= until}
        events: list[Detected] = []
        if late:
            self.late_points += late
            events.append(LatePoints(tel.entity, late, tel.time))
        for window in closed:
            events.extend(self._decide(window))
        return events

    def finish(self) -> list[Detected]:
        """Decide every window still open: the end of a finite stream."""
        events: list[Detected] = []
        for window in self.windows.flush():
            events.extend(self._decide(window))
        return events

    def _monitor(self, key: SeriesKey) -> SeriesMonitor:
        entity, metric = key
        spec = SERIES_METRICS[self.topology.family_of[entity]][metric]
        cfg = self.config
        mon = self.monitors[key] = SeriesMonitor(
            entity,
            spec,
            enter=cfg.enter,
            leave=cfg.leave,
            clear=cfg.clear_windows,
            max_hold=cfg.max_hold_windows,
            fading_factor=cfg.fading_factor,
            warm_up=cfg.warm_up_windows,
        )
        if spec.limit is not None:
            self.watches[key] = ExhaustionWatch(
                entity,
                metric,
                spec.limit,
                horizon_s=cfg.horizon_s,
                window_s=cfg.trend_window_s,
            )
        if spec.bad is not Bad.EITHER and (
            metric in CREEP_METRICS or key in self.topology.journey_of
        ):
            self.creeps[key] = CreepWatch(
                entity,
                metric,
                floor=2 * spec.floor,
                lower_is_worse=spec.bad is Bad.LOW,
                # A ratio's margin is absolute (two floors), not a share of its level.
                rel=0.0 if spec.ratio else cfg.creep_rel,
                confirm=cfg.creep_confirm_windows,
                max_hold=cfg.max_hold_windows,
                fast=cfg.creep_fast,
                slow=cfg.creep_slow,
                warm_up=cfg.creep_warm_up_windows,
            )
        return mon

    def _decide(self, window: ClosedWindow) -> list[Detected]:
        events: list[Detected] = []
        notes: list[Note] = []
        mid = (window.start + window.end) / 2
        for key, value in window.values.items():
            mon = self.monitors.get(key) or self._monitor(key)
            change = mon.update(window.start, window.decided_at, value)
            if change is not None:
                events.append(change)
                evidence = f"{key[0]}:{key[1]}"
                notes.append(Note(key[0], evidence, change.onset, change.ended_at is None))
            watch = self.watches.get(key)
            if watch is not None:
                warning = watch.update(mid, value)
                if warning is not None:
                    events.append(warning)
                    evidence = f"{key[0]}:{key[1]}:exhaustion"
                    notes.append(Note(key[0], evidence, warning.at, warning.cleared_at is None))
            creep = self.creeps.get(key)
            if creep is not None:
                drift = creep.update(window.start, window.decided_at, value)
                if drift is not None:
                    events.append(drift)
                    evidence = f"{key[0]}:{key[1]}:creep"
                    notes.append(Note(key[0], evidence, drift.onset, drift.ended_at is None))
        present = {entity for entity, _ in window.values}
        for gap in self.gaps.update(window.start, window.decided_at, present):
            events.append(gap)
            notes.append(Note(gap.entity, f"{gap.entity}:{GAP}", gap.start, gap.ended_at is None))
        losses: dict[SeriesKey, float] = {}
        for key in self.topology.journey_of:
            stage = self.monitors.get(key)
            if stage is None:
                continue
            seen = window.values.get(key)
            drifting = self.creeps.get(key)
            if seen is None:
                # Silence is not health: a series lost while hurting keeps hurting.
                if stage.active is not None:
                    last = stage.active
                    losses[key] = degradation(stage.spec, last.value, last.baseline)
            elif stage.active is not None:
                losses[key] = degradation(stage.spec, seen, stage.detector.baseline)
            elif drifting is not None and drifting.active is not None:
                losses[key] = degradation(stage.spec, seen, drifting.level.baseline)
        events.append(
            WindowReport(self.source, window.start, window.decided_at, tuple(notes), losses)
        )
        return events


class CorrelateStage(Snapshotted):
    """Joins the window reports of every source and tracks incidents.

    A window is correlated once every source still reporting has decided it,
    so workers may run at different paces. A source that has gone quiet is
    ``retire``d by its engine, so that the others are not held up.
    """

    def __init__(
        self, topology: Topology, business: Business, config: PipelineConfig | None = None
    ) -> None:
        self.topology = topology
        self.config = config or PipelineConfig()
        self.tracker = IncidentTracker(
            ImpactMeter(business),
            resolve_after_s=self.config.resolve_after_s,
            reopen_within_s=self.config.reopen_within_s,
        )
        self.progress: dict[str, float] = {}  # source -> start of its latest window
        self.pending: dict[float, dict[str, WindowReport]] = {}  # window -> source -> report
        self.correlated_until = float("-inf")  # start of the latest window correlated
        self.stale_reports = 0  # late, or delivered again
        # Active anomalies and warnings, grouped by component.
        self._active: dict[str, dict[str, float]] = defaultdict(dict)  # node -> evidence -> onset
        # Components anomalous since the incident opened, with their first onset:
        # the root cause is judged on the whole cascade, not on what is still red.
        self._touched: dict[str, dict[str, float]] = {}
        self._hurting_windows = 0
        self.gaps: dict[str, float] = {}  # entity -> start of its telemetry gap

    @property
    def blind(self) -> dict[str, float]:
        """Components with an entity in a telemetry gap, and since when."""
        out: dict[str, float] = {}
        for entity, since in self.gaps.items():
            node = self.topology.node_of[entity]
            out[node] = min(since, out.get(node, since))
        return out

    def __getstate__(self) -> dict[str, Any]:
        # Reports still waiting are left out: an engine that restores a snapshot
        # redelivers every report it has not seen correlated (the Faust app
        # acknowledges a report only then). Every source has decided at least
        # the windows correlated so far.
        state = super().__getstate__()
        del state["pending"]
        state["progress"] = {s: min(p, self.correlated_until) for s, p in self.progress.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.pending = {}

    @property
    def done(self) -> float:
        """A report is done with once its window is correlated."""
        return self.correlated_until

    def add(self, report: WindowReport) -> list[IncidentEvent]:
        """Take one report; correlate every window that all sources have decided.

        A report for a window already correlated, or one seen before, changes
        nothing: delivery may repeat after a restart.
        """
        # Even a stale report tells that its source is alive and how far it is.
        self.progress[report.source] = max(
            self.progress.get(report.source, report.start), report.start
        )
        if report.start <= self.correlated_until:
            self.stale_reports += 1
            return []
        self.pending.setdefault(report.start, {}).setdefault(report.source, report)
        return self._drain()

    def expect(self, sources: Iterable[str]) -> None:
        """Wait for these sources too, before they first report."""
        for source in sources:
            self.progress.setdefault(source, float("-inf"))

    def retire(self, source: str) -> list[IncidentEvent]:
        """Stop waiting for a source that has gone quiet."""
        self.progress.pop(source, None)
        return self._drain()

    def finish(self) -> list[IncidentEvent]:
        """Correlate every window still waiting: the end of a finite stream."""
        self.progress.clear()
        return self._drain(float("inf"))

    def _drain(self, until: float | None = None) -> list[IncidentEvent]:
        if until is None:
            until = min(self.progress.values(), default=float("-inf"))
        events: list[IncidentEvent] = []
        for start in sorted(s for s in self.pending if s <= until):
            reports = [r for _, r in sorted(self.pending.pop(start).items())]
            events.extend(self._correlate(reports))
            self.correlated_until = start
        return events

    def _note(self, note: Note) -> None:
        if note.evidence.endswith(f":{GAP}"):
            # A gap is no evidence of failure: it is kept apart from anomalies.
            if note.active:
                self.gaps[note.entity] = note.onset
            else:
                self.gaps.pop(note.entity, None)
            return
        node = self.topology.node_of[note.entity]
        if note.active:
            self._active[node][note.evidence] = note.onset
            self._touched.setdefault(node, {}).setdefault(note.evidence, note.onset)
        else:
            self._active[node].pop(note.evidence, None)
            if not self._active[node]:
                del self._active[node]

    def _corroborated(self, node: str, evidence: Iterable[str]) -> bool:
        """Whether a component's evidence speaks for the component, not for one
        of its instances: its own aggregate series, a user-facing series, a
        forecast, or several metrics of one instance."""
        metrics: dict[str, set[str]] = defaultdict(set)
        for ev in evidence:
            entity, metric, *kind = ev.split(":")
            if entity == node or (entity, metric) in self.topology.journey_of:
                return True
            if kind == ["exhaustion"]:
                return True
            metrics[entity].add(metric)
        return any(len(m) >= 2 for m in metrics.values())

    def _user_impact(self, losses: dict[SeriesKey, float]) -> UserImpact:
        """Share of users failing each journey, overall and per region.

        A journey fails for a user if any of its stages fails: in region r,
        1 - (1 - global stages) × (1 - r's own stages). Journeys and regions
        weigh equally.
        """
        ok: dict[str, dict[str | None, list[float]]] = defaultdict(lambda: defaultdict(list))
        for key, journey in self.topology.journey_of.items():
            ok[journey][self.topology.region_of(key[0])].append(1 - losses.get(key, 0.0))
        regions = self.topology.regions or ("global",)
        journeys: dict[str, float] = {}
        per_region: dict[str, float] = dict.fromkeys(regions, 0.0)
        for journey, stages in ok.items():
            everywhere = _mean(stages.get(None, [1.0]))
            lost_in = {r: 1 - everywhere * _mean(stages.get(r, [1.0])) for r in regions}
            journeys[journey] = _mean(list(lost_in.values()))
            for r, lost in lost_in.items():
                per_region[r] = max(per_region[r], lost)
        return UserImpact(journeys, per_region, len(regions))

    def _correlate(self, reports: list[WindowReport]) -> list[IncidentEvent]:
        at = max(r.decided_at for r in reports)
        losses: dict[SeriesKey, float] = {}
        for report in reports:
            for note in report.notes:
                self._note(note)
            losses.update(report.losses)
        # Announced maintenance: its components neither hurt users nor cause.
        quiet = under_maintenance(self.config.maintenance, reports[0].start)
        if quiet:
            node_of = self.topology.node_of
            losses = {k: v for k, v in losses.items() if node_of[k[0]] not in quiet}
        impact = self._user_impact(losses)
        self._hurting_windows = self._hurting_windows + 1 if losses else 0
        # Users are hurt when several user-facing series agree, or one persists.
        severity = self.tracker.meter.business.severity
        paging = (
            len(losses) >= 2 or self._hurting_windows >= self.config.page_persist_windows
        ) and impact.share >= severity.sev3_affected
        if self.tracker.current is None or self.tracker.current.status == "resolved":
            if not paging:
                return []
            self._touched = {node: dict(ev) for node, ev in self._active.items()}
        touched = {n: ev for n, ev in self._touched.items() if n not in quiet and ev}
        # One pod's latency wobbling during an outage (the harmless blips of a
        # large fleet) is no evidence against a whole component.
        corroborated = {n: ev for n, ev in touched.items() if self._corroborated(n, ev)}
        touched = corroborated or touched
        onsets = {node: min(ev.values()) for node, ev in touched.items()}
        evidence = {node: list(ev) for node, ev in touched.items()}
        suspects = rank_root_causes(self.topology, onsets, evidence)
        blast = blast_radius(self.topology, suspects[0].node, set(onsets)) if suspects else []
        return self.tracker.step(at, paging, impact, suspects, blast)


class DetectionPipeline:
    """Both stages in one process: what the embedded engine runs.

    Feed it validated telemetry in any order the watermark allows; it
    returns anomalies, warnings and incident events as windows are decided.
    """

    def __init__(
        self, topology: Topology, business: Business, config: PipelineConfig | None = None
    ) -> None:
        self.topology = topology
        self.config = config or PipelineConfig()
        self.detect = DetectStage(topology, self.config)
        self.correlate = CorrelateStage(topology, business, self.config)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The stages leave their configuration out of their state: hand them ours.
        self.__dict__.update(state)
        self.detect.topology = self.correlate.topology = self.topology
        self.detect.config = self.correlate.config = self.config

    @property
    def series(self) -> int:
        return len(self.detect.monitors)

    @property
    def samples(self) -> int:
        return self.detect.samples

    @property
    def late_points(self) -> int:
        return self.detect.late_points

    def process(self, tel: Telemetry) -> list[Event] | Rejection:
        detected = self.detect.process(tel)
        return detected if isinstance(detected, Rejection) else self._chain(detected)

    def finish(self) -> list[Event]:
        return self._chain(self.detect.finish()) + self.correlate.finish()

    def _chain(self, detected: list[Detected]) -> list[Event]:
        events: list[Event] = []
        for event in detected:
            if isinstance(event, WindowReport):
                events.extend(self.correlate.add(event))
            else:
                events.append(event)
        return events

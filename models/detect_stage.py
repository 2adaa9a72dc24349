"""The detection stage: windows, detectors and forecasts for the series of
one source (all telemetry in the embedded engine, one topic partition in the
Faust app). It reports each decided window to correlation.

Per series it runs a :class:`~models.detect.SeriesMonitor` (anomalies; the
surprise detector's series share one :class:`~models.detect_bank.SurpriseBank`,
which steps them all at once with the same decisions), and
where the metric calls for them an :class:`~models.trend.ExhaustionWatch`
(a bounded resource running out) and a :class:`~models.trend.CreepWatch` (a
slow drift from the long-run baseline); per entity a
:class:`~models.gaps.GapWatch` (telemetry that stopped). What they find
reaches correlation as ``Note``s of ``Evidence`` in the window report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.config import PipelineConfig
from models.detect import Anomaly, SeriesMonitor
from models.detect_bank import BankedMonitor, SurpriseBank
from models.detectors.surprise import SurpriseDetector
from models.evidence import Evidence, EvidenceKind
from models.gaps import GapWatch, TelemetryGap
from models.report import LatePoints, Note, WindowReport
from models.schema import SERIES_METRICS, Bad, MetricSpec, Rejection, Telemetry
from models.snapshot import (
    Snapshotted,
    as_count,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    list_of,
    load,
    pairs,
    pairs_of,
    rebuild,
)
from models.topology import Topology
from models.trend import CreepWarning, CreepWatch, ExhaustionWarning, ExhaustionWatch
from models.window import ClosedWindow, SeriesKey, Windower

# Series watched for slow drifts besides the user-facing ones.
CREEP_METRICS = frozenset({"p99_latency_ms", "latency_ms"})

Monitor = SeriesMonitor | BankedMonitor
Detected = Anomaly | ExhaustionWarning | CreepWarning | TelemetryGap | LatePoints | WindowReport

# A batch's identity: entity, cut time, first and last timestamp, size, columns.
BatchKey = tuple[str, float, float, float, int, tuple[str, ...]]


def _batch_key(tel: Telemetry) -> BatchKey:
    first, last = (tel.ts[0], tel.ts[-1]) if tel.ts else (tel.time, tel.time)
    return tel.entity, tel.time, first, last, len(tel.ts), tuple(sorted(tel.metrics))


def _batch_from_state(raw: Any) -> tuple[BatchKey, float]:
    entity, time, first, last, size, columns, seen = as_list(raw, 7)
    key = (
        as_str(entity),
        as_float(time),
        as_float(first),
        as_float(last),
        as_int(size),
        tuple(list_of(as_str, columns)),
    )
    return key, as_float(seen)


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


def _anomaly_kind(spec: MetricSpec, started: Anomaly) -> EvidenceKind:
    """What an anomaly shows, judged as it started: traffic (a metric bad
    either way) that fell or rose, or a plain anomaly."""
    if spec.bad is not Bad.EITHER:
        return EvidenceKind.ANOMALY
    return EvidenceKind.DROP if started.direction == "low" else EvidenceKind.SURGE


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
        self.monitors: dict[SeriesKey, Monitor] = {}
        self.bank: SurpriseBank | None = None  # the series it can hold (see _keep)
        self.watches: dict[SeriesKey, ExhaustionWatch] = {}
        self.creeps: dict[SeriesKey, CreepWatch] = {}
        self.gaps = GapWatch(cfg.window_s, cfg.gap_after_s)
        self.samples = 0
        self.late_points = 0
        # Batches folded in whose time is not yet behind the decided windows:
        # enough to know a batch delivered twice (an older one is late anyway).
        self.batches: dict[BatchKey, float] = {}
        # The user-facing series of each entity with any, looked at early.
        self._facing: dict[str, list[SeriesKey]] = {}
        for key in topology.journey_of:
            self._facing.setdefault(key[0], []).append(key)

    # ------------------------------------------------------------ the series' parts
    # What runs on one series, with the settings it is built with: a new
    # per-series watch is built here and stepped in ``_decide``.

    def _spec(self, key: SeriesKey) -> MetricSpec:
        entity, metric = key
        return SERIES_METRICS[self.topology.family_of[entity]][metric]

    def _monitor_settings(self, key: SeriesKey) -> dict[str, Any]:
        cfg = self.config
        return {
            "enter": cfg.enter,
            "leave": cfg.leave,
            "clear": cfg.clear_windows,
            "max_hold": cfg.max_hold_windows,
            "fading_factor": cfg.fading_factor,
            "warm_up": cfg.warm_up_windows,
            "detector": cfg.detector_for(self.topology.family_of[key[0]], key[1]),
        }

    def _watch_settings(self, spec: MetricSpec) -> dict[str, Any] | None:
        """How a series is watched for exhaustion; None if it is not bounded."""
        if spec.limit is None:
            return None
        cfg = self.config
        return {"limit": spec.limit, "horizon_s": cfg.horizon_s, "window_s": cfg.trend_window_s}

    def _creep_settings(self, key: SeriesKey, spec: MetricSpec) -> dict[str, Any] | None:
        """How a series is watched for creep; None if it is not."""
        if spec.bad is Bad.EITHER or not (
            key[1] in CREEP_METRICS or key in self.topology.journey_of
        ):
            return None
        cfg = self.config
        return {
            "floor": 2 * spec.floor,
            "lower_is_worse": spec.bad is Bad.LOW,
            # A ratio's margin is absolute (two floors), not a share of its level.
            "rel": 0.0 if spec.ratio else cfg.creep_rel,
            "confirm": cfg.creep_confirm_windows,
            "max_hold": cfg.max_hold_windows,
            "fast": cfg.creep_fast,
            "slow": cfg.creep_slow,
            "warm_up": cfg.creep_warm_up_windows,
        }

    def _monitor(self, key: SeriesKey) -> Monitor:
        entity, metric = key
        spec = self._spec(key)
        mon = self._keep(key, SeriesMonitor(entity, spec, **self._monitor_settings(key)))
        watch = self._watch_settings(spec)
        if watch is not None:
            self.watches[key] = ExhaustionWatch(entity, metric, **watch)
        creep = self._creep_settings(key, spec)
        if creep is not None:
            self.creeps[key] = CreepWatch(entity, metric, **creep)
        return mon

    def _keep(self, key: SeriesKey, mon: SeriesMonitor) -> Monitor:
        """Where a series' anomaly state lives: in the bank if it fits there,
        else in its own monitor."""
        kept: Monitor = mon
        det = mon.detector
        if (
            self.config.vectorised
            and isinstance(det, SurpriseDetector)
            and SurpriseBank.supports(det)
        ):
            if self.bank is None:
                self.bank = SurpriseBank(mon)
            if self.bank.fits(mon):
                kept = self.bank.add(mon)
        self.monitors[key] = kept
        return kept

    # ------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "samples": self.samples,
            "late_points": self.late_points,
            "batches": [[*key[:5], list(key[5]), t] for key, t in self.batches.items()],
            "windows": self.windows.to_state(),
            "monitors": pairs({k: m.to_state() for k, m in self.monitors.items()}),
            "watches": pairs({k: w.to_state() for k, w in self.watches.items()}),
            "creeps": pairs({k: c.to_state() for k, c in self.creeps.items()}),
            "gaps": self.gaps.to_state(),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], topology: Topology, config: PipelineConfig
    ) -> DetectStage:
        """The stage holding ``state``, run with this topology and these settings.

        A series whose entity the topology no longer holds is left out: its
        telemetry is refused now, so it would never be judged again.
        """
        cfg = config
        stage = cls(topology, cfg, as_str(state["source"]))
        stage.samples = as_count(state["samples"])
        stage.late_points = as_count(state["late_points"])
        stage.batches = dict(_batch_from_state(raw) for raw in as_list(state["batches"]))
        stage.windows = Windower.from_state(as_dict(state["windows"]), cfg.window_s, cfg.lateness_s)
        known = topology.family_of
        stage.windows.keep_only(known)
        for (entity, metric), raw in pairs_of(as_dict, state["monitors"]).items():
            if entity in known:
                key = (entity, metric)
                mon = SeriesMonitor.from_state(
                    raw, entity, stage._spec(key), **stage._monitor_settings(key)
                )
                stage._keep(key, mon)
        for key, raw in pairs_of(as_dict, state["watches"]).items():
            watch = stage._watch_settings(stage._spec(key)) if key[0] in known else None
            if watch is not None:
                stage.watches[key] = ExhaustionWatch.from_state(raw, *key, **watch)
        for key, raw in pairs_of(as_dict, state["creeps"]).items():
            creep = stage._creep_settings(key, stage._spec(key)) if key[0] in known else None
            if creep is not None:
                stage.creeps[key] = CreepWatch.from_state(raw, *key, **creep)
        stage.gaps = GapWatch.from_state(
            as_dict(state["gaps"]), window_s=cfg.window_s, gap_after_s=cfg.gap_after_s
        )
        return stage

    @classmethod
    def restore(cls, snapshot: bytes, topology: Topology, config: PipelineConfig) -> DetectStage:
        """The stage in a snapshot, or ``IncompatibleSnapshot`` saying why.

        >>> DetectStage.restore(b'{"format": 1}', None, PipelineConfig())
        Traceback (most recent call last):
        ...
        models.snapshot.IncompatibleSnapshot: snapshot format 1; this version reads format 7
        """
        state = load(snapshot, cls.__name__)
        return rebuild(cls.__name__, lambda: cls.from_state(state, topology, config))

    # ------------------------------------------------------------ deciding

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
        # Ahead of the time the senders agree on; a stream that truly jumped
        # (all of it back after a long silence) is followed again once half
        # of its senders have claimed the new time (``EventClock.moved_on``).
        ahead, limit = tel.time - self.windows.watermark, self.config.max_ahead_s
        if (
            math.isfinite(ahead)  # infinite on the first message
            and ahead > limit
            and not self.windows.clock.moved_on(tel.entity, tel.time, limit)
        ):
            return Rejection(
                "too_far_ahead",
                f"time is {ahead:.0f} s ahead of the stream; at most {limit:.0f}",
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
        events.extend(self._look_early(tel))
        return events

    def _look_early(self, tel: Telemetry) -> list[WindowReport]:
        """An early report of the window ``tel`` reached into, while it is
        still open: the user-facing series of its entity that lose users over
        the part delivered, already anomalous or surprising on that part
        alone. Nothing is learnt from the look."""
        keys = self._facing.get(tel.entity)
        part = self.windows.partial(tel.entity, tel.time) if keys else None
        if part is None:
            return []
        start, values = part
        losses: dict[SeriesKey, float] = {}
        for key in keys or ():
            value, monitor = values.get(key), self.monitors.get(key)
            if value is None or monitor is None:
                continue
            lost = degradation(monitor.spec, value, monitor.baseline)
            if lost >= self.config.early_loss_floor and (
                monitor.active is not None or monitor.surprising(value)
            ):
                losses[key] = lost
        if not losses:
            return []
        return [WindowReport(self.source, start, tel.time, (), losses, early=True)]

    def finish(self) -> list[Detected]:
        """Decide every window still open: the end of a finite stream."""
        events: list[Detected] = []
        for window in self.windows.flush():
            events.extend(self._decide(window))
        return events

    def _decide(self, window: ClosedWindow) -> list[Detected]:
        events: list[Detected] = []
        notes: list[Note] = []

        def found(event: Detected, evidence: Evidence, onset: float, ended: float | None) -> None:
            events.append(event)
            notes.append(Note(evidence, onset, ended is None))

        changes = self._anomalies(window)
        mid = (window.start + window.end) / 2
        for i, (key, value) in enumerate(window.values.items()):
            entity, metric = key
            change = changes.get(i)
            if change is not None:
                anomaly, started = change
                kind = _anomaly_kind(self.monitors[key].spec, started)
                found(anomaly, Evidence(entity, metric, kind), anomaly.onset, anomaly.ended_at)
            watch = self.watches.get(key)
            warning = watch.update(mid, value) if watch is not None else None
            if warning is not None:
                evidence = Evidence(entity, metric, EvidenceKind.EXHAUSTION)
                found(warning, evidence, warning.at, warning.cleared_at)
            creep = self.creeps.get(key)
            drift = (
                creep.update(window.start, window.decided_at, value) if creep is not None else None
            )
            if drift is not None:
                evidence = Evidence(entity, metric, EvidenceKind.CREEP)
                found(drift, evidence, drift.onset, drift.ended_at)
        present = {entity for entity, _ in window.values}
        for gap in self.gaps.update(window.start, window.decided_at, present):
            found(gap, Evidence(gap.entity, "", EvidenceKind.GAP), gap.start, gap.ended_at)
        events.append(
            WindowReport(
                self.source, window.start, window.decided_at, tuple(notes), self._losses(window)
            )
        )
        return events

    def _anomalies(self, window: ClosedWindow) -> dict[int, tuple[Anomaly, Anomaly]]:
        """Every series of the window judged: the anomalies that started or
        ended, by the series' place in the window, each with the anomaly as
        it started. The bank's series are gathered and stepped at once."""
        changes: dict[int, tuple[Anomaly, Anomaly]] = {}
        places: list[int] = []
        rows: list[int] = []
        values: list[float] = []
        for i, (key, value) in enumerate(window.values.items()):
            mon = self.monitors.get(key) or self._monitor(key)
            if isinstance(mon, BankedMonitor):
                places.append(i)
                rows.append(mon.row)
                values.append(value)
                continue
            was = mon.active
            change = mon.update(window.start, window.decided_at, value)
            if change is not None:
                changes[i] = (change, was or change)
        if self.bank is not None and rows:
            stepped = self.bank.step(
                np.array(rows, np.int64),
                np.array(values, np.float64),
                window.start,
                window.decided_at,
            )
            for c in stepped:
                changes[places[c.place]] = (c.anomaly, c.started)
        return changes

    def _losses(self, window: ClosedWindow) -> dict[SeriesKey, float]:
        """Share of users failing, for each user-facing series hurting in this window."""
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
                losses[key] = degradation(stage.spec, seen, stage.baseline)
            elif drifting is not None and drifting.active is not None:
                losses[key] = degradation(stage.spec, seen, drifting.level.baseline)
        return losses

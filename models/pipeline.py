"""The decision path in one object: window, detect, forecast, correlate,
classify, estimate, track. Both engines feed it validated telemetry and pass
on what it returns; it reads no clock and does no I/O.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from models.correlate import blast_radius, rank_root_causes
from models.detect import Anomaly, SeriesMonitor
from models.impact import Business, ImpactMeter
from models.incident import IncidentEvent, IncidentTracker
from models.schema import SERIES_METRICS, Bad, MetricSpec, Rejection, Telemetry
from models.severity import UserImpact
from models.topology import Topology
from models.trend import ExhaustionWarning, ExhaustionWatch
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


@dataclass(frozen=True, slots=True)
class LatePoints:
    """Points that arrived for a window already decided."""

    entity: str
    points: int
    at: float


Event = Anomaly | ExhaustionWarning | IncidentEvent | LatePoints


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


class DetectionPipeline:
    """Feed it validated telemetry in any order the watermark allows; it
    returns anomalies, warnings and incident events as windows are decided."""

    def __init__(
        self, topology: Topology, business: Business, config: PipelineConfig | None = None
    ) -> None:
        self.topology = topology
        self.config = cfg = config or PipelineConfig()
        self.windows = Windower(cfg.window_s, cfg.lateness_s)
        self.tracker = IncidentTracker(
            ImpactMeter(business),
            resolve_after_s=cfg.resolve_after_s,
            reopen_within_s=cfg.reopen_within_s,
        )
        self.monitors: dict[SeriesKey, SeriesMonitor] = {}
        self.watches: dict[SeriesKey, ExhaustionWatch] = {}
        self.samples = 0
        self.late_points = 0
        # Active anomalies and warnings, grouped by component.
        self._active: dict[str, dict[str, float]] = defaultdict(dict)  # node -> evidence -> onset
        # Components anomalous since the incident opened, with their first onset:
        # the root cause is judged on the whole cascade, not on what is still red.
        self._touched: dict[str, dict[str, float]] = {}
        self._hurting_windows = 0

    @property
    def series(self) -> int:
        return len(self.monitors)

    def process(self, tel: Telemetry) -> list[Event] | Rejection:
        """Fold one valid message in and decide every window it closes.

        A message far ahead of the stream would close every open window at
        once, and one wholly behind the decided windows can change nothing:
        both are refused, with the reason, rather than folded in.
        """
        ahead = tel.time - self.windows.watermark  # infinite on the first message
        if math.isfinite(ahead) and ahead > self.config.max_ahead_s:
            return Rejection(
                "too_far_ahead",
                f"time is {ahead:.0f} s ahead of the stream; at most {self.config.max_ahead_s:.0f}",
            )
        if tel.ts and max(tel.ts) < self.windows.closed_until:
            return Rejection(
                "late",
                f"every point is before {self.windows.closed_until}, where windows are decided",
            )
        self.samples += tel.samples
        closed, late = self.windows.add(tel)
        events: list[Event] = []
        if late:
            self.late_points += late
            events.append(LatePoints(tel.entity, late, tel.time))
        for window in closed:
            events.extend(self._decide(window))
        return events

    def finish(self) -> list[Event]:
        """Decide every window still open: the end of a finite stream."""
        events: list[Event] = []
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
        return mon

    def _note(self, entity: str, evidence: str, onset: float, active: bool) -> None:
        node = self.topology.node_of[entity]
        if active:
            self._active[node][evidence] = onset
            self._touched.setdefault(node, {}).setdefault(evidence, onset)
        else:
            self._active[node].pop(evidence, None)
            if not self._active[node]:
                del self._active[node]

    def _decide(self, window: ClosedWindow) -> list[Event]:
        events: list[Event] = []
        at = window.decided_at
        mid = (window.start + window.end) / 2
        for key, value in window.values.items():
            mon = self.monitors.get(key) or self._monitor(key)
            change = mon.update(window.start, at, value)
            if change is not None:
                events.append(change)
                self._note(key[0], f"{key[0]}:{key[1]}", change.onset, change.ended_at is None)
            watch = self.watches.get(key)
            if watch is not None:
                warning = watch.update(mid, value)
                if warning is not None:
                    events.append(warning)
                    active = warning.cleared_at is None
                    self._note(key[0], f"{key[0]}:{key[1]}:exhaustion", warning.at, active)
        events.extend(self._correlate(window, at))
        return events

    def _user_impact(self, window: ClosedWindow) -> tuple[UserImpact, int]:
        """Share of users failing each journey, overall and per region.

        A journey fails for a user if any of its stages fails: in region r,
        1 - (1 - global stages) × (1 - r's own stages). Journeys and regions
        weigh equally.
        """
        ok: dict[str, dict[str | None, list[float]]] = defaultdict(lambda: defaultdict(list))
        hurting = 0
        for key, journey in self.topology.journey_of.items():
            mon = self.monitors.get(key)
            value = window.values.get(key)
            lost = 0.0
            if mon is not None and mon.active is not None and value is not None:
                lost = degradation(mon.spec, value, mon.detector.baseline)
                hurting += 1
            ok[journey][self.topology.region_of(key[0])].append(1 - lost)
        regions = self.topology.regions or ("global",)
        journeys: dict[str, float] = {}
        per_region: dict[str, float] = dict.fromkeys(regions, 0.0)
        for journey, stages in ok.items():
            everywhere = _mean(stages.get(None, [1.0]))
            lost_in = {r: 1 - everywhere * _mean(stages.get(r, [1.0])) for r in regions}
            journeys[journey] = _mean(list(lost_in.values()))
            for r, lost in lost_in.items():
                per_region[r] = max(per_region[r], lost)
        return UserImpact(journeys, per_region, len(regions)), hurting

    def _correlate(self, window: ClosedWindow, at: float) -> list[IncidentEvent]:
        impact, hurting = self._user_impact(window)
        self._hurting_windows = self._hurting_windows + 1 if hurting else 0
        # Users are hurt when several user-facing series agree, or one persists.
        severity = self.tracker.meter.business.severity
        paging = (
            hurting >= 2 or self._hurting_windows >= self.config.page_persist_windows
        ) and impact.share >= severity.sev3_affected
        if self.tracker.current is None or self.tracker.current.status == "resolved":
            if not paging:
                return []
            self._touched = {node: dict(ev) for node, ev in self._active.items()}
        onsets = {node: min(ev.values()) for node, ev in self._touched.items()}
        evidence = {node: list(ev) for node, ev in self._touched.items()}
        suspects = rank_root_causes(self.topology, onsets, evidence)
        blast = blast_radius(self.topology, suspects[0].node, set(onsets)) if suspects else []
        return self.tracker.step(at, paging, impact, suspects, blast)

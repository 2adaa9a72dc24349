"""The incident lifecycle: open, escalate, recover, resolve; one per outage.

An incident opens when users are hurt (see :meth:`IncidentTracker.step`), not
when one internal series wobbles. It keeps the SEV at its worst, follows the
root cause and blast radius as the cascade unfolds, and resolves only after
user-facing signals have stayed normal for ``resolve_after_s``. An outage that
comes back soon after is the same incident, reopened, not a second page.

Every change is published as an ``IncidentEvent`` carrying the incident as it
stands then: a frozen value that later windows never alter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from models.evidence import Suspect
from models.impact import Business, Impact, ImpactMeter
from models.severity import UserImpact, classify
from models.snapshot import as_dict, as_float, as_int, as_list, as_opt_number, as_str, list_of


class Status(StrEnum):
    OPEN = "open"
    RECOVERING = "recovering"  # users fine again, not yet for long enough
    RESOLVED = "resolved"


class Change(StrEnum):
    """What an incident event says happened."""

    OPENED = "opened"
    ESCALATED = "escalated"
    ROOT_CAUSE = "root_cause"
    BLAST_RADIUS = "blast_radius"
    TELEMETRY_GAP = "telemetry_gap"  # an entity inside it stopped reporting
    RECOVERING = "recovering"
    RELAPSED = "relapsed"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    MERGED = "merged"  # evidence connected it to an older incident, which goes on


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: float
    kind: Change
    text: str


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    opened_at: float
    onset: float  # earliest anomaly or warning of the root cause
    sev: int
    sev_reasons: tuple[str, ...]
    root_cause: str | None
    suspects: tuple[Suspect, ...]  # ranked, best first
    blast_radius: tuple[str, ...]
    impact: Impact
    # Entities of the root cause and its blast radius whose telemetry stopped
    # while the incident was open: what the on-call cannot see.
    telemetry_gaps: tuple[str, ...] = ()
    status: Status = Status.OPEN
    recovering_since: float | None = None
    resolved_at: float | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    merged_into: str | None = None  # the incident that took it over, when merged

    @property
    def dedup_key(self) -> str:
        """What an alert sink deduplicates on: one page per outage.

        Fixed for the incident's life (the root cause may still change), and
        made of event-time facts only, so a restarted or rebalanced worker
        that decides the same windows again names the same key.
        """
        return f"foreshock:{self.id}"

    @property
    def root_region(self) -> str | None:
        """The one region the root cause failed in, when it failed in one."""
        return next((s.region for s in self.suspects if s.node == self.root_cause), None)

    @property
    def mttr_s(self) -> float | None:
        return None if self.resolved_at is None else self.resolved_at - self.opened_at

    @property
    def members(self) -> set[str]:
        """The components it holds: its root cause and blast radius."""
        return {*([self.root_cause] if self.root_cause else []), *self.blast_radius}

    def holds(self, suspect: Suspect) -> bool:
        """Whether ``suspect`` belongs to it: it is its root cause or in its
        blast radius, or it explains its root cause (a deeper cause found
        later); anything does while it names no root cause."""
        return (
            self.root_cause is None
            or suspect.node in self.members
            or self.root_cause in suspect.explains
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, for sinks and reports."""
        return {
            "id": self.id,
            "dedup_key": self.dedup_key,
            "status": self.status.value,
            "opened_at": self.opened_at,
            "onset": self.onset,
            "sev": self.sev,
            "sev_reasons": list(self.sev_reasons),
            "root_cause": self.root_cause,
            "root_cause_region": self.root_region,
            "root_cause_candidates": [s.to_dict() for s in self.suspects[:3]],
            "blast_radius": list(self.blast_radius),
            "telemetry_gaps": list(self.telemetry_gaps),
            "impact": self.impact.to_dict(),
            "resolved_at": self.resolved_at,
            "mttr_s": self.mttr_s,
            "merged_into": self.merged_into,
            "timeline": [{"at": t.at, "kind": t.kind.value, "text": t.text} for t in self.timeline],
        }


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: Change
    at: float
    text: str
    incident: Incident  # as it stands after this change


class IncidentTracker:
    def __init__(
        self,
        meter: ImpactMeter,
        *,
        resolve_after_s: float = 600.0,
        reopen_within_s: float = 1800.0,
    ) -> None:
        self.meter = meter
        self.resolve_after_s = resolve_after_s
        self.reopen_within_s = reopen_within_s
        self.incidents: list[Incident] = []  # every incident, the latest last

    @property
    def current(self) -> Incident | None:
        """The latest incident, resolved or not."""
        return self.incidents[-1] if self.incidents else None

    def _update(self, **changes: Any) -> Incident:
        self.incidents[-1] = replace(self.incidents[-1], **changes)
        return self.incidents[-1]

    def _event(self, kind: Change, at: float, text: str) -> IncidentEvent:
        inc = self.incidents[-1]
        inc = self._update(timeline=(*inc.timeline, TimelineEntry(at, kind, text)))
        return IncidentEvent(kind, at, text, inc)

    def step(
        self,
        at: float,
        paging: bool,
        impact: UserImpact,
        suspects: list[Suspect],
        blast: list[str],
        silent: Mapping[str, str] | None = None,
        dependency: str | None = None,
    ) -> list[IncidentEvent]:
        """Advance the lifecycle by one window.

        ``paging`` says users are hurt now (corroborated user-facing anomalies);
        ``blast`` is the blast radius of the first suspect, ``silent`` the
        entities in a telemetry gap, with their components. ``dependency``
        says why users will be hurt soon, when a component they depend on is
        failing: an incident opens at SEV-4 for it, and stays open while it
        lasts.
        """
        inc = self.current
        hurting = paging or dependency is not None
        if inc is None or inc.status is Status.RESOLVED:
            if not hurting:
                return []
            # It comes back soon after: the same incident, unless another
            # failure, one it does not hold, hurts the users now.
            if (
                inc is not None
                and inc.merged_into is None
                and inc.resolved_at is not None
                and at - inc.resolved_at <= self.reopen_within_s
                and (not suspects or inc.holds(suspects[0]))
            ):
                self._update(status=Status.OPEN, resolved_at=None)
                why = "users hurt again" if paging else str(dependency)
                return [self._event(Change.REOPENED, at, why)]
            return [self._open(at, impact, suspects, blast, silent or {}, paging, dependency)]
        self._update(impact=self.meter.update(at, impact.share))
        events = self.escalate(at, impact)
        inc = self.incidents[-1]
        if suspects and inc.status is not Status.RECOVERING:
            inc = self._update(suspects=tuple(suspects))
            if suspects[0].node != inc.root_cause:
                root = suspects[0]
                self._update(root_cause=root.node, onset=min(inc.onset, root.onset))
                text = f"probable root cause {root.where}"
                events.append(self._event(Change.ROOT_CAUSE, at, text))
        inc = self.incidents[-1]
        # The blast radius grows with what the root cause explains, never
        # with another suspect's, and never holds the root cause itself.
        theirs = set(blast) if suspects and suspects[0].node == inc.root_cause else set()
        grown = tuple(sorted((set(inc.blast_radius) | theirs) - {inc.root_cause}))
        if grown != inc.blast_radius:
            new = ", ".join(sorted(set(grown) - set(inc.blast_radius)))
            self._update(blast_radius=grown)
            if new:
                text = f"blast radius now includes {new}"
                events.append(self._event(Change.BLAST_RADIUS, at, text))
        events.extend(self._see_gaps(at, silent or {}))
        inc = self.incidents[-1]
        # A failing dependency holds an incident open only until users are
        # hurt (SEV-4 is none hurt): from then on, their signals decide.
        if paging or (dependency is not None and inc.sev == 4):
            if inc.status is Status.RECOVERING:
                self._update(status=Status.OPEN, recovering_since=None)
                events.append(self._event(Change.RELAPSED, at, "users hurt again"))
        elif inc.status is Status.OPEN:
            self._update(status=Status.RECOVERING, recovering_since=at)
            text = "user-facing signals back to normal"
            events.append(self._event(Change.RECOVERING, at, text))
        elif inc.recovering_since is not None and at - inc.recovering_since >= self.resolve_after_s:
            self._update(status=Status.RESOLVED, resolved_at=at)
            text = f"normal for {self.resolve_after_s:.0f} s"
            events.append(self._event(Change.RESOLVED, at, text))
        return events

    def escalate(self, at: float, impact: UserImpact) -> list[IncidentEvent]:
        """Raise the open incident's SEV to what ``impact`` calls for, if that
        is worse; never lower it, and open or measure nothing."""
        inc = self.current
        if inc is None or inc.status is Status.RESOLVED:
            return []
        sev, reasons = classify(impact, at - inc.opened_at, self.meter.business.severity)
        if sev >= inc.sev:
            return []
        self._update(sev=sev, sev_reasons=tuple(reasons))
        return [self._event(Change.ESCALATED, at, f"SEV-{sev}: " + "; ".join(reasons))]

    def merge(self, at: float, into: Incident) -> IncidentEvent:
        """End the latest incident: evidence showed it is part of ``into``."""
        self._update(status=Status.RESOLVED, resolved_at=at, merged_into=into.id)
        text = f"merged into {into.id}, whose root cause explains it"
        return self._event(Change.MERGED, at, text)

    def _see_gaps(self, at: float, silent: Mapping[str, str]) -> list[IncidentEvent]:
        """Keep the entities in a telemetry gap within the root cause and its blast radius."""
        inc = self.incidents[-1]
        new = [e for e in _inside(inc, silent) if e not in inc.telemetry_gaps]
        if not new:
            return []
        self._update(telemetry_gaps=tuple(sorted({*inc.telemetry_gaps, *new})))
        return [self._event(Change.TELEMETRY_GAP, at, f"no telemetry from {', '.join(new)}")]

    def _open(
        self,
        at: float,
        impact: UserImpact,
        suspects: list[Suspect],
        blast: list[str],
        silent: Mapping[str, str],
        paging: bool = True,
        dependency: str | None = None,
    ) -> IncidentEvent:
        root = suspects[0] if suspects else None
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%S")
        sev, reasons = classify(impact, 0.0, self.meter.business.severity)
        if not paging:  # users are not hurt yet: what will hurt them is the reason
            sev, reasons = 4, [str(dependency)]
        self.meter = ImpactMeter(self.meter.business)
        inc = Incident(
            id=f"INC-{stamp}-{root.node if root else 'unknown'}",
            opened_at=at,
            onset=root.onset if root else at,
            sev=sev,
            sev_reasons=tuple(reasons),
            root_cause=root.node if root else None,
            suspects=tuple(suspects),
            blast_radius=tuple(blast),
            impact=self.meter.update(at, impact.share),
        )
        self.incidents.append(inc)
        self._update(telemetry_gaps=tuple(_inside(inc, silent)))
        text = f"{inc.id} SEV-{sev}: " + "; ".join(reasons)
        if root:
            text += f"; probable root cause {root.where}"
        return self._event(Change.OPENED, at, text)

    def to_state(self) -> dict[str, Any]:
        """Learned state as plain data (the settings and business are configuration)."""
        return {
            "meter": self.meter.to_state(),
            "incidents": [_incident_state(i) for i in self.incidents],
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        meter_business: Business,
        *,
        resolve_after_s: float,
        reopen_within_s: float,
    ) -> IncidentTracker:
        tracker = cls(
            ImpactMeter.from_state(state["meter"], meter_business),
            resolve_after_s=resolve_after_s,
            reopen_within_s=reopen_within_s,
        )
        tracker.incidents = [_incident_from_state(d) for d in state["incidents"]]
        return tracker


def _inside(inc: Incident, silent: Mapping[str, str]) -> list[str]:
    """The entities of ``silent`` (entity -> component) in the root cause or blast radius."""
    inside = {inc.root_cause, *inc.blast_radius}
    return sorted(e for e, node in silent.items() if node in inside)


def _incident_state(inc: Incident) -> dict[str, Any]:
    return {
        "id": inc.id,
        "opened_at": inc.opened_at,
        "onset": inc.onset,
        "sev": inc.sev,
        "sev_reasons": list(inc.sev_reasons),
        "root_cause": inc.root_cause,
        "suspects": [s.to_state() for s in inc.suspects],
        "blast_radius": list(inc.blast_radius),
        "telemetry_gaps": list(inc.telemetry_gaps),
        "impact": inc.impact.to_dict(),
        "status": inc.status.value,
        "recovering_since": inc.recovering_since,
        "resolved_at": inc.resolved_at,
        "merged_into": inc.merged_into,
        "timeline": [[t.at, t.kind.value, t.text] for t in inc.timeline],
    }


def _incident_from_state(d: dict[str, Any]) -> Incident:
    return Incident(
        id=as_str(d["id"]),
        opened_at=as_float(d["opened_at"]),
        onset=as_float(d["onset"]),
        sev=as_int(d["sev"]),
        sev_reasons=tuple(list_of(as_str, d["sev_reasons"])),
        root_cause=None if d["root_cause"] is None else as_str(d["root_cause"]),
        suspects=tuple(Suspect.from_state(s) for s in as_list(d["suspects"])),
        blast_radius=tuple(list_of(as_str, d["blast_radius"])),
        telemetry_gaps=tuple(list_of(as_str, d["telemetry_gaps"])),
        impact=Impact.from_dict(as_dict(d["impact"])),
        status=Status(d["status"]),
        recovering_since=as_opt_number(d["recovering_since"]),
        resolved_at=as_opt_number(d["resolved_at"]),
        merged_into=None if d.get("merged_into") is None else as_str(d["merged_into"]),
        timeline=tuple(
            TimelineEntry(as_float(at), Change(kind), as_str(text))
            for at, kind, text in (as_list(t, 3) for t in as_list(d["timeline"]))
        ),
    )

"""The incident lifecycle: open, escalate, recover, resolve; one per outage.

An incident opens when users are hurt (see :meth:`IncidentTracker.step`), not
when one internal series wobbles. It keeps the SEV at its worst, follows the
root cause and blast radius as the cascade unfolds, and resolves only after
user-facing signals have stayed normal for ``resolve_after_s``. An outage that
comes back soon after is the same incident, reopened, not a second page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.correlate import Suspect
from models.impact import Impact, ImpactMeter
from models.severity import UserImpact, classify


@dataclass
class Incident:
    id: str
    opened_at: float
    onset: float  # earliest anomaly or warning of the root cause
    sev: int
    sev_reasons: list[str]
    root_cause: str | None
    suspects: list[Suspect]
    blast_radius: list[str]
    impact: Impact
    status: str = "open"  # open | recovering | resolved
    recovering_since: float | None = None
    resolved_at: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dedup_key(self) -> str:
        """What an alert sink deduplicates on: one page per outage.

        Fixed for the incident's life (the root cause may still change), and
        made of event-time facts only, so a restarted or rebalanced worker
        that decides the same windows again names the same key.
        """
        return f"foreshock:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dedup_key": self.dedup_key,
            "status": self.status,
            "opened_at": self.opened_at,
            "onset": self.onset,
            "sev": self.sev,
            "sev_reasons": self.sev_reasons,
            "root_cause": self.root_cause,
            "root_cause_candidates": [
                {
                    "node": s.node,
                    "onset": s.onset,
                    "explains": list(s.explains),
                    "evidence": list(s.evidence),
                }
                for s in self.suspects[:3]
            ],
            "blast_radius": self.blast_radius,
            "impact": self.impact.to_dict(),
            "resolved_at": self.resolved_at,
            "mttr_s": None if self.resolved_at is None else self.resolved_at - self.opened_at,
            "timeline": self.timeline,
        }


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: str  # opened escalated root_cause blast_radius recovering relapsed resolved reopened
    at: float
    text: str
    incident: dict[str, Any]


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
        self.current: Incident | None = None
        self.incidents: list[Incident] = []

    def _event(self, kind: str, at: float, text: str) -> IncidentEvent:
        assert self.current is not None
        self.current.timeline.append({"at": at, "kind": kind, "text": text})
        return IncidentEvent(kind, at, text, self.current.to_dict())

    def step(
        self,
        at: float,
        paging: bool,
        impact: UserImpact,
        suspects: list[Suspect],
        blast: list[str],
    ) -> list[IncidentEvent]:
        """Advance the lifecycle by one window.

        ``paging`` says users are hurt now (corroborated user-facing anomalies).
        """
        inc = self.current
        if inc is None or inc.status == "resolved":
            if not paging:
                return []
            resolved_at = inc.resolved_at if inc is not None else None
            if (
                inc is not None
                and resolved_at is not None
                and at - resolved_at <= self.reopen_within_s
            ):
                inc.status, inc.resolved_at = "open", None
                return [self._event("reopened", at, "users hurt again")]
            return [self._open(at, impact, suspects, blast)]
        events: list[IncidentEvent] = []
        inc.impact = self.meter.update(at, impact.share)
        sev, reasons = classify(impact, at - inc.opened_at, self.meter.business.severity)
        if sev < inc.sev:
            inc.sev, inc.sev_reasons = sev, reasons
            events.append(self._event("escalated", at, f"SEV-{sev}: " + "; ".join(reasons)))
        if suspects and inc.status != "recovering":
            inc.suspects = suspects
            if suspects[0].node != inc.root_cause:
                inc.root_cause = suspects[0].node
                inc.onset = min(inc.onset, suspects[0].onset)
                events.append(
                    self._event("root_cause", at, f"probable root cause {inc.root_cause}")
                )
        grown = sorted(set(inc.blast_radius) | set(blast))
        if grown != inc.blast_radius:
            new = ", ".join(sorted(set(grown) - set(inc.blast_radius)))
            inc.blast_radius = grown
            events.append(self._event("blast_radius", at, f"blast radius now includes {new}"))
        if paging:
            if inc.status == "recovering":
                inc.status, inc.recovering_since = "open", None
                events.append(self._event("relapsed", at, "users hurt again"))
        elif inc.status == "open":
            inc.status, inc.recovering_since = "recovering", at
            events.append(self._event("recovering", at, "user-facing signals back to normal"))
        elif inc.recovering_since is not None and at - inc.recovering_since >= self.resolve_after_s:
            inc.status, inc.resolved_at = "resolved", at
            events.append(self._event("resolved", at, f"normal for {self.resolve_after_s:.0f} s"))
        return events

    def _open(
        self, at: float, impact: UserImpact, suspects: list[Suspect], blast: list[str]
    ) -> IncidentEvent:
        root = suspects[0] if suspects else None
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%S")
        sev, reasons = classify(impact, 0.0, self.meter.business.severity)
        self.meter = ImpactMeter(self.meter.business)
        self.current = Incident(
            id=f"INC-{stamp}-{root.node if root else 'unknown'}",
            opened_at=at,
            onset=root.onset if root else at,
            sev=sev,
            sev_reasons=reasons,
            root_cause=root.node if root else None,
            suspects=suspects,
            blast_radius=blast,
            impact=self.meter.update(at, impact.share),
        )
        self.incidents.append(self.current)
        text = f"{self.current.id} SEV-{sev}: " + "; ".join(reasons)
        if root:
            text += f"; probable root cause {root.node}"
        return self._event("opened", at, text)

"""A page: one change of an incident, as the alert sinks see it.

It is the record ``foreshock.incidents`` carries (``streams.sinks.wire``):
what changed (``kind``), when (event time), the text, and the incident as it
stands after the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.incident import Change

# Changes that (re)start paging; a resolve ends it; the rest update.
TRIGGERS = {Change.OPENED, Change.ESCALATED, Change.RELAPSED, Change.REOPENED}


@dataclass(frozen=True)
class Page:
    kind: Change
    at: float
    text: str
    incident: dict[str, Any]
    runbook: str = ""  # rendered for this incident (``streams.alerts.runbooks``)
    runbook_url: str | None = None

    @classmethod
    def from_record(cls, body: dict[str, Any]) -> Page:
        """A page from an incident record's JSON; ``ValueError`` if it is not one.

        >>> page = Page.from_record({"type": "incident", "kind": "opened", "at": 1.0,
        ...     "text": "login failing", "id": "INC-1", "dedup_key": "foreshock:INC-1",
        ...     "sev": 2, "root_cause": "redis-sessions", "blast_radius": ["logins"]})
        >>> page.sev, page.components
        (2, ('redis-sessions', 'logins'))
        >>> page.summary
        'SEV-2 INC-1: login failing; probable root cause redis-sessions'

        """
        if body.get("type") != "incident":
            raise ValueError("not an incident record")
        try:
            kind = Change(body["kind"])
            incident = {k: v for k, v in body.items() if k not in ("type", "kind", "at", "text")}
            page = cls(kind, float(body["at"]), str(body["text"]), incident)
            _ = page.id, page.dedup_key, page.sev
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"an incident record without a valid {exc}") from None
        return page

    @property
    def id(self) -> str:
        return str(self.incident["id"])

    @property
    def dedup_key(self) -> str:
        return str(self.incident["dedup_key"])

    @property
    def sev(self) -> int:
        return int(self.incident["sev"])

    @property
    def root_cause(self) -> str:
        return str(self.incident.get("root_cause") or "unknown")

    @property
    def region(self) -> str:
        return str(self.incident.get("root_cause_region") or "")

    @property
    def components(self) -> tuple[str, ...]:
        """The root cause and every component in the blast radius."""
        return (self.root_cause, *self.incident.get("blast_radius", ()))

    @property
    def resolved(self) -> bool:
        return self.kind in (Change.RESOLVED, Change.MERGED)

    @property
    def summary(self) -> str:
        """The incident in one line of at most 1,024 characters (PagerDuty's
        limit): who is hurt, and the probable cause; the change is ``text``."""
        hurt = "; ".join(self.incident.get("sev_reasons") or []) or self.text
        line = f"SEV-{self.sev} {self.id}: {hurt}; probable root cause {self.root_cause}"
        return line[:1024]

    @property
    def impact(self) -> dict[str, Any]:
        return dict(self.incident.get("impact") or {})

    def details(self) -> dict[str, Any]:
        """What an alert carries besides its summary: impact and evidence."""
        candidates = self.incident.get("root_cause_candidates") or [{}]
        return {
            "incident": self.id,
            "change": self.kind.value,
            "sev_reasons": self.incident.get("sev_reasons", []),
            "root_cause": self.root_cause,
            "region": self.region or None,
            "blast_radius": list(self.incident.get("blast_radius", [])),
            "users_affected": round(float(self.impact.get("users_affected", 0.0))),
            "revenue_lost_usd_per_min": round(float(self.impact.get("revenue_usd_per_min", 0.0))),
            "revenue_lost_usd_total": round(float(self.impact.get("revenue_usd_total", 0.0))),
            "evidence": list(candidates[0].get("evidence", []))[:20],
            "why": list(candidates[0].get("reasons", [])),
            "telemetry_gaps": list(self.incident.get("telemetry_gaps", [])),
        }

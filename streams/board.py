"""The operator's view: what is open, how bad, what caused it, who is hurt,
what changed and what to do, folded from the events an engine emits.

A ``Board`` takes events in their wire form (``event_to_dict``, as they are
on ``foreshock.incidents`` and ``foreshock.anomalies``), so that the worker
(reading those topics) and a replay (through ``BoardSink``) show the same.
It holds a bounded amount: the open incidents, the latest resolved ones, and
a short history of the series that are evidence of an open incident.

>>> board = Board()
>>> board.take({"type": "incident", "kind": "opened", "at": 60.0, "text": "opened",
...     "id": "INC-1", "status": "open", "sev": 3, "sev_reasons": ["errors"],
...     "opened_at": 60.0, "root_cause": "db", "root_cause_candidates": [],
...     "blast_radius": [], "impact": {}, "timeline": []})
>>> [(i["id"], i["sev"], i["age_s"]) for i in board.incidents()]
[('INC-1', 3, 0.0)]
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, TypeVar, cast

from models.pipeline import Event
from models.schema import Telemetry
from models.topology import Topology
from streams.alerts.page import Page
from streams.alerts.runbooks import Runbooks
from streams.sinks.base import Sink
from streams.sinks.wire import event_to_dict

KEEP_RESOLVED = 50  # resolved incidents still listed, the latest first
POINTS = 240  # points kept per evidence series: four minutes of 1-second samples
SERIES = 2_000  # evidence series kept at most, the least recently fed dropped first

_WARNINGS = ("ExhaustionWarning", "CreepWarning")

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    """Taken under the board's lock: a replay feeds it from one thread while
    another serves it (the worker's one loop never contends)."""

    @functools.wraps(method)
    def locked(self: Board, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return cast(F, locked)


class Board:
    """Incidents and the evidence behind them, as an on-call page shows them."""

    def __init__(
        self,
        topology: Topology | None = None,
        runbooks: Runbooks | None = None,
        muted: Callable[[Page], str | None] | None = None,
    ) -> None:
        self.topology = topology or Topology((), {})
        self.runbooks = runbooks
        self.muted = muted
        self.version = 0  # grows with every change a viewer would see
        self.clock = 0.0  # the latest event time taken
        self._incidents: dict[str, dict[str, Any]] = {}  # id -> latest record
        self._history: dict[str, list[dict[str, Any]]] = {}  # id -> SEV changes
        self._warnings: dict[tuple[str, str], dict[str, Any]] = {}
        self._gaps: dict[str, dict[str, Any]] = {}
        self._baselines: dict[tuple[str, str], float] = {}
        self._points: OrderedDict[tuple[str, str], deque[tuple[float, float]]] = OrderedDict()
        self.watched: set[str] = set()  # entities whose telemetry feeds the charts
        self.lock = threading.RLock()

    # What comes in.

    @_locked
    def take(self, body: dict[str, Any]) -> None:
        """One event in its wire form; any other type is left alone."""
        kind = body.get("type")
        at = float(body.get("at") or 0.0)
        self.clock = max(self.clock, at)
        if kind == "incident":
            self._take_incident(body)
        elif kind in _WARNINGS:
            key = (body["entity"], body["metric"])
            if body.get("cleared_at") is None:
                self._warnings[key] = body
            else:
                self._warnings.pop(key, None)
        elif kind == "TelemetryGap":
            if body.get("ended_at") is None:
                self._gaps[body["entity"]] = body
            else:
                self._gaps.pop(body["entity"], None)
        elif kind == "Anomaly":
            key = (body["entity"], body["metric"])
            self._baselines[key] = float(body["baseline"])
            self._point(key, at, float(body["value"]))
        else:
            return
        self.version += 1

    def sample(self, tel: Telemetry) -> None:
        """The points of a watched entity's series, from a telemetry message.
        Every message the worker reads passes here: the lock only for the few
        that are watched."""
        if tel.entity not in self.watched:
            return
        with self.lock:
            for metric, values in tel.metrics.items():
                for t, v in zip(tel.ts, values, strict=True):
                    if v == v:  # NaN: no sample
                        self._point((tel.entity, metric), float(t), float(v))
            self.version += 1

    def _take_incident(self, body: dict[str, Any]) -> None:
        iid = body["id"]
        history = self._history.setdefault(iid, [])
        if not history or history[-1]["sev"] != body["sev"]:
            history.append(
                {
                    "at": body["at"],
                    "sev": body["sev"],
                    "kind": body["kind"],
                    "reasons": body.get("sev_reasons", []),
                }
            )
        self._incidents.pop(iid, None)  # the latest change last
        self._incidents[iid] = body
        resolved = [i for i, b in self._incidents.items() if b["status"] != "open"]
        for old in resolved[: max(0, len(resolved) - KEEP_RESOLVED)]:
            del self._incidents[old]
            self._history.pop(old, None)
        self.watched = {
            e.split(":")[0]
            for b in self._incidents.values()
            if b["status"] == "open"
            for c in b.get("root_cause_candidates", [])
            for e in c.get("evidence", [])
        }

    def _point(self, key: tuple[str, str], t: float, value: float) -> None:
        points = self._points.get(key)
        if points is None:
            points = self._points[key] = deque(maxlen=POINTS)
            while len(self._points) > SERIES:
                self._points.popitem(last=False)
        else:
            self._points.move_to_end(key)
        if points and t < points[-1][0]:
            return  # late: the chart runs forward
        points.append((t, value))

    # What goes out.

    @_locked
    def incidents(self) -> list[dict[str, Any]]:
        """Open incidents, worst first, then the resolved ones, latest first."""
        listed = [self._summary(b) for b in self._incidents.values()]
        listed.sort(key=lambda i: (i["status"] != "open", i["sev"], -i["opened_at"]))
        return listed

    def _summary(self, body: dict[str, Any]) -> dict[str, Any]:
        impact = body.get("impact") or {}
        return {
            "id": body["id"],
            "status": body["status"],
            "sev": body["sev"],
            "title": _title(body),
            "root_cause": body.get("root_cause"),
            "root_cause_region": body.get("root_cause_region"),
            "opened_at": body["opened_at"],
            "resolved_at": body.get("resolved_at"),
            "age_s": self.clock - body["opened_at"],
            "users_affected": impact.get("users_affected", 0.0),
            "revenue_usd_per_min": impact.get("revenue_usd_per_min", 0.0),
            "revenue_usd_total": impact.get("revenue_usd_total", 0.0),
            "blast_radius": body.get("blast_radius", []),
            "silenced": self._silenced(body),
        }

    @_locked
    def incident(self, iid: str) -> dict[str, Any] | None:
        """One incident in whole: its record, SEV history, the warnings and
        gaps on its components, its evidence series and its runbook."""
        body = self._incidents.get(iid)
        if body is None:
            return None
        involved = {body.get("root_cause"), *body.get("blast_radius", [])}
        on = {c.get("node") for c in body.get("root_cause_candidates", [])} | involved
        return {
            **{k: v for k, v in body.items() if k not in ("type", "kind", "at", "text")},
            "title": _title(body),
            "last_change": {"kind": body["kind"], "at": body["at"], "text": body.get("text")},
            "age_s": self.clock - body["opened_at"],
            "silenced": self._silenced(body),
            "sev_history": self._history.get(iid, []),
            "warnings": [w for w in self._warnings.values() if self._on(w["entity"], on)],
            "gaps": [g for g in self._gaps.values() if self._on(g["entity"], on)],
            "evidence_series": self._evidence(body),
            "runbook": self._runbook(body),
        }

    def _on(self, entity: str, components: set[Any]) -> bool:
        return self.topology.component_of(entity) in components

    def _evidence(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        series = []
        for candidate in body.get("root_cause_candidates", [])[:1]:
            for evidence in candidate.get("evidence", []):
                entity, _, rest = evidence.partition(":")
                metric, _, kind = rest.partition(":")
                key = (entity, metric)
                series.append(
                    {
                        "entity": entity,
                        "metric": metric,
                        "kind": kind or "anomaly",
                        "baseline": self._baselines.get(key),
                        "points": [list(p) for p in self._points.get(key, ())],
                    }
                )
        return series

    def _runbook(self, body: dict[str, Any]) -> str | None:
        if self.runbooks is None or not body.get("root_cause"):
            return None
        return self.runbooks.attach(Page.from_record(body)).runbook

    def _silenced(self, body: dict[str, Any]) -> str | None:
        """The silence that keeps this incident from paging, if one does."""
        if self.muted is None or body["status"] != "open":
            return None
        return self.muted(Page.from_record(body))

    @_locked
    def open_by_sev(self) -> dict[int, int]:
        """How many incidents are open at each SEV."""
        counts = dict.fromkeys(range(1, 5), 0)
        for body in self._incidents.values():
            if body["status"] == "open":
                counts[body["sev"]] = counts.get(body["sev"], 0) + 1
        return counts

    @_locked
    def silent(self) -> list[str]:
        """Entities in a telemetry gap now."""
        return sorted(self._gaps)

    def graph(self) -> dict[str, Any]:
        """The dependency graph the page draws blast radii on."""
        return {
            "regions": list(self.topology.regions),
            "nodes": [
                {"id": n.id, "kind": n.kind, "depends_on": list(n.depends_on)}
                for n in self.topology.nodes.values()
            ],
        }


def _title(body: dict[str, Any]) -> str:
    """Who is hurt, in a line; the latest change's text while no one is."""
    return "; ".join(body.get("sev_reasons") or []) or str(body.get("text", ""))


class BoardSink(Sink):
    """An engine's events onto a board (a replay with ``--serve``)."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def emit(self, event: Event) -> None:
        self.board.take(event_to_dict(event))

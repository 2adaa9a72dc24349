"""Scoring: one replay against its scenario's truth, and runs into a report.

What counts (detection itself is defined once, in :mod:`bench.detection`):

- a fault expected to page is detected by the first incident opened at or
  after its fault start; every other incident is a false page;
- a fault expected to warn only (``expect = "warning"``) is detected by the
  first exhaustion or creep warning on its root cause after fault start; any
  incident is a false page;
- a fault expected to be seen coming (``"warning_before"``) is detected by
  an exhaustion or creep warning on its root cause from its precursor's
  start (or the scenario's) until the fault starts, MTTD counted from then;
- decoys and monitoring gaps must not page: every incident is a false page;
  a gap scenario is right when a telemetry gap is reported on the root cause
  or an affected component within ``GAP_TOLERANCE_S`` of the truth's start;
- several expectations (``expect = ["page", "gap"]``) are each checked: the
  fault is detected once all of them are, at the last of their times.

A root cause is right when it is any of the truth's; the SEV is right when
the incident's SEVs, at opening and at each escalation, end at the last of
the truth's ``sev_path`` and pass through the others in order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.detection import after_fault, follows, mttd, pages_of, sev_history, since
from bench.replay import Replay
from models.incident import Incident, IncidentEvent
from models.topology import Topology
from producers.scenario import Scenario, Truth

GAP_TOLERANCE_S = 120.0


@dataclass(frozen=True)
class Case:
    """One fault of a replay to judge: its truth, and the incident that paged it."""

    result: Replay
    topology: Topology
    gaps: list[dict[str, Any]]
    truth: Truth
    page: Incident | None

    def raised(self) -> list[tuple[float, str]]:
        """Every exhaustion and creep warning: when, and on which component."""
        node_of = self.topology.node_of
        raised = [(w.at, w.entity) for w in self.result.warnings]
        raised += [(c.at, c.entity) for c in self.result.creeps]
        return sorted((at, node_of[entity]) for at, entity in raised)


def evaluate(result: Replay, topology: Topology) -> dict[str, Any]:
    """Score one replay against its scenario's truth."""
    sc = result.scenario
    truth = sc.truth
    incidents = result.incidents
    gaps = result.telemetry_gaps(topology)
    out: dict[str, Any] = {
        "scenario": sc.name,
        "seed": result.seed,
        "kind": truth.kind,
        "expect": "+".join(truth.expects),
        "expects": list(truth.expects),
        "days": (sc.end - sc.start) / 86_400,
        "pages": len(incidents),
        "detected": None,
        "true_page": False,
        "false_pages": len(incidents),
        "mttd_from_fault_s": None,
        "mttd_from_impact_s": None,
        "root_cause_after_s": None,
        "sev": None,
        "sev_history": None,
        "sev_correct": None,
        "root_cause": None,
        "root_cause_correct": None,
        "impact_share": None,
        "impact_error": None,
        "gaps": gaps,
        "gap_reported": bool(gaps),
        "late_points": result.stats.late_points,
        "rejected": dict(result.stats.rejected),
        "incidents": [
            {
                "id": i.id,
                "opened_at": i.opened_at,
                "sev": i.sev,
                "root_cause": i.root_cause,
                "blast_radius": list(i.blast_radius),
                "resolved_at": i.resolved_at,
            }
            for i in incidents
        ],
        "warnings": sorted([w.at for w in result.warnings] + [c.at for c in result.creeps]),
        "wall_s": round(result.stats.wall_s, 2),
    }
    pages = pages_of(incidents, sc.truths)
    faults = []
    for fault, page in zip(sc.truths, pages, strict=True):
        case = Case(result, topology, gaps, fault, page)
        found = [_CHECKS[e](case) for e in fault.expects if e in _CHECKS]
        faults.append(_all_of(found) if found else {})
    if len(faults) == 1:
        out.update(faults[0])
    else:  # several faults at once: each must be right, each its own page
        out.update(_all_of(faults))
        out["faults"] = faults
        out["false_pages"] = len(incidents) - len({p.id for p in pages if p is not None})
    return out


def _page(case: Case) -> dict[str, Any]:
    """A page expected: the incident that detected it, its SEV path, root cause and region."""
    result, truth, page = case.result, case.truth, case.page
    incidents = result.incidents
    if page is None:
        return {"detected": False, "sev_correct": False, "root_cause_correct": False}
    times = mttd(incidents, result.events, truth, page)
    history = sev_history(result.events, page)
    named = next(
        (
            e.at
            for e in result.events
            if isinstance(e, IncidentEvent)
            and e.incident.id == page.id
            and e.incident.root_cause in truth.root_causes
        ),
        None,
    )
    share = page.impact.peak_share
    return {
        "detected": True,
        "true_page": True,
        "false_pages": len(incidents) - 1,
        "mttd_from_fault_s": times["from_fault_s"],
        "mttd_from_impact_s": times["from_impact_s"],
        "sev": page.sev,
        "sev_history": history,
        "sev_correct": follows(history, truth.sev_path),
        "root_cause": page.root_cause,
        "region": page.root_region,
        # Where the truth names the one region it failed in, that too.
        "root_cause_correct": page.root_cause in truth.root_causes
        and truth.region in (None, page.root_region),
        "root_cause_after_s": since(named, truth.fault_start),
        "impact_share": share,
        "impact_error": round(abs(share - truth.impact_share) / truth.impact_share, 4)
        if truth.impact_share
        else None,
    }


def _warning(case: Case) -> dict[str, Any]:
    """A warning expected: the first exhaustion or creep warning after fault start."""
    truth = case.truth
    warned = [(at, component) for at, component in case.raised() if after_fault(at, truth)]
    if not warned:
        return {"detected": False, "root_cause_correct": False}
    at, component = warned[0]
    right = component in truth.root_causes
    after = since(at, truth.fault_start)
    return {
        "detected": True,
        "mttd_from_fault_s": after,
        "root_cause": component,
        "root_cause_correct": right,
        "root_cause_after_s": after if right else None,
    }


def _warning_before(case: Case) -> dict[str, Any]:
    """A warning expected before the fault: on its root cause, ahead of it."""
    truth = case.truth
    first = truth.precursor_start or case.result.scenario.start
    ahead = [
        at
        for at, component in case.raised()
        if component in truth.root_causes and first <= at < (truth.fault_start or float("inf"))
    ]
    if not ahead:
        return {"detected": False, "warned_ahead_s": None}
    return {"detected": True, "warned_ahead_s": since(truth.fault_start, ahead[0])}


def _gap(case: Case) -> dict[str, Any]:
    """A telemetry gap expected: on the root cause or an affected component,
    from about fault start."""
    truth = case.truth
    fault = truth.fault_start
    right = [
        g
        for g in case.gaps
        if g["component"] in (*truth.root_causes, *truth.affected)
        and fault is not None
        and abs(g["start"] - fault) <= GAP_TOLERANCE_S
    ]
    return {
        "detected": bool(right),
        "gap_reported": bool(right),
        "mttd_from_fault_s": since(min(g["at"] for g in right), fault) if right else None,
    }


_CHECKS = {
    "page": _page,
    "warning": _warning,
    "warning_before": _warning_before,
    "gap": _gap,
}  # "none": nothing to find


def _all_of(found: list[dict[str, Any]]) -> dict[str, Any]:
    """What the expectations found, together: detected once every one is
    (MTTD: the last of them), the root cause right when every one naming it
    is right; any other figure as the first to find it tells it.

    >>> _all_of([{"detected": True, "mttd_from_fault_s": 40.0, "root_cause": "db"},
    ...          {"detected": True, "mttd_from_fault_s": 90.0, "gap_reported": True}])
    {'detected': True, 'mttd_from_fault_s': 90.0, 'root_cause': 'db', 'gap_reported': True}
    >>> _all_of([{"detected": True, "mttd_from_fault_s": 40.0}, {"detected": False}])
    {'detected': False, 'mttd_from_fault_s': None}
    """
    out: dict[str, Any] = {}
    for f in found:
        for key, value in f.items():
            out.setdefault(key, value)
    out["detected"] = all(f["detected"] for f in found)
    if "mttd_from_fault_s" in out:
        timed = [f for f in found if "mttd_from_fault_s" in f]  # a warning ahead has none
        times = [t for f in timed if (t := f["mttd_from_fault_s"]) is not None]
        every = out["detected"] and len(times) == len(timed)
        out["mttd_from_fault_s"] = max(times) if every else None
    for key in ("root_cause_correct", "sev_correct"):
        if key in out:
            out[key] = all(f.get(key, True) for f in found)
    return out


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {
        "median": round(float(np.median(arr)), 1),
        "p90": round(float(np.percentile(arr, 90)), 1),
        "max": round(float(arr.max()), 1),
    }


def _fraction(flags: list[bool | None]) -> float | None:
    known = [f for f in flags if f is not None]
    return round(sum(known) / len(known), 3) if known else None


def summarize(runs: list[dict[str, Any]], scenarios: dict[str, Scenario]) -> dict[str, Any]:
    """Per-scenario tables and overall precision and recall from scored runs."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_name[run["scenario"]].append(run)
    rows = []
    for name in sorted(by_name, key=lambda n: (scenarios[n].truth.kind, n)):
        rs = sorted(by_name[name], key=lambda r: r["seed"])
        sc = scenarios[name]
        days = sum(r["days"] for r in rs)
        false_pages = sum(r["false_pages"] for r in rs)

        def values(key: str, rs: list[dict[str, Any]] = rs) -> list[float]:
            return [r[key] for r in rs if r[key] is not None]

        impact_errors = values("impact_error")
        rows.append(
            {
                "name": name,
                "kind": sc.truth.kind,
                "expect": "+".join(sc.truth.expects),
                "seeds": len(rs),
                "truth": {
                    "sev": sc.truth.sev,
                    "sev_path": list(sc.truth.sev_path),
                    "root_cause": sc.truth.root_cause,
                    "root_causes": list(sc.truth.root_causes),
                    "impact_share": sc.truth.impact_share,
                },
                "detected": _fraction([r["detected"] for r in rs]),
                "mttd_from_fault_s": _stats(values("mttd_from_fault_s")),
                "mttd_from_impact_s": _stats(values("mttd_from_impact_s")),
                "time_to_root_cause_s": _stats(values("root_cause_after_s")),
                "sev_correct": _fraction([r["sev_correct"] for r in rs]),
                "root_cause_correct": _fraction([r["root_cause_correct"] for r in rs]),
                "pages": sum(r["pages"] for r in rs),
                "false_pages": false_pages,
                "false_pages_per_day": round(false_pages / days, 3) if days else None,
                "impact_error": round(float(np.median(impact_errors)), 3)
                if impact_errors
                else None,
                "gap_reported": _fraction([r["gap_reported"] for r in rs]),
                "late_points": sum(r["late_points"] for r in rs),
                "runs": [{k: v for k, v in r.items() if k != "signals"} for r in rs],
            }
        )
    pages = sum(r["pages"] for r in runs)
    true_pages = pages - sum(r["false_pages"] for r in runs)  # several faults: several
    expected = [r for r in runs if "page" in r["expects"]]
    return {
        "scenarios": rows,
        "runs": len(runs),
        "pages": pages,
        "true_pages": true_pages,
        "false_pages": pages - true_pages,
        "precision": round(true_pages / pages, 4) if pages else None,
        "recall": round(sum(r["true_page"] for r in expected) / len(expected), 4)
        if expected
        else None,
    }

"""Scoring: one replay against its scenario's truth, and runs into a report.

What counts (detection itself is defined once, in :mod:`bench.detection`):

- a fault expected to page is detected by the first incident opened at or
  after its fault start; every other incident is a false page;
- a fault expected to warn only (``expect = "warning"``) is detected by the
  first exhaustion or creep warning on its root cause after fault start; any
  incident is a false page;
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
from typing import Any

import numpy as np

from bench.detection import after_fault, first_page, follows, sev_history, since
from bench.replay import Replay
from models.incident import IncidentEvent
from models.topology import Topology
from producers.scenario import Scenario

GAP_TOLERANCE_S = 120.0


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
    found = [_CHECKS[e](result, topology, gaps) for e in truth.expects if e in _CHECKS]
    if found:
        out.update(_all_of(found))
    return out


def _page(result: Replay, topology: Topology, gaps: list[dict[str, Any]]) -> dict[str, Any]:
    """A page expected: the first incident after fault start, its SEV path and root cause."""
    truth = result.scenario.truth
    incidents = result.incidents
    page = first_page(incidents, truth)
    if page is None:
        return {"detected": False, "sev_correct": False, "root_cause_correct": False}
    mttd = result.mttd()
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
        "mttd_from_fault_s": mttd["from_fault_s"],
        "mttd_from_impact_s": mttd["from_impact_s"],
        "sev": page.sev,
        "sev_history": history,
        "sev_correct": follows(history, truth.sev_path),
        "root_cause": page.root_cause,
        "root_cause_correct": page.root_cause in truth.root_causes,
        "root_cause_after_s": since(named, truth.fault_start),
        "impact_share": share,
        "impact_error": round(abs(share - truth.impact_share) / truth.impact_share, 4)
        if truth.impact_share
        else None,
    }


def _warning(result: Replay, topology: Topology, gaps: list[dict[str, Any]]) -> dict[str, Any]:
    """A warning expected: the first exhaustion or creep warning after fault start."""
    truth = result.scenario.truth
    raised = [(w.at, w.entity) for w in result.warnings]
    raised += [(c.at, c.entity) for c in result.creeps]
    warned = sorted(
        (at, topology.node_of[entity]) for at, entity in raised if after_fault(at, truth)
    )
    if not warned:
        return {"detected": False, "root_cause_correct": False}
    at, component = warned[0]
    right = component in truth.root_causes
    mttd = since(at, truth.fault_start)
    return {
        "detected": True,
        "mttd_from_fault_s": mttd,
        "root_cause": component,
        "root_cause_correct": right,
        "root_cause_after_s": mttd if right else None,
    }


def _gap(result: Replay, topology: Topology, gaps: list[dict[str, Any]]) -> dict[str, Any]:
    """A telemetry gap expected: on the root cause or an affected component,
    from about fault start."""
    truth = result.scenario.truth
    fault = truth.fault_start
    right = [
        g
        for g in gaps
        if g["component"] in (*truth.root_causes, *truth.affected)
        and fault is not None
        and abs(g["start"] - fault) <= GAP_TOLERANCE_S
    ]
    return {
        "detected": bool(right),
        "gap_reported": bool(right),
        "mttd_from_fault_s": since(min(g["at"] for g in right), fault) if right else None,
    }


_CHECKS = {"page": _page, "warning": _warning, "gap": _gap}  # "none": nothing to find


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
        times = [t for f in found if (t := f.get("mttd_from_fault_s")) is not None]
        every = out["detected"] and len(times) == len(found)
        out["mttd_from_fault_s"] = max(times) if every else None
    if "root_cause_correct" in out:
        out["root_cause_correct"] = all(f.get("root_cause_correct", True) for f in found)
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
    true_pages = sum(r["true_page"] for r in runs)
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

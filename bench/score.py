"""Scoring: one replay against its scenario's truth, and runs into a report.

What counts (detection itself is defined once, in :mod:`bench.detection`):

- a fault expected to page is detected by the first incident opened at or
  after its fault start; every other incident is a false page;
- a fault expected to warn only (``expect = "warning"``) is detected by the
  first exhaustion or creep warning on its root cause after fault start; any
  incident is a false page;
- decoys and monitoring gaps must not page: every incident is a false page;
  a gap scenario is right when a telemetry gap is reported on an affected
  component within ``GAP_TOLERANCE_S`` of the truth's start.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from bench.detection import after_fault, first_page, since
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
    fault = truth.fault_start
    gaps = result.telemetry_gaps(topology)
    out: dict[str, Any] = {
        "scenario": sc.name,
        "seed": result.seed,
        "kind": truth.kind,
        "expect": truth.expect,
        "days": (sc.end - sc.start) / 86_400,
        "pages": len(incidents),
        "detected": None,
        "true_page": False,
        "false_pages": len(incidents),
        "mttd_from_fault_s": None,
        "mttd_from_impact_s": None,
        "root_cause_after_s": None,
        "sev": None,
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
    if truth.expect == "page":
        page = first_page(incidents, truth)
        out["detected"] = page is not None
        out["sev_correct"] = out["root_cause_correct"] = False
        if page is not None:
            mttd = result.mttd()
            out["true_page"] = True
            out["false_pages"] = len(incidents) - 1
            out["mttd_from_fault_s"] = mttd["from_fault_s"]
            out["mttd_from_impact_s"] = mttd["from_impact_s"]
            out["sev"] = page.sev
            out["sev_correct"] = page.sev == truth.sev
            out["root_cause"] = page.root_cause
            out["root_cause_correct"] = page.root_cause == truth.root_cause
            named = next(
                (
                    e.at
                    for e in result.events
                    if isinstance(e, IncidentEvent)
                    and e.incident.id == page.id
                    and e.incident.root_cause == truth.root_cause
                ),
                None,
            )
            out["root_cause_after_s"] = since(named, fault)
            share = page.impact.peak_share
            out["impact_share"] = share
            if truth.impact_share:
                out["impact_error"] = round(abs(share - truth.impact_share) / truth.impact_share, 4)
    elif truth.expect == "warning":
        raised = [(w.at, w.entity) for w in result.warnings]
        raised += [(c.at, c.entity) for c in result.creeps]
        warned = sorted(
            (at, topology.node_of[entity]) for at, entity in raised if after_fault(at, truth)
        )
        first = warned[0] if warned else None
        out["detected"] = first is not None
        out["mttd_from_fault_s"] = since(first[0], fault) if first else None
        out["root_cause"] = first[1] if first else None
        out["root_cause_correct"] = first is not None and first[1] == truth.root_cause
        out["root_cause_after_s"] = out["mttd_from_fault_s"] if out["root_cause_correct"] else None
    elif truth.expect == "gap":
        right = [
            g
            for g in gaps
            if g["component"] in truth.affected
            and fault is not None
            and abs(g["start"] - fault) <= GAP_TOLERANCE_S
        ]
        out["detected"] = out["gap_reported"] = bool(right)
        if right:
            out["mttd_from_fault_s"] = since(min(g["at"] for g in right), fault)
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
                "expect": sc.truth.expect,
                "seeds": len(rs),
                "truth": {
                    "sev": sc.truth.sev,
                    "root_cause": sc.truth.root_cause,
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
    expected = [r for r in runs if r["expect"] == "page"]
    return {
        "scenarios": rows,
        "runs": len(runs),
        "pages": pages,
        "true_pages": true_pages,
        "false_pages": pages - true_pages,
        "precision": round(true_pages / pages, 4) if pages else None,
        "recall": round(sum(bool(r["detected"]) for r in expected) / len(expected), 4)
        if expected
        else None,
    }

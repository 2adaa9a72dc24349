"""Scenarios as data: a time span, faults as keyframed effects, and the truth.

A scenario file (TOML) looks like::

    name = "my-outage"
    description = "..."
    start = "2022-10-04T10:45:00Z"
    end = "2022-10-04T16:00:00Z"

    [truth]
    fault_start = "12:45:00"          # a time of day on the start date,
    impact_start = "+45s"             # or an offset from fault_start
    root_cause = "redis-sessions"
    sev = 1

    [[effects]]
    target = "redis/node-*"           # entity glob
    param = "memory_used_ratio"       # a simulator parameter (see PARAMS)
    mode = "set"                      # set | scale | add
    keyframes = [["11:15", 0.67], ["12:45", 0.95]]
    spread = 0.03                     # entities lag the leader by up to this much

Between its first and last keyframe an effect is interpolated linearly;
outside them the entity runs on its baseline.

Optional tables: ``[[maintenance]]`` (components announced to be under
maintenance, given to the pipeline), ``[[gaps]]`` (entities whose telemetry
stops) and ``[delivery]`` (late and out-of-order messages). The truth says
what kind of scenario it is (``fault``, ``decoy`` or ``gap``) and what
Foreshock is expected to do (``page``, ``warning``, ``none`` or ``gap``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra.settings import parse_toml
from models.maintenance import MaintenanceWindow

SCENARIO_DIR = Path(__file__).parent / "scenarios"

# The simulator's parameters per family: what an effect may change.
PARAMS: dict[str, tuple[str, ...]] = {
    "redis": (
        "memory_used_ratio",
        "latency_ms",
        "gc_pause_s",
        "evictions",
        "connected_clients",
        "ops_per_s",
    ),
    "pods": ("request_rate", "error_rate", "p99_latency_ms", "restarts", "ready_ratio"),
    "logins": ("attempt_rate", "success_ratio", "timeout_share"),
    "social": ("mention_rate", "outage_share"),
}
MODES = ("set", "scale", "add")
KINDS = ("fault", "decoy", "gap")
EXPECTS = ("page", "warning", "none", "gap")
_EXPECT_OF_KIND = {"fault": "page", "decoy": "none", "gap": "gap"}

_OFFSET = re.compile(r"^([+-])((?:\d+(?:\.\d+)?[hms])+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_time(text: str, day: datetime, anchor: float | None = None) -> float:
    """An ISO timestamp, a time of day on ``day``, or ``±1h2m3s`` from ``anchor``.

    >>> day = datetime(2022, 10, 4, tzinfo=UTC)
    >>> parse_time("12:45", day) - parse_time("2022-10-04T12:44:15Z", day)
    45.0
    >>> parse_time("+1m30s", day, anchor=100.0)
    190.0
    """
    text = text.strip()
    m = _OFFSET.match(text)
    if m:
        if anchor is None:
            raise ValueError(f"offset {text!r} needs truth.fault_start to be set first")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in _PART.findall(m[2]))
        return anchor + (seconds if m[1] == "+" else -seconds)
    if "T" in text or "-" in text:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
    parts = [float(p) for p in text.split(":")]
    h, m_, s = ([*parts, 0.0, 0.0])[:3]
    return (day + timedelta(hours=h, minutes=m_, seconds=s)).timestamp()


@dataclass(frozen=True)
class Effect:
    """A change to one simulator parameter on matching entities."""

    target: str
    param: str
    mode: str
    keyframes: tuple[tuple[float, float], ...]  # (epoch s, value)
    spread: float = 0.0  # value lag of the last entity behind the leader
    jitter_s: float = 0.0  # onset lag of the last entity behind the leader


@dataclass(frozen=True)
class Truth:
    """What really happened, for scoring: times in epoch seconds."""

    fault_start: float | None = None
    impact_start: float | None = None
    precursor_start: float | None = None
    root_cause: str | None = None
    sev: int | None = None
    affected: tuple[str, ...] = ()
    recovery: float | None = None
    kind: str = "fault"  # fault | decoy | gap
    expect: str = "page"  # page | warning | none | gap
    # Expected share of users failing their worst-hit journey, at the worst.
    impact_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "expect": self.expect,
            "impact_share": self.impact_share,
            "fault_start": self.fault_start,
            "impact_start": self.impact_start,
            "precursor_start": self.precursor_start,
            "root_cause": self.root_cause,
            "sev": self.sev,
            "affected": list(self.affected),
            "recovery": self.recovery,
        }


@dataclass(frozen=True)
class Silence:
    """Entities matching ``target`` send nothing from ``start`` to ``end``."""

    target: str
    start: float
    end: float


@dataclass(frozen=True)
class Delivery:
    """How messages reach the pipeline: ``late_share`` of them are held back
    by up to ``max_delay_s``; every message by up to ``jitter_s`` (out of
    order, but within the allowed lateness when small)."""

    late_share: float = 0.0
    max_delay_s: float = 0.0
    jitter_s: float = 0.0

    @property
    def in_order(self) -> bool:
        return self.late_share <= 0 and self.jitter_s <= 0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start: float
    end: float
    truth: Truth
    effects: tuple[Effect, ...] = ()
    resolution_s: float = 1.0
    batch_s: float = 5.0
    blips_per_hour: float = 4.0
    maintenance: tuple[MaintenanceWindow, ...] = ()
    gaps: tuple[Silence, ...] = ()
    delivery: Delivery = field(default_factory=Delivery)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scenario:
        start = parse_time(d["start"], datetime(1970, 1, 1, tzinfo=UTC))
        day = datetime.fromtimestamp(start, UTC).replace(hour=0, minute=0, second=0)
        t = d.get("truth", {})
        fault = parse_time(t["fault_start"], day) if "fault_start" in t else None

        def when(key: str) -> float | None:
            return parse_time(t[key], day, fault) if key in t else None

        kind = t.get("kind", "fault" if "root_cause" in t else "decoy")
        if kind not in KINDS:
            raise ValueError(f"truth.kind must be one of {KINDS}")
        expect = t.get("expect", _EXPECT_OF_KIND[kind])
        if expect not in EXPECTS:
            raise ValueError(f"truth.expect must be one of {EXPECTS}")
        truth = Truth(
            kind=kind,
            expect=expect,
            impact_share=float(t["impact_share"]) if "impact_share" in t else None,
            fault_start=fault,
            impact_start=when("impact_start"),
            precursor_start=when("precursor_start"),
            root_cause=t.get("root_cause"),
            sev=t.get("sev"),
            affected=tuple(t.get("affected", ())),
            recovery=when("recovery"),
        )
        effects = []
        for e in d.get("effects", []):
            family = next((f for f, ps in PARAMS.items() if e["param"] in ps), None)
            if family is None:
                raise ValueError(f"effect on {e['target']}: unknown parameter {e['param']!r}")
            if e.get("mode", "set") not in MODES:
                raise ValueError(f"effect on {e['target']}: mode must be one of {MODES}")
            frames = tuple((parse_time(str(k), day, fault), float(v)) for k, v in e["keyframes"])
            if any(b[0] < a[0] for a, b in itertools.pairwise(frames)):
                raise ValueError(f"effect on {e['target']}/{e['param']}: keyframes out of order")
            effects.append(
                Effect(
                    target=e["target"],
                    param=e["param"],
                    mode=e.get("mode", "set"),
                    keyframes=frames,
                    spread=float(e.get("spread", 0.0)),
                    jitter_s=float(e.get("jitter_s", 0.0)),
                )
            )
        maintenance = tuple(
            MaintenanceWindow.from_dict(m, lambda t: parse_time(str(t), day, fault))
            for m in d.get("maintenance", [])
        )
        gaps = tuple(
            Silence(
                g["target"],
                parse_time(str(g["start"]), day, fault),
                parse_time(str(g["end"]), day, fault) if "end" in g else float("inf"),
            )
            for g in d.get("gaps", [])
        )
        dv = d.get("delivery", {})
        delivery = Delivery(
            float(dv.get("late_share", 0.0)),
            float(dv.get("max_delay_s", 0.0)),
            float(dv.get("jitter_s", 0.0)),
        )
        known = {
            "maintenance",
            "gaps",
            "delivery",
            "name",
            "description",
            "start",
            "end",
            "truth",
            "effects",
            "resolution_s",
            "batch_s",
            "blips_per_hour",
        }
        return cls(
            name=d["name"],
            description=d.get("description", ""),
            start=start,
            end=parse_time(d["end"], day, fault),
            truth=truth,
            effects=tuple(effects),
            resolution_s=float(d.get("resolution_s", 1.0)),
            batch_s=float(d.get("batch_s", 5.0)),
            blips_per_hour=float(d.get("blips_per_hour", 4.0)),
            maintenance=maintenance,
            gaps=gaps,
            delivery=delivery,
            extra={k: v for k, v in d.items() if k not in known},
        )

    @classmethod
    def from_file(cls, path: Path) -> Scenario:
        """``ValueError`` naming the file and its fault if it cannot be used."""
        return parse_toml(path, cls.from_dict)


def load_scenarios(directory: Path | None = None) -> dict[str, Scenario]:
    """Every scenario in a folder (the shipped library when none is given), by name."""
    found = {}
    for path in sorted((directory or SCENARIO_DIR).glob("*.toml")):
        scenario = Scenario.from_file(path)
        found[scenario.name] = scenario
    return found

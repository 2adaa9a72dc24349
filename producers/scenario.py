"""Scenarios as data: a time span, faults as keyframed effects, and the truth.

A scenario file (TOML) looks like::

    name = "my-outage"
    description = "..."
    start = "2022-10-04T10:45:00Z"
    end = "2022-10-04T16:00:00Z"

    [truth]
    fault_start = "12:45:00"          # a time of day (the first after start),
    impact_start = "+45s"             # or an offset from fault_start
    root_cause = "redis-sessions"     # or a list: any of them is right
    sev = 1                           # or sev_path = [3, 1]: opened at 3, then 1
    region = "eu-west"                # optional: the one region it fails in

    [[effects]]
    target = "redis/node-*"           # entity glob
    param = "memory_used_ratio"       # a simulator parameter (see PARAMS)
    mode = "set"                      # set | scale | add
    keyframes = [["11:15", 0.67], ["12:45", 0.95]]
    spread = 0.03                     # entities lag the leader by up to this much

Between its first and last keyframe an effect is interpolated linearly;
outside them the entity runs on its baseline. With ``every_s`` and
``for_s`` it is on for ``for_s`` seconds of every ``every_s`` from its first
keyframe, and the entity on its baseline in between.

Optional tables: ``[[maintenance]]`` (components announced to be under
maintenance, given to the pipeline), ``[[changes]]`` (deploys, config
pushes, feature flags, scaling: change events the source sends at their
time, ``at``, ``component``, ``kind`` and optionally ``description`` and
``who``), ``[[gaps]]`` (entities whose telemetry
stops) and ``[delivery]`` (late and out-of-order messages). Several faults
at once each have their own ``[[truth]]`` table instead of the one
``[truth]`` (offsets in each count from its own ``fault_start``). The truth says
what kind of scenario it is (``fault``, ``decoy`` or ``gap``) and what
Foreshock is expected to do (``page``, ``warning``, ``warning_before`` (a
warning on the root cause before the fault starts), ``none`` or ``gap``, or a
list of them that must all happen, such as ``["page", "gap"]``).

The format is strict, so that a typo cannot quietly change a scenario: an
unknown table or key, a time outside the span from start to end, a SEV path
that contradicts ``sev``, and (given a topology) a target that matches no
entity, a root cause that is no component, or a change to no component or
entity are refused in one line.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from infra.settings import parse_toml
from models.changes import ChangeEvent, ChangeKind
from models.maintenance import MaintenanceWindow
from models.schema import SCHEMA_VERSION, Rejection
from models.topology import Topology

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
    "pods": (
        "request_rate",
        "error_rate",
        "p99_latency_ms",
        "restarts",
        "ready_ratio",
        "pool_used_ratio",
        "cpu_used_ratio",
        "disk_used_ratio",
    ),
    "logins": ("attempt_rate", "success_ratio", "timeout_share"),
    "social": ("mention_rate", "outage_share"),
}
# Parameters an entity has only when its topology baseline declares them (a
# connection pool: postgres and mongodb have one, a stateless service none).
DECLARED: dict[str, tuple[str, ...]] = {
    "pods": ("pool_used_ratio", "cpu_used_ratio", "disk_used_ratio")
}
MODES = ("set", "scale", "add")
KINDS = ("fault", "decoy", "gap")
EXPECTS = ("page", "warning", "warning_before", "none", "gap")
SEVS = range(1, 5)  # SEV-1 is the worst
_EXPECT_OF_KIND = {"fault": "page", "decoy": "none", "gap": "gap"}

_OFFSET = re.compile(r"^([+-])((?:\d+(?:\.\d+)?[hms])+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str, since: datetime, anchor: float | None = None) -> float:
    """An ISO timestamp, a time of day (the first one at or after ``since``:
    after midnight is the next day), or ``±1h2m3s`` from ``anchor``.

    >>> since = datetime(2022, 10, 4, 23, 0, tzinfo=UTC)
    >>> parse_time("00:30", since) - parse_time("2022-10-04T23:00:00Z", since)
    5400.0
    >>> parse_time("+1m30s", since, anchor=100.0)
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
    midnight = since.replace(hour=0, minute=0, second=0, microsecond=0)
    stamp = midnight + timedelta(hours=h, minutes=m_, seconds=s)
    return (stamp + timedelta(days=1) if stamp < since else stamp).timestamp()


def _did_you_mean(word: str, choices: Iterable[str], spell: Callable[[str], str] = repr) -> str:
    """A hint naming the closest of ``choices``, or all of them if none is close.

    >>> _did_you_mean("jiter_s", ["spread", "jitter_s"])
    "; did you mean 'jitter_s'?"
    """
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f"; did you mean {spell(close[0])}?"
    return f"; known: {', '.join(map(spell, choices))}"


def _check_keys(table: dict[str, Any], cls: type, where: str = "") -> None:
    """``ValueError`` naming a key of ``table`` that is not a field of ``cls``
    (the dataclass it becomes), spelled the way the file writes it."""
    known = [f.name for f in fields(cls) if f.metadata.get("key", True)]
    for key, value in table.items():
        if key not in known:
            hint = _did_you_mean(key, known, partial(_spelled, value=value))
            raise ValueError(f"{where}{_spelled(key, value)} is unknown{hint}")


def _spelled(key: str, value: Any) -> str:
    """``key`` as the file writes it: ``[table]``, ``[[tables]]`` or ``key``."""
    if isinstance(value, dict):
        return f"[{key}]"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return f"[[{key}]]"
    return key


def _table(d: dict[str, Any], key: str, cls: type) -> dict[str, Any]:
    """The ``[key]`` table, whose keys are fields of ``cls``."""
    value = d.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a table, [{key}]")
    _check_keys(value, cls, f"[{key}]: ")
    return value


def _tables(d: dict[str, Any], key: str, cls: type) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each ``[[key]]`` table, whose keys are fields of ``cls``, and how errors name it."""
    value = d.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{key} must be tables, [[{key}]]")
    for n, table in enumerate(value, 1):
        what = f"[[{key}]] #{n}"
        _check_keys(table, cls, f"{what}: ")
        yield what, table


def _one_or_more(t: dict[str, Any], key: str, kind: type, noun: str) -> tuple[Any, ...]:
    """``truth.key``: one value or a non-empty list of them, each of ``kind``.

    >>> _one_or_more({"expect": ["page", "gap"]}, "expect", str, "a name")
    ('page', 'gap')
    >>> _one_or_more({"root_cause": []}, "root_cause", str, "a component")
    Traceback (most recent call last):
    ...
    ValueError: truth.root_cause must be a component or a non-empty list of them, not []
    """
    value = t[key]
    values = tuple(value) if isinstance(value, list) else (value,)
    if not values or not all(type(v) is kind for v in values):
        raise ValueError(f"truth.{key} must be {noun} or a non-empty list of them, not {value!r}")
    return values


def _expects(t: dict[str, Any], kind: str) -> tuple[str, ...]:
    """What Foreshock must do, every one of them: ``truth.expect``, or what
    the kind implies."""
    if "expect" not in t:
        return (_EXPECT_OF_KIND[kind],)
    expects = _one_or_more(t, "expect", str, "an expectation")
    for e in expects:
        if e not in EXPECTS:
            raise ValueError(f"truth.expect {e!r} is unknown{_did_you_mean(e, EXPECTS)}")
    if len(set(expects)) < len(expects):
        raise ValueError(f"truth.expect {list(expects)} names one twice")
    if "none" in expects and len(expects) > 1:
        raise ValueError(f"truth.expect {list(expects)}: 'none' cannot go with another")
    return expects


def _sev_path(t: dict[str, Any]) -> tuple[int, ...]:
    """The SEVs the incident is to pass through: ``truth.sev_path``, or
    ``truth.sev`` alone (the last of the path when both are given).

    >>> _sev_path({"sev_path": [3, 1], "sev": 1}), _sev_path({"sev": 2}), _sev_path({})
    ((3, 1), (2,), ())
    >>> _sev_path({"sev_path": [3, 1], "sev": 2})
    Traceback (most recent call last):
    ...
    ValueError: truth.sev 2 is not the last of truth.sev_path [3, 1]
    """
    path = _one_or_more(t, "sev_path", int, "a SEV") if "sev_path" in t else ()
    if "sev" in t:
        sev = t["sev"]
        if type(sev) is not int or sev not in SEVS:
            raise ValueError(f"truth.sev must be a SEV from 1 to 4, not {sev!r}")
        if path and path[-1] != sev:
            raise ValueError(f"truth.sev {sev} is not the last of truth.sev_path {list(path)}")
        path = path or (sev,)
    if any(s not in SEVS for s in path):
        raise ValueError(f"truth.sev_path must hold SEVs from 1 to 4, not {list(path)}")
    if any(b >= a for a, b in itertools.pairwise(path)):
        raise ValueError(
            f"truth.sev_path {list(path)} must escalate: each SEV below the one before"
            " (SEV-1 is the worst)"
        )
    return path


def _period(e: dict[str, Any], what: str) -> tuple[float | None, float | None]:
    """An effect's ``every_s`` and ``for_s``: both or neither, above zero, and
    on for less than the whole period.

    >>> _period({"every_s": 120, "for_s": 8}, "e"), _period({}, "e")
    ((120.0, 8.0), (None, None))
    >>> _period({"every_s": 120}, "[[effects]] #1")
    Traceback (most recent call last):
    ...
    ValueError: [[effects]] #1: every_s needs for_s too (on for for_s out of every every_s)
    """
    if ("every_s" in e) != ("for_s" in e):
        given, lacking = ("every_s", "for_s") if "every_s" in e else ("for_s", "every_s")
        raise ValueError(f"{what}: {given} needs {lacking} too (on for for_s out of every every_s)")
    if "every_s" not in e:
        return None, None
    every, length = (e[key] for key in ("every_s", "for_s"))
    for key, value in (("every_s", every), ("for_s", length)):
        if type(value) not in (int, float) or not value > 0:
            raise ValueError(f"{what}: {key} must be a positive number of seconds, not {value!r}")
    if length >= every:
        raise ValueError(f"{what}: for_s {length} must be shorter than every_s {every}")
    return float(every), float(length)


# Parameters that are shares of something: set to a value from 0 to 1.
_SHARES = {p for ps in PARAMS.values() for p in ps if p.endswith(("_ratio", "_share", "_rate"))}
_SHARES -= {"request_rate", "attempt_rate", "mention_rate"}


def _number(value: Any, what: str, low: float = 0.0, *, above: bool = False) -> float:
    """A finite number of at least ``low`` (``above``: more than ``low``).

    >>> _number(2, "batch_s", above=True)
    2.0
    >>> _number(float("nan"), "blips_per_hour")
    Traceback (most recent call last):
    ...
    ValueError: blips_per_hour must be a finite number of at least 0, not nan
    """
    number = type(value) in (int, float) and math.isfinite(value)
    if not number or value < low or (above and value == low):
        bound = f"{'above' if above else 'of at least'} {low:g}"
        raise ValueError(f"{what} must be a finite number {bound}, not {value!r}")
    return float(value)


def _frame_value(value: Any, param: str, mode: str, what: str) -> float:
    """A keyframe's value: a share is set from 0 to 1, a level set or a
    factor scaled by is never negative, an addition is any finite number."""
    if mode == "add":
        return _number(value, what, -math.inf)
    number = _number(value, what)
    if mode == "set" and param in _SHARES and number > 1:
        raise ValueError(f"{what} sets {param}, a share, to {number:g}: give it from 0 to 1")
    return number


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Effect:
    """A change to one simulator parameter on matching entities."""

    target: str
    param: str
    mode: str
    keyframes: tuple[tuple[float, float], ...]  # (epoch s, value)
    spread: float = 0.0  # value lag of the last entity behind the leader
    jitter_s: float = 0.0  # onset lag of the last entity behind the leader
    # Periodic: on for ``for_s`` out of every ``every_s`` from the first keyframe.
    every_s: float | None = None
    for_s: float | None = None


# A field no file writes: it is filled in from the keys that are written.
_DERIVED = {"key": False}


@dataclass(frozen=True)
class Truth:
    """What really happened, for scoring: times in epoch seconds.

    A file may name several acceptable root causes, the SEVs the incident
    is expected to pass through, and several expectations; ``root_cause``,
    ``sev`` and ``expect`` are then the first cause, the final SEV and the
    first expectation:

    >>> t = Truth(root_causes=("postgres", "mongodb"), sev_path=(3, 1))
    >>> t.root_cause, t.sev, t.expects
    ('postgres', 1, ('page',))
    >>> Truth(root_cause="db", sev=2).sev_path, Truth(expects=("page", "gap")).expect
    ((2,), 'page')
    """

    fault_start: float | None = None
    impact_start: float | None = None
    precursor_start: float | None = None
    root_cause: str | None = None
    sev: int | None = None
    sev_path: tuple[int, ...] = ()  # SEV at opening, then each escalation; the last is ``sev``
    affected: tuple[str, ...] = ()
    recovery: float | None = None
    kind: str = "fault"  # fault | decoy | gap
    expect: str = "page"  # page | warning | none | gap
    # Expected share of users failing their worst-hit journey, at the worst.
    impact_share: float | None = None
    region: str | None = None  # the one region the root cause fails in, if one
    root_causes: tuple[str, ...] = field(default=(), metadata=_DERIVED)  # any one is right
    expects: tuple[str, ...] = field(default=(), metadata=_DERIVED)  # every one must happen

    def __post_init__(self) -> None:
        fill = partial(object.__setattr__, self)
        if not self.root_causes and self.root_cause is not None:
            fill("root_causes", (self.root_cause,))
        fill("root_cause", self.root_causes[0] if self.root_causes else None)
        if not self.sev_path and self.sev is not None:
            fill("sev_path", (self.sev,))
        fill("sev", self.sev_path[-1] if self.sev_path else None)
        fill("expects", self.expects or (self.expect,))
        fill("expect", self.expects[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "expect": self.expect,
            "expects": list(self.expects),
            "impact_share": self.impact_share,
            "fault_start": self.fault_start,
            "impact_start": self.impact_start,
            "precursor_start": self.precursor_start,
            "root_cause": self.root_cause,
            "root_causes": list(self.root_causes),
            "sev": self.sev,
            "sev_path": list(self.sev_path),
            "affected": list(self.affected),
            "recovery": self.recovery,
            "region": self.region,
        }


@dataclass(frozen=True)
class Silence:
    """Entities matching ``target`` send nothing from ``start`` to ``end``."""

    target: str
    start: float
    end: float


@dataclass(frozen=True)
class Change:
    """A ``[[changes]]`` table: the keys it may hold (it becomes a ``ChangeEvent``)."""

    at: str
    component: str
    kind: str
    description: str = ""
    who: str = ""


def _change(table: dict[str, Any], what: str, when: Callable[[Any, str], float]) -> ChangeEvent:
    """The change event of a ``[[changes]]`` table; ``ValueError`` naming its fault."""
    for key in ("at", "component", "kind"):
        if key not in table:
            raise ValueError(f"{what}: missing key {key!r}")
    kind = table["kind"]
    if kind not in ChangeKind.__members__.values():
        hint = _did_you_mean(str(kind), [k.value for k in ChangeKind])
        raise ValueError(f"{what}: unknown kind {kind!r}{hint}")
    fields_ = {k: v for k, v in table.items() if k != "at"}
    change = ChangeEvent.validate(
        {"v": SCHEMA_VERSION, "time": when(table["at"], f"{what} at"), **fields_}
    )
    if isinstance(change, Rejection):
        raise ValueError(f"{what}: {change.detail}")
    return change


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
    truth: Truth  # the first fault's; ``truths`` holds every one
    effects: tuple[Effect, ...] = ()
    resolution_s: float = 1.0
    batch_s: float = 5.0
    blips_per_hour: float = 4.0
    maintenance: tuple[MaintenanceWindow, ...] = ()
    gaps: tuple[Silence, ...] = ()
    delivery: Delivery = field(default_factory=Delivery)
    changes: tuple[ChangeEvent, ...] = ()
    truths: tuple[Truth, ...] = field(default=(), metadata={"key": False})

    def __post_init__(self) -> None:
        if not self.truths:
            object.__setattr__(self, "truths", (self.truth,))

    @classmethod
    def from_dict(cls, d: dict[str, Any], topology: Topology | None = None) -> Scenario:
        """A scenario file's tables; ``ValueError`` naming the key at fault.
        Given a topology, every target must match some of its entities."""
        _check_keys(d, cls)
        start = parse_time(str(d["start"]), _EPOCH)
        since = datetime.fromtimestamp(start, UTC)
        # One [truth], or a [[truth]] table for each of several faults.
        if isinstance(d.get("truth"), list):
            tables = [t for _, t in _tables(d, "truth", Truth)]
            if not tables:
                raise ValueError("[[truth]] holds no table: give one per fault")
        else:
            tables = [_table(d, "truth", Truth)]
        t = tables[0]
        fault = parse_time(str(t["fault_start"]), since) if "fault_start" in t else None
        end = parse_time(str(d["end"]), since, fault)
        if end <= start:
            raise ValueError(f"end {d['end']!r} is {_utc(end)}, not after start {_utc(start)}")

        def when(text: Any, what: str, anchor: float | None = fault) -> float:
            """A time of the file, inside the scenario's span (an offset
            counts from ``anchor``: the first fault's start unless told)."""
            at = parse_time(str(text), since, anchor)
            if not start <= at <= end:
                raise ValueError(
                    f"{what} {str(text)!r} is {_utc(at)}, outside the scenario"
                    f" ({_utc(start)} to {_utc(end)})"
                )
            return at

        truths = tuple(_truth(t, since, when) for t in tables)
        effects = []
        for what, e in _tables(d, "effects", Effect):
            if not any(e["param"] in ps for ps in PARAMS.values()):
                hint = _did_you_mean(e["param"], itertools.chain(*PARAMS.values()))
                raise ValueError(f"{what}: unknown parameter {e['param']!r}{hint}")
            if e.get("mode", "set") not in MODES:
                raise ValueError(f"{what}: mode must be one of {MODES}")
            every, length = _period(e, what)
            mode = e.get("mode", "set")
            frames = tuple(
                (when(k, f"{what} keyframe"), _frame_value(v, e["param"], mode, f"{what} keyframe"))
                for k, v in e["keyframes"]
            )
            if any(b[0] < a[0] for a, b in itertools.pairwise(frames)):
                raise ValueError(f"{what} on {e['target']}/{e['param']}: keyframes out of order")
            effects.append(
                Effect(
                    target=e["target"],
                    param=e["param"],
                    mode=e.get("mode", "set"),
                    keyframes=frames,
                    spread=float(e.get("spread", 0.0)),
                    jitter_s=float(e.get("jitter_s", 0.0)),
                    every_s=every,
                    for_s=length,
                )
            )
        maintenance = []
        for what, m in _tables(d, "maintenance", MaintenanceWindow):
            maintenance.append(MaintenanceWindow.from_dict(m, partial(when, what=what)))
        gaps = []
        for what, g in _tables(d, "gaps", Silence):
            until = when(g["end"], f"{what} end") if "end" in g else float("inf")
            gaps.append(Silence(g["target"], when(g["start"], f"{what} start"), until))
        changes = [_change(c, what, when) for what, c in _tables(d, "changes", Change)]
        dv = _table(d, "delivery", Delivery)
        delivery = Delivery(
            float(dv.get("late_share", 0.0)),
            float(dv.get("max_delay_s", 0.0)),
            float(dv.get("jitter_s", 0.0)),
        )
        resolution = _number(d.get("resolution_s", 1.0), "resolution_s", above=True)
        scenario = cls(
            name=d["name"],
            description=d.get("description", ""),
            start=start,
            end=end,
            truth=truths[0],
            truths=truths,
            effects=tuple(effects),
            resolution_s=resolution,
            batch_s=_number(d.get("batch_s", 5.0), "batch_s", resolution),
            blips_per_hour=_number(d.get("blips_per_hour", 4.0), "blips_per_hour"),
            maintenance=tuple(maintenance),
            gaps=tuple(gaps),
            delivery=delivery,
            changes=tuple(changes),
        )
        if topology is not None:
            scenario.check(topology)
        return scenario

    @classmethod
    def from_file(cls, path: Path, topology: Topology | None = None) -> Scenario:
        """``ValueError`` naming the file and its fault if it cannot be used."""
        return parse_toml(path, lambda d: cls.from_dict(d, topology))

    def check(self, topology: Topology) -> None:
        """``ValueError`` naming a root cause or an affected component that
        ``topology`` lacks, an effect or a gap whose target matches no entity
        of it, an effect whose entities lack its parameter, or a change to
        what is no component or entity of it."""
        for key, named in (
            ("root_cause", [c for t in self.truths for c in t.root_causes]),
            ("affected", [c for t in self.truths for c in t.affected]),
        ):
            for component in named:
                if component not in topology.nodes:
                    hint = _did_you_mean(component, topology.nodes)
                    raise ValueError(
                        f"truth.{key} {component!r} is not a component of the topology{hint}"
                    )
        for truth in self.truths:
            if truth.region is not None and truth.region not in topology.regions:
                hint = _did_you_mean(truth.region, topology.regions)
                raise ValueError(
                    f"truth.region {truth.region!r} is no region of the topology{hint}"
                )
        for n, effect in enumerate(self.effects, 1):
            what = f"[[effects]] #{n}"
            hit = _hit(effect.target, topology, what)
            for family in sorted({topology.family_of[e] for e in hit}):
                if effect.param not in PARAMS[family]:
                    hint = _did_you_mean(effect.param, PARAMS[family])
                    raise ValueError(
                        f"{what}: {effect.target!r} is {family}, without {effect.param!r}{hint}"
                    )
            lacking = [
                e
                for e in hit
                if effect.param in DECLARED.get(topology.family_of[e], ())
                and effect.param not in topology.nodes[topology.node_of[e]].baseline
            ]
            if lacking:
                raise ValueError(
                    f"{what}: {lacking[0]!r} has no {effect.param!r}: only entities whose"
                    " topology baseline declares it do"
                )
        for n, gap in enumerate(self.gaps, 1):
            _hit(gap.target, topology, f"[[gaps]] #{n}")
        for n, change in enumerate(self.changes, 1):
            if topology.component_of(change.component) is None:
                close = difflib.get_close_matches(
                    change.component, [*topology.nodes, *topology.node_of], n=1
                )
                hint = _did_you_mean(change.component, close or topology.nodes)
                raise ValueError(
                    f"[[changes]] #{n}: {change.component!r} is no component or entity"
                    f" of the topology{hint}"
                )


def _truth(t: dict[str, Any], since: datetime, when: Callable[..., float]) -> Truth:
    """One fault's ``[truth]``; its offsets count from its own fault start."""
    fault = parse_time(str(t["fault_start"]), since) if "fault_start" in t else None

    def truth_time(key: str) -> float | None:
        return when(t[key], f"truth.{key}", fault) if key in t else None

    kind = t.get("kind", "fault" if "root_cause" in t else "decoy")
    if kind not in KINDS:
        raise ValueError(f"truth.kind must be one of {KINDS}")
    region = t.get("region")
    if region is not None and type(region) is not str:
        raise ValueError(f"truth.region must be a region's name, not {region!r}")
    return Truth(
        kind=kind,
        expects=_expects(t, kind),
        impact_share=float(t["impact_share"]) if "impact_share" in t else None,
        fault_start=truth_time("fault_start"),
        impact_start=truth_time("impact_start"),
        precursor_start=truth_time("precursor_start"),
        root_causes=_one_or_more(t, "root_cause", str, "a component") if "root_cause" in t else (),
        sev_path=_sev_path(t),
        affected=tuple(t.get("affected", ())),
        recovery=truth_time("recovery"),
        region=region,
    )


def _hit(target: str, topology: Topology, what: str) -> list[str]:
    hit = [e for e in topology.node_of if fnmatch.fnmatchcase(e, target)]
    if not hit:
        raise ValueError(f"{what}: target {target!r} matches no entity of the topology")
    return hit


class Library(dict[str, Scenario]):
    """Scenarios by name, and ``broken``: the files that could not be used,
    each as one line naming the file and why, by the name they meant to give
    (their file name without ``.toml`` when the file cannot be read)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: dict[str, str] = {}

    def find(self, name: str, topology: Topology | None = None) -> Scenario:
        """The scenario called ``name``, or the file ``name`` when it ends in
        ``.toml``; ``ValueError`` naming the file if it cannot be used,
        ``KeyError`` if there is no such scenario."""
        if name.endswith(".toml"):
            return Scenario.from_file(Path(name), topology)
        if name in self.broken and name not in self:
            raise ValueError(self.broken[name])
        return self[name]


def load_scenarios(directory: Path | None = None, topology: Topology | None = None) -> Library:
    """The shipped library and the scenarios of ``directory``, by name. A file
    that cannot be used is skipped and told in ``broken``, and so is a name
    that two files give (neither is used). Given a topology, every target must
    match some of its entities. ``ValueError`` if ``directory`` is not a
    folder of scenario files."""
    files = sorted(SCENARIO_DIR.glob("*.toml"))
    if directory is not None and directory.resolve() != SCENARIO_DIR.resolve():
        if not directory.is_dir():
            raise ValueError(f"{directory} is not a folder; give a folder of scenario files")
        own = sorted(directory.glob("*.toml"))
        if not own:
            raise ValueError(f"{directory} holds no scenario file (name.toml)")
        files += own
    library = Library()
    origin: dict[str, Path] = {}
    for path in files:
        try:
            scenario = Scenario.from_file(path, topology)
        except ValueError as exc:
            library.broken[path.stem] = str(exc)
            continue
        name = scenario.name
        if name in origin:
            library.pop(name, None)
            library.broken[name] = f"{path}: name {name!r} is also the name of {origin[name]}"
        else:
            origin[name] = path
            library[name] = scenario
    return library

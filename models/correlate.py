"""Correlation: the window reports of every source become incidents.

The rules, in the order ``CorrelateStage`` applies them each window:

- **Users hurt** (:func:`user_impact`): the share of users failing each
  journey, from the losses detection measured on user-facing series. Users
  are hurt (the stage pages) when several user-facing series agree, or one
  persists.
- **Corroboration** (:func:`corroborated`): a component's evidence counts
  only if it speaks for the component, not for one of its instances.
- **Root cause** (:func:`rank_root_causes`): anomalies, silences and recent
  change events laid onto the dependency graph, with the direction evidence
  travels (errors to callers, lost traffic to what is behind). The probable
  root cause is the failing component that explains the most of the others
  and has no failing dependency of its own, unless a change to a component
  shortly before its symptoms names it first. Each candidate carries its
  score and reasons.
- **Blast radius** (:func:`blast_radius`): what the root cause explains.

A telemetry gap is never an outage by itself; a component gone silent while
its callers fail is a candidate, and the incident lists the gaps inside it.
Announced maintenance (``config.maintenance``) is honoured: announced
components do not page and are not named root cause while their window runs.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from models.changes import ChangeEvent
from models.config import PipelineConfig
from models.evidence import Evidence, EvidenceKind, Suspect
from models.impact import Business, ImpactMeter
from models.incident import Incident, IncidentEvent, IncidentTracker, Status
from models.maintenance import under_maintenance
from models.report import Note, WindowReport
from models.severity import UserImpact
from models.snapshot import (
    Snapshotted,
    as_count,
    as_dict,
    as_finite,
    as_float,
    as_list,
    as_str,
    dict_of,
    load,
    rebuild,
)
from models.topology import Topology
from models.window import SeriesKey

# Components that can fail; journeys and observers only witness failures.
CAUSES = frozenset({"service", "datastore", "edge", "network"})


def _hhmmss(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _count(n: int, noun: str) -> str:
    """
    >>> _count(1, "entity"), _count(3, "component")
    ('1 entity', '3 components')
    """
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def _failing(topology: Topology, node: str, evidence: Iterable[Evidence]) -> bool:
    """Whether a component shows itself failing, not only its traffic falling
    or rising. Where the component reports its own aggregate series, one
    instance's lone anomaly (a pod's latency blip in a large fleet) is that
    instance's, not the component's: its failures must be corroborated."""
    failures = [ev for ev in evidence if not ev.kind.traffic]
    if not failures:
        return False
    return node not in topology.nodes[node].entities or corroborated(topology, node, failures)


def blast_radius(
    topology: Topology,
    root: str,
    affected: Iterable[str],
    starved: Iterable[str] = (),
    onsets: Mapping[str, float] | None = None,
    apart_s: float = 60.0,
) -> list[str]:
    """What ``root`` explains among the ``affected`` components: those that
    depend on it through affected components (errors and latency travel to
    callers that show them), and those of
    ``starved`` (showing only a change of traffic) that it depends on, whose
    traffic it cut or multiplied. With ``onsets``, a component whose own
    dependency failed apart from ``root`` is that failure's
    (``_failed_apart``), not ``root``'s."""
    behind = topology.upstream[root] & frozenset(starved)
    through = frozenset(affected)
    failing = through - frozenset(starved)

    def explained(n: str) -> bool:
        if n in behind:
            return True
        if not _explains(topology, root, n, through):
            return False
        return onsets is None or not _failed_apart(topology, root, n, failing, onsets, apart_s)

    return sorted(n for n in through if n != root and explained(n))


def _failed_apart(
    topology: Topology,
    root: str,
    node: str,
    failing: frozenset[str],
    onsets: Mapping[str, float],
    apart_s: float,
) -> bool:
    """Whether ``node`` went wrong after another failure it depends on, one
    apart from ``root``: a failing component ``node`` reaches (directly or
    through failing components) that does not itself reach ``root`` so,
    which went wrong ``apart_s`` or more after ``root`` and no later than
    ``node``. A cascade reaches callers within seconds; a caller that fails
    minutes later, just after another of its dependencies did, fails
    because of that one.

    >>> world = Topology.from_dict({"nodes": {n: {"family": "pods", "entities": [n],
    ...     "depends_on": d} for n, d in {"app": ["svc", "db2"], "svc": ["db"],
    ...     "db": [], "db2": []}.items()}})
    >>> late = {"db": 0.0, "svc": 10.0, "db2": 200.0, "app": 210.0}
    >>> _failed_apart(world, "db", "app", frozenset(late), late, 60.0)
    True
    >>> along = {"db": 0.0, "svc": 10.0, "db2": 30.0, "app": 40.0}
    >>> _failed_apart(world, "db", "app", frozenset(along), along, 60.0)
    False
    """
    start, own = onsets[root], onsets[node]
    for dep in _reach(topology, node, failing) & failing:
        if dep == root or root in _reach(topology, dep, failing):
            continue
        if start + apart_s <= onsets[dep] <= own:
            return True
    return False


def _explains(topology: Topology, root: str, node: str, affected: frozenset[str]) -> bool:
    """Whether a failure of ``root`` explains ``node``'s: ``node`` reaches it
    through affected components (a failure travels to callers through callers
    that show it), or depends on it further off and on nothing nearer that
    is affected (a journey fails while the services between show nothing).

    >>> world = Topology.from_dict({"nodes": {n: {"family": "pods", "entities": [n],
    ...     "depends_on": d} for n, d in {"a": ["b", "x"], "b": ["c"], "c": [], "x": []}.items()}})
    >>> [_explains(world, "c", "a", frozenset(seen)) for seen in ("abc", "ac", "acx")]
    [True, True, False]
    """
    near = _reach(topology, node, affected)
    return root in near or (root in topology.upstream[node] and not near & affected)


def _reach(topology: Topology, node: str, through: frozenset[str]) -> set[str]:
    """The components ``node`` depends on directly, or through components of ``through``."""
    found: set[str] = set()
    stack = [node]
    while stack:
        for dep in topology.nodes[stack.pop()].depends_on:
            if dep not in found:
                found.add(dep)
                if dep in through:
                    stack.append(dep)
    return found


def _change_before(
    changes: Iterable[ChangeEvent], topology: Topology, node: str, onset: float, lead_s: float
) -> ChangeEvent | None:
    """The latest change on ``node`` at most ``lead_s`` before its first symptom."""
    near = [
        c
        for c in changes
        if topology.component_of(c.component) == node and onset - lead_s <= c.time <= onset
    ]
    return max(near, key=lambda c: (c.time, c.to_state()), default=None)


def rank_root_causes(
    topology: Topology,
    onsets: dict[str, float],
    evidence: dict[str, list[Evidence]],
    changes: Iterable[ChangeEvent] = (),
    lead_s: float = 1800.0,
    apart_s: float = 60.0,
) -> list[Suspect]:
    """Rank anomalous components as probable root causes, best first.

    ``onsets`` maps each anomalous (or silent) component to its earliest
    active evidence. Errors, latency, exhaustion and silence travel to the
    callers of a failing component; traffic that falls or rises behind it is
    its symptom, never a cause (unless nothing else is wrong), and so is one
    instance's lone blip where the component has its own series. A suspect with
    a failing dependency is only a victim, unless it was changed shortly
    before its symptoms and the change explains that dependency's failure
    (``_blamed``). A change shortly before them leads the ranking;
    then the suspect explaining the most components; then the first to go
    wrong.
    """
    starved = {n for n in onsets if evidence.get(n) and not _failing(topology, n, evidence[n])}
    # What only its callers see fails too: not a starved bystander.
    seen = {n for n in starved if _failing_toward(topology, n, set(onsets) - starved, evidence)}
    starved -= seen
    # Traffic alone names a cause only when nothing else is wrong.
    failing = (set(onsets) - starved) or set(onsets)
    first = min(onsets.values(), default=0.0)
    suspects = []
    for node in sorted(failing):
        if topology.nodes[node].kind not in CAUSES:
            continue
        onset = onsets[node]
        change = _change_before(changes, topology, node, onset, lead_s)
        broken = topology.upstream[node] & failing
        if broken and not (change and _blamed(change, node, broken, onsets, evidence)):
            continue  # a victim of what it depends on, changed or not
        explains = blast_radius(topology, node, onsets, starved, onsets, apart_s)
        shown = tuple(sorted(evidence.get(node, ()), key=str))
        reasons = _reasons(node, onset, first, explains, shown, starved, evidence)
        if node in seen:
            reasons.insert(
                1, "its callers fail calling it while its own traffic fell: a failure only they see"
            )
        if change is not None:
            ahead = onset - change.time
            before = f"{ahead:.0f} s" if ahead < 120 else f"{ahead / 60:.0f} min"
            reasons.insert(0, f"{change}, {before} before its first symptom")
            # What it depends on and went wrong after the change, it overloaded.
            after = [d for d in topology.upstream[node] & failing if onsets[d] >= change.time]
            if after:
                overloaded = ", ".join(sorted(after))
                reasons.append(f"{overloaded}, which it depends on, went wrong after the change")
                explains = sorted({*explains, *after})
        score = round(len(explains) / max(1, len(onsets) - 1), 2)
        # Failing in one region only, where its entities are regional.
        regions = {topology.region_of(ev.entity) for ev in shown if not ev.kind.traffic}
        regions.discard(None)
        region = regions.pop() if len(regions) == 1 else None
        suspect = Suspect(
            node, onset, tuple(explains), shown, score, tuple(reasons), change, region
        )
        suspects.append(suspect)
    suspects.sort(key=lambda s: (s.change is None, -len(s.explains), s.onset, s.node))
    return suspects


def _blamed(
    change: ChangeEvent,
    node: str,
    broken: Collection[str],
    onsets: Mapping[str, float],
    evidence: Mapping[str, list[Evidence]],
) -> bool:
    """Whether a change to ``node`` explains the failing components it
    depends on (``broken``), and not they its symptoms: they went wrong
    after the change, and either ``node`` went wrong no later than they did,
    or one of them took a surge of traffic (the change overloaded it). A
    deploy minutes before a database fails on its own, or one during an
    outage, is no cause of it.

    >>> from models.changes import ChangeKind
    >>> deploy = ChangeEvent(100.0, "app", ChangeKind.DEPLOY)
    >>> db_first = {"app": 500.0, "db": 480.0}
    >>> surged = {"db": [Evidence("db", "request_rate", EvidenceKind.SURGE)]}
    >>> [_blamed(deploy, "app", ["db"], db_first, seen) for seen in ({}, surged)]
    [False, True]
    >>> _blamed(deploy, "app", ["db"], {"app": 470.0, "db": 480.0}, {})
    True
    """
    after = [d for d in broken if onsets[d] >= change.time]
    if not after:
        return False
    surged = any(ev.kind is EvidenceKind.SURGE for d in after for ev in evidence.get(d, ()))
    return surged or onsets[node] <= min(onsets[d] for d in broken)


def _failing_toward(
    topology: Topology, node: str, failing: set[str], evidence: dict[str, list[Evidence]]
) -> bool:
    """Whether ``node``'s traffic fell while every caller of it, several,
    fails with errors at its usual traffic, one of them with nothing else it
    depends on failing: requests that never arrive (an expired certificate, a refused
    connection) show at the callers only. One caller failing while another
    is fine is that caller's own fault, and the traffic it no longer sends a
    symptom; with one caller only, the two cannot be told apart, and the
    caller, which shows the failure, is the suspect.

    >>> world = Topology.from_dict({"nodes": {n: {"family": "pods", "entities": [n],
    ...     "depends_on": d} for n, d in {"api": ["auth", "db"], "web": ["auth", "db"],
    ...     "auth": [], "db": []}.items()}})
    >>> seen = {"auth": [Evidence("auth", "request_rate", EvidenceKind.DROP)],
    ...         "api": [Evidence("api", "error_rate")], "web": [Evidence("web", "error_rate")]}
    >>> both, with_db = {"api", "web"}, {"api", "web", "db"}
    >>> _failing_toward(world, "auth", both, seen), _failing_toward(world, "auth", with_db, seen)
    (True, False)
    """
    if not any(ev.kind is EvidenceKind.DROP for ev in evidence.get(node, ())):
        return False
    callers = [n.id for n in topology.nodes.values() if node in n.depends_on]
    # A caller whose own traffic fell calls less: that is no failure toward it.
    kinds = [{ev.kind for ev in evidence.get(c, ())} for c in callers]
    toward = [EvidenceKind.ANOMALY in k and EvidenceKind.DROP not in k for k in kinds]
    if len(callers) < 2 or not all(toward):
        return False
    return any(not (set(topology.nodes[c].depends_on) - {node}) & failing for c in callers)


def _reasons(
    node: str,
    onset: float,
    first: float,
    explains: list[str],
    shown: tuple[Evidence, ...],
    starved: set[str],
    evidence: dict[str, list[Evidence]],
) -> list[str]:
    """Why a suspect is one, in words an on-call engineer reads first."""
    # The telling evidence first: the component's own series, then anomalies.
    own = sorted(
        shown,
        key=lambda ev: (ev.kind.traffic, ev.entity != node, ev.kind is EvidenceKind.CREEP, str(ev)),
    )
    silent = [ev for ev in own if ev.kind is EvidenceKind.GAP]
    if silent:
        lead = f"telemetry silent from {_hhmmss(onset)} ({_count(len(silent), 'entity')})"
    else:
        lead = f"{', '.join(map(str, own[:3])) or node} from {_hhmmss(onset)}"
    reasons = [lead + (", first" if onset <= first else "")]
    callers = [n for n in explains if n not in starved]
    if callers:
        reasons.append(f"{_count(len(callers), 'component')} depending on it went wrong after it")
    for kind, verb in ((EvidenceKind.DROP, "fell"), (EvidenceKind.SURGE, "rose")):
        moved = [n for n in explains if n in starved and any(e.kind is kind for e in evidence[n])]
        if moved:
            reasons.append(f"traffic {verb} at {_count(len(moved), 'component')} behind it")
    return reasons


def corroborated(topology: Topology, node: str, evidence: Iterable[Evidence]) -> bool:
    """Whether a component's evidence speaks for the component, not for one
    of its instances: its own aggregate series, a user-facing series, a
    forecast, its silence, or several metrics of one instance."""
    metrics: dict[str, set[str]] = defaultdict(set)
    for ev in evidence:
        if ev.entity == node or (ev.entity, ev.metric) in topology.journey_of:
            return True
        if ev.kind in (EvidenceKind.EXHAUSTION, EvidenceKind.GAP):
            return True  # a forecast, or the silence of most of the component
        metrics[ev.entity].add(ev.metric)
    return any(len(m) >= 2 for m in metrics.values())


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def user_impact(
    topology: Topology, losses: dict[SeriesKey, float], located: str | None = None
) -> UserImpact:
    """Share of users failing each journey, overall and per region.

    A journey fails for a user if any of its stages fails: in region r,
    1 - (1 - global stages) × (1 - r's own stages). Journeys and regions
    weigh equally. When the root cause fails in one region (``located``),
    the loss the global stages measure is that region's users'.

    >>> from models.topology import Topology
    >>> world = Topology.from_dict({"regions": ["eu", "us"], "nodes": {"api": {
    ...     "family": "pods", "entities": ["api"], "user_facing": ["api:error_rate"]}}})
    >>> def by_region(located=None):
    ...     impact = user_impact(world, {("api", "error_rate"): 0.25}, located)
    ...     return impact.regions, impact.share
    >>> by_region()
    ({'eu': 0.25, 'us': 0.25}, 0.25)
    >>> by_region("eu")
    ({'eu': 0.5, 'us': 0.0}, 0.25)
    """
    ok: dict[str, dict[str | None, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, journey in topology.journey_of.items():
        ok[journey][topology.region_of(key[0])].append(1 - losses.get(key, 0.0))
    regions = topology.regions or ("global",)
    journeys: dict[str, float] = {}
    per_region: dict[str, float] = dict.fromkeys(regions, 0.0)
    for journey, stages in ok.items():
        everywhere = _mean(stages.get(None, [1.0]))
        spread = dict.fromkeys(regions, everywhere)
        if located in spread:
            spread = dict.fromkeys(regions, 1.0)
            spread[located] = max(0.0, 1 - (1 - everywhere) * len(regions))
        lost_in = {r: 1 - spread[r] * _mean(stages.get(r, [1.0])) for r in regions}
        journeys[journey] = _mean(list(lost_in.values()))
        for r, lost in lost_in.items():
            per_region[r] = max(per_region[r], lost)
    return UserImpact(journeys, per_region, len(regions))


class CorrelateStage(Snapshotted):
    """Joins the window reports of every source and tracks incidents.

    A window is correlated once every source still reporting has decided it,
    so workers may run at different paces. A source that has gone quiet is
    ``retire``d by its engine, so that the others are not held up.
    """

    def __init__(
        self, topology: Topology, business: Business, config: PipelineConfig | None = None
    ) -> None:
        self.topology = topology
        self.config = config or PipelineConfig()
        self.tracker = self._lane(business)
        # Open incidents apart from the tracker's: each a fault its root cause
        # does not explain, paging on users of its own (``_split``).
        self.apart: list[IncidentTracker] = []
        self.progress: dict[str, float] = {}  # source -> start of its latest window
        self.pending: dict[float, dict[str, WindowReport]] = {}  # window -> source -> report
        self._pending_starts: list[float] = []  # the keys of ``pending``, as a heap
        self.correlated_until = float("-inf")  # start of the latest window correlated
        self.stale_reports = 0  # late, or delivered again
        # Active anomalies and warnings, grouped by component.
        self._active: dict[str, dict[Evidence, float]] = defaultdict(dict)  # node -> onsets
        # Components anomalous since the incident opened, with their first onset:
        # the root cause is judged on the whole cascade, not on what is still red.
        self._touched: dict[str, dict[Evidence, float]] = {}
        self._hurting_windows = 0
        self._lossy: dict[SeriesKey, int] = {}  # series -> windows in a row it lost users
        # The users lost in the latest window correlated, and early looks at
        # windows after it: window start -> (latest look, losses).
        self._losses: dict[SeriesKey, float] = {}
        self._early: dict[float, tuple[float, dict[SeriesKey, float]]] = {}
        self.gaps: dict[str, float] = {}  # entity -> start of its telemetry gap
        self.changes: set[ChangeEvent] = set()  # recent changes, for the ranking

    def _lane(self, business: Business) -> IncidentTracker:
        return IncidentTracker(
            ImpactMeter(business),
            resolve_after_s=self.config.resolve_after_s,
            reopen_within_s=self.config.reopen_within_s,
        )

    @property
    def open_incidents(self) -> list[Incident]:
        """Every incident not resolved, the oldest first."""
        found = [inc for t in (self.tracker, *self.apart) if (inc := _open(t))]
        return sorted(found, key=lambda i: (i.opened_at, i.id))

    @property
    def blind(self) -> dict[str, float]:
        """Components gone silent, and since when: those with half their
        entities or more in a telemetry gap, or the one entity named after them."""
        return {node: min(gaps.values()) for node, gaps in self._silent(self.dark).items()}

    def _silent(self, dark: dict[str, float]) -> dict[str, dict[Evidence, float]]:
        """The silences of each component gone silent, as evidence: in a
        region gone ``dark``, each component's silent entities there."""
        by_node: dict[str, dict[Evidence, float]] = defaultdict(dict)
        for entity, since in self.gaps.items():
            by_node[self.topology.node_of[entity]][Evidence(entity, "", EvidenceKind.GAP)] = since
        return {
            node: gaps
            for node, gaps in by_node.items()
            if 2 * len(gaps) >= len(self.topology.nodes[node].entities)
            or Evidence(node, "", EvidenceKind.GAP) in gaps
            or any(self.topology.region_of(ev.entity) in dark for ev in gaps)
        }

    @property
    def dark(self) -> dict[str, float]:
        """Regions gone dark, and since when: most of a region's own entities
        silent while users' traffic falls elsewhere or outage mentions rise
        after. A region's telemetry stopping alone (its collector down) is a
        gap, not an outage."""
        dark = {}
        for region, entities in self.topology.in_region.items():
            silent = sorted(self.gaps[e] for e in entities if e in self.gaps)
            if not silent or 2 * len(silent) < len(entities):
                continue
            since = silent[len(silent) // 2]  # when most of it had gone
            if self._users_feel(region, since - self.config.failing_together_s):
                dark[region] = since
        return dark

    def _users_feel(self, region: str, after: float) -> bool:
        """Whether, since ``after``, users' traffic fell outside ``region``
        (they cannot reach it, or are sent elsewhere and fail) or outage
        mentions rose: what tells a region gone dark from a collector down."""
        topology = self.topology
        for node, evidence in self._active.items():
            kind = topology.nodes[node].kind
            for ev, onset in evidence.items():
                if onset < after:
                    continue
                if kind == "observer" and not ev.kind.traffic:
                    return True
                facing = bool(topology.nodes[node].user_facing)
                if (
                    facing
                    and ev.kind is EvidenceKind.DROP
                    and topology.region_of(ev.entity) != region
                ):
                    return True
        return False

    def to_state(self) -> dict[str, Any]:
        """Learned state as plain data, with the business it measures impact for.

        Reports still waiting are left out: an engine that restores a snapshot
        redelivers every report it has not seen correlated (the Faust app
        acknowledges a report only then). Every source has decided at least
        the windows correlated so far.
        """
        return {
            "business": self.tracker.meter.business.to_state(),
            "tracker": self.tracker.to_state(),
            "apart": [lane.to_state() for lane in self.apart],
            "lossy": [[*key, n] for key, n in self._lossy.items()],
            "progress": {s: min(p, self.correlated_until) for s, p in self.progress.items()},
            "correlated_until": self.correlated_until,
            "stale_reports": self.stale_reports,
            "active": _by_node(self._active),
            "touched": _by_node(self._touched),
            "hurting_windows": self._hurting_windows,
            "losses": _losses_state(self._losses),
            "early": [[s, at, _losses_state(lost)] for s, (at, lost) in self._early.items()],
            "gaps": dict(self.gaps),
            "changes": sorted(c.to_state() for c in self.changes),
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        topology: Topology,
        config: PipelineConfig,
        business: Business | None = None,
    ) -> CorrelateStage:
        """The stage holding ``state``, run with this topology and these
        settings; with the business recorded in the state, unless given."""
        if business is None:
            business = Business.from_state(as_dict(state["business"]))
        stage = cls(topology, business, config)
        stage.tracker = IncidentTracker.from_state(
            as_dict(state["tracker"]),
            business,
            resolve_after_s=config.resolve_after_s,
            reopen_within_s=config.reopen_within_s,
        )
        stage.apart = [
            IncidentTracker.from_state(
                as_dict(lane),
                business,
                resolve_after_s=config.resolve_after_s,
                reopen_within_s=config.reopen_within_s,
            )
            for lane in as_list(state.get("apart", []))
        ]
        for item in as_list(state.get("lossy", [])):
            entity, metric, n = as_list(item, 3)
            stage._lossy[(as_str(entity), as_str(metric))] = as_count(n)
        stage.progress = dict_of(as_float, state["progress"])
        stage.correlated_until = as_float(state["correlated_until"])
        stage.stale_reports = as_count(state["stale_reports"])
        stage._active = defaultdict(dict, _from_nodes(topology, state["active"]))
        stage._touched = _from_nodes(topology, state["touched"])
        stage._hurting_windows = as_count(state["hurting_windows"])
        stage._losses = _losses_from(topology, state["losses"])
        for raw in as_list(state["early"]):
            start, at, lost = as_list(raw, 3)
            stage._early[as_finite(start)] = (as_finite(at), _losses_from(topology, lost))
        stage.gaps = dict_of(as_finite, state["gaps"])
        stage.changes = {ChangeEvent.from_state(c) for c in as_list(state["changes"])}
        return stage

    @classmethod
    def restore(
        cls,
        snapshot: bytes,
        topology: Topology,
        config: PipelineConfig,
        business: Business | None = None,
    ) -> CorrelateStage:
        """The stage in a snapshot, or ``IncompatibleSnapshot`` saying why."""
        state = load(snapshot, cls.__name__)
        return rebuild(cls.__name__, lambda: cls.from_state(state, topology, config, business))

    @property
    def done(self) -> float:
        """A report is done with once its window is correlated."""
        return self.correlated_until

    def add(self, report: WindowReport) -> list[IncidentEvent]:
        """Take one report; correlate every window that all sources have decided.

        A report for a window already correlated, or one seen before, changes
        nothing: delivery may repeat after a restart. An early report only
        raises the SEV of an open incident (``_escalate_early``).
        """
        if report.early:
            return self._add_early(report)
        # Even a stale report tells that its source is alive and how far it is.
        self.progress[report.source] = max(
            self.progress.get(report.source, report.start), report.start
        )
        if report.start <= self.correlated_until:
            self.stale_reports += 1
            return []
        if report.start not in self.pending:
            heapq.heappush(self._pending_starts, report.start)
        self.pending.setdefault(report.start, {}).setdefault(report.source, report)
        return self._drain()

    def record_change(self, change: ChangeEvent) -> None:
        """Keep a change event for judging root causes. Any order will do, a
        change delivered again is kept once, and one older than any symptom
        it could explain is forgotten."""
        if self.topology.component_of(change.component) is None:
            raise ValueError(f"{change.component!r} is no component or entity of the topology")
        if change.time >= self._change_horizon():
            self.changes.add(change)

    def expect(self, sources: Iterable[str]) -> None:
        """Wait for these sources too, before they first report."""
        for source in sources:
            self.progress.setdefault(source, float("-inf"))

    def holds_back(self, source: str, reporting: Iterable[str]) -> bool:
        """Whether waiting for a quiet ``source`` holds back sources still
        ``reporting``: they have decided windows after its last. One done
        with its part of a finished stream holds back no one."""
        last = self.progress.get(source, float("-inf"))
        return any(self.progress.get(s, float("-inf")) > last for s in reporting)

    def retire(self, source: str) -> list[IncidentEvent]:
        """Stop waiting for a source that has gone quiet. Once every source
        has, the windows still waiting are correlated: nobody is left to
        complete them, and their reports would otherwise wait for ever."""
        self.progress.pop(source, None)
        return self._drain()

    def finish(self) -> list[IncidentEvent]:
        """Correlate every window still waiting: the end of a finite stream."""
        self.progress.clear()
        return self._drain()

    def _drain(self) -> list[IncidentEvent]:
        """Correlate the windows every source waited for has decided: with
        none left to wait for, every window still waiting."""
        until = min(self.progress.values(), default=float("inf"))
        events: list[IncidentEvent] = []
        # Oldest first, without scanning every window still waiting: behind
        # a slow source thousands may wait, and each report drains.
        while self._pending_starts and self._pending_starts[0] <= until:
            start = heapq.heappop(self._pending_starts)
            reports = [r for _, r in sorted(self.pending.pop(start).items())]
            events.extend(self._correlate(reports))
            self.correlated_until = start
            self._early = {s: early for s, early in self._early.items() if s > start}
            events.extend(self._escalate_early())
        return events

    def _add_early(self, report: WindowReport) -> list[IncidentEvent]:
        if report.start <= self.correlated_until:
            self.stale_reports += 1
            return []
        at, losses = self._early.get(report.start, (report.decided_at, {}))
        merged = {**losses, **report.losses}
        self._early[report.start] = (max(at, report.decided_at), merged)
        return self._escalate_early()

    def _escalate_early(self) -> list[IncidentEvent]:
        """Raise an open incident's SEV from the early looks at the window
        after the latest correlated, over that window's losses: so that in
        any engine escalations come in window order, and no sooner than
        the window before is known."""
        following = self.correlated_until + self.config.window_s
        inc = self.tracker.current
        if following not in self._early or inc is None or inc.status is not Status.OPEN:
            return []
        if inc.sev == 1:  # none higher
            return []
        at, early = self._early[following]
        quiet = under_maintenance(self.config.maintenance, following)
        losses = self._outside_apart(_unquiet(self.topology, {**self._losses, **early}, quiet))
        return self.tracker.escalate(at, user_impact(self.topology, losses, inc.root_region))

    def _note(self, note: Note) -> None:
        if note.evidence.kind is EvidenceKind.GAP:
            # A gap is no evidence of failure: it is kept apart from anomalies.
            if note.active:
                self.gaps[note.entity] = note.onset
            else:
                self.gaps.pop(note.entity, None)
            return
        node = self.topology.node_of[note.entity]
        if note.active:
            self._active[node][note.evidence] = note.onset
            self._touched.setdefault(node, {}).setdefault(note.evidence, note.onset)
        else:
            self._active[node].pop(note.evidence, None)
            if not self._active[node]:
                del self._active[node]

    def _correlate(self, reports: list[WindowReport]) -> list[IncidentEvent]:
        at = max(r.decided_at for r in reports)
        losses: dict[SeriesKey, float] = {}
        for report in reports:
            for note in report.notes:
                self._note(note)
            losses.update(report.losses)
        # Announced maintenance: its components neither hurt users nor cause.
        quiet = under_maintenance(self.config.maintenance, reports[0].start)
        # Users of a region gone dark are failing, whatever its silence says.
        dark = self.dark
        for region in dark:
            for key in self.topology.journey_of:
                if key[0] in self.gaps and self.topology.region_of(key[0]) == region:
                    losses[key] = 1.0
        losses = self._losses = _unquiet(self.topology, losses, quiet)
        self._lossy = {key: self._lossy.get(key, 0) + 1 for key in losses}
        self._forget_changes()
        # Users hurt outside the incidents apart: the tracker's to judge.
        mine = self._outside_apart(losses)
        self._hurting_windows = self._hurting_windows + 1 if mine else 0
        paging = self._pages(mine, self._hurting_windows >= self.config.page_persist_windows)
        failing = self._failing_dependency(quiet)
        current = self.tracker.current
        idle = _open(self.tracker) is None
        if idle:
            # Only a failure that began now opens one: not one that outlived
            # the incident it opened.
            if failing is not None:
                began_after = -float("inf") if current is None else current.opened_at
                if not (began_after < failing[1] >= at - self.config.failing_together_s):
                    failing = None
            if not paging and failing is None:
                if not self.apart:
                    return []
            else:
                self._touched = {node: dict(ev) for node, ev in self._active.items()}
        # A component gone silent while its callers fail may be what failed,
        # and stays a suspect when its telemetry comes back.
        silent = self._silent(dark)
        for node, gaps in silent.items():
            for gap, since in gaps.items():
                self._touched.setdefault(node, {}).setdefault(gap, since)
        touched = {n: ev for n, ev in self._touched.items() if n not in quiet and ev}
        # One pod's latency wobbling during an outage (the harmless blips of a
        # large fleet) is no evidence against a whole component.
        strong = {
            n: ev for n, ev in touched.items() if n in silent or corroborated(self.topology, n, ev)
        }
        touched = strong or touched
        onsets = {node: min(ev.values()) for node, ev in touched.items()}
        evidence = {node: list(ev) for node, ev in touched.items()}
        lead = self.config.change_lead_s
        cascade = self.config.cascade_s
        suspects = rank_root_causes(self.topology, onsets, evidence, self.changes, lead, cascade)
        unseen = {e: self.topology.node_of[e] for e in self.gaps}
        events = self._step_apart(at, suspects, losses, unseen)
        if not idle:
            assert current is not None
            events += self._split(at, current, suspects, losses, unseen)
        # What only an incident apart explains is no suspect of the tracker's,
        # and the root cause the tracker holds yields only to what explains it.
        if not idle:
            assert current is not None
            suspects.sort(key=lambda s: not current.holds(s))
        suspects = [s for s in suspects if not self._apart_only(s)]
        mine = self._outside_apart(losses)
        if paging:  # still hurt, once what the incidents apart took is left out
            paging = self._pages(mine, self._hurting_windows >= self.config.page_persist_windows)
        if idle and not paging and failing is None:
            return events
        impact = user_impact(self.topology, mine)
        blast = list(suspects[0].explains) if suspects else []
        if suspects and suspects[0].region:
            impact = user_impact(self.topology, mine, suspects[0].region)
        dependency = None
        if failing is not None:
            dependency = f"critical dependency {failing[0]} failing, users not yet affected"
        events += self.tracker.step(at, paging, impact, suspects, blast, unseen, dependency)
        return events + self._merge(at)

    def _pages(self, losses: dict[SeriesKey, float], persisted: bool) -> bool:
        """Whether ``losses`` hurt users enough to page: several user-facing
        series agree, or one persists, and enough users fail."""
        severity = self.tracker.meter.business.severity
        share = user_impact(self.topology, losses).share
        return (len(losses) >= 2 or persisted) and share >= severity.sev3_affected

    def _forget_resolved(self) -> None:
        self.apart = [t for t in self.apart if _open(t)]

    def _apart_open(self) -> list[Incident]:
        return [lane.current for lane in self.apart if lane.current is not None]

    def _tracked(self) -> Incident | None:
        """The tracker's incident, while open: where it and an incident apart
        both explain a component or a suspect, the tracker's comes first."""
        return _open(self.tracker)

    def _held(self) -> set[str]:
        """The components the tracker's open incident holds."""
        inc = self._tracked()
        return set() if inc is None else inc.members

    def _apart_only(self, suspect: Suspect) -> bool:
        """Whether ``suspect`` belongs to an incident apart, not the tracker's."""
        inc = self._tracked()
        if inc is not None and inc.root_cause is not None and inc.holds(suspect):
            return False
        return any(i.holds(suspect) for i in self._apart_open())

    def _outside_apart(self, losses: dict[SeriesKey, float]) -> dict[SeriesKey, float]:
        """``losses`` but those of components an incident apart holds."""
        theirs = {n for inc in self._apart_open() for n in inc.members} - self._held()
        node_of = self.topology.node_of
        return {k: v for k, v in losses.items() if node_of[k[0]] not in theirs}

    def _own(
        self, members: set[str], losses: dict[SeriesKey, float]
    ) -> tuple[dict[SeriesKey, float], bool]:
        """The losses on ``members``' user-facing series, and whether one persisted."""
        node_of = self.topology.node_of
        own = {k: v for k, v in losses.items() if node_of[k[0]] in members}
        persisted = any(self._lossy[k] >= self.config.page_persist_windows for k in own)
        return own, persisted

    def _step_apart(
        self,
        at: float,
        suspects: list[Suspect],
        losses: dict[SeriesKey, float],
        unseen: dict[str, str],
    ) -> list[IncidentEvent]:
        """Advance each incident apart on its own suspects and users; forget
        those resolved."""
        events = []
        held = self._held()
        for lane in self.apart:
            inc = lane.current
            assert inc is not None
            theirs = [s for s in suspects if inc.holds(s) and self._apart_only(s)]
            # What it explains now, while users hurt, and no other incident holds.
            now = self._active.keys() - held if inc.status is Status.OPEN else set()
            blast = [n for n in theirs[0].explains if n in now] if theirs else []
            members = (inc.members | {s.node for s in theirs[:1]} | set(blast)) - held
            own, persisted = self._own(members, losses)
            region = theirs[0].region if theirs else inc.root_region
            impact = user_impact(self.topology, own, region)
            paging = self._pages(own, persisted)
            events += lane.step(at, paging, impact, theirs, blast, unseen)
        self._forget_resolved()
        return events

    def _split(
        self,
        at: float,
        current: Incident,
        suspects: list[Suspect],
        losses: dict[SeriesKey, float],
        unseen: dict[str, str],
    ) -> list[IncidentEvent]:
        """Open an incident apart for each failing component that no open
        incident explains, nor it them, whose own users page: two unrelated
        faults at once are two incidents, each with its SEV and root cause."""
        if current.root_cause is None:
            return []  # the tracker's incident may still explain anything
        taken = {n for inc in [current, *self._apart_open()] for n in inc.members}
        events = []
        for suspect in suspects:
            opened = [current, *self._apart_open()]
            if suspect.node in taken or any(i.holds(suspect) for i in opened):
                continue
            members = {suspect.node, *suspect.explains} - taken
            own, persisted = self._own(members, losses)
            if not self._pages(own, persisted):
                continue
            lane = self._lane(self.tracker.meter.business)
            impact = user_impact(self.topology, own, suspect.region)
            theirs = [suspect, *(s for s in suspects if s.node in suspect.explains)]
            blast = sorted(members - {suspect.node})
            events += lane.step(at, True, impact, theirs, blast, unseen)
            self.apart.append(lane)
            taken |= members
        return events

    def _merge(self, at: float) -> list[IncidentEvent]:
        """End the newer of two open incidents whose root causes evidence
        connects (one explains the other): the older goes on."""
        events = []
        lanes = [self.tracker, *self.apart]
        for newer in sorted(lanes, key=lambda t: t.current.opened_at if t.current else 0.0)[::-1]:
            inc = _open(newer)
            if inc is None:
                continue
            older = [
                other
                for t in lanes
                if t is not newer
                and (other := _open(t))
                and (other.opened_at, other.id) < (inc.opened_at, inc.id)
                and _connected(other, inc)
            ]
            if older:
                events.append(newer.merge(at, older[0]))
        self._forget_resolved()
        return events

    def _failing_dependency(self, quiet: Iterable[str] = ()) -> tuple[str, float] | None:
        """A component that user journeys depend on, showing itself failing
        on several metrics that went wrong within ``failing_together_s`` of
        each other (one of them the harmful way, not only traffic), and since
        when: the earliest such component."""
        together = self.config.failing_together_s
        found = []
        for node in sorted(self.topology.critical & self._active.keys() - set(quiet)):
            evidence = self._active[node]
            if not _failing(self.topology, node, evidence):
                continue
            first: dict[str, tuple[float, bool]] = {}  # metric -> its onset, harmful?
            for ev, onset in sorted(evidence.items(), key=lambda item: item[1]):
                first.setdefault(ev.metric, (onset, not ev.kind.traffic))
            onsets = sorted(first.values())
            since = [
                later
                for i, (later, harmful) in enumerate(onsets)
                for earlier, harmed in onsets[:i]
                if later - earlier <= together and (harmful or harmed)
            ]
            if since:
                found.append((min(since), node))
        return None if not found else min(found)[::-1]

    def _change_horizon(self) -> float:
        """The oldest a change may be and still explain a symptom that is
        active, or the open incident's."""
        earliest = [t for evs in self._active.values() for t in evs.values()]
        if _open(self.tracker) is not None:
            earliest += [t for evs in self._touched.values() for t in evs.values()]
        return min([self.correlated_until, *earliest]) - self.config.change_lead_s

    def _forget_changes(self) -> None:
        horizon = self._change_horizon()
        self.changes = {c for c in self.changes if c.time >= horizon}


def _open(tracker: IncidentTracker) -> Incident | None:
    """A tracker's latest incident, while it is not resolved."""
    inc = tracker.current
    return None if inc is None or inc.status is Status.RESOLVED else inc


def _connected(a: Incident, b: Incident) -> bool:
    """Whether one incident's root cause explains the other's (or they share it)."""
    if a.root_cause is None or b.root_cause is None:
        return False
    return a.root_cause in b.members or b.root_cause in a.members


def _unquiet(
    topology: Topology, losses: dict[SeriesKey, float], quiet: frozenset[str]
) -> dict[SeriesKey, float]:
    """Losses but those of the ``quiet`` components (under announced maintenance)."""
    node_of = topology.node_of
    return {k: v for k, v in losses.items() if node_of[k[0]] not in quiet}


def _losses_state(losses: dict[SeriesKey, float]) -> list[list[Any]]:
    return [[entity, metric, lost] for (entity, metric), lost in losses.items()]


def _losses_from(topology: Topology, raw: Any) -> dict[SeriesKey, float]:
    """Losses read back: shares of users, of user-facing series the topology holds."""
    losses = {}
    for item in as_list(raw):
        entity, metric, lost = as_list(item, 3)
        key = (as_str(entity), as_str(metric))
        if key not in topology.journey_of:
            raise ValueError(f"a loss on {key}, which is no user-facing series")
        share = as_finite(lost)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a loss of {share}, not a share of users")
        losses[key] = share
    return losses


def _by_node(onsets: dict[str, dict[Evidence, float]]) -> dict[str, list[list[Any]]]:
    """Evidence onsets by component, as ``{node: [[entity, metric, kind, onset], ...]}``."""
    return {node: [[*ev.to_list(), t] for ev, t in evs.items()] for node, evs in onsets.items()}


def _from_nodes(topology: Topology, raw: Any) -> dict[str, dict[Evidence, float]]:
    out: dict[str, dict[Evidence, float]] = {}
    for node, items in as_dict(raw).items():
        if node not in topology.nodes:
            raise ValueError(f"component {node!r} is not in the topology")
        evs = out[node] = {}
        for item in as_list(items):
            entity, metric, kind, onset = as_list(item, 4)
            evs[Evidence.from_list([entity, metric, kind])] = as_finite(onset)
    return out

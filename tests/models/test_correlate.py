"""Root cause and blast radius on the dependency graph."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.changes import ChangeEvent, ChangeKind
from models.correlate import CAUSES, blast_radius, rank_root_causes
from models.evidence import Evidence, EvidenceKind
from models.topology import Topology


def build(edges, kinds=None):
    kinds = kinds or {}
    return Topology.from_dict(
        {
            "nodes": {
                name: {
                    "family": "pods",
                    "kind": kinds.get(name, "service"),
                    "entities": [name],
                    "depends_on": deps,
                }
                for name, deps in edges.items()
            }
        }
    )


#   journey -> edge -> svc -> db
#                         \-> cache
#   other -> db            observer (alone)
SMALL = build(
    {
        "journey": ["edge"],
        "edge": ["svc"],
        "svc": ["db", "cache"],
        "db": [],
        "cache": [],
        "other": ["db"],
        "observer": [],
    },
    {
        "journey": "journey",
        "edge": "edge",
        "db": "datastore",
        "cache": "datastore",
        "observer": "observer",
    },
)


def roots(onsets, evidence=None, topology=SMALL):
    return [s.node for s in rank_root_causes(topology, onsets, evidence or {})]


def test_cascade_is_explained_by_its_deepest_anomalous_component():
    onsets = {"journey": 40.0, "edge": 30.0, "svc": 20.0, "db": 10.0}
    latency, errors = Evidence("db", "p99_latency_ms"), Evidence("db", "error_rate")
    suspects = rank_root_causes(SMALL, onsets, {"db": [latency, errors]})
    (db,) = suspects
    assert (db.node, db.onset, db.explains) == ("db", 10.0, ("edge", "journey", "svc"))
    assert db.evidence == (errors, latency) and db.score == 1.0
    assert db.reasons == (
        "db:error_rate, db:p99_latency_ms from 00:00:10, first",
        "3 components depending on it went wrong after it",
    )


def test_victims_are_never_root_even_when_they_went_wrong_first():
    # the service noticed first, but its datastore is anomalous too
    assert roots({"svc": 5.0, "db": 50.0, "edge": 60.0}) == ["db"]


def test_root_is_the_one_that_explains_most():
    onsets = {"cache": 1.0, "db": 9.0, "svc": 10.0, "other": 10.0, "edge": 11.0}
    suspects = rank_root_causes(SMALL, onsets, {})
    # svc has an anomalous dependency, so only db and cache are suspects
    assert [s.node for s in suspects] == ["db", "cache"]
    assert suspects[0].explains == ("edge", "other", "svc")
    assert suspects[1].explains == ("edge", "svc")


def test_ties_go_to_the_earliest_then_by_name():
    assert roots({"db": 9.0, "cache": 1.0, "svc": 10.0}) == ["cache", "db"]
    assert roots({"db": 1.0, "cache": 1.0, "svc": 10.0}) == ["cache", "db"]
    assert roots({"db": 1.0, "cache": 9.0, "svc": 10.0}) == ["db", "cache"]


def test_an_isolated_anomaly_is_its_own_root():
    suspects = rank_root_causes(SMALL, {"other": 3.0}, {})
    assert [(s.node, s.onset, s.explains, s.evidence) for s in suspects] == [("other", 3.0, (), ())]


def test_journeys_and_observers_are_never_root():
    assert roots({"journey": 1.0}) == []
    assert roots({"observer": 1.0}) == []
    assert roots({"journey": 1.0, "observer": 0.5, "edge": 2.0}) == ["edge"]


def test_edge_can_be_root():
    suspects = rank_root_causes(SMALL, {"edge": 5.0, "journey": 6.0}, {})
    assert [(s.node, s.explains) for s in suspects] == [("edge", ("journey",))]


def test_nothing_anomalous_means_no_suspect():
    assert rank_root_causes(SMALL, {}, {}) == []


def test_blast_radius_is_the_anomalous_dependents():
    affected = {"journey", "edge", "svc", "db", "other", "cache", "observer"}
    assert blast_radius(SMALL, "db", affected) == ["edge", "journey", "other", "svc"]
    assert blast_radius(SMALL, "cache", affected) == ["edge", "journey", "svc"]
    assert blast_radius(SMALL, "db", {"db", "journey", "observer"}) == ["journey"]
    assert blast_radius(SMALL, "svc", {"db", "cache", "svc"}) == []


def test_default_topology_redis_cascade(topology):
    onsets = {
        "redis-sessions": 100.0,
        "user-svc": 160.0,
        "api-gateway": 170.0,
        "lb": 175.0,
        "logins": 180.0,
        "social": 200.0,
    }
    memory = Evidence("redis/node-03", "memory_used_ratio", EvidenceKind.EXHAUSTION)
    evidence = {"redis-sessions": [memory]}
    suspects = rank_root_causes(topology, onsets, evidence)
    assert [s.node for s in suspects] == ["redis-sessions"]
    assert suspects[0].evidence == (memory,)
    assert str(memory) == "redis/node-03:memory_used_ratio:exhaustion"
    assert suspects[0].explains == ("api-gateway", "lb", "logins", "user-svc")
    assert blast_radius(topology, "redis-sessions", set(onsets)) == [
        "api-gateway",
        "lb",
        "logins",
        "user-svc",
    ]


KINDS = ["service", "datastore", "edge", "journey", "observer"]


@st.composite
def graphs_with_anomalies(draw):
    n = draw(st.integers(1, 9))
    names = [f"n{i}" for i in range(n)]
    edges = {
        name: sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=3)) if i else [])
        for i, name in enumerate(names)
    }
    kinds = {name: draw(st.sampled_from(KINDS)) for name in names}
    anomalous = draw(st.sets(st.sampled_from(names)))
    onsets = {name: draw(st.floats(0, 1000)) for name in sorted(anomalous)}
    return build(edges, kinds), onsets


@settings(max_examples=300, database=None, deadline=None)
@given(graphs_with_anomalies())
def test_ranking_invariants(case):
    topology, onsets = case
    suspects = rank_root_causes(topology, onsets, {})
    names = [s.node for s in suspects]
    assert len(names) == len(set(names))
    for s in suspects:
        assert topology.nodes[s.node].kind in CAUSES
        assert s.onset == onsets[s.node]
        assert not topology.upstream_of(s.node) & set(onsets)
        assert list(s.explains) == blast_radius(topology, s.node, set(onsets), (), onsets)
        # Timing only ever takes away what the graph alone explains.
        assert set(s.explains) <= set(blast_radius(topology, s.node, set(onsets)))
        assert s.node not in s.explains
    # every anomalous cause with no anomalous dependency is a suspect
    expected = {
        n
        for n in onsets
        if topology.nodes[n].kind in CAUSES and not topology.upstream_of(n) & set(onsets)
    }
    assert set(names) == expected
    keys = [(-len(s.explains), s.onset, s.node) for s in suspects]
    assert keys == sorted(keys)


def drop(entity, metric="request_rate"):
    return Evidence(entity, metric, EvidenceKind.DROP)


def test_traffic_lost_behind_a_failing_edge_is_its_symptom_not_a_cause(topology):
    # An edge config push: the lb fails, and traffic falls everywhere behind it.
    evidence = {
        "lb": [Evidence("lb/us-east", "error_rate"), Evidence("lb/eu-west", "error_rate")],
        "logins": [Evidence("logins/us-east/mobile", "success_ratio")],
        "api-gateway": [drop("api-gateway")],
        "user-svc": [drop("user-svc")],
        "music-svc": [drop("music-svc")],
        "postgres": [drop("postgres")],
        "redis-sessions": [drop("redis/node-01", "ops_per_s"), drop("redis/node-02", "ops_per_s")],
    }
    onsets = dict.fromkeys(evidence, 110.0) | {"lb": 100.0}
    suspects = rank_root_causes(topology, onsets, evidence)
    assert [s.node for s in suspects] == ["lb"]
    (lb,) = suspects
    assert lb.explains == (
        "api-gateway",
        "logins",
        "music-svc",
        "postgres",
        "redis-sessions",
        "user-svc",
    )
    assert lb.reasons == (
        "lb/eu-west:error_rate, lb/us-east:error_rate from 00:01:40, first",
        "1 component depending on it went wrong after it",
        "traffic fell at 5 components behind it",
    )
    assert lb.score == 1.0


def test_one_pods_lone_blip_while_traffic_falls_does_not_make_its_service_a_cause(topology):
    # The edge push again; one user-svc pod's latency blips meanwhile (seen
    # first), its service's own series show only the traffic lost.
    blip = Evidence("user-svc/pod-14", "p99_latency_ms")
    pods = [drop(f"user-svc/pod-{n:02}") for n in range(1, 25)]
    evidence = {
        "lb": [Evidence("lb/us-east", "error_rate"), Evidence("lb/eu-west", "error_rate")],
        "logins": [Evidence("logins/us-east/mobile", "success_ratio")],
        "api-gateway": [drop("api-gateway")],
        "user-svc": [drop("user-svc"), blip, *pods],
        "postgres": [drop("postgres")],
    }
    onsets = dict.fromkeys(evidence, 110.0) | {"user-svc": 100.0}
    assert [s.node for s in rank_root_causes(topology, onsets, evidence)] == ["lb"]
    # The same blip with the service's own error rate up is the service's.
    evidence["user-svc"].append(Evidence("user-svc", "error_rate"))
    assert rank_root_causes(topology, onsets, evidence)[0].node == "user-svc"
    # So is a pod failing on two counts at once, where nothing else fails.
    lone = {"user-svc": [blip, Evidence("user-svc/pod-14", "error_rate"), *pods]}
    assert [s.node for s in rank_root_causes(topology, {"user-svc": 100.0}, lone)] == ["user-svc"]


def test_traffic_alone_names_a_cause_only_when_nothing_fails(topology):
    evidence = {"api-gateway": [drop("api-gateway")], "user-svc": [drop("user-svc")]}
    onsets = {"api-gateway": 100.0, "user-svc": 105.0}
    assert [s.node for s in rank_root_causes(topology, onsets, evidence)] == ["user-svc"]


def test_a_silent_dependency_of_failing_callers_is_a_candidate(topology):
    gap = Evidence("user-svc", "", EvidenceKind.GAP)
    evidence = {
        "user-svc": [gap],
        "api-gateway": [Evidence("api-gateway", "error_rate")],
        "lb": [Evidence("lb/us-east", "error_rate")],
    }
    onsets = {"user-svc": 90.0, "api-gateway": 100.0, "lb": 101.0}
    (top, *_) = rank_root_causes(topology, onsets, evidence)
    assert top.node == "user-svc"
    assert top.reasons[0] == "telemetry silent from 00:01:30 (1 entity), first"


def change(component, at, kind=ChangeKind.DEPLOY):
    return ChangeEvent(at, component, kind, "v2.3.1", "ci")


def test_a_change_shortly_before_the_symptoms_leads_even_a_victim(topology):
    # A deploy of user-svc at 60 s, then its errors; redis latency follows the new load.
    evidence = {
        "redis-sessions": [Evidence("redis/node-01", "latency_ms")],
        "user-svc": [Evidence("user-svc", "error_rate")],
        "api-gateway": [Evidence("api-gateway", "error_rate")],
    }
    onsets = {"redis-sessions": 100.0, "user-svc": 100.0, "api-gateway": 110.0}
    changes = [change("user-svc/pod-03", 60.0), change("postgres", 70.0)]
    top, second = rank_root_causes(topology, onsets, evidence, changes, lead_s=900)
    assert (top.node, second.node) == ("user-svc", "redis-sessions")
    assert top.change == changes[0]
    assert (
        top.reasons[0]
        == "deploy of user-svc/pod-03 at 00:01:00: 'v2.3.1' by ci, 40 s before its first symptom"
    )
    # Too long before, or after the symptoms began, a change explains nothing.
    for late in (change("user-svc", -1000.0), change("user-svc", 105.0)):
        (top,) = rank_root_causes(topology, onsets, evidence, [late], lead_s=900)
        assert top.node == "redis-sessions" and top.change is None


def test_a_change_is_no_cause_of_a_dependency_that_failed_on_its_own(topology):
    # postgres fails at 500 s on its own: no surge of traffic, before its callers.
    evidence = {
        "postgres": [Evidence("postgres", "error_rate"), Evidence("postgres", "p99_latency_ms")],
        "user-svc": [Evidence("user-svc", "error_rate")],
        "api-gateway": [Evidence("api-gateway", "error_rate")],
    }
    onsets = {"postgres": 500.0, "user-svc": 515.0, "api-gateway": 525.0}
    # user-svc deployed minutes before, or during the outage (a mitigation).
    for deploy in (change("user-svc", 20.0), change("user-svc", 505.0)):
        (top,) = rank_root_causes(topology, onsets, evidence, [deploy], lead_s=1800)
        assert top.node == "postgres" and top.change is None
    # The same deploy, but postgres took a surge of traffic: the deploy overloaded it.
    surge = Evidence("postgres", "request_rate", EvidenceKind.SURGE)
    surged = {**evidence, "postgres": [*evidence["postgres"], surge]}
    top, *_ = rank_root_causes(topology, onsets, surged, [change("user-svc", 20.0)], lead_s=1800)
    assert top.node == "user-svc" and "postgres" in top.explains

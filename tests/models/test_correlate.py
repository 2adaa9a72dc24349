"""Root cause and blast radius on the dependency graph."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.correlate import CAUSES, Suspect, blast_radius, rank_root_causes
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
    assert suspects == [Suspect("db", 10.0, ("edge", "journey", "svc"), (errors, latency))]


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
    assert suspects == [Suspect("other", 3.0, (), ())]


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
        assert list(s.explains) == blast_radius(topology, s.node, set(onsets))
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

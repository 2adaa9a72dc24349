"""The dependency graph: pattern expansion, the shipped topology, and malformed graphs."""

from __future__ import annotations

import pytest

from models.topology import Topology, expand

REGIONS = ("us-east", "us-west", "sa-east", "eu-west", "eu-central", "ap-southeast")


# ---------------------------------------------------------------------------
# expand


@pytest.mark.parametrize(
    ("pattern", "regions", "expected"),
    [
        ("postgres", (), ["postgres"]),
        ("redis/node-{01..03}", (), ["redis/node-01", "redis/node-02", "redis/node-03"]),
        ("pod-{8..11}", (), ["pod-8", "pod-9", "pod-10", "pod-11"]),
        ("pod-{08..11}", (), ["pod-08", "pod-09", "pod-10", "pod-11"]),
        ("pod-{001..002}", (), ["pod-001", "pod-002"]),
        ("{a,b}-{x,y}", (), ["a-x", "a-y", "b-x", "b-y"]),
        ("lb/{region}", ("eu", "us"), ["lb/eu", "lb/us"]),
        (
            "logins/{region}/{mobile,desktop}",
            ("eu", "us"),
            ["logins/eu/mobile", "logins/eu/desktop", "logins/us/mobile", "logins/us/desktop"],
        ),
        ("lb/{region}", (), []),
        ("{1..2}{a,b}", (), ["1a", "1b", "2a", "2b"]),
    ],
)
def test_expand(pattern, regions, expected):
    assert expand(pattern, regions) == expected


def test_expand_counts_multiply():
    out = expand("{region}/pod-{01..24}/{a,b,c}", REGIONS)
    assert len(out) == 6 * 24 * 3
    assert len(set(out)) == len(out)
    assert out[0] == "us-east/pod-01/a"
    assert out[-1] == "ap-southeast/pod-24/c"


# ---------------------------------------------------------------------------
# The shipped topology


def test_default_topology_regions(topology):
    assert topology.regions == REGIONS


def test_default_topology_has_twelve_redis_nodes(topology):
    node = topology.nodes["redis-sessions"]
    assert node.family == "redis"
    assert node.kind == "datastore"
    assert node.entities == tuple(f"redis/node-{i:02d}" for i in range(1, 13))
    redis = [e for e, f in topology.family_of.items() if f == "redis"]
    assert sorted(redis) == list(node.entities)


def test_every_entity_maps_to_exactly_one_node(topology):
    all_entities = [e for node in topology.nodes.values() for e in node.entities]
    assert len(all_entities) == len(set(all_entities))
    assert set(topology.node_of) == set(all_entities)
    for node in topology.nodes.values():
        for entity in node.entities:
            assert topology.node_of[entity] == node.id
            assert topology.family_of[entity] == node.family
            assert topology.knows(entity)
    assert not topology.knows("redis/node-13")
    assert not topology.knows("")


def test_default_topology_entity_counts(topology):
    counts = {n: len(node.entities) for n, node in topology.nodes.items()}
    assert counts["logins"] == 12  # 6 regions x {mobile, desktop}
    assert counts["social"] == 6
    assert counts["user-svc"] == 25  # the service entity plus 24 pods
    assert counts["api-gateway"] == 13
    assert counts["postgres"] == 1


def test_logins_depends_transitively_on_redis(topology):
    up = topology.upstream_of("logins")
    assert "redis-sessions" in up
    assert up == {
        "lb",
        "api-gateway",
        "user-svc",
        "music-svc",
        "playlist-svc",
        "redis-sessions",
        "postgres",
        "mongodb",
        "cdn",
        "network",
        "dns",
        "s3",
    }
    assert topology.upstream["logins"] == frozenset(up)


def test_upstream_of_leaves_and_observers_is_empty(topology):
    for node in ("redis-sessions", "postgres", "mongodb", "s3", "social", "network", "dns"):
        assert topology.upstream_of(node) == set()
    assert topology.upstream_of("cdn") == {"s3", "network"}
    assert topology.upstream_of("user-svc") == {"redis-sessions", "postgres", "dns"}


def test_upstream_is_transitively_closed(topology):
    up = topology.upstream
    for node, deps in up.items():
        assert node not in deps
        for dep in deps:
            assert up[dep] <= deps
        assert set(topology.nodes[node].depends_on) <= deps


def test_user_facing_series_and_journeys(topology):
    journey_of = topology.journey_of
    assert journey_of[("logins/eu-west/mobile", "success_ratio")] == "login"
    assert journey_of[("lb/us-east", "error_rate")] == "access"
    assert journey_of[("api-gateway", "error_rate")] == "access"
    assert journey_of[("cdn/sa-east", "error_rate")] == "streaming"
    assert journey_of[("music-svc", "error_rate")] == "streaming"
    assert journey_of[("playlist-svc", "error_rate")] == "playlists"
    assert len([k for k, j in journey_of.items() if j == "login"]) == 12
    assert ("redis/node-01", "memory_used_ratio") not in journey_of


def test_region_of(topology):
    assert topology.region_of("logins/eu-west/mobile") == "eu-west"
    assert topology.region_of("lb/ap-southeast") == "ap-southeast"
    assert topology.region_of("redis/node-01") is None
    assert topology.region_of("user-svc/pod-01") is None


# ---------------------------------------------------------------------------
# Malformed graphs


def graph(**nodes):
    return {"regions": ["eu", "us"], "nodes": nodes}


def node(family="pods", entities=None, **extra):
    return {"family": family, "entities": entities or [], **extra}


def test_small_graph_loads_with_defaults():
    topo = Topology.from_dict(
        graph(
            a=node(entities=["a"], depends_on=["b"]),
            b=node(entities=["b/{region}"], kind="datastore"),
        )
    )
    assert topo.nodes["a"].kind == "service"
    assert topo.nodes["a"].journey is None
    assert topo.nodes["b"].entities == ("b/eu", "b/us")
    assert topo.upstream == {"a": frozenset({"b"}), "b": frozenset()}


def test_journey_defaults_to_node_id():
    topo = Topology.from_dict(graph(web=node(entities=["web"], user_facing=["web:error_rate"])))
    assert topo.journey_of == {("web", "error_rate"): "web"}


def test_unknown_dependency_raises():
    with pytest.raises(ValueError, match="unknown node 'ghost'"):
        Topology.from_dict(graph(a=node(entities=["a"], depends_on=["ghost"])))


@pytest.mark.parametrize(
    "edges",
    [
        {"a": ["a"]},
        {"a": ["b"], "b": ["a"]},
        {"a": ["b"], "b": ["c"], "c": ["a"]},
        {"root": ["a"], "a": ["b"], "b": ["c"], "c": ["b"]},  # cycle not through root
    ],
)
def test_cycles_raise(edges):
    nodes = {n: node(entities=[n], depends_on=deps) for n, deps in edges.items()}
    with pytest.raises(ValueError, match="cycle"):
        Topology.from_dict(graph(**nodes))


def test_diamond_is_not_a_cycle():
    edges = {"top": ["l", "r"], "l": ["bottom"], "r": ["bottom"], "bottom": []}
    nodes = {n: node(entities=[n], depends_on=deps) for n, deps in edges.items()}
    topo = Topology.from_dict(graph(**nodes))
    assert topo.upstream_of("top") == {"l", "r", "bottom"}


def test_user_facing_series_of_another_nodes_entity_raises():
    with pytest.raises(ValueError, match="not its own"):
        Topology.from_dict(
            graph(
                a=node(entities=["a"], user_facing=["b:error_rate"]),
                b=node(entities=["b"]),
            )
        )


def test_user_facing_pattern_must_be_fully_owned():
    with pytest.raises(ValueError, match="not its own"):
        Topology.from_dict(
            graph(lb=node(entities=["lb/eu"], user_facing=["lb/{region}:error_rate"]))
        )


def test_user_facing_unknown_series_raises():
    with pytest.raises(ValueError, match="no series"):
        Topology.from_dict(graph(a=node(entities=["a"], user_facing=["a:evictions"])))
    with pytest.raises(ValueError, match="no series"):
        # logins expose derived series: the wire counter is not one of them
        Topology.from_dict(
            graph(
                logins=node(
                    family="logins", entities=["logins/eu"], user_facing=["logins/eu:successes"]
                )
            )
        )


def test_unknown_family_raises():
    with pytest.raises(ValueError, match="unknown family"):
        Topology.from_dict(graph(a=node(family="kafka", entities=["a"])))


def test_entity_in_two_nodes_is_refused():
    with pytest.raises(ValueError, match="'shared' is in a and b"):
        Topology.from_dict(graph(a=node(entities=["shared"]), b=node(entities=["shared"])))

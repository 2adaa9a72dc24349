"""Several incidents at once: a fault the open incident's root cause does not
explain, paging on users of its own, is an incident of its own; one cascade
is still one incident; evidence that connects two incidents merges them."""

from __future__ import annotations

import pytest

from models.config import PipelineConfig
from models.correlate import CorrelateStage, rank_root_causes
from models.evidence import Evidence, EvidenceKind
from models.incident import Change, Status
from models.report import Note, WindowReport
from models.topology import Topology

T0 = 1_665_568_200.0  # 2022-10-12 09:50 UTC
REGIONS = ["us-east", "us-west", "sa-east", "eu-west", "eu-central", "ap-southeast"]

# The database fails: its callers fail, logins fail everywhere.
DATABASE = [
    Evidence("postgres", "error_rate"),
    Evidence("postgres", "p99_latency_ms"),
    Evidence("user-svc", "error_rate"),
    Evidence("api-gateway", "error_rate"),
    Evidence("lb/us-east", "error_rate"),
    Evidence("logins/us-east/mobile", "success_ratio"),
    Evidence("logins/eu-west/desktop", "success_ratio"),
]
LOGINS_FAIL = {
    (f"logins/{r}/{c}", "success_ratio"): 0.5 for r in REGIONS for c in ("mobile", "desktop")
}
# The CDN edge of one region fails: its streams fail there only.
CDN = [Evidence("cdn/us-west", "error_rate")]
STREAMS_FAIL = {("cdn/us-west", "error_rate"): 0.9}


@pytest.fixture
def stage(topology, business):
    return CorrelateStage(topology, business, PipelineConfig(resolve_after_s=120.0))


def run(stage, timeline, windows=30, first=0):
    """Correlate windows ``first`` to ``windows`` of 10 s; ``timeline`` maps
    a window to (evidence turning active then, losses from then on)."""
    events, losses, notes = [], {}, []
    for n in range(first, windows):
        start = T0 + 10 * n
        turned, lost = timeline.get(n, ([], {}))
        losses = {**losses, **lost}
        notes = [Note(ev, start, True) for ev in turned]
        report = WindowReport("pods:0", start, start + 10, tuple(notes), dict(losses))
        events += stage.add(report)
    return events


def opened(events):
    return {e.incident.root_cause: e.incident for e in events if e.kind is Change.OPENED}


def last(events, root):
    """The incident rooted at ``root`` as it stands after the last event."""
    return [e.incident for e in events if e.incident.root_cause == root][-1]


@pytest.mark.parametrize("cdn_first", [False, True], ids=["database-first", "cdn-first"])
def test_two_unrelated_faults_at_once_are_two_incidents(stage, cdn_first):
    database, cdn = (5, 0) if cdn_first else (0, 5)
    events = run(stage, {database: (DATABASE, LOGINS_FAIL), cdn: (CDN, STREAMS_FAIL)})
    assert set(opened(events)) == {"postgres", "cdn"}, [str(e.text) for e in events]
    db, edge = last(events, "postgres"), last(events, "cdn")
    assert db.id != edge.id and db.dedup_key != edge.dedup_key
    # Each its own SEV, from its own users: logins everywhere, streams in one region.
    assert db.sev == 1 and "login" in db.sev_reasons[0]
    assert edge.sev == 2 and "streaming" in edge.sev_reasons[0]
    assert edge.root_region == "us-west" and db.root_region is None
    assert "cdn" not in db.blast_radius and "cdn" not in [s.node for s in db.suspects]
    assert not {"logins", "lb", "api-gateway"} & set(edge.blast_radius)
    assert edge.impact.peak_share == pytest.approx(0.15, abs=0.01)
    assert {i.root_cause for i in stage.open_incidents} == {"postgres", "cdn"}


def test_one_cascade_is_still_one_incident(stage):
    cascade = {
        0: ([Evidence("redis/node-01", "latency_ms"), Evidence("redis/node-01", "gc_pause_s")], {}),
        1: (
            [Evidence("user-svc", "error_rate"), Evidence("api-gateway", "error_rate")],
            LOGINS_FAIL,
        ),
        3: ([Evidence("music-svc", "error_rate"), Evidence("playlist-svc", "error_rate")], {}),
        4: ([Evidence("lb/us-east", "error_rate")], {("music-svc", "error_rate"): 0.3}),
    }
    events = run(stage, cascade)
    assert list(opened(events)) == ["redis-sessions"], [e.text for e in events]
    assert len(stage.open_incidents) == 1
    inc = stage.open_incidents[0]
    assert {"user-svc", "api-gateway", "music-svc", "playlist-svc"} <= set(inc.blast_radius)


# Minutes into the database outage, a MongoDB shard slows: playlist-svc, which
# calls both user-svc (failing since the start) and mongodb, fails just after.
SHARD = [Evidence("mongodb", "p99_latency_ms"), Evidence("mongodb", "error_rate")]
PLAYLISTS = [Evidence("playlist-svc", "error_rate"), Evidence("playlist-svc", "p99_latency_ms")]
PLAYLISTS_FAIL = {("playlist-svc", "error_rate"): 0.4}


def test_a_caller_failing_just_after_a_second_fault_is_that_faults_incident(stage):
    """Two faults whose users meet downstream: playlist-svc depends on the
    database's victim user-svc too, but it failed minutes after the database,
    just after mongodb did: it is mongodb's, an incident of its own."""
    events = run(
        stage, {0: (DATABASE, LOGINS_FAIL), 20: (SHARD, {}), 22: (PLAYLISTS, PLAYLISTS_FAIL)}, 40
    )
    assert set(opened(events)) == {"postgres", "mongodb"}, [e.text for e in events]
    db, shard = last(events, "postgres"), last(events, "mongodb")
    assert "playlist-svc" in shard.blast_radius and "playlist-svc" not in db.blast_radius
    assert "playlists" in shard.sev_reasons[0] and db.sev == 1


def test_a_second_fault_within_the_cascade_is_one_incident(stage):
    """The same failures, all within the first minute: one cascade, whose
    root cause explains playlist-svc through user-svc."""
    events = run(
        stage, {0: (DATABASE, LOGINS_FAIL), 2: (SHARD, {}), 3: (PLAYLISTS, PLAYLISTS_FAIL)}
    )
    assert list(opened(events)) == ["postgres"], [e.text for e in events]
    assert "playlist-svc" in last(events, "postgres").blast_radius
    assert stage.apart == []


def test_a_fault_without_users_of_its_own_joins_no_incident_apart(stage):
    # mongodb wobbles during the database outage: no users of its own fail.
    events = run(stage, {0: (DATABASE, LOGINS_FAIL), 5: ([Evidence("mongodb", "error_rate")], {})})
    assert list(opened(events)) == ["postgres"]
    assert stage.apart == []


def test_several_incidents_survive_a_snapshot(stage, topology, business):
    run(stage, {0: (DATABASE, LOGINS_FAIL), 5: (CDN, STREAMS_FAIL)}, windows=12)
    restored = CorrelateStage.restore(stage.snapshot(), topology, stage.config, business)
    assert restored.to_state() == stage.to_state()
    assert [i.id for i in restored.open_incidents] == [i.id for i in stage.open_incidents]
    assert len(restored.open_incidents) == 2


#   login -> a -> shared <- b <- stream: a and b fail apart, then what both
#   depend on turns out to have failed first.
SHARED = Topology.from_dict(
    {
        "regions": [],
        "nodes": {
            "login": {"kind": "journey", "family": "pods", "entities": ["login"],
                      "depends_on": ["a"], "journey": "login",
                      "user_facing": ["login:error_rate"]},
            "stream": {"kind": "journey", "family": "pods", "entities": ["stream"],
                       "depends_on": ["b"], "journey": "stream",
                       "user_facing": ["stream:error_rate"]},
            "a": {"family": "pods", "entities": ["a"], "depends_on": ["shared"]},
            "b": {"family": "pods", "entities": ["b"], "depends_on": ["shared"]},
            "shared": {"kind": "datastore", "family": "pods", "entities": ["shared"]},
        },
    }
)  # fmt: skip


def test_evidence_connecting_two_incidents_merges_the_newer_into_the_older(business):
    stage = CorrelateStage(SHARED, business, PipelineConfig(resolve_after_s=120.0))
    login = {("login", "error_rate"): 0.5}
    stream = {("stream", "error_rate"): 0.5}
    events = run(
        stage,
        {
            0: ([Evidence("a", "error_rate"), Evidence("login", "error_rate")], login),
            4: ([Evidence("b", "error_rate"), Evidence("stream", "error_rate")], stream),
            8: ([Evidence("shared", "error_rate"), Evidence("shared", "p99_latency_ms")], {}),
        },
        windows=12,
    )
    first, second = (e.incident for e in events if e.kind is Change.OPENED)
    assert (first.root_cause, second.root_cause) == ("a", "b")
    (merged,) = [e for e in events if e.kind is Change.MERGED]
    assert merged.incident.id == second.id and merged.incident.merged_into == first.id
    assert merged.incident.status is Status.RESOLVED
    (survivor,) = stage.open_incidents
    assert survivor.id == first.id and survivor.root_cause == "shared"
    assert {"a", "b"} <= set(survivor.blast_radius)
    # A merged incident is never reopened: its users are the survivor's.
    later = run(stage, {12: ([], {**login, **stream})}, windows=15, first=12)
    assert Change.REOPENED not in [e.kind for e in later]


def gone(topology, region):
    """Notes that every entity of ``region`` serving its users went silent."""
    return [Evidence(e, "", EvidenceKind.GAP) for e in topology.in_region[region]]


FELT = [
    Evidence("api-gateway", "request_rate", EvidenceKind.DROP),
    Evidence("social/eu-central", "outage_mention_rate"),
]


def test_a_region_gone_dark_pages_with_its_network_as_root_cause(stage, topology):
    events = run(stage, {0: (gone(topology, "eu-central"), {}), 2: (FELT, {})})
    (inc,) = opened(events).values()
    assert (inc.root_cause, inc.root_region, inc.sev) == ("network", "eu-central", 2)
    assert "1 of 6 regions" in inc.sev_reasons[-1]
    assert "network/eu-central" in last(events, "network").telemetry_gaps
    assert {"lb", "cdn", "logins"} <= set(last(events, "network").blast_radius)


@pytest.mark.parametrize("felt", [[], FELT[:1], FELT[1:]], ids=["alone", "traffic", "mentions"])
def test_a_region_pages_only_when_its_silence_is_felt(stage, topology, felt):
    events = run(stage, {0: (gone(topology, "eu-central"), {}), 2: (felt, {})})
    assert bool(events) is bool(felt), [e.text for e in events]


def test_a_failure_only_its_callers_see_names_the_component_they_call(topology):
    fell = EvidenceKind.DROP
    evidence = {
        "user-svc": [Evidence("user-svc", "request_rate", fell)],
        "api-gateway": [Evidence("api-gateway", "error_rate")],
        "music-svc": [Evidence("music-svc", "error_rate")],
        "playlist-svc": [Evidence("playlist-svc", "error_rate")],
        "lb": [Evidence("lb/us-east", "error_rate")],
        "postgres": [Evidence("postgres", "request_rate", fell)],
        "redis-sessions": [Evidence("redis/node-01", "ops_per_s", fell)],
    }
    onsets = dict.fromkeys(evidence, T0)
    (first, *_) = rank_root_causes(topology, onsets, evidence)
    assert first.node == "user-svc" and "only they see" in first.reasons[1]
    # One caller failing while the other callers are fine: that caller's fault.
    alone = {
        "music-svc": [Evidence("music-svc", "error_rate"), Evidence("music-svc", "p99_latency_ms")],
        "postgres": [Evidence("postgres", "request_rate", fell)],
        "cdn": [Evidence("cdn/us-east", "request_rate", fell)],
    }
    (first, *_) = rank_root_causes(topology, dict.fromkeys(alone, T0), alone)
    assert first.node == "music-svc"

"""Change events in a scenario: the ``[[changes]]`` table, as strict as the
others, and the simulator sending them among the telemetry at their time."""

from __future__ import annotations

from typing import Any

import pytest

from models.changes import ChangeEvent, ChangeKind
from models.schema import Telemetry
from producers.scenario import Scenario
from producers.sources import Simulator
from producers.sources.simulator import with_changes


def scenario(*changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "t",
        "start": "2022-10-04T12:00:00Z",
        "end": "+5m",
        "truth": {"fault_start": "12:02"},
        "changes": list(changes),
    }


def test_a_change_in_the_scenario_s_time_syntax():
    sc = Scenario.from_dict(
        scenario(
            {"at": "-30s", "component": "lb", "kind": "config", "description": "v42", "who": "ci"},
            {"at": "12:00:10", "component": "redis/node-1", "kind": "deploy"},
        )
    )
    fault = sc.truth.fault_start
    assert sc.changes == (
        ChangeEvent(fault - 30, "lb", ChangeKind.CONFIG, "v42", "ci"),
        ChangeEvent(sc.start + 10, "redis/node-1", ChangeKind.DEPLOY),
    )
    assert Scenario.from_dict(scenario()).changes == ()


@pytest.mark.parametrize(
    "change, refused",
    [
        ({"at": "12:01", "component": "lb", "kind": "config", "whom": "x"}, "did you mean who"),
        ({"at": "12:01", "component": "lb", "kind": "reboot"}, "unknown kind 'reboot'"),
        ({"at": "12:01", "component": "lb", "kind": "deplyo"}, "did you mean 'deploy'"),
        ({"at": "13:00", "component": "lb", "kind": "flag"}, "outside the scenario"),
        ({"component": "lb", "kind": "flag"}, "missing key 'at'"),
        ({"at": "12:01", "component": "lb", "kind": "flag", "who": 3}, "who must be a string"),
    ],
)
def test_a_bad_change_is_refused_naming_it(change, refused):
    with pytest.raises(ValueError, match=refused) as caught:
        Scenario.from_dict(scenario({"at": "12:00", "component": "lb", "kind": "flag"}, change))
    assert str(caught.value).startswith("[[changes]] #2")


def test_a_change_to_no_component_or_entity_is_refused_given_a_topology(topology):
    entity = next(iter(topology.node_of))
    for name in ("lb", entity):
        Scenario.from_dict(scenario({"at": "12:01", "component": name, "kind": "flag"}), topology)
    ghost = scenario({"at": "12:01", "component": "lbb", "kind": "flag"})
    Scenario.from_dict(ghost)  # without a topology nothing says it is unknown
    with pytest.raises(ValueError, match=r"\[\[changes\]\] #1: 'lbb' is no .* did you mean 'lb'"):
        Scenario.from_dict(ghost, topology)


def test_the_simulator_sends_changes_at_their_time(topology, business):
    sc = Scenario.from_dict(
        scenario(
            {"at": "12:03", "component": "lb", "kind": "scaling"},
            {"at": "12:00:30", "component": "lb", "kind": "config"},
            {"at": "12:05", "component": "lb", "kind": "flag"},
        ),
        topology,
    )
    messages = list(Simulator(sc, topology, business, seed=1).messages())
    changes = [(n, m) for n, m in enumerate(messages) if isinstance(m, ChangeEvent)]
    assert [m.kind for _, m in changes] == ["config", "scaling", "flag"]  # in event time
    for n, change in changes:
        before = [m for m in messages[:n] if isinstance(m, Telemetry)]
        after = [m for m in messages[n + 1 :] if isinstance(m, Telemetry)]
        assert all(m.time < change.time for m in before)
        assert all(m.time >= change.time for m in after)
    telemetry = [m for m in messages if isinstance(m, Telemetry)]
    sc_quiet = Scenario.from_dict(scenario(), topology)
    assert telemetry == list(Simulator(sc_quiet, topology, business, seed=1).messages())


def test_changes_after_the_last_message_come_at_the_end():
    tel = Telemetry("pods", "user-svc", 100.0, [99.0], {"error_rate": [0.0]})
    late = ChangeEvent(1e9, "lb", ChangeKind.DEPLOY)
    early = ChangeEvent(50.0, "lb", ChangeKind.DEPLOY)
    assert list(with_changes([tel], [late, early])) == [early, tel, late]

"""Learned state read back from a changelog anyone may write to: a real
snapshot, mutated field by field, is either refused with its reason or
restored into a stage that goes on processing; it never raises anything
else, then or later."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.memory import telemetry, world
from models.config import PipelineConfig
from models.detect_stage import DetectStage
from models.schema import Telemetry
from models.snapshot import IncompatibleSnapshot
from models.topology import Topology
from producers.sources import Simulator
from tests.conftest import FUZZ_SCALE as SCALE
from tests.conftest import _defaults

CONFIG = PipelineConfig()
TOPOLOGY, BUSINESS, SCENARIOS = _defaults()


def _world() -> list[Telemetry]:
    """15 minutes before the reference fault and 2 after, of every family:
    Redis nodes, logins, social mentions, and a service with a pod."""
    scenario = SCENARIOS["reference-2022-10-04"]
    fault = scenario.truth.fault_start
    assert fault is not None
    sim = Simulator(scenario, TOPOLOGY, BUSINESS, 1, since=fault - 900, until=fault + 120)
    keep = {"user-svc", "user-svc/pod-01", "postgres"}
    return [
        m
        for m in sim.messages()
        if isinstance(m, Telemetry) and (m.family != "pods" or m.entity in keep)
    ]


def _pods() -> list[Telemetry]:
    """Three pods, past their warm-up: few fields, so each is hit often."""
    batches = telemetry(world(3), range(CONFIG.warm_up_windows + 14))
    return list(itertools.chain.from_iterable(batches))


def _learned(messages: list[Telemetry], topology: Topology) -> dict[str, Any]:
    stage = DetectStage(topology, CONFIG, "telemetry:0")
    for message in messages:
        stage.process(message)
    return orjson.loads(stage.snapshot())


# (snapshot, topology, what comes after it)
WORLDS = {
    "every family": (_world(), TOPOLOGY),
    "pods": (_pods(), world(3)),
}
CASES = {
    name: (_learned(messages[:-60], topology), topology, messages[-60:])
    for name, (messages, topology) in WORLDS.items()
}


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value in the document, containers included."""
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*path, i))
    return out


PATHS = {
    name: [p for p in _leaves(snapshot) if len(p) >= 2] for name, (snapshot, _, _) in CASES.items()
}
VALUES = st.sampled_from(
    [
        0,
        -1,
        1,
        2**63 - 1,
        -(2**63),
        0.0,
        -0.5,
        1e308,
        -1e308,
        "inf",
        "-inf",
        "nan",
        "",
        "x",
        "svc/pod-9",
        "ghost/pod-1",
        [],
        {},
        None,
        True,
        [0, 0],
        {"x": 1},
        1e-300,
        3.5,
    ]
)


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


def _drop(doc: Any, path: tuple[Any, ...]) -> None:
    for step in path[:-1]:
        doc = doc[step]
    del doc[path[-1]]


# The pods world is small enough that 3,000 examples hit each of its fields
# about ten times; every family's snapshot is ten times larger and slower.
EXAMPLES = {"pods": 3000, "every family": 1000}


def mutations(name: str) -> st.SearchStrategy[list[tuple[tuple[Any, ...], Any, bool]]]:
    one = st.tuples(st.sampled_from(PATHS[name]), VALUES, st.booleans())
    return st.lists(one, min_size=1, max_size=3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_mutated_snapshot_is_refused_or_goes_on(name):
    snapshot, topology, after = CASES[name]
    ran = 0

    @settings(
        max_examples=max(1, int(EXAMPLES[name] * SCALE)),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutations(name))
    def mutated(changes: list[tuple[tuple[Any, ...], Any, bool]]) -> None:
        nonlocal ran
        ran += 1
        refused_or_goes_on(snapshot, topology, after, changes)

    mutated()
    assert ran >= EXAMPLES[name] * SCALE


def refused_or_goes_on(snapshot, topology, after, changes) -> None:
    doc = orjson.loads(orjson.dumps(snapshot))
    for path, value, drop in changes:
        # An earlier mutation may have removed or replaced its parent.
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _drop(doc, path) if drop else _set(doc, path, value)
    try:
        stage = DetectStage.restore(orjson.dumps(doc), topology, CONFIG)
    except IncompatibleSnapshot:
        return
    for message in after:
        stage.process(message)
    stage.snapshot()

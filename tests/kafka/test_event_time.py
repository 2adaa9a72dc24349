"""Event time that one sender cannot move: during the reference outage, one
message per partition dated an hour ahead (just inside the bound of old,
where each moved its partition's event time and blinded it) is
dead-lettered, and the same incident opens at the same time as without it."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

from infra import kafka
from models.schema import Telemetry, encode
from tests.conftest import short_span
from tests.kafka.conftest import read_all
from tests.kafka.test_worker import SCENARIO, opened_once, run_to_the_end, simulate

AHEAD_S = 3599.0


def test_one_message_per_partition_dated_ahead_blinds_nothing(
    namespace, replayed, scenarios, topology, business
):
    truth = scenarios[SCENARIO].truth
    since, _ = short_span(scenarios[SCENARIO])
    messages = list(simulate(scenarios, topology, business))
    cut = truth.fault_start - 300  # the leak under way, the fault ahead
    split = next(i for i, m in enumerate(messages) if m.time > cut)
    before, after = messages[:split], messages[split:]
    namespace.publish(before)
    # The last message of each partition so far, an hour later.
    last: dict[tuple[str, int], Telemetry] = {}
    by_entity = {m.entity: m for m in before if isinstance(m, Telemetry)}
    for family, topic in kafka.telemetry_topics(namespace.settings).items():
        for record in asyncio.run(read_all(namespace.settings, topic)):
            last[(family, record.partition)] = by_entity[record.key.decode()]
    forged = [
        replace(m, time=m.time + AHEAD_S, ts=[t + AHEAD_S for t in m.ts]) for m in last.values()
    ]
    namespace.publish(forged)
    namespace.publish(after)
    with namespace.worker() as worker:
        run_to_the_end(namespace, scenarios, [worker])

    dead = namespace.records("foreshock.deadletter")
    reasons = [dict(r.headers)["reason"].decode() for r in dead]
    print(f"\n{len(forged)} messages, one per partition, {AHEAD_S:.0f} s ahead: {Counter(reasons)}")
    assert len(forged) == len(last) >= 20  # every partition that holds telemetry
    assert reasons == ["too_far_ahead"] * len(forged)
    assert sorted(r.value for r in dead) == sorted(map(encode, forged))
    incident = opened_once(namespace)
    embedded = replayed(SCENARIO, 1, short=True).incidents[0].to_dict()
    assert incident["id"] == embedded["id"]
    assert incident["opened_at"] == embedded["opened_at"]
    assert incident["sev"] == embedded["sev"] == 1
    assert incident["root_cause"] == truth.root_cause
    assert set(incident["blast_radius"]) == set(embedded["blast_radius"])
    assert since < cut < truth.fault_start

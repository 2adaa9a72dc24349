"""A benchmark leaves nothing on the broker: the cleanup deletes every topic
and consumer group of its isolated runs, and nobody else's."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from bench.kafka import isolated, remove_isolated
from infra import kafka
from infra.settings import Settings


async def _topics_and_groups(s: Settings) -> tuple[set[str], set[str]]:
    async with kafka.admin(s) as admin:
        return set(await admin.list_topics()), {g[0] for g in await admin.list_consumer_groups()}


async def _commit(s: Settings, group: str, topic: str) -> None:
    """Leave a consumer group behind, as a worker that has stopped does."""
    async with kafka.consumer(s, group_id=group) as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 0})


def test_the_cleanup_deletes_every_topic_and_group_of_a_run_and_nothing_else(namespace):
    run = namespace.settings
    # Another run whose name starts with this one's, on the same broker.
    other = isolated(run, f"{run.app_id}0")
    made = {
        run.topic("telemetry.redis"): 2,
        run.topic("foreshock.windows"): 1,
        f"{run.app_id}-detect-state-changelog": 1,
        f"{run.app_id}-__assignor-__leader": 1,
        f"{run.app_id}-passthrough-__assignor-__leader": 1,
    }
    kept = {other.topic("telemetry.redis"): 1, f"{other.app_id}-__assignor-__leader": 1}
    asyncio.run(kafka.ensure_topics(run, made | kept))
    made_groups = [run.app_id, f"{run.app_id}-passthrough"]
    for group in made_groups:
        asyncio.run(_commit(run, group, run.topic("telemetry.redis")))
    asyncio.run(_commit(run, other.app_id, other.topic("telemetry.redis")))
    try:
        topics, groups = asyncio.run(_topics_and_groups(run))
        assert set(made) | set(kept) <= topics
        assert {*made_groups, other.app_id} <= groups

        removed = asyncio.run(remove_isolated([run]))

        assert sorted(removed.topics) == sorted(made)
        assert sorted(removed.groups) == sorted(made_groups)
        assert not removed.failed
        topics, groups = asyncio.run(_topics_and_groups(run))
        assert not {t for t in topics if t.startswith((run.topic_prefix, f"{run.app_id}-"))}
        assert not {g for g in groups if g.startswith(run.app_id) and g != other.app_id}
        assert set(kept) <= topics and other.app_id in groups
    finally:
        asyncio.run(remove_isolated([run, other]))


def test_the_cleanup_refuses_settings_that_are_not_an_isolated_run():
    with pytest.raises(ValueError, match="not an isolated run"):
        asyncio.run(remove_isolated([Settings(topic_prefix="", app_id="foreshock")]))

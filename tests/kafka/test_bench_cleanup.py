"""A benchmark leaves nothing on the broker: the cleanup deletes every topic
and consumer group of its isolated runs, and nobody else's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.kafka import isolated, remove_isolated
from foreshock.settings import Settings
from producers.kafka import ensure_topics

pytestmark = pytest.mark.xdist_group("kafka")


async def _topics_and_groups(client: dict[str, Any]) -> tuple[set[str], set[str]]:
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        return set(await admin.list_topics()), {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def _commit(client: dict[str, Any], group: str, topic: str) -> None:
    """Leave a consumer group behind, as a worker that has stopped does."""
    consumer = AIOKafkaConsumer(**client, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 0})
    finally:
        await consumer.stop()


def test_the_cleanup_deletes_every_topic_and_group_of_a_run_and_nothing_else(namespace):
    run = namespace.settings
    client = namespace.client
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
    asyncio.run(ensure_topics(client, made | kept))
    made_groups = [run.app_id, f"{run.app_id}-passthrough"]
    for group in made_groups:
        asyncio.run(_commit(client, group, run.topic("telemetry.redis")))
    asyncio.run(_commit(client, other.app_id, other.topic("telemetry.redis")))
    try:
        topics, groups = asyncio.run(_topics_and_groups(client))
        assert set(made) | set(kept) <= topics
        assert {*made_groups, other.app_id} <= groups

        removed = asyncio.run(remove_isolated(client, [run]))

        assert sorted(removed.topics) == sorted(made)
        assert sorted(removed.groups) == sorted(made_groups)
        assert not removed.failed
        topics, groups = asyncio.run(_topics_and_groups(client))
        assert not {t for t in topics if t.startswith((run.topic_prefix, f"{run.app_id}-"))}
        assert not {g for g in groups if g.startswith(run.app_id) and g != other.app_id}
        assert set(kept) <= topics and other.app_id in groups
    finally:
        asyncio.run(remove_isolated(client, [run, other]))


def test_the_cleanup_refuses_settings_that_are_not_an_isolated_run():
    with pytest.raises(ValueError, match="not an isolated run"):
        asyncio.run(remove_isolated({}, [Settings(topic_prefix="", app_id="foreshock")]))

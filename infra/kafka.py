"""Foreshock's Kafka, in one place: the names of its topics and partitions,
its clients (as async context managers), creating and deleting topics,
checking that a broker can be used, and the Faust app built from Settings.

Every topic name is prefixed with ``Settings.topic_prefix``; the names here
are the unprefixed ones, and the functions that take Settings prefix them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.protocol.metadata import MetadataRequest

from infra import logs
from infra.settings import SecurityProtocol, Settings
from models.schema import FAMILIES

log = logging.getLogger(__name__)

# Telemetry: one topic per family, keyed by entity.
TELEMETRY = {family: f"telemetry.{family}" for family in FAMILIES}
# Change events (deploys, config pushes...), keyed by component.
CHANGES = "telemetry.changes"
# What the workers write.
WINDOWS = "foreshock.windows"  # window reports, from detection to correlation
ANOMALIES = "foreshock.anomalies"
INCIDENTS = "foreshock.incidents"
DEADLETTER = "foreshock.deadletter"
SILENCES = "foreshock.silences"  # compacted, keyed by silence id; every worker reads it whole
PAGED = "foreshock.paged"  # compacted: the last offset each alert sink took, per partition
# The workers' tables; Faust names their changelog topics after the app id.
DETECT_STATE = "detect-state"
CORRELATE_STATE = "correlate-state"


def telemetry_topics(settings: Settings) -> dict[str, str]:
    """Family -> the topic its telemetry is published on."""
    return {family: settings.topic(topic) for family, topic in TELEMETRY.items()}


def changelog_topic(settings: Settings, table: str) -> str:
    """The changelog topic of one of the workers' tables."""
    return f"{settings.app_id}-{table}-changelog"


def partition_name(topic: str, partition: int) -> str:
    """How logs, snapshots and window reports name one partition: ``topic:partition``."""
    return f"{topic}:{partition}"


# Clients. Each is started on entry and closed on exit, whatever happens.


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options for any aiokafka client; the password they carry
    is masked in every log line from now on (see ``infra.logs``)."""
    options = settings.kafka_client_options()
    logs.hide(options.get("sasl_plain_password"))
    return options


@contextlib.asynccontextmanager
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**client_options(settings))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def consumer(
    settings: Settings, *topics: str, **options: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer subscribed to ``topics`` (none: assign partitions yourself);
    it commits nothing unless told to."""
    client = AIOKafkaConsumer(
        *topics, **client_options(settings), **{"enable_auto_commit": False, **options}
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def follow(
    settings: Settings, topic: str, *, to_end: bool = False
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from its first, then those that come; with
    ``to_end``, only up to the end it had when asked. Read as no group's:
    nothing is committed, no one's partitions move. ``LookupError`` if
    the topic does not exist."""
    async with consumer(settings) as probe:
        if topic not in await probe.topics():  # subscribing could have the broker create it
            raise LookupError(f"{topic}: no such topic on {settings.kafka_bootstrap}")
    async with consumer(settings, topic, auto_offset_reset="earliest") as c:
        tps = sorted(c.assignment())  # every partition: no group shares them out
        ends = await c.end_offsets(tps) if to_end else {}
        while not to_end or any([await c.position(tp) < end for tp, end in ends.items()]):
            batch = await c.getmany(timeout_ms=1000)
            # Across partitions in the order they were written.
            for record in sorted(
                (r for records in batch.values() for r in records), key=lambda r: r.timestamp
            ):
                yield record


@contextlib.asynccontextmanager
async def producer(settings: Settings, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(**client_options(settings), **options)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


# Topics and consumer groups.


async def ensure_topics(
    settings: Settings,
    topics: Mapping[str, int],
    configs: Mapping[str, dict[str, str]] | None = None,
) -> None:
    """Create the topics that do not exist yet, with the given partition
    counts (and topic configs, by name, e.g. compaction).

    Left to the broker, a topic would be created on first use with its default
    partition count, which need not match the tables that shard with it.
    """
    async with admin(settings) as a:
        existing = set(await a.list_topics())
        missing = [
            NewTopic(t, n, 1, topic_configs=(configs or {}).get(t, {}))
            for t, n in topics.items()
            if t not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await a.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])


async def topic_config(settings: Settings, topic: str, name: str) -> str | None:
    """One setting of a topic as the broker has it (its own or the broker's
    default), or None if the topic does not exist."""
    async with admin(settings) as a:
        wanted = ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})
        for response in await a.describe_configs([wanted]):
            for error, _, _, _, entries in response.resources:
                for entry in entries if error == 0 else ():
                    if entry[0] == name:
                        return str(entry[1])
    return None


async def delete_groups(a: AIOKafkaAdminClient, groups: Iterable[str]) -> dict[str, int]:
    """Delete consumer groups (each must have no members): group -> error code."""
    codes: dict[str, int] = {}
    for group in groups:
        # aiokafka 0.14 has no call for DeleteGroups: the request goes to the
        # group's coordinator, as its other group calls do.
        node = await a.find_coordinator(group)
        response = await a._send_request(DeleteGroupsRequest([group]), node)
        codes.update(response.results)
    return codes


async def delete_topics(
    a: AIOKafkaAdminClient, topics: Iterable[str], timeout_s: float = 30
) -> dict[str, int]:
    """Delete topics, and wait until the broker no longer lists those it
    deleted (it deletes in the background): topic -> error code."""
    names = list(topics)
    if not names:
        return {}
    response = await a.delete_topics(names)
    codes = dict(response.topic_error_codes)
    deleted = {name for name, code in codes.items() if not code}
    deadline = time.monotonic() + timeout_s
    while deleted & set(await a.list_topics()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics still listed {timeout_s:.0f} s after their deletion")
        await asyncio.sleep(0.2)
    return codes


async def end_offsets(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The end offset of every partition of these topics (those that exist)."""
    names = list(topics)
    async with consumer(settings, *names) as c:
        tps = [TopicPartition(t, p) for t in names for p in c.partitions_for_topic(t) or ()]
        return await c.end_offsets(tps) if tps else {}


async def group_offsets(
    settings: Settings, group: str, topics: Iterable[str]
) -> dict[TopicPartition, tuple[int, int]]:
    """For every partition of these topics: the offset a consumer group has
    committed (0 if none) and the end offset."""
    ends = await end_offsets(settings, topics)
    async with admin(settings) as a:
        committed = await a.list_consumer_group_offsets(group)
    done = {tp: om.offset for tp, om in committed.items() if om.offset >= 0}
    return {tp: (done.get(tp, 0), end) for tp, end in ends.items()}


async def partitions_with_data(
    settings: Settings, topics: Iterable[str] | None = None
) -> list[str]:
    """The names of the partitions of these topics (by default the telemetry
    topics) that hold at least one message."""
    names = list(telemetry_topics(settings).values() if topics is None else topics)
    async with admin(settings) as a:
        described = await a.describe_topics(names)
    tps = [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    ]
    if not tps:
        return []
    async with consumer(settings) as c:
        first = await c.beginning_offsets(tps)
        last = await c.end_offsets(tps)
    return sorted(partition_name(tp.topic, tp.partition) for tp in tps if last[tp] > first[tp])


# Whether the broker can be used at all.


class BrokerAccessError(Exception):
    """The broker cannot be used with these settings; the message names the
    cause and the setting to check, and never a secret."""


async def check_broker(settings: Settings, timeout_s: float = 10.0) -> None:
    """Connect to a bootstrap broker, authenticate and ask for metadata, or
    raise ``BrokerAccessError`` within about ``timeout_s`` per address.

    Kafka clients retry a refused login like a broker that is down, for
    minutes and with a generic error; this asks once and says which it is.
    """
    client = client_options(settings)
    sasl = str(client.get("security_protocol", "")).startswith("SASL")
    user = client.get("sasl_plain_username")
    if sasl and (not user or client.get("sasl_plain_password") is None):
        raise BrokerAccessError(
            "SASL needs a username and a password: "
            "set FORESHOCK_KAFKA_SASL_USERNAME and FORESHOCK_KAFKA_SASL_PASSWORD"
        )
    options = {k: v for k, v in client.items() if k != "bootstrap_servers"}
    causes: list[str] = []
    for address in str(client["bootstrap_servers"]).split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"), int(port), request_timeout_ms=int(timeout_s * 1000), **options
                ),
                timeout_s,
            )
            try:
                await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
            finally:
                conn.close()
        except (SaslAuthenticationFailed, AuthenticationFailedError):
            raise BrokerAccessError(
                f"authentication failed at {address.strip()} "
                f"({client.get('sasl_mechanism')} as user {user!r}): "
                "check FORESHOCK_KAFKA_SASL_USERNAME and FORESHOCK_KAFKA_SASL_PASSWORD"
            ) from None
        except UnsupportedSaslMechanismError:
            raise BrokerAccessError(
                f"the broker at {address.strip()} does not offer "
                f"{client.get('sasl_mechanism')}: check FORESHOCK_KAFKA_SASL_MECHANISM"
            ) from None
        except (TimeoutError, OSError, ValueError, KafkaError) as exc:
            causes.append(f"{address.strip()}: {str(exc) or type(exc).__name__}")
            continue
        return
    raise BrokerAccessError(
        f"cannot use the Kafka broker ({'; '.join(causes)}): check FORESHOCK_KAFKA_BOOTSTRAP "
        f"and that FORESHOCK_KAFKA_SECURITY_PROTOCOL ({client.get('security_protocol')}) "
        "is what its listener speaks"
    )


# The Faust app.


def credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """What a Faust app authenticates with, from the same settings as every
    other client."""
    protocol = settings.kafka_security_protocol
    context = settings.ssl_context()
    if protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        options = client_options(settings)
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=options["sasl_plain_password"],
            mechanism=settings.kafka_sasl_mechanism.value,
            ssl_context=context,
        )
    if protocol is SecurityProtocol.SSL:
        return faust.SSLCredentials(context)
    return None


def faust_app(settings: Settings, app_id: str | None = None, **options: Any) -> faust.App:
    """A Faust app on the configured cluster, with its credentials, in-memory
    tables and the configured partition count; ``options`` add to (or
    override) Faust's settings."""
    return faust.App(
        app_id or settings.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        **options,
    )


def raw_topic(
    app: faust.App, settings: Settings, *names: str, partitions: int | None = None
) -> faust.TopicT:
    """The app's topic (or topics) of these unprefixed names, bytes in and
    out; the app creates it, with its partition count, if missing."""
    return app.topic(
        *(settings.topic(name) for name in names),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions or settings.partitions,
        internal=True,
    )

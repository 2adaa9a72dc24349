"""Telemetry on the wire: the four families, their metrics, and validation.

A message carries a batch of samples of one entity, column by column, so that
the broker and the agents pay per message, not per sample::

    {"v": 1, "family": "redis", "entity": "redis/node-07", "time": 1664887505.0,
     "ts": [1664887500.0, ...], "metrics": {"memory_used_ratio": [0.71, ...], ...}}

Social messages carry one mention per timestamp, with its text, instead of
metrics: ``"ts": [...], "text": ["is it down?", ...]``. ``time`` is when the
batch was cut (event time, epoch seconds); every ``ts`` lies at or before it.

Validation never raises on bad input: it returns a :class:`Rejection` with a
machine-readable ``reason`` and a human ``detail``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

SCHEMA_VERSION = 1

# Plausible event times: after 2000-01-01 and before 2100-01-01.
EARLIEST_TS = 946_684_800.0
LATEST_TS = 4_102_444_800.0
MAX_POINTS = 10_000
MAX_TEXT = 2_000
MAX_BATCH_SPAN_S = 3_600.0
# Half of Kafka's default message.max.bytes: far above any real batch, and
# refused before parsing so that a huge message costs no more than its read.
MAX_MESSAGE_BYTES = 512 * 1024

# Every reason a message can be refused for, decoder, engines and pipeline
# alike: what the dead-letter topic and the per-reason counters carry.
REASONS: dict[str, str] = {
    "not_json": "the bytes are not JSON",
    "not_object": "the JSON is not an object",
    "missing_field": "a required field is missing or empty",
    "unsupported_version": "the schema version is not one this code reads",
    "unknown_family": "the family is not redis, pods, logins or social",
    "wrong_type": "a field has the wrong type",
    "unknown_entity": "the entity is not in the topology, or is of another family",
    "unknown_metric": "the family has no such metric",
    "implausible_time": "a time outside 2000..2100, or a sample outside its batch's span",
    "non_finite": "NaN or infinity",
    "negative_value": "a negative value (counters, rates and gauges are all non-negative)",
    "ratio_out_of_range": "a ratio above 1",
    "length_mismatch": "a column's length differs from the timestamps'",
    "oversized": "too many bytes, samples or characters",
    "wrong_topic": "a valid message on another family's topic",
    "too_far_ahead": "event time far ahead of the stream's watermark",
    "late": "every sample is in windows already decided (later than the allowed lateness)",
    "duplicate": "a batch already folded in, delivered again",
    "unknown_change_kind": "a change event whose kind is not one of deploy, config, flag, ...",
}
# Refusals on Foreshock's own topics: only a foreign writer can cause them.
INTERNAL_REASONS: dict[str, str] = {
    "not_a_window_report": "a record on foreshock.windows that is not a window report",
    "not_incident": "a record on foreshock.incidents that is not an incident change",
}


class Bad(Enum):
    """Which way a metric moves when something is wrong."""

    HIGH = "high"
    LOW = "low"
    EITHER = "either"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What a series measures and how to judge it.

    ``floor`` is the smallest deviation worth a unit of anomaly score: it keeps
    a series that is almost constant (restarts, usually zero) from paging on
    its first non-zero value. ``limit`` marks a bounded resource whose trend
    is forecast to exhaustion.
    """

    name: str
    unit: str
    bad: Bad
    floor: float
    counter: bool = False
    ratio: bool = False
    limit: float | None = None


def _specs(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {s.name: s for s in specs}


# Metrics as they arrive on the wire, per family.
WIRE_METRICS: dict[str, dict[str, MetricSpec]] = {
    "redis": _specs(
        MetricSpec("memory_used_ratio", "ratio", Bad.HIGH, 0.01, ratio=True, limit=1.0),
        MetricSpec("latency_ms", "ms", Bad.HIGH, 0.5),
        MetricSpec("gc_pause_s", "s", Bad.HIGH, 0.05),
        MetricSpec("evictions", "1/s", Bad.HIGH, 20.0, counter=True),
        MetricSpec("connected_clients", "clients", Bad.EITHER, 50.0),
        MetricSpec("ops_per_s", "1/s", Bad.EITHER, 500.0),
    ),
    "pods": _specs(
        MetricSpec("restarts", "1/s", Bad.HIGH, 0.2, counter=True),
        MetricSpec("ready_ratio", "ratio", Bad.LOW, 0.05, ratio=True),
        MetricSpec("p99_latency_ms", "ms", Bad.HIGH, 20.0),
        MetricSpec("error_rate", "ratio", Bad.HIGH, 0.005, ratio=True),
        MetricSpec("request_rate", "1/s", Bad.EITHER, 5.0),
        # Only a store with a connection pool sends it (postgres, mongodb):
        # a message may carry any of its family's columns, not all of them.
        MetricSpec("pool_used_ratio", "ratio", Bad.HIGH, 0.02, ratio=True, limit=1.0),
        # Only what runs on machines of its own sends these: share of its CPU
        # busy, and of its disk full (forecast to exhaustion).
        MetricSpec("cpu_used_ratio", "ratio", Bad.HIGH, 0.05, ratio=True),
        MetricSpec("disk_used_ratio", "ratio", Bad.HIGH, 0.01, ratio=True, limit=1.0),
    ),
    "logins": _specs(
        MetricSpec("attempts", "1/s", Bad.EITHER, 5.0, counter=True),
        MetricSpec("successes", "1/s", Bad.LOW, 5.0, counter=True),
        MetricSpec("timeouts", "1/s", Bad.HIGH, 2.0, counter=True),
    ),
    "social": {},
}

# Series the windows produce and the detectors see, per family. Logins and
# mentions become rates and ratios: a count depends on traffic, a ratio does not.
SERIES_METRICS: dict[str, dict[str, MetricSpec]] = {
    "redis": WIRE_METRICS["redis"],
    "pods": WIRE_METRICS["pods"],
    "logins": _specs(
        MetricSpec("attempt_rate", "1/s", Bad.EITHER, 5.0),
        MetricSpec("success_ratio", "ratio", Bad.LOW, 0.005, ratio=True),
        MetricSpec("timeout_ratio", "ratio", Bad.HIGH, 0.005, ratio=True),
    ),
    "social": _specs(
        MetricSpec("mention_rate", "1/s", Bad.HIGH, 0.5),
        MetricSpec("outage_mention_rate", "1/s", Bad.HIGH, 0.5),
    ),
}

FAMILIES = tuple(WIRE_METRICS)
# The series this code defines; a mapping file may declare more, process-wide
# (``infra.ingest.mapping``), which only outside telemetry carries.
BUILT_IN_SERIES = {family: frozenset(specs) for family, specs in SERIES_METRICS.items()}


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One valid message: a batch of samples of one entity."""

    family: str
    entity: str
    time: float
    ts: list[float]
    metrics: dict[str, list[float]] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        """Values carried: one per metric per timestamp, or one per mention."""
        if self.family == "social":
            return len(self.ts)
        return len(self.ts) * len(self.metrics)

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "family": self.family,
            "entity": self.entity,
            "time": self.time,
            "ts": self.ts,
        }
        if self.family == "social":
            body["text"] = self.text
        else:
            body["metrics"] = self.metrics
        return body


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused. ``reason`` is stable and machine-readable."""

    reason: str
    detail: str


def encode(message: Telemetry) -> bytes:
    return orjson.dumps(message.to_wire())


def decode(
    raw: bytes, known_entity: Callable[[str], bool] | None = None, family: str | None = None
) -> Telemetry | Rejection:
    """Parse and validate one message from the wire; ``family``, when given,
    is the one its topic carries.

    >>> decode(b'{"v": 1}' + b" " * MAX_MESSAGE_BYTES).reason
    'oversized'
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        return Rejection("oversized", f"{len(raw)} bytes; at most {MAX_MESSAGE_BYTES}")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if _non_finite_literal(raw):
            return Rejection("non_finite", "NaN or an infinite number, which JSON cannot carry")
        return Rejection("not_json", f"not valid JSON: {exc}")
    tel = validate(body, known_entity)
    if family is not None and isinstance(tel, Telemetry) and tel.family != family:
        return Rejection("wrong_topic", f"a {tel.family} message where {family} is expected")
    return tel


def _non_finite_literal(raw: bytes) -> bool:
    """Whether bytes that are not JSON would be, but for NaN, Infinity or a
    number beyond a double, as some encoders (Python's json) write them.

    >>> _non_finite_literal(b'{"x": [NaN, 1]}'), _non_finite_literal(b'[1e999]')
    (True, True)
    >>> _non_finite_literal(b'{"x": NaN') or _non_finite_literal(b'[1.5]')
    False
    """
    found = False

    def constant(name: str) -> None:
        nonlocal found
        found = True

    def number(text: str) -> float:
        nonlocal found
        value = float(text)
        found = found or not math.isfinite(value)
        return value

    try:
        json.loads(raw.decode(), parse_constant=constant, parse_float=number)
    except (ValueError, RecursionError):  # not JSON for other reasons too
        return False
    return found


def _is_number(x: object) -> bool:
    # bool is not a number here; ints beyond 64 bits cannot come from JSON or become floats.
    return type(x) is float or (type(x) is int and -(2**63) <= x < 2**64)


def _all_floats(values: list[Any]) -> bool:
    """Whether every value is a float: the common case, checked without a
    Python call per value."""
    return set(map(type, values)) <= {float}


def _plainly_valid(metrics: dict[str, Any], n: int, specs: dict[str, MetricSpec]) -> bool:
    """Whether every column is certainly valid, judged on all of them at
    once: lists of ``n`` finite, non-negative floats, ratios at most 1.
    False means only "look column by column" (``_check_column`` says why),
    so a message passes here exactly when it passes there.

    >>> specs = WIRE_METRICS["pods"]
    >>> _plainly_valid({"error_rate": [0.1, 0.0], "restarts": [2.0, 0.0]}, 2, specs)
    True
    >>> _plainly_valid({"error_rate": [0.1, 1.5]}, 2, specs)
    False
    >>> _plainly_valid({"restarts": [1]}, 1, specs), _plainly_valid({"restarts": ["1"]}, 1, specs)
    (False, False)
    """
    values: list[Any] = []
    ratios: list[Any] = []
    for name, col in metrics.items():
        spec = specs.get(name)
        if spec is None or type(col) is not list or len(col) != n:
            return False
        values += col
        if spec.ratio:
            ratios += col
    if not values:
        return True
    return (
        _all_floats(values)
        and all(map(math.isfinite, values))
        and min(values) >= 0
        and (not ratios or max(ratios) <= 1)
    )


def _check_column(name: str, col: object, n: int, spec: MetricSpec) -> Rejection | None:
    if not isinstance(col, list):
        return Rejection("wrong_type", f"metrics.{name} must be a list of numbers")
    if len(col) != n:
        return Rejection("length_mismatch", f"metrics.{name} has {len(col)} values for {n} ts")
    if not all(map(_is_number, col)):
        return Rejection("wrong_type", f"metrics.{name} holds a value that is not a number")
    if not all(map(math.isfinite, col)):
        return Rejection("non_finite", f"metrics.{name} holds NaN or infinity")
    if col and min(col) < 0:
        return Rejection("negative_value", f"metrics.{name} holds a negative value")
    if spec.ratio and col and max(col) > 1:
        return Rejection("ratio_out_of_range", f"metrics.{name} holds a ratio above 1")
    return None


def validate(
    body: object, known_entity: Callable[[str], bool] | None = None
) -> Telemetry | Rejection:
    """Check a decoded message field by field; return it typed, or why not.

    >>> validate({"v": 1, "family": "pods", "entity": "user-svc", "time": 1e9,
    ...           "ts": [1e9], "metrics": {"error_rate": [1.5]}}).reason
    'ratio_out_of_range'
    """
    if not isinstance(body, dict):
        return Rejection("not_object", "a message must be a JSON object")
    for key in ("v", "family", "entity", "time", "ts"):
        if key not in body:
            return Rejection("missing_field", f"missing field {key!r}")
    if body["v"] != SCHEMA_VERSION or type(body["v"]) is not int:
        return Rejection("unsupported_version", f"schema version {body['v']!r} is not 1")
    family, entity, time, ts = body["family"], body["entity"], body["time"], body["ts"]
    if not isinstance(family, str) or family not in WIRE_METRICS:
        return Rejection("unknown_family", f"family {family!r} is not one of {FAMILIES}")
    if not isinstance(entity, str) or not entity or len(entity) > 200:
        return Rejection("wrong_type", "entity must be a non-empty string of at most 200 chars")
    if known_entity is not None and not known_entity(entity):
        return Rejection("unknown_entity", f"entity {entity!r} is not in the topology")
    if not _is_number(time) or not math.isfinite(time):
        return Rejection("wrong_type", "time must be a finite number of epoch seconds")
    if not EARLIEST_TS <= time <= LATEST_TS:
        return Rejection("implausible_time", f"time {time} is outside 2000..2100")
    if not isinstance(ts, list) or not (_all_floats(ts) or all(map(_is_number, ts))):
        return Rejection("wrong_type", "ts must be a list of numbers")
    if len(ts) > MAX_POINTS:
        return Rejection("oversized", f"{len(ts)} timestamps; at most {MAX_POINTS}")
    if ts:
        if not all(map(math.isfinite, ts)):
            return Rejection("non_finite", "ts holds NaN or infinity")
        if max(ts) > time or min(ts) < time - MAX_BATCH_SPAN_S:
            return Rejection(
                "implausible_time", f"ts must lie within {MAX_BATCH_SPAN_S:.0f} s before time"
            )
    if family == "social":
        return _validate_social(body, entity, float(time), ts)
    metrics = body.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return Rejection("missing_field", "metrics must be a non-empty object")
    specs = WIRE_METRICS[family]
    if _plainly_valid(metrics, len(ts), specs):
        return Telemetry(family, entity, float(time), ts, metrics)
    for name, col in metrics.items():
        spec = specs.get(name)
        if spec is None:
            return Rejection("unknown_metric", f"{family} has no metric {name!r}")
        bad = _check_column(name, col, len(ts), spec)
        if bad is not None:
            return bad
    return Telemetry(family, entity, float(time), ts, metrics)


def _validate_social(body: dict[str, Any], entity: str, time: float, ts: list[float]) -> Any:
    text = body.get("text")
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        return Rejection("wrong_type", "text must be a list of strings")
    if len(text) != len(ts):
        return Rejection("length_mismatch", f"text has {len(text)} mentions for {len(ts)} ts")
    if any(len(t) > MAX_TEXT for t in text):
        return Rejection("oversized", f"a mention is longer than {MAX_TEXT} characters")
    return Telemetry("social", entity, time, ts, text=text)

"""Learned state as data: what a stage's snapshot holds and how it is read back.

A snapshot is JSON (``{"format": N, "stage": name, "state": {...}}``) made
of numbers, strings, booleans, lists and objects only. Every model gives its
learned state with ``to_state()`` and is rebuilt by ``from_state(...)``, with
its configuration (topology, settings) passed in, never stored: a restored
stage runs with the worker's own. Reading one checks every field's type and
shape, so a snapshot that is damaged, foreign or from another version is
refused with a reason (``IncompatibleSnapshot``); nothing in it is ever run.

JSON has no infinity or NaN, and learned state holds them (a watermark not
yet set is ``-inf``): they travel as the strings ``"inf"``, ``"-inf"`` and
``"nan"``, which the float readers accept. Finite floats round-trip exactly.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

import orjson

# Bumped whenever learned state changes shape, so that a worker never loads
# state it would misread; it refuses the snapshot and learns afresh instead.
SNAPSHOT_FORMAT = 7
# Formats 1 and 2 were Python object dumps behind this tag: recognised, never read.
_PICKLED_TAG = b"foreshock-snapshot:"

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}

T = TypeVar("T")


class IncompatibleSnapshot(ValueError):
    """A snapshot this version cannot restore; the message says why."""


def _plain(value: Any) -> Any:
    """``value`` with every non-finite float spelled as a string, for JSON."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dump(stage: str, state: dict[str, Any]) -> bytes:
    """The snapshot of one stage's state.

    >>> load(dump("S", {"until": float("-inf"), "n": [1, 2.5]}), "S")
    {'until': '-inf', 'n': [1, 2.5]}
    """
    return orjson.dumps({"format": SNAPSHOT_FORMAT, "stage": stage, "state": _plain(state)})


def load(snapshot: bytes, stage: str) -> dict[str, Any]:
    """The state in a snapshot of ``stage``, or ``IncompatibleSnapshot``.

    >>> try:
    ...     load(b"foreshock-snapshot:2:...", "DetectStage")
    ... except IncompatibleSnapshot as refused:
    ...     print(refused)
    snapshot format 2 (objects, never read); this version reads format 7
    """
    if snapshot.startswith(_PICKLED_TAG):
        version = snapshot[len(_PICKLED_TAG) :].partition(b":")[0]
        written = version.decode() if version.isdigit() else "1 or 2"
        raise IncompatibleSnapshot(
            f"snapshot format {written} (objects, never read); "
            f"this version reads format {SNAPSHOT_FORMAT}"
        )
    try:
        doc = orjson.loads(snapshot)
    except orjson.JSONDecodeError as exc:
        raise IncompatibleSnapshot(f"not JSON: {exc}"[:200]) from exc
    if not isinstance(doc, dict):
        raise IncompatibleSnapshot(f"not a snapshot: a JSON {type(doc).__name__}")
    number = doc.get("format")
    if type(number) is not int:
        raise IncompatibleSnapshot(f"no format number (format: {number!r})"[:200])
    if number != SNAPSHOT_FORMAT:
        raise IncompatibleSnapshot(
            f"snapshot format {number}; this version reads format {SNAPSHOT_FORMAT}"
        )
    if doc.get("stage") != stage:
        raise IncompatibleSnapshot(f"holds a {doc.get('stage')!r} stage, not a {stage}"[:200])
    state = doc.get("state")
    if not isinstance(state, dict):
        raise IncompatibleSnapshot("its state is not an object")
    return state


class Snapshotted(ABC):
    """A stage whose learned state is snapshotted as data (see the module).

    A subclass gives ``to_state()``, and a ``restore(snapshot, ...)`` that
    reads it back with ``load`` and ``rebuild``.
    """

    @abstractmethod
    def to_state(self) -> dict[str, Any]:
        """The learned state, as plain data."""

    def snapshot(self) -> bytes:
        return dump(type(self).__name__, self.to_state())

    @property
    def done(self) -> float:
        """Messages due up to here are done with (a stage that waits for more
        than one message before acting says so by overriding this)."""
        return math.inf


def rebuild(stage: str, build: Callable[[], T]) -> T:
    """``build()``, with any failure to read the state as a refusal with a reason."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        where = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise IncompatibleSnapshot(f"{stage} state unreadable: {where}"[:300]) from exc


# ------------------------------------------------------------------ typed readers
# Each returns the value if it has the type asked for, or raises TypeError.


def as_float(value: Any) -> float:
    """A number (or a spelled non-finite float) as a float.

    >>> as_float(3), as_float("-inf")
    (3.0, -inf)
    >>> as_float(True)
    Traceback (most recent call last):
    ...
    TypeError: expected a number, got True
    """
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    raise TypeError(f"expected a number, got {value!r}"[:100])


def as_number(value: Any) -> float:
    """A number as it was written: an int stays an int (a count of users, say).

    >>> as_number(3), as_number(2.5), as_number("inf")
    (3, 2.5, inf)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return as_float(value)


def as_finite(value: Any) -> float:
    out = as_float(value)
    if not math.isfinite(out):
        raise ValueError(f"expected a finite number, got {value!r}")
    return out


def as_opt_number(value: Any) -> float | None:
    return None if value is None else as_number(value)


def as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer, got {value!r}"[:100])


def as_count(value: Any) -> int:
    """An integer that counts something: never below 0 (a count divides).

    >>> as_count(3)
    3
    >>> as_count(-1)
    Traceback (most recent call last):
    ...
    ValueError: expected a count, got -1
    """
    count = as_int(value)
    if count < 0:
        raise ValueError(f"expected a count, got {count}")
    return count


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {value!r}"[:100])


def as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r}"[:100])


def as_list(value: Any, length: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"expected {length} items, got {len(value)}")
    return value


def as_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def list_of(read: Callable[[Any], T], value: Any, length: int | None = None) -> list[T]:
    return [read(v) for v in as_list(value, length)]


def dict_of(read: Callable[[Any], T], value: Any) -> dict[str, T]:
    return {k: read(v) for k, v in as_dict(value).items()}


def pairs_of(read: Callable[[Any], T], value: Any) -> dict[tuple[str, str], T]:
    """A dict keyed by (entity, metric) from its ``[[entity, metric, value], ...]`` form."""
    out: dict[tuple[str, str], T] = {}
    for item in as_list(value):
        entity, metric, v = as_list(item, 3)
        out[(as_str(entity), as_str(metric))] = read(v)
    return out


def pairs(d: dict[tuple[str, str], Any]) -> list[list[Any]]:
    """The ``[[entity, metric, value], ...]`` form of a dict keyed by (entity, metric)."""
    return [[e, m, v] for (e, m), v in d.items()]


# ------------------------------------------------------------------ records
# Frozen dataclasses of strings and numbers (an anomaly, a warning, a gap):
# their state is their fields, read back by the type each field declares.

R = TypeVar("R")

_READERS: dict[str, Callable[[Any], Any]] = {
    "str": as_str,
    "float": as_number,
    "float | None": as_opt_number,
    "int": as_int,
    "bool": as_bool,
}


def record_state(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def record_from_state(cls: type[R], state: Any) -> R:
    """The record of type ``cls`` whose state is ``state``, each field checked.

    >>> from models.gaps import TelemetryGap
    >>> gap = TelemetryGap("api", 10.0, 75.0)
    >>> record_from_state(TelemetryGap, record_state(gap)) == gap
    True
    """
    d = as_dict(state)
    return cls(**{f.name: _READERS[str(f.type)](d[f.name]) for f in fields(cls)})  # type: ignore[arg-type]


# ------------------------------------------------------------------ confirm/clear counters
# A watch that confirms a change over several windows and clears it over
# several more (``SeriesMonitor``, ``CreepWatch``) keeps the same counters.


def counters_state(watch: Any) -> dict[str, Any]:
    return {
        "streak": watch._streak,
        "calm": watch._calm,
        "held": watch._held,
        "first": watch._first,
    }


def load_counters(watch: Any, state: dict[str, Any]) -> None:
    watch._streak = as_count(state["streak"])
    watch._calm = as_count(state["calm"])
    watch._held = as_count(state["held"])
    watch._first = as_float(state["first"])

"""Change events: deploys, config pushes, feature flags, scaling, maintenance.

Most outages follow a change. A change event says what changed, where and
when, on the ``telemetry.changes`` topic::

    {"v": 1, "time": 1664887505.0, "component": "lb", "kind": "config",
     "description": "edge routing rules v42", "who": "deploy-bot"}

``component`` is a component of the topology or one of its entities.
Correlation keeps the recent ones: a change on a component shortly before
its symptoms makes it the leading root-cause candidate, and the incident
shows the change. Like telemetry, a message that is not a change event is
refused with a reason, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from models.schema import (
    EARLIEST_TS,
    LATEST_TS,
    MAX_MESSAGE_BYTES,
    MAX_TEXT,
    SCHEMA_VERSION,
    Rejection,
)


class ChangeKind(StrEnum):
    DEPLOY = "deploy"
    CONFIG = "config"
    FLAG = "flag"  # a feature flag turned on or off
    SCALING = "scaling"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to one component (or one of its entities), at event time.

    >>> c = ChangeEvent(1664887505.0, "lb", ChangeKind.CONFIG, "routing v42", "ci")
    >>> str(c)
    "config of lb at 12:45:05: 'routing v42' by ci"
    >>> ChangeEvent.parse(orjson.dumps(c.to_wire())) == c
    True
    """

    time: float
    component: str
    kind: ChangeKind
    description: str = ""
    who: str = ""

    def __str__(self) -> str:
        at = datetime.fromtimestamp(self.time, UTC).strftime("%H:%M:%S")
        text = f"{self.kind} of {self.component} at {at}"
        if self.description:
            text += f": {self.description!r}"
        return text + (f" by {self.who}" if self.who else "")

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "time": self.time,
            "component": self.component,
            "kind": str(self.kind),  # a StrEnum, or a str not yet checked
            "description": self.description,
            "who": self.who,
        }

    @classmethod
    def parse(
        cls, raw: bytes, known: Callable[[str], bool] | None = None
    ) -> ChangeEvent | Rejection:
        """A change event from the wire, or why it is not one; ``known`` says
        whether a name is a component or entity of the topology.

        >>> ChangeEvent.parse(b'{"v": 1, "time": 1e9, "component": "lb", "kind": "reboot"}').reason
        'unknown_change_kind'
        """
        if len(raw) > MAX_MESSAGE_BYTES:
            return Rejection("oversized", f"{len(raw)} bytes; at most {MAX_MESSAGE_BYTES}")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejection("not_json", f"not valid JSON: {exc}")
        return cls.validate(body, known)

    @classmethod
    def validate(
        cls, body: object, known: Callable[[str], bool] | None = None
    ) -> ChangeEvent | Rejection:
        """Check a decoded change event field by field."""
        if not isinstance(body, dict):
            return Rejection("not_object", "a change event must be a JSON object")
        for key in ("v", "time", "component", "kind"):
            if key not in body:
                return Rejection("missing_field", f"missing field {key!r}")
        if body["v"] != SCHEMA_VERSION or type(body["v"]) is not int:
            return Rejection("unsupported_version", f"schema version {body['v']!r} is not 1")
        time, component, kind = body["time"], body["component"], body["kind"]
        if type(time) not in (int, float) or not math.isfinite(time):
            return Rejection("wrong_type", "time must be a finite number of epoch seconds")
        if not EARLIEST_TS <= time <= LATEST_TS:
            return Rejection("implausible_time", f"time {time} is outside 2000..2100")
        if not isinstance(component, str) or not component or len(component) > 200:
            return Rejection(
                "wrong_type", "component must be a non-empty string of at most 200 chars"
            )
        if known is not None and not known(component):
            return Rejection(
                "unknown_entity", f"{component!r} is no component or entity of the topology"
            )
        if kind not in ChangeKind.__members__.values():
            kinds = ", ".join(ChangeKind)
            return Rejection("unknown_change_kind", f"kind {kind!r} is not one of {kinds}")
        text = {}
        for key in ("description", "who"):
            value = body.get(key, "")
            if not isinstance(value, str):
                return Rejection("wrong_type", f"{key} must be a string")
            if len(value) > MAX_TEXT:
                return Rejection("oversized", f"{key} is longer than {MAX_TEXT} characters")
            text[key] = value
        return cls(float(time), component, ChangeKind(kind), **text)

    def to_state(self) -> list[Any]:
        return [self.time, self.component, self.kind.value, self.description, self.who]

    @classmethod
    def from_state(cls, raw: Any) -> ChangeEvent:
        """The change in its ``to_state`` form, checked like one from the wire."""
        if not isinstance(raw, list) or len(raw) != 5:
            raise ValueError(f"a change is [time, component, kind, description, who], not {raw!r}")
        keys = ("time", "component", "kind", "description", "who")
        change = cls.validate({"v": SCHEMA_VERSION, **dict(zip(keys, raw, strict=True))})
        if isinstance(change, Rejection):
            raise ValueError(change.detail)
        return change

"""The routes file: which pages go to which sinks, like Alertmanager's routes.

    [sinks.oncall]
    kind = "pagerduty"
    routing_key = "env:PAGERDUTY_ROUTING_KEY"   # secrets come from the environment

    [sinks.chat]
    kind = "slack"
    url = "env:SLACK_WEBHOOK_URL"

    [[route]]
    match = { sev = "1|2" }                      # patterns, in full: sev, root_cause,
    sinks = ["oncall", "chat"]                   # component, region

    [[route]]
    sinks = ["chat"]                             # no match: every page

Routes are tried in order; the first that matches names the sinks, unless it
says ``continue = true``, when the next ones are tried too. ``component``
matches a page when any component of the incident (its root cause or its
blast radius) does. A value ``env:NAME`` is read from the environment when
the file is loaded; a missing variable stops the load with the key, never
the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.settings import parse_toml
from streams.alerts.page import Page
from streams.alerts.sinks import (
    PAGERDUTY_URL,
    SINKS,
    Alertmanager,
    AlertSink,
    PagerDuty,
    Slack,
    Webhook,
)

MATCHABLE = ("sev", "root_cause", "component", "region")


class RoutesError(ValueError):
    """A routes file that cannot be used; the message names the key, never a secret."""


@dataclass(frozen=True)
class Route:
    match: tuple[tuple[str, re.Pattern[str]], ...]
    sinks: tuple[str, ...]
    more: bool = False  # ``continue``: try the next routes too

    def matches(self, page: Page) -> bool:
        values = {
            "sev": (str(page.sev),),
            "root_cause": (page.root_cause,),
            "component": page.components,
            "region": (page.region,),
        }
        return all(any(p.fullmatch(v) for v in values[key]) for key, p in self.match)


@dataclass(frozen=True)
class Routes:
    sinks: dict[str, AlertSink]
    routes: tuple[Route, ...]

    def sinks_for(self, page: Page) -> list[AlertSink]:
        """The sinks a page goes to, each once, in the order the routes name them."""
        chosen: list[str] = []
        for route in self.routes:
            if route.matches(page):
                chosen += [s for s in route.sinks if s not in chosen]
                if not route.more:
                    break
        return [self.sinks[name] for name in chosen]


def load(path: Path) -> Routes:
    """The routes file at ``path``; ``ValueError`` naming the file and the key."""
    return parse_toml(path, from_dict)


def from_dict(data: dict[str, Any], env: Callable[[str], str | None] = os.environ.get) -> Routes:
    """Routes from parsed TOML; ``RoutesError`` naming the key at fault.

    >>> try:
    ...     from_dict({"sinks": {"am": {"kind": "alertmanager"}}})
    ... except RoutesError as exc:
    ...     print(exc)
    sinks.am.url: missing
    """
    unknown = set(data) - {"sinks", "route"}
    if unknown:
        raise RoutesError(f"{sorted(unknown)[0]}: not a key of a routes file (sinks, route)")
    sinks = {
        name: _sink(name, spec, f"sinks.{name}", env)
        for name, spec in _table(data.get("sinks", {}), "sinks").items()
    }
    routes = tuple(_route(raw, f"route[{i}]", sinks) for i, raw in enumerate(data.get("route", [])))
    return Routes(sinks, routes)


def _table(raw: Any, key: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RoutesError(f"{key}: must be a table")
    return raw


def _value(spec: dict[str, Any], field: str, key: str, env: Callable[[str], str | None]) -> str:
    raw = spec.get(field)
    if not isinstance(raw, str) or not raw:
        raise RoutesError(f"{key}.{field}: missing")
    if raw.startswith("env:"):
        found = env(raw[4:])
        if not found:
            raise RoutesError(f"{key}.{field}: the environment has no {raw[4:]}")
        return found
    return raw


def _sink(name: str, raw: Any, key: str, env: Callable[[str], str | None]) -> AlertSink:
    spec = _table(raw, key)
    kind = spec.get("kind")
    if kind not in SINKS:
        raise RoutesError(f"{key}.kind: one of {', '.join(SINKS)}")
    if kind == Alertmanager.kind:
        return Alertmanager(name, _value(spec, "url", key, env))
    if kind == PagerDuty.kind:
        url = _value(spec, "url", key, env) if "url" in spec else PAGERDUTY_URL
        return PagerDuty(name, _value(spec, "routing_key", key, env), url)
    if kind == Slack.kind:
        return Slack(name, _value(spec, "url", key, env))
    return Webhook(name, _value(spec, "url", key, env), _value(spec, "secret", key, env))


def _route(raw: Any, key: str, sinks: dict[str, AlertSink]) -> Route:
    spec = _table(raw, key)
    names = spec.get("sinks")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RoutesError(f"{key}.sinks: a list of sink names")
    for name in names:
        if name not in sinks:
            raise RoutesError(f"{key}.sinks: no sink {name!r} under [sinks]")
    match = []
    for field, pattern in _table(spec.get("match", {}), f"{key}.match").items():
        if field not in MATCHABLE:
            raise RoutesError(f"{key}.match.{field}: matches only {', '.join(MATCHABLE)}")
        try:
            match.append((field, re.compile(str(pattern))))
        except re.error as exc:
            raise RoutesError(f"{key}.match.{field}: not a pattern ({exc})") from None
    more = spec.get("continue", False)
    if not isinstance(more, bool):
        raise RoutesError(f"{key}.continue: true or false")
    return Route(tuple(match), tuple(names), more)

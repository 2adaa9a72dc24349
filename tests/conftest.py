"""Shared fixtures: the default topology and business parameters, replays
cached per scenario and seed (a replay is the expensive part of these tests),
and the short world the broker tests run on."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bench.replay import Replay, replay
from infra.servers import Server
from infra.settings import Settings
from models.impact import Business
from models.topology import Topology
from producers.scenario import Scenario, load_scenarios


@cache
def _defaults() -> tuple[Topology, Business, dict[str, Scenario]]:
    settings = Settings()
    return settings.load_topology(), settings.load_business(), load_scenarios(settings.scenarios)


@pytest.fixture(scope="session")
def topology() -> Topology:
    return _defaults()[0]


@pytest.fixture(scope="session")
def business() -> Business:
    return _defaults()[1]


@pytest.fixture(scope="session")
def scenarios() -> dict[str, Scenario]:
    return _defaults()[2]


# The short world: a scenario's own messages from 30 min before its fault to
# 15 min after, a seventh of the reference day. The models warm on those 30
# min; the reference outage opens there the same incident as on the whole
# day (tests/streams/test_short_world.py).
SHORT_BEFORE_S = 1800.0
SHORT_AFTER_S = 900.0


def short_span(scenario: Scenario) -> tuple[float, float]:
    """``(since, until)`` of the scenario's short world."""
    fault = scenario.truth.fault_start
    assert fault is not None, f"{scenario.name} has no fault to centre a short world on"
    return fault - SHORT_BEFORE_S, fault + SHORT_AFTER_S


@cache
def _replayed(name: str, seed: int, short: bool = False) -> Replay:
    topology, business, scenarios = _defaults()
    since, until = short_span(scenarios[name]) if short else (None, None)
    return replay(scenarios[name], topology, business, seed=seed, since=since, until=until)


@pytest.fixture(scope="session")
def replayed() -> Callable[..., Replay]:
    """``replayed(scenario, seed, short=False)``: the replay of the whole
    scenario, or of its short world, computed once per test process."""
    return _replayed


def require(*servers: type[Server]) -> None:
    """Skip (fail in CI) unless every server's binary is installed (``make servers``)."""
    missing = [server.missing() for server in servers if not server.installed()]
    if not missing:
        return
    why = "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of tests/kafka runs against the broker: ``make check`` leaves them out."""
    broker_tests = Path(__file__).parent / "kafka"
    for item in items:
        if broker_tests in item.path.parents:
            item.add_marker(pytest.mark.broker)


ARTEFACTS = Path(__file__).parents[1] / "out" / "test-artefacts"  # screenshots a run keeps
# How many inputs the fuzz and the largest property tests run, times their
# full count: make check sets 0.1, make test leaves 1.
FUZZ_SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


@pytest.fixture
def browser(chromium: Any) -> Iterator[Any]:
    """The session's browser on a blank page, its console emptied: a page an
    earlier test left open (its server gone, retrying) must not speak into
    this test's console."""
    chromium.get("about:blank")
    console_errors(chromium)  # reading the log empties it
    yield chromium
    chromium.get("about:blank")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's headless chromium, driven through its chromedriver (Selenium):
    one browser for the session; its console is logged for the tests to read."""
    from selenium import webdriver

    from infra.servers import ChromeDriver

    require(ChromeDriver)
    with ChromeDriver() as driver:
        options = webdriver.ChromeOptions()
        options.binary_location = driver.browser_path
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,2000"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        session = webdriver.Remote(command_executor=driver.url, options=options)
        try:
            yield session
        finally:
            session.quit()


def console_errors(browser: Any) -> list[dict[str, Any]]:
    """What the page logged at SEVERE (uncaught errors, failed loads) since last asked."""
    from selenium.webdriver.remote.command import Command

    logged: list[dict[str, Any]] = browser.execute(Command.GET_LOG, {"type": "browser"})["value"]
    return [entry for entry in logged if entry["level"] == "SEVERE"]


def texts(browser: Any, css: str) -> list[str]:
    """The text of what ``css`` selects, read in one script: the page may
    redraw between two WebDriver calls."""
    script = (
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(e => e.innerText ?? e.textContent)"  # SVG text has no innerText
    )
    return list(browser.execute_script(script, css))

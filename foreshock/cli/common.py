"""What the commands share: the consoles, the Settings of the invocation,
options, one-line errors (usage errors too), the files the settings name and
the scenario lookup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's own click
from typer.core import TyperGroup

from infra.settings import Settings
from models.config import PipelineConfig
from models.impact import Business
from models.topology import Topology
from producers.scenario import Library, Scenario, load_scenarios
from streams.alerts import Routes
from streams.alerts.routing import load as load_routes

T = TypeVar("T")

console = Console(highlight=False, width=max(120, Console().width))
errors = Console(stderr=True, highlight=False)


class Speed(StrEnum):
    max = "max"
    x1 = "1"
    x10 = "10"

    @property
    def factor(self) -> float | None:
        """× real time, or None for as fast as possible."""
        return None if self is Speed.max else float(self.value)


# Options that several commands share.
ScenarioName = Annotated[
    str, typer.Argument(help="scenario name (see `foreshock scenarios`) or file name.toml")
]
Seed = Annotated[int, typer.Option(min=0, max=2**63 - 1, help="random seed of the synthetic world")]
Pace = Annotated[Speed, typer.Option(help="max: as fast as possible; 1, 10: × real time")]
Json = Annotated[bool, typer.Option("--json", help="print one JSON object instead")]
KeepTopics = Annotated[
    bool,
    typer.Option("--keep-topics", help="keep the run's topics and consumer groups on the broker"),
]
Workdir = Annotated[Path, typer.Option(help="where worker logs and data go")]


def fail(why: str, code: int = 2) -> NoReturn:
    """Stop with one line on stderr: the cause and what to do, never a traceback."""
    errors.print(f"[bold red]error:[/] {escape(why)}", soft_wrap=True)
    raise typer.Exit(code)


class OneLineErrors(TyperGroup):
    """The app's commands, whose usage errors (a value out of range, an
    unknown option or command) end in one line like every other error,
    instead of typer's framed panel."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_in_one_line():  # the app's own options
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_in_one_line():  # every command's options and arguments
            return super().invoke(ctx)


@contextmanager
def _usage_in_one_line() -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError:  # not an error: the help, already shown
        raise
    except UsageError as exc:
        # typer checks choices through pydantic, which prefixes its "Value error, ".
        why = exc.format_message().replace(": Value error, ", ": ")
        fail(f"{why} (see {exc.ctx.command_path} --help)" if exc.ctx else why)


def above_zero(value: float) -> float:
    """An option's callback: a rate, a length or a pace must be above 0."""
    if value <= 0:
        raise typer.BadParameter(f"{value:g} is not above 0")
    return value


@contextmanager
def writable(option: str, path: Path) -> Iterator[None]:
    """An ``OSError`` writing to ``path`` inside, as one line naming the option."""
    try:
        yield
    except OSError as exc:
        why = "not a folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
        fail(f"{option} {path}: cannot be written ({why})")


def settings_of(ctx: typer.Context) -> Settings:
    """The Settings read once for this invocation (by the top-level callback)."""
    settings = ctx.find_object(Settings)
    if settings is None:  # a command invoked without the app's callback
        settings = ctx.ensure_object(Settings)
    return settings


def usable(read: Callable[[], T]) -> T:
    """What ``read`` reads from the files and names the settings give, or one
    line saying what to fix (the errors name the setting, or the file)."""
    try:
        return read()
    except (OSError, ValueError) as exc:
        fail(str(exc))


def topology_and_business(settings: Settings) -> tuple[Topology, Business]:
    """The files of FORESHOCK_TOPOLOGY and FORESHOCK_BUSINESS, or one line on which to fix."""
    return usable(settings.load_topology), usable(settings.load_business)


def pipeline_inputs(settings: Settings) -> tuple[Topology, Business, PipelineConfig]:
    """What the decision path runs with: the topology, the business, the
    detectors and the maintenance calendar; or one line on which setting to fix."""
    topology, business = topology_and_business(settings)
    return topology, business, usable(lambda: settings.pipeline_config(topology))


def scenario_library(settings: Settings) -> Library:
    """The shipped scenarios and those of FORESHOCK_SCENARIOS, by name, checked
    against the topology; or one line on which setting to fix."""
    topology = usable(settings.load_topology)
    try:
        return load_scenarios(settings.scenarios, topology)
    except ValueError as exc:  # the folder itself
        fail(f"FORESHOCK_SCENARIOS: {exc}")


def tell_skipped(library: Library) -> None:
    """One line on stderr per scenario file that could not be used."""
    for why in library.broken.values():
        errors.print(f"[bold yellow]skipped:[/] {escape(why)}", soft_wrap=True)


def find_scenario(settings: Settings, name: str) -> Scenario:
    """A scenario by name, or the file ``name.toml``; or one line on why not."""
    scenarios = scenario_library(settings)
    try:
        return usable(lambda: scenarios.find(name, settings.load_topology()))
    except KeyError:
        fail(f"no scenario {name!r}; try: {', '.join(sorted(scenarios))}, or a file name.toml")


def alert_routes(settings: Settings) -> Routes:
    """The routes of FORESHOCK_ALERTS, or one line on what to fix there."""
    path = settings.alerts
    if path is None:
        fail("FORESHOCK_ALERTS is not set: give it a routes file")

    def load() -> Routes:
        try:
            return load_routes(path)
        except ValueError as exc:
            raise ValueError(f"FORESHOCK_ALERTS: {exc}") from exc

    return usable(load)

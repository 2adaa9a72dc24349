"""What the commands share: the consoles, the Settings of the invocation,
options, one-line errors (usage errors too) and the scenario lookup."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's own click
from typer.core import TyperGroup

from infra.settings import Settings
from producers.scenario import Scenario, load_scenarios

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
ScenarioName = Annotated[str, typer.Argument(help="scenario name (see `foreshock scenarios`)")]
Seed = Annotated[int, typer.Option(min=0, help="random seed of the synthetic world")]
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


def settings_of(ctx: typer.Context) -> Settings:
    """The Settings read once for this invocation (by the top-level callback)."""
    settings = ctx.find_object(Settings)
    if settings is None:  # a command invoked without the app's callback
        settings = ctx.ensure_object(Settings)
    return settings


def find_scenario(settings: Settings, name: str) -> Scenario:
    scenarios = load_scenarios(settings.scenarios)
    if name not in scenarios:
        fail(f"no scenario {name!r}; try: {', '.join(sorted(scenarios))}")
    return scenarios[name]

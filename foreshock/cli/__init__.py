"""The one command-line entry point: ``foreshock``.

The commands live in a module each (``replay``, ``kafka``, ``bench``), what
they print in ``render``, the checks that stop them early in ``checks``.
Settings are read once per invocation, here, and reach every command through
its context.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from foreshock.cli import bench, ingest, kafka, lab, replay, silence
from foreshock.cli.common import OneLineErrors, fail
from infra.settings import Settings

app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log what the engines do")
    ] = False,
) -> None:
    """Foreshock: names an outage while it is still a foreshock.

    Replays telemetry through online anomaly models, correlates anomalies over
    the service dependency graph, and reports incidents with SEV, probable root
    cause, blast radius, business impact and MTTD.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        fail("; ".join(_setting_error(e) for e in exc.errors()))
    except SettingsError as exc:  # a setting read as JSON (FORESHOCK_DETECTORS) that is not
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"FORESHOCK_{field[1].upper()}" if field else "a FORESHOCK_ setting"
        fail(f"{name}: not valid JSON ({exc.__cause__})")
    ctx.obj = settings
    level = logging.INFO if verbose else settings.log_level
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _setting_error(error: object) -> str:
    """One refused environment variable, named as the user set it."""
    assert isinstance(error, dict)
    field, *inside = (str(part) for part in error["loc"])  # inside: a key of a JSON setting
    where = f" ({'.'.join(inside)})" if inside else ""
    message = str(error["msg"]).removeprefix("Value error, ")  # pydantic's wording
    return f"FORESHOCK_{field.upper()}{where}: {message}"


app.command()(replay.scenarios)
app.command("replay")(replay.replay_command)
app.command()(kafka.produce)
app.command()(kafka.change)
app.command()(kafka.worker)
app.command()(kafka.incidents)
app.command()(ingest.ingest)
app.command()(lab.lab)
app.add_typer(silence.app, name="silence")
app.add_typer(bench.app, name="bench")

"""``foreshock silence``: pages that match are recorded but not sent, for a
while; kept on the foreshock.silences topic, which every worker obeys."""

from __future__ import annotations

import asyncio
import getpass
import re
import time
from typing import Annotated

import orjson
import typer
from rich.table import Table

from foreshock.cli.checks import reach_broker
from foreshock.cli.common import Json, console, fail, settings_of
from foreshock.cli.render import clock
from streams.alerts import silences
from streams.alerts.silences import KEYS, Silence

app = typer.Typer(help="Silence pages for a while: add, list, expire.")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1d``, or several, e.g. ``1h30m``.

    >>> duration_s("1h30m"), duration_s("45s")
    (5400.0, 45.0)
    """
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{text!r}: a duration such as 30m, 2h or 1h30m")
    return float(sum(float(n) * _UNIT_S[u] for n, u in parts))


@app.command()
def add(
    ctx: typer.Context,
    match: Annotated[
        list[str], typer.Option("--match", help=f"KEY=PATTERN, KEY one of {', '.join(KEYS)}")
    ],
    for_: Annotated[str, typer.Option("--for", help="how long, e.g. 2h")],
    comment: Annotated[str, typer.Option(help="why, for whoever reads the list")] = "",
) -> None:
    """Silence the pages of incidents that match every --match."""
    settings = settings_of(ctx)
    try:
        silence = Silence.new(match, duration_s(for_), comment, getpass.getuser())
    except ValueError as exc:
        fail(str(exc))
    reach_broker(settings)
    asyncio.run(silences.publish(settings, silence))
    until = clock(silence.ends)
    console.print(f"silence {silence.id} until {until} UTC: {_matchers(silence)}", markup=False)


@app.command("list")
def list_(ctx: typer.Context, json: Json = False) -> None:
    """The silences in force (and, under --json, every one)."""
    settings = settings_of(ctx)
    reach_broker(settings)
    known = asyncio.run(silences.read(settings))
    now = time.time()
    if json:
        items = [orjson.loads(s.to_json()) for s in known.by_id.values()]
        typer.echo(orjson.dumps(items).decode())
        return
    table = Table(title="silences in force")
    for column in ("id", "matches", "until (UTC)", "by", "comment"):
        table.add_column(column)
    for s in sorted(known.by_id.values(), key=lambda s: s.ends):
        if s.active(now):
            table.add_row(s.id, _matchers(s), clock(s.ends), s.created_by, s.comment)
    console.print(table)


@app.command()
def expire(ctx: typer.Context, silence_id: Annotated[str, typer.Argument(help="its id")]) -> None:
    """End a silence now."""
    settings = settings_of(ctx)
    reach_broker(settings)
    known = asyncio.run(silences.read(settings))
    silence = known.by_id.get(silence_id)
    if silence is None:
        fail(f"no silence {silence_id!r}; `foreshock silence list` shows them")
    asyncio.run(silences.publish(settings, silence.expired(time.time())))
    console.print(f"silence {silence_id} expired", markup=False)


def _matchers(silence: Silence) -> str:
    return ", ".join(f"{k}={v}" for k, v in silence.matchers)

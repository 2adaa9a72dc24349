"""``foreshock worker`` with a maintenance calendar it cannot use: one line
naming the file and the fault, exit code 2, before it reaches the broker."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from foreshock.cli import app
from infra.settings import Settings

GOOD = """
[[maintenance]]
components = ["mongodb", "playlist-svc"]
start = 2022-10-06T10:30:00Z
end = "2022-10-06T11:00:00Z"
note = "MongoDB hardware migration (CHG-4711)"
"""


@pytest.mark.parametrize(
    "text, why",
    [
        (GOOD.replace('"mongodb"', '"mongo"'), "maintenance names 'mongo', which is not a"),
        (GOOD.replace("start = ", "begin = "), "a [[maintenance]] table lacks start"),
        (GOOD.replace("10:30:00Z", "11:30:00Z"), "it ends before it starts"),
        (GOOD.replace("[[maintenance]]", "[[maintenance]"), "Expected ']]'"),
    ],
)
def test_an_unusable_calendar_stops_the_worker_with_the_reason(text, why, tmp_path, monkeypatch):
    calendar = tmp_path / "maintenance.toml"
    calendar.write_text(text)
    monkeypatch.setenv("FORESHOCK_MAINTENANCE", str(calendar))
    monkeypatch.setenv("FORESHOCK_WEB_ENABLED", "false")
    monkeypatch.setenv("FORESHOCK_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # never asked
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: FORESHOCK_MAINTENANCE: {calendar}: ")
    assert why in result.stderr and "Traceback" not in result.output


def test_a_calendar_is_read_with_absolute_times(tmp_path):
    calendar = tmp_path / "maintenance.toml"
    calendar.write_text(GOOD)
    settings = Settings(maintenance=calendar)
    (window,) = settings.load_maintenance(settings.load_topology())
    assert window.components == ("mongodb", "playlist-svc")
    assert window.end - window.start == 1800.0
    assert window.note.startswith("MongoDB")
    assert Settings().load_maintenance(settings.load_topology()) == ()

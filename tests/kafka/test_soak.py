"""``foreshock bench soak`` works end to end, in a few seconds instead of 20 minutes."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from foreshock.cli import app


def test_soak_prints_rows_and_trends(kafka_bootstrap, tmp_path, monkeypatch):
    monkeypatch.setenv("FORESHOCK_KAFKA_BOOTSTRAP", kafka_bootstrap)
    argv = ["bench", "soak", "--minutes", "0.3", "--rate", "5000", "--every", "5", "--json"]
    result = CliRunner().invoke(app, [*argv, "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output.strip().splitlines()[-1])
    rows = report["rows"]
    assert len(rows) >= 3, rows
    published = sum(r["samples"] for r in rows)
    # Paced, not flooded: about the rate asked for, over about the time asked for.
    assert 0.7 * 5000 * 18 <= published <= 1.1 * 5000 * 18, published
    assert all(r["rss_mb"] > 20 for r in rows)
    assert all(r["lag_messages"] >= 0 for r in rows)
    assert any(r["windows"] > 0 for r in rows), "no window decided: the worker did nothing"
    for key in ("lag_messages", "rss_mb"):
        trend = report["trend"][key]
        assert trend["slope_per_min"] is not None
        assert (trend["first"], trend["last"]) == (rows[0][key], rows[-1][key])


def test_soak_refuses_a_remote_broker(tmp_path, monkeypatch):
    monkeypatch.setenv("FORESHOCK_KAFKA_BOOTSTRAP", "192.0.2.1:9092")
    result = CliRunner().invoke(app, ["bench", "soak", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "only to a local broker" in result.output

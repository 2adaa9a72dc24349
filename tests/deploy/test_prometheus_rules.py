"""The alerts on Foreshock itself, deploy/prometheus/foreshock-rules.yml:
every series they read is one a worker serves, every alert is shown firing
by the unit tests beside them, and Prometheus' own promtool runs those."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from infra.servers import Prometheus
from tests.conftest import require
from tests.deploy.test_grafana import METRIC, worker_series

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "foreshock-rules.yml"
UNIT_TESTS = RULES.with_name("foreshock-rules.test.yml")
SEVERITIES = {"page", "ticket"}


@cache
def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_series_the_alerts_read_is_one_a_worker_serves() -> None:
    served = worker_series()
    for rule in alerts():
        for name in METRIC.findall(rule["expr"]):
            assert name in served, f"{rule['alert']} reads {name}, which no worker serves"


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert len(rule["annotations"]["description"]) >= 80, (
            f"{rule['alert']} does not tell the on-call what to look at"
        )


def test_every_alert_is_shown_firing_and_quiet() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    fired = {c["alertname"] for c in checks if c["exp_alerts"]}
    quiet = {c["alertname"] for c in checks if not c["exp_alerts"]}
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts no unit test shows firing"
    assert names - quiet == set(), "alerts no unit test shows quiet"


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    require(Prometheus)  # promtool comes with Debian's prometheus
    promtool = shutil.which("promtool") or "promtool"
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(UNIT_TESTS)]):
        done = subprocess.run([promtool, *command], capture_output=True, text=True)
        assert done.returncode == 0, f"promtool {' '.join(command)}:\n{done.stdout}{done.stderr}"

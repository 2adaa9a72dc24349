"""``foreshock worker`` with its web port taken: one line and exit code 2,
before it reaches the broker or starts Faust."""

from __future__ import annotations

import socket

import pytest
import typer
from typer.testing import CliRunner

from foreshock.cli import app
from foreshock.cli.checks import web_port_free
from infra.settings import Settings


@pytest.fixture
def taken_port():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_worker_whose_web_port_is_taken_says_so_and_exits_2(taken_port, monkeypatch):
    monkeypatch.setenv("FORESHOCK_WEB_ENABLED", "true")
    monkeypatch.setenv("FORESHOCK_WEB_HOST", "127.0.0.1")
    monkeypatch.setenv("FORESHOCK_WEB_PORT", str(taken_port))
    monkeypatch.setenv("FORESHOCK_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # never asked
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: port {taken_port} on 127.0.0.1 is taken: set FORESHOCK_WEB_PORT "
        "to a free port, or FORESHOCK_WEB_ENABLED=false"
    )
    assert "Traceback" not in result.output


def test_a_worker_without_its_web_server_does_not_need_the_port(taken_port):
    web_port_free(Settings(web_enabled=False, web_host="127.0.0.1", web_port=taken_port))


def test_a_free_port_passes_and_stays_free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    web_port_free(Settings(web_enabled=True, web_host="127.0.0.1", web_port=free))
    with socket.socket() as again:
        again.bind(("127.0.0.1", free))  # the check let go of it


def test_the_check_refuses_a_taken_port_on_its_own(taken_port):
    with pytest.raises(typer.Exit):
        web_port_free(Settings(web_enabled=True, web_host="127.0.0.1", web_port=taken_port))

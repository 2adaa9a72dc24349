"""The Makefile's set-up, as `make` would run it (``make -n`` prints the
commands without running them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def planned(*args: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "--no-print-directory", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_an_install_that_did_not_finish_is_made_afresh_with_the_python_given(tmp_path):
    """A virtualenv left without its stamp (pip failed, or it was made by a
    Python the project refuses) is cleared, not built upon."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)  # what a failed install leaves
    steps = planned("install", f"VENV={venv}", "PYTHON=python3.12")
    assert steps[0] == f"python3.12 -m venv --clear {venv}"
    assert steps[-1] == f"touch {venv}/.installed"


def test_a_finished_install_is_not_made_again(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than pyproject.toml
    assert not any("venv" in step for step in planned("install", f"VENV={venv}"))

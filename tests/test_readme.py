"""README.md shows what `make demo` prints, so that it cannot go stale.

``python tests/test_readme.py --write`` (``make readme``) writes the demo's
output between the demo-output markers; the test checks it is still that.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
START = "<!-- demo-output:start -->"
END = "<!-- demo-output:end -->"
DEMO = ("replay", "reference-2022-10-04", "--seed", "1")  # what `make demo` runs
# The one figure of the run that is not the code's: how long it took here.
WALL_TIME = re.compile(r" in [\d.]+ s \([\d,]+ samples/s\)$", re.MULTILINE)


def demo_output() -> str:
    """The demo's output at the CLI's narrowest width, as a fenced block."""
    out = subprocess.run(
        [sys.executable, "-m", "foreshock", *DEMO],
        capture_output=True,
        text=True,
        check=True,
        cwd=README.parent,
        env={**os.environ, "COLUMNS": "120"},
    ).stdout
    lines = [line.rstrip() for line in out.splitlines()]  # rich pads table titles
    return "\n".join(["```", *lines, "```"])


def split_readme(text: str) -> tuple[str, str, str]:
    """The README before the demo block (its start marker included), the block, and after."""
    head, start, rest = text.partition(START + "\n")
    block, end, tail = rest.partition(END)
    if not (start and end):
        raise ValueError(f"README.md lacks the {START} ... {END} markers")
    return head + start, block.removesuffix("\n"), end + tail


@pytest.mark.slow  # the whole reference day, as `make demo` replays it
def test_readme_shows_what_make_demo_prints() -> None:
    _, block, _ = split_readme(README.read_text())
    assert WALL_TIME.sub("", block) == WALL_TIME.sub("", demo_output()), (
        "README.md's demo output is not what `make demo` prints: run `make readme`"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.argv[0]} --write   (rewrites the demo output in README.md)")
    head, _, tail = split_readme(README.read_text())
    README.write_text(f"{head}{demo_output()}\n{tail}")

"""``python -m foreshock``: the same as the ``foreshock`` command."""

from foreshock.cli import app

app()

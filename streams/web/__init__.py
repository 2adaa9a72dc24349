"""The operator's view over HTTP: the incident page, its API and the metrics.

``operators_app`` builds the application over a ``streams.board.Board``;
``serve`` binds it. The worker serves it on FORESHOCK_WEB_HOST and
FORESHOCK_WEB_PORT; ``foreshock replay --serve`` serves a replay's. The API
is documented in ``docs/api.md``.
"""

from streams.web.server import Served, operators_app, serve

__all__ = ["Served", "operators_app", "serve"]

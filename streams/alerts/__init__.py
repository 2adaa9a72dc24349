"""Pages that reach on-call: incident changes routed to Alertmanager,
PagerDuty, Slack and signed webhooks, with runbooks and retries."""

from streams.alerts.delivery import Deliverer, Policy
from streams.alerts.page import Page
from streams.alerts.routing import Routes, RoutesError
from streams.alerts.routing import from_dict as routes_from_dict
from streams.alerts.runbooks import Runbooks
from streams.alerts.sinks import (
    SINKS,
    Alertmanager,
    AlertSink,
    PagerDuty,
    Refused,
    Retry,
    Slack,
    Webhook,
)

__all__ = [
    "SINKS",
    "AlertSink",
    "Alertmanager",
    "Deliverer",
    "Page",
    "PagerDuty",
    "Policy",
    "Refused",
    "Retry",
    "Routes",
    "RoutesError",
    "Runbooks",
    "Slack",
    "Webhook",
    "routes_from_dict",
]

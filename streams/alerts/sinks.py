"""Where pages go: Alertmanager, PagerDuty, Slack and any JSON webhook.

Each sink turns a page into one HTTP request and says how it went: it
returns when the endpoint accepted the page, raises ``Retry`` when trying
again may succeed (429, 5xx, no answer) and ``Refused`` when it never will
(another 4xx). Secrets (routing keys, webhook URLs, signing keys) are held
apart and never appear in a sink's name, its errors or its logs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
import orjson

from streams.alerts.page import Page

TIMEOUT = aiohttp.ClientTimeout(total=10)
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
PAGERDUTY_SEVERITY = {1: "critical", 2: "error", 3: "warning", 4: "info"}
RESEND_S = 60.0  # Alertmanager forgets an alert not sent again for its resolve_timeout


class Retry(Exception):
    """Not accepted now; ``after`` seconds is when the endpoint asked to be tried again."""

    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.after = after


class Refused(Exception):
    """Refused for good: the page as sent will never be accepted."""


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class AlertSink:
    """One endpoint. ``kind`` names the implementation in a routes file;
    ``endpoint`` says where, without secrets (the circuit breaker's key)."""

    kind: ClassVar[str]

    def __init__(self, name: str, endpoint: str) -> None:
        self.name = name
        self.endpoint = endpoint

    async def send(self, page: Page, http: aiohttp.ClientSession) -> None:
        raise NotImplementedError

    async def tick(self, http: aiohttp.ClientSession, now: float) -> None:
        """Called now and then: what the endpoint wants sent again, unasked."""

    async def _post(
        self,
        http: aiohttp.ClientSession,
        url: str,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            async with http.post(url, data=data, headers=headers, timeout=TIMEOUT) as answer:
                text = (await answer.text())[:300]
                status = answer.status
                retry_after = answer.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Retry(f"{self.endpoint}: no answer ({type(exc).__name__})") from None
        if 200 <= status < 300:
            return
        why = f"{self.endpoint}: HTTP {status} {text.strip()}"
        if status == 429 or status >= 500:
            after = float(retry_after) if retry_after and retry_after.isdigit() else None
            raise Retry(why, after)
        raise Refused(why)


class Alertmanager(AlertSink):
    """Prometheus Alertmanager's API v2. An alert per incident, its identity
    its labels (alertname, incident_id, service, severity); sent again every
    minute while open, and with ``endsAt`` when resolved. A new SEV or root
    cause makes a new label set: the alert under the old one is ended as the
    new one starts, so that Alertmanager routes on the SEV and shows one."""

    kind = "alertmanager"

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, url.rstrip("/"))
        self._open: dict[str, tuple[dict[str, Any], float]] = {}  # incident -> alert, last sent

    def _alert(self, page: Page) -> dict[str, Any]:
        details = page.details()
        annotations = {
            "summary": page.summary,
            "description": page.text,
            "blast_radius": ", ".join(details["blast_radius"]) or "none yet",
            "users_affected": f"{details['users_affected']:,}",
            "revenue_lost_usd_per_min": f"{details['revenue_lost_usd_per_min']:,}",
            "runbook": page.runbook,
        }
        if page.runbook_url:
            annotations["runbook_url"] = page.runbook_url
        alert: dict[str, Any] = {
            "labels": {
                "alertname": "ForeshockIncident",
                "incident_id": page.id,
                "service": page.root_cause,
                "severity": f"SEV-{page.sev}",
            },
            "annotations": annotations,
            "startsAt": iso(time.time()),
        }
        if page.region:
            alert["labels"]["region"] = page.region
        return alert

    async def send(self, page: Page, http: aiohttp.ClientSession) -> None:
        now = time.time()
        alert = self._alert(page)
        before = self._open.get(page.id)
        batch = []
        if before is not None:
            alert["startsAt"] = before[0]["startsAt"]
            if before[0]["labels"] != alert["labels"]:  # a new identity: end the old one
                batch.append({**before[0], "endsAt": iso(now)})
                alert["startsAt"] = iso(now)
        if page.resolved:
            alert["endsAt"] = iso(now)
        batch.append(alert)
        await self._post(http, f"{self.endpoint}/api/v2/alerts", batch)
        if page.resolved:
            self._open.pop(page.id, None)
        else:
            self._open[page.id] = (alert, now)

    async def tick(self, http: aiohttp.ClientSession, now: float) -> None:
        stale = [alert for alert, sent in self._open.values() if now - sent >= RESEND_S]
        if stale:
            await self._post(http, f"{self.endpoint}/api/v2/alerts", stale)
            for alert in stale:
                self._open[alert["labels"]["incident_id"]] = (alert, now)


class PagerDuty(AlertSink):
    """PagerDuty's Events API v2: a trigger per change that pages (opened,
    escalated, relapsed, reopened), a resolve when resolved, all under the
    incident's ``dedup_key``: PagerDuty folds them into one of its incidents.
    Other changes (root cause, blast radius) are sent as triggers too, which
    PagerDuty merges into the open incident, updating what it shows."""

    kind = "pagerduty"

    def __init__(self, name: str, routing_key: str, url: str = PAGERDUTY_URL) -> None:
        super().__init__(name, url)
        self._routing_key = routing_key

    def event(self, page: Page) -> dict[str, Any]:
        body: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": "resolve" if page.resolved else "trigger",
            "dedup_key": page.dedup_key,
        }
        if page.resolved:
            return body
        body["payload"] = {
            "summary": page.summary,
            "source": "foreshock",
            "severity": PAGERDUTY_SEVERITY.get(page.sev, "info"),
            "timestamp": iso(page.at),
            "component": page.root_cause,
            "group": page.region or None,
            "class": page.kind.value,
            "custom_details": {**page.details(), "runbook": page.runbook},
        }
        if page.runbook_url:
            body["links"] = [{"href": page.runbook_url, "text": "Runbook"}]
        return body

    async def send(self, page: Page, http: aiohttp.ClientSession) -> None:
        await self._post(http, self.endpoint, self.event(page))


class Slack(AlertSink):
    """A Slack incoming webhook: one message per change, with blocks."""

    kind = "slack"

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, "slack webhook")  # the URL is the secret
        self._url = url

    @staticmethod
    def message(page: Page) -> dict[str, Any]:
        details = page.details()
        state = page.kind.value.replace("_", " ").upper()
        title = f"[{state}] SEV-{page.sev} {page.id}"
        facts = [
            f"*Probable root cause:* {page.root_cause}",
            f"*Users affected:* {details['users_affected']:,}",
            f"*Revenue lost:* ${details['revenue_lost_usd_per_min']:,}/min",
            f"*Blast radius:* {', '.join(details['blast_radius']) or 'none yet'}",
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": page.text[:3000]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
        ]
        if page.runbook_url:
            link = f"<{page.runbook_url}|Runbook>"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
        return {"text": f"{title}: {page.summary}", "blocks": blocks}

    async def send(self, page: Page, http: aiohttp.ClientSession) -> None:
        await self._post(http, self._url, self.message(page))


class Webhook(AlertSink):
    """Any HTTP endpoint: the page as JSON, signed so that the receiver can
    tell it is Foreshock's and fresh. ``X-Foreshock-Timestamp`` is the
    sending time (epoch seconds); ``X-Foreshock-Signature`` is ``v1=`` and
    the hex HMAC-SHA256, keyed by the shared secret, of
    ``timestamp + "." + body``: a receiver recomputes it and refuses a
    timestamp too old, so that a replayed request is refused."""

    kind = "webhook"

    def __init__(self, name: str, url: str, secret: str) -> None:
        super().__init__(name, url.split("?")[0])
        self._url = url
        self._secret = secret.encode()

    def signed(self, body: bytes, now: float) -> dict[str, str]:
        """The headers that sign ``body`` at ``now``."""
        stamp = str(int(now))
        digest = hmac.new(self._secret, stamp.encode() + b"." + body, hashlib.sha256)
        return {"X-Foreshock-Timestamp": stamp, "X-Foreshock-Signature": "v1=" + digest.hexdigest()}

    async def send(self, page: Page, http: aiohttp.ClientSession) -> None:
        body = orjson.dumps(
            {"kind": page.kind.value, "at": page.at, "text": page.text, "summary": page.summary,
             "runbook": page.runbook, "runbook_url": page.runbook_url, **page.incident}
        )  # fmt: skip
        await self._post(http, self._url, body, self.signed(body, time.time()))


SINKS: dict[str, type[AlertSink]] = {
    cls.kind: cls for cls in (Alertmanager, PagerDuty, Slack, Webhook)
}

"""Runbooks: what to do first, per kind of root cause, with this incident's
own evidence written in.

A runbook is Markdown in a folder (shipped: ``infra/defaults/runbooks``),
chosen for the root-cause component by its name, then its family (redis,
pods...), then its kind (service, datastore, edge...), then ``default.md``.
``{placeholders}`` are filled from the incident: root_cause, sev,
sev_reasons, users_affected, revenue_per_min, why, evidence, entities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.settings import DEFAULTS
from models.topology import Topology
from streams.alerts.page import Page

SHIPPED = DEFAULTS / "runbooks"
_FAMILY_NAMES = {"pods": "service"}


class _Keep(dict[str, str]):
    """Leaves a placeholder it does not know as it is written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Runbooks:
    """Picks and renders the runbook of a page's root cause."""

    def __init__(self, topology: Topology, folder: Path = SHIPPED, base_url: str | None = None):
        self.topology = topology
        self.folder = folder
        self.base_url = base_url.rstrip("/") + "/" if base_url else None

    def name(self, root_cause: str) -> str:
        """The runbook's file name for a component."""
        node = self.topology.nodes.get(root_cause)
        names = [root_cause]
        if node is not None:
            names += [node.family, _FAMILY_NAMES.get(node.family, node.family), node.kind]
        return next((f"{n}.md" for n in names if (self.folder / f"{n}.md").is_file()), "default.md")

    def attach(self, page: Page) -> Page:
        """The page with its runbook rendered, and linked where a base URL is set."""
        name = self.name(page.root_cause)
        path = self.folder / name
        template = path.read_text() if path.is_file() else (SHIPPED / "default.md").read_text()
        text = template.format_map(_Keep(self.fields(page)))
        url = self.base_url + name if self.base_url else None
        return Page(page.kind, page.at, page.text, page.incident, text, url)

    def fields(self, page: Page) -> dict[str, str]:
        details: dict[str, Any] = page.details()
        node = self.topology.nodes.get(page.root_cause)
        entities = list(node.entities) if node is not None else []
        evidence = details["evidence"] or ["(none recorded)"]
        return {
            "root_cause": page.root_cause,
            "sev": str(page.sev),
            "sev_reasons": "; ".join(details["sev_reasons"]) or "not yet",
            "users_affected": f"{details['users_affected']:,}",
            "revenue_per_min": f"${details['revenue_lost_usd_per_min']:,}",
            "why": "; ".join(details["why"]) or "(no reason recorded)",
            "evidence": "\n".join(f"- `{e}`" for e in evidence),
            "entities": ", ".join(entities[:6]) + (", ..." if len(entities) > 6 else ""),
        }

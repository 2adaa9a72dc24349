"""When a fault counts as detected: the one definition ``replay`` and ``bench`` share.

A fault is detected by the first incident opened at or after its fault start:
an incident opened before it cannot be about it, and is a false page. A
scenario without a fault start counts every incident. MTTD is measured from
the fault start and from the start of user-visible impact, in event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from models.config import PipelineConfig
from models.detect import Anomaly
from models.incident import Change, Incident, IncidentEvent
from models.pipeline import Event
from producers.scenario import Truth


def since(t: float | None, origin: float | None) -> float | None:
    """Seconds from ``origin`` to ``t`` (None when either is unknown)."""
    return None if t is None or origin is None else round(t - origin, 3)


def after_fault(at: float, truth: Truth) -> bool:
    """Whether a page or warning raised at ``at`` may be about the truth's fault."""
    return truth.fault_start is None or at >= truth.fault_start


def first_page(incidents: Iterable[Incident], truth: Truth) -> Incident | None:
    """The incident that detected the fault, or None."""
    return next((i for i in incidents if after_fault(i.opened_at, truth)), None)


def pages_of(incidents: Sequence[Incident], truths: Sequence[Truth]) -> list[Incident | None]:
    """The incident that detected each fault, or None: with one fault, the
    first page after it started; with several at once, each takes the first
    page after it started naming one of its root causes, then any page left.
    """
    if len(truths) == 1:
        return [first_page(incidents, truths[0])]
    found: list[Incident | None] = [None] * len(truths)
    taken: set[str] = set()
    for right in (True, False):
        for n, truth in enumerate(truths):
            page = next(
                (
                    i
                    for i in incidents
                    if found[n] is None
                    and i.id not in taken
                    and after_fault(i.opened_at, truth)
                    and (not right or i.root_cause in truth.root_causes)
                ),
                None,
            )
            if page is not None:
                found[n] = page
                taken.add(page.id)
    return found


def first_at_sev(
    events: Iterable[Event], truth: Truth, sev: int, page: Incident | None = None
) -> float | None:
    """Event time at which an incident that counts (``page``, when given)
    first reached ``sev`` or worse."""
    return next(
        (
            e.at
            for e in events
            if isinstance(e, IncidentEvent)
            and e.kind in (Change.OPENED, Change.ESCALATED)
            and e.incident.sev <= sev
            and after_fault(e.incident.opened_at, truth)
            and (page is None or e.incident.id == page.id)
        ),
        None,
    )


def sev_history(events: Iterable[Event], incident: Incident) -> list[int]:
    """The SEVs ``incident`` went through: at opening, then at each
    escalation, ending at its SEV now."""
    history = [
        e.incident.sev
        for e in events
        if isinstance(e, IncidentEvent)
        and e.incident.id == incident.id
        and e.kind in (Change.OPENED, Change.ESCALATED)
    ]
    return history if history[-1:] == [incident.sev] else [*history, incident.sev]


def follows(history: Sequence[int], path: Sequence[int]) -> bool:
    """Whether a SEV history ends at the last SEV of ``path`` and passes
    through the others, in order (SEVs between them do not matter).

    >>> follows([3, 2, 1], [3, 1]), follows([2, 1], [3, 1]), follows([3, 1], [1])
    (True, False, True)
    >>> follows([3, 1, 1], [3, 1]), follows([3], [3, 1]), follows([1], [])
    (True, False, False)
    """
    if not path or history[-1:] != [path[-1]]:
        return False
    rest = iter(history)
    return all(sev in rest for sev in path)  # ``in`` consumes: an ordered subsequence


def mttd(
    incidents: Sequence[Incident],
    events: Iterable[Event],
    truth: Truth,
    page: Incident | None = None,
) -> dict[str, float | None]:
    """Time to detect from fault start and from impact start, and time from
    impact start until an incident reached the SEV the truth expects; of
    ``page`` when given (one of several faults), else of the first page."""
    one = page is None
    page = first_page(incidents, truth) if one else page
    opened = page.opened_at if page is not None else None
    at_sev = first_at_sev(events, truth, truth.sev, None if one else page) if truth.sev else None
    return {
        "from_fault_s": since(opened, truth.fault_start),
        "from_impact_s": since(opened, truth.impact_start),
        "to_expected_sev_from_impact_s": since(at_sev, truth.impact_start),
    }


def latency_budget(
    incident: Incident,
    events: Iterable[Event],
    node_of: Mapping[str, str],
    truth: Truth,
    config: PipelineConfig,
) -> dict[str, float] | None:
    """How long each stage held the decision to open ``incident``, in event
    time, from the first window its root cause showed an anomaly in after
    the fault started (``onset``) until it opened:

    - ``window``: that window ran to its end;
    - ``confirmation``: the windows after it an anomaly needs to be one;
    - ``lateness``: after the window confirming it ended, the wait for late
      points (at most the allowed lateness);
    - ``batching``: then the wait for the batch that moved event time past it;
    - ``correlation``: then the wait for corroboration (a second metric of
      a critical dependency, or users hurt).

    None when no anomaly of the root cause preceded the opening (an incident
    opened on silence, say).
    """
    anomalies = [
        e
        for e in events
        if isinstance(e, Anomaly)
        and e.ended_at is None
        and node_of.get(e.entity) == incident.root_cause
        and after_fault(e.onset, truth)
        and e.at <= incident.opened_at
    ]
    if not anomalies:
        return None
    first = min(anomalies, key=lambda a: (a.at, a.onset))
    window = config.window_s
    # Windows are aligned to their length, and decided less than one later.
    ended = first.at - (first.at - first.onset) % window
    lateness = min(first.at - ended, config.lateness_s)
    return {
        "onset": first.onset,
        "window": window,
        "confirmation": ended - first.onset - window,
        "lateness": lateness,
        "batching": first.at - ended - lateness,
        "correlation": incident.opened_at - first.at,
        "total": incident.opened_at - first.onset,
    }

"""What a worker counts, served in Prometheus' text format at ``/metrics/``.

The counters live in a registry of their own, so that the page shows
Foreshock's figures only, and every rejection reason is there from the start
(at 0), so that a dashboard can tell "never happened" from "not reported".
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from models.schema import INTERNAL_REASONS, REASONS

CONTENT_TYPE = CONTENT_TYPE_LATEST

registry = CollectorRegistry()

rejected = Counter(
    "foreshock_rejected_messages",
    "Messages refused and sent to the dead-letter topic, by reason",
    ["reason"],
    registry=registry,
)
processed = Counter(
    "foreshock_processed_messages",
    "Telemetry messages folded into the models, by source partition",
    ["topic", "partition"],
    registry=registry,
)
samples = Counter(
    "foreshock_processed_samples",
    "Samples carried by the telemetry messages folded into the models, by family",
    ["family"],
    registry=registry,
)
incidents_open = Gauge(
    "foreshock_incidents_open",
    "Incidents open now, by SEV (1 is the worst), as this worker's view holds them",
    ["sev"],
    registry=registry,
)
incident_changes = Counter(
    "foreshock_incident_changes",
    "Incident changes decided (opened, escalated, root_cause, resolved...), by kind",
    ["kind"],
    registry=registry,
)
consumer_lag = Gauge(
    "foreshock_consumer_lag",
    "Messages between a partition's consumer position and its high watermark",
    ["topic", "partition"],
    registry=registry,
)
window_decision = Histogram(
    "foreshock_window_decision_seconds",
    "Wall seconds from a window's first report reaching the correlator to its decision",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=registry,
)
detection_latency = Histogram(
    "foreshock_detection_latency_seconds",
    "Event-time seconds from an incident's onset (its root cause's first symptom) to its page",
    buckets=(5, 10, 15, 30, 45, 60, 90, 120, 300, 600, 1800, 3600),
    registry=registry,
)
refused_snapshots = Counter(
    "foreshock_refused_snapshots",
    "Snapshots that could not be restored, so that their models learn afresh",
    registry=registry,
)
snapshot_bytes = Histogram(
    "foreshock_snapshot_bytes",
    "Bytes each snapshot of a partition's learned state wrote: the chunks it changed, its manifest",
    buckets=(1e4, 1e5, 1e6, 1e7, 1e8),
    registry=registry,
)
snapshot_records = Counter(
    "foreshock_snapshot_records",
    "Records the snapshots wrote (changed chunks and manifests), each at most 256 KiB",
    registry=registry,
)
lost_dead_letters = Counter(
    "foreshock_lost_dead_letters",
    "Dead letters the dead-letter topic would not take after every retry",
    registry=registry,
)
rewinds = Counter(
    "foreshock_rewinds",
    "Times a partition's consumer skipped offsets and was sent back to read them",
    registry=registry,
)

for _reason in (*REASONS, *INTERNAL_REASONS):
    rejected.labels(_reason)
for _sev in range(1, 5):
    incidents_open.labels(str(_sev))


def exposition() -> bytes:
    return generate_latest(registry)

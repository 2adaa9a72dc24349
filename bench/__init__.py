"""Benchmarks, above the engines: scenarios replayed and scored against their
truth (``replay``, ``detection``, ``score``, ``scenarios``), NAB, throughput
and soak on Kafka."""

"""Benchmarks: detection latency on scenarios and NAB, throughput on Kafka."""

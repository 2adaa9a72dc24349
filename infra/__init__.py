"""Configuration and the Kafka plumbing: the layer just above the models."""

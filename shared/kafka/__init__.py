"""Kafka plumbing: the local broker, topic administration, producers, the DLQ."""

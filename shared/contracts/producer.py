"""Producers outside faust (CLI, upstream SDK): kafka-python, acks=all, idempotent."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A producer that never loses or reorders an acknowledged record within a partition."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "retries": 2**31 - 1,
        "max_in_flight_requests_per_connection": 5,
        "max_request_size": 4 * 1024 * 1024,
        "client_id": "llmops-producer",
    }
    config.update(overrides)
    return KafkaProducer(**config)

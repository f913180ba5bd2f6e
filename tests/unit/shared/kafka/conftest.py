"""The parts of a ``Deliveries`` under test: a consumer, an output and a DLQ topic settled by
hand, the dead letters' error types."""

from __future__ import annotations

import pytest

from shared.kafka.delivery import Deliveries
from tests.unit.fakes import Consumer, Topic


@pytest.fixture
def parts() -> tuple[Consumer, Topic, Topic, list[str], Deliveries]:
    consumer, out, dlq, errors = Consumer(), Topic("out"), Topic("dlq"), []
    deliveries = Deliveries(dlq, "svc", 1 << 20, errors.append, retry_max_s=0.01)  # type: ignore[arg-type]
    return consumer, out, dlq, errors, deliveries

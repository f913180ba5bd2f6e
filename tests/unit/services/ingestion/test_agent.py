"""Unit tests of ``services.ingestion.agent``.

The largest accepted event always fits in a Kafka record: the bound the ingestion service checks
at start holds for the worst inputs we know, at the largest accepted size.
"""

from __future__ import annotations

import pytest

from services.ingestion.agent import LimitsTooSmall, check_limits
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.topics import DEFAULT_MAX_MESSAGE_BYTES


def test_a_record_limit_too_small_for_the_event_size_refuses_to_start() -> None:
    ingestor = Ingestor.from_settings(IngestionSettings(max_event_bytes=4 * 1024 * 1024))
    with pytest.raises(LimitsTooSmall, match="raise KAFKA_MAX_MESSAGE_BYTES"):
        check_limits(ingestor, DEFAULT_MAX_MESSAGE_BYTES, None, "docs.chunks")

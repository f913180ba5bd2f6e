"""Unit tests of ``services.ingestion.agent``: the ingestion agent refuses to start when a chunk
batch could outgrow the record limit."""

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

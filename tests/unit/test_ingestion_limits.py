"""The largest accepted event always fits in a Kafka record: the bound the ingestion service
checks at start holds for the worst inputs we know, at the largest accepted size."""

from __future__ import annotations

import pytest

from services.ingestion.agent import LimitsTooSmall, check_limits
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import DocumentEvent
from shared.contracts.topics import DEFAULT_MAX_MESSAGE_BYTES
from shared.kafka.delivery import OutputTooLarge, check_record_size

MAX_EVENT = IngestionSettings().max_event_bytes

# Each is the worst case of one kind: most chunks per byte (punctuation: a token a byte),
# JSON escapes (quotes), the most text per chunk (words over 100 letters are one token),
# the most growth in normalisation (NFC triples U+1D160), and personal data that redaction
# replaces with longer placeholders.
WORST = {
    "punctuation": ".,;:!?",
    "quotes": '"',
    "long words": "x" * 101 + " ",
    "nfc growth": "\U0001d160",
    "short addresses": "a@b.io ",
}


def at_max_size(piece: str) -> DocumentEvent:
    base = DocumentEvent(tenant="p1", doc_id="worst", version=1, content=piece)
    room = MAX_EVENT - len(base.model_dump_json().encode())
    n = room // len(piece.encode()) if piece != '"' else room // 2  # a quote is 2 bytes in JSON
    return base.model_copy(update={"content": piece * n})


@pytest.mark.parametrize("kind", list(WORST))
def test_the_worst_events_fit_the_bound(kind: str) -> None:
    ingestor = Ingestor.from_settings(IngestionSettings())
    event = at_max_size(WORST[kind])
    assert len(event.model_dump_json().encode()) <= MAX_EVENT
    batch = ingestor.to_batch(event)
    assert len(batch.to_bytes()) <= ingestor.max_batch_bytes(), kind


def test_the_default_limits_fit_the_default_event_size() -> None:
    ingestor = Ingestor.from_settings(IngestionSettings())
    check_limits(ingestor, DEFAULT_MAX_MESSAGE_BYTES, None, "docs.chunks")


def test_a_record_limit_too_small_for_the_event_size_refuses_to_start() -> None:
    ingestor = Ingestor.from_settings(IngestionSettings(max_event_bytes=4 * 1024 * 1024))
    with pytest.raises(LimitsTooSmall, match="raise KAFKA_MAX_MESSAGE_BYTES"):
        check_limits(ingestor, DEFAULT_MAX_MESSAGE_BYTES, None, "docs.chunks")


def test_an_output_over_the_record_limit_is_an_error_for_its_event() -> None:
    check_record_size(b"k", b"v" * 1000, 4096)
    with pytest.raises(OutputTooLarge, match="over KAFKA_MAX_MESSAGE_BYTES=4096"):
        check_record_size(b"k", b"v" * 4000, 4096)

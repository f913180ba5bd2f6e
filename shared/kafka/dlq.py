"""Dead letters: what a stage could not process, with where it came from and why."""

from __future__ import annotations

import base64
from functools import lru_cache

from shared.contracts.events import DeadLetter, DeadLetterValue
from shared.redact import DETECTORS, Redactor


@lru_cache(maxsize=1)
def _redactor() -> Redactor:
    return Redactor.named(DETECTORS)


def protected(value: bytes, form: DeadLetterValue) -> tuple[bytes, DeadLetterValue]:
    """What a letter keeps of a record's value: as it is (raw), with personal data replaced
    (redacted; a value that is not UTF-8 text cannot be, and is omitted), or nothing."""
    if form == "raw":
        return value, "raw"
    if form == "redacted":
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return b"", "omitted"
        return _redactor().redact(text)[0].encode(), "redacted"
    return b"", "omitted"


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    stage: str,
    error_type: str,
    error_message: str,
    values: DeadLetterValue = "redacted",
) -> DeadLetter:
    """The DeadLetter for one failed record; ``values`` (LLMOPS_DLQ_VALUES) says what it keeps
    of the record's value (and whether its key is redacted). The message is always redacted:
    a validation error quotes its input."""
    kept, form = protected(value or b"", values)
    text_key = None if key is None else key.decode("utf-8", "replace")
    if text_key is not None and values != "raw":
        text_key = _redactor().redact(text_key)[0]
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=text_key,
        value_b64=base64.b64encode(kept).decode(),
        value_form=form,
        stage=stage,
        error_type=error_type,
        error_message=_redactor().redact(error_message[:4000])[0],
    )


def dlq_headers(dl: DeadLetter) -> list[tuple[str, bytes]]:
    """The same facts as Kafka headers, so tools can route without parsing the value."""
    return [
        ("dlq.topic", dl.topic.encode()),
        ("dlq.partition", str(dl.partition).encode()),
        ("dlq.offset", str(dl.offset).encode()),
        ("dlq.stage", dl.stage.encode()),
        ("dlq.error_type", dl.error_type.encode()),
        ("dlq.error_message", dl.error_message.encode()[:1000]),
    ]

"""Dead letters: what a stage could not process, with where it came from and why."""

from __future__ import annotations

import base64

from shared.events import DeadLetter


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
) -> DeadLetter:
    """The DeadLetter for one failed record."""
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else key.decode("utf-8", "replace"),
        value_b64=base64.b64encode(value or b"").decode(),
        stage=stage,
        error_type=error_type,
        error_message=error_message[:4000],
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

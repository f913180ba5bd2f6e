"""Unit tests of ``shared.kafka.dlq``: dead letters keep their input redacted by default, and
their reason always."""

from __future__ import annotations

import base64
import json
from typing import Any

from shared.contracts.events import DeadLetter
from shared.kafka.dlq import dead_letter


def test_a_letter_keeps_its_value_redacted_by_default_and_its_message_always() -> None:
    value = b'{"doc_id": "d", "content": "write to jane.doe@example.com"}'
    kw: dict[str, Any] = dict(
        topic="t",
        partition=0,
        offset=1,
        key=b"acme/jane.doe@example.com",
        value=value,
        stage="s",
        error_type="E",
        error_message="input_value='jane.doe@example.com' is not valid",
    )
    letter = dead_letter(**kw)
    assert letter.value_form == "redacted"
    assert base64.b64decode(letter.value_b64) == value.replace(b"jane.doe@example.com", b"[EMAIL]")
    assert "jane.doe" not in letter.model_dump_json()
    raw = dead_letter(**kw, values="raw")
    assert raw.value_form == "raw" and base64.b64decode(raw.value_b64) == value
    assert "jane.doe" not in raw.error_message, "a message is redacted whatever the setting"
    binary = dead_letter(**{**kw, "value": b"\xff\xfe"})
    assert (binary.value_form, binary.value_b64) == ("omitted", "")
    # a version 1 letter (raw values, no value_form) still reads
    v1 = json.loads(raw.to_bytes())
    v1.pop("value_form")
    v1["schema_version"] = 1
    assert DeadLetter.model_validate(v1).value_form == "raw"

"""Unit tests of ``services.ingestion.converter``: conversion in a child process that a
hostile file can stall, blow up or kill, and nothing else with it."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from services.ingestion.convert import Limits
from services.ingestion.converter import Converter
from services.ingestion.validate import IngestError
from shared.contracts.events import ContentType
from tests import documents as make

GOOD = make.pdf([make.Page(paragraphs=["The converter still answers after that."])])


@pytest.fixture
def converter() -> Iterator[Converter]:
    c = Converter(Limits(), timeout_s=2.0, memory_mb=400)
    yield c
    c.close()


def still_converts(c: Converter) -> None:
    assert "still answers" in c.convert(GOOD, ContentType.PDF).sections[0].text


def gone(pgid: int, wait_s: float = 3.0) -> bool:
    """No process of the group is left (killed ones may take a moment to be reaped)."""
    until = time.monotonic() + wait_s
    while time.monotonic() < until:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_document_past_the_time_limit_is_stopped_with_its_process_group(
    converter: Converter,
) -> None:
    still_converts(converter)
    pid = converter.pid
    assert pid is not None
    slow = make.slow_image(3000)  # minutes of OCR
    t0 = time.monotonic()
    with pytest.raises(IngestError) as info:
        converter.convert(slow, ContentType.PNG)
    assert info.value.code == "ConversionTimeout"
    assert time.monotonic() - t0 < 4, "stopped at its limit, not when OCR ended"
    assert gone(pid), "the child and Tesseract under it were killed"
    still_converts(converter)
    assert converter.pid != pid and converter.restarts == 1


def test_a_converter_that_dies_fails_its_document_only(converter: Converter) -> None:
    still_converts(converter)
    pid = converter.pid
    assert pid is not None
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(IngestError) as info:
        converter.convert(make.slow_image(3000), ContentType.PNG)
    assert info.value.code == "ConversionCrashed" and "-9" in str(info.value)
    still_converts(converter)


def test_a_document_needing_more_memory_than_the_limit_is_refused(converter: Converter) -> None:
    # 350 KB of PNG that decodes to 330 MB of pixels, then more for OCR
    buf = io.BytesIO()
    Image.new("RGB", (11000, 10000), (255, 255, 255)).save(buf, format="PNG")
    with pytest.raises(IngestError) as info:
        converter.convert(buf.getvalue(), ContentType.PNG)
    assert info.value.code == "TooLarge" and "INGESTION_CONVERT_MEMORY_MB=400" in str(info.value)
    still_converts(converter)


def test_errors_of_the_conversion_come_back_with_their_code(converter: Converter) -> None:
    with pytest.raises(IngestError) as info:
        converter.convert(make.pdf([make.Page(paragraphs=["x"])], password="pw"), ContentType.PDF)
    assert info.value.code == "Encrypted"
    pid = converter.pid
    still_converts(converter)
    assert converter.pid == pid, "a refused document does not cost the process"

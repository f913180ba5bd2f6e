"""docs/architecture.md's diagram names every service the host runs and every declared topic."""

from __future__ import annotations

import re
from pathlib import Path

from services import host
from shared.contracts.topics import TOPICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def diagram() -> str:
    text = DOC.read_text()
    (picture,) = re.findall(r"## The picture.*?```\n(.*?)```", text, re.S)
    return picture


def test_the_diagram_shows_every_service_as_a_box() -> None:
    boxes = set(re.findall(r"\| (\w+) \|", diagram()))
    assert boxes == set(host.SERVICES)


def test_the_diagram_shows_every_declared_topic() -> None:
    topics = set(re.findall(r"\[([a-z.]+)\]", diagram()))
    assert topics == {t.base_name for t in TOPICS}

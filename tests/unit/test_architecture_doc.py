"""docs/architecture.md's diagram names every service the host runs and every declared topic;
the README's layout picture names every service package and every room of shared/."""

from __future__ import annotations

import re
from pathlib import Path

from services import host
from shared.contracts.topics import TOPICS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


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


def layout() -> str:
    text = (ROOT / "README.md").read_text()
    (picture,) = re.findall(r"```\n( launchers .*?)```", text, re.S)
    return picture


def test_the_readme_layout_names_every_service_and_every_room_of_shared() -> None:
    picture = layout()
    services = {p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists()}
    assert set(host.SERVICES) | {"evaluation"} == services, "a package the host does not know"
    for name in sorted(services - {"evaluation"}):
        assert re.search(rf"\b{name}\b", picture), name
    assert "services/evaluation/" in picture
    rooms = {p.name for p in (ROOT / "shared").iterdir() if (p / "__init__.py").exists()}
    for room in sorted(rooms):
        assert f"shared/{room}/" in picture, room

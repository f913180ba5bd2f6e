"""Unit tests of ``shared.store.payload``: what a point stores: the metadata a filter can match,
and the indexed text."""

from __future__ import annotations

from shared.store.payload import indexed_text


def test_a_point_keeps_only_the_metadata_a_filter_can_match() -> None:
    from shared.store.payload import filterable

    metadata = {
        "team": "ops",
        "year": 2024,
        "public": True,
        "tags": ["a", "b"],
        "ids": [1, 2],
        "blob": "x" * 10_000,
        "nested": {"a": 1},
        "mixed": [1, "a", {"b": 2}],
        "ratio": 0.5,
    }
    assert filterable(metadata) == {
        "team": "ops",
        "year": 2024,
        "public": True,
        "tags": ["a", "b"],
        "ids": [1, 2],
    }


def test_indexed_text_puts_title_and_path_in_front() -> None:
    assert indexed_text("Guide", "Install › Linux", "steps") == "Guide\nInstall › Linux\nsteps"
    assert indexed_text("", "", "steps") == "steps"

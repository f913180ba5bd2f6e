"""Precision and recall of each redaction detector on a labelled fixture (the README quotes
the figures this prints; run with -s to see them)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from shared.redact import DETECTORS, Redactor

FIXTURE = Path(__file__).parent / "fixtures" / "pii_labelled.tsv"


def labelled() -> list[tuple[str, Counter[str]]]:
    rows = []
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        text, _, kinds = line.partition("\t")
        rows.append((text, Counter(k for k in kinds.split(",") if k)))
    return rows


def scores() -> dict[str, tuple[float, float, int]]:
    """Detector -> (precision, recall, expected occurrences)."""
    redactor = Redactor.named(DETECTORS)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for text, expected in labelled():
        _, found = redactor.redact(text)
        for kind in DETECTORS:
            hit, want = found.get(kind, 0), expected.get(kind, 0)
            tp[kind] += min(hit, want)
            fp[kind] += max(0, hit - want)
            fn[kind] += max(0, want - hit)
    return {
        k: (
            tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else 1.0,
            tp[k] / (tp[k] + fn[k]) if tp[k] + fn[k] else 1.0,
            tp[k] + fn[k],
        )
        for k in DETECTORS
    }


def test_every_detector_is_labelled_in_the_fixture() -> None:
    seen = Counter[str]()
    for _, expected in labelled():
        seen.update(expected)
    assert set(seen) == set(DETECTORS)


@pytest.mark.parametrize("kind", list(DETECTORS))
def test_precision_and_recall_on_the_labelled_fixture(kind: str) -> None:
    table = scores()
    print(
        "\n"
        + "\n".join(
            f"{k:<6} precision {p:.2f} recall {r:.2f} (n={n})" for k, (p, r, n) in table.items()
        )
    )
    precision, recall, _ = table[kind]
    assert precision == 1.0 and recall == 1.0, (kind, table[kind])

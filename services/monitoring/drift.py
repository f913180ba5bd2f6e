"""Drift of the questions and of retrieval: pure, no Kafka.

Questions: the embeddings of one window's questions against a reference (the windows before
it, or a pinned period), by the maximum mean discrepancy (MMD) with an RBF kernel and a
permutation test. The permutation test gives a p-value whose false-alarm rate is what it
says whatever the sample sizes, which a domain classifier's ROC AUC against a fixed cut (0.55)
does not give on the few dozen questions a window holds. Retrieval: the top-1 scores of the
window against the reference's, by a two-sample Kolmogorov-Smirnov test (scipy).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from scipy.stats import ks_2samp

from shared.contracts.events import MetricKind, MetricPoint


def sampled(trace_id: str, keep: float) -> bool:
    """Whether a question is in the drift sample (by trace id, so a replay keeps the same)."""
    h = int.from_bytes(hashlib.sha256(trace_id.encode()).digest()[:8], "big")
    return h / 2**64 < keep


@dataclass(frozen=True)
class MMD:
    """The squared MMD of two samples and the permutation p-value of no difference."""

    mmd2: float
    p: float


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 200, seed: int = 0) -> MMD:
    """RBF-kernel MMD² (biased estimate) of ``x`` against ``y`` and its permutation p-value.

    The kernel's width is the median distance between all points (the usual heuristic); the
    seed is fixed so that the same samples always give the same answer.
    """
    z = np.vstack([x, y]).astype(np.float64)
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    off = d2[np.triu_indices(len(z), k=1)]
    width = float(np.median(off)) or 1.0
    k = np.exp(-d2 / width)
    n, total = len(x), len(z)
    # Every split at once: for indicators A (points x columns), a'Ka is the x-x sum, and with
    # the kernel's row sums r the y-y and x-y sums follow (one matrix product in all).
    rows = k.sum(axis=1)
    grand = rows.sum()
    rng = np.random.default_rng(seed)
    splits = np.zeros((total, permutations + 1))
    splits[:n, 0] = 1.0  # the observed split first
    for j in range(1, permutations + 1):
        splits[rng.permutation(total)[:n], j] = 1.0
    xx = np.einsum("ij,ij->j", splits, k @ splits)
    xr = rows @ splits
    m = total - n
    mmd2 = xx / n**2 + (grand - 2 * xr + xx) / m**2 - 2 * (xr - xx) / (n * m)
    observed = float(mmd2[0])
    exceed = int(np.sum(mmd2[1:] >= observed - 1e-12))
    return MMD(observed, (exceed + 1) / (permutations + 1))


def score_shift(current: Sequence[float], reference: Sequence[float]) -> float:
    """p-value of a two-sample KS test: are the top-1 scores from one distribution?"""
    # asymptotic: exact p-values are out of reach past a few dozen scores with ties
    return float(ks_2samp(list(current), list(reference), method="asymp").pvalue)


@dataclass
class Reference:
    """The questions (embeddings) and top-1 scores drift is measured against.

    Rolling: the last ``windows`` closed windows before the current one. Pinned: every
    window that starts inside [``pinned_from``, ``pinned_to``), kept once seen.
    """

    windows: int = 10
    cap: int = 1000
    pinned_from: datetime | None = None
    pinned_to: datetime | None = None
    vectors: deque[np.ndarray] = field(default_factory=deque)
    scores: deque[list[float]] = field(default_factory=deque)

    @property
    def pinned(self) -> bool:
        return self.pinned_from is not None

    def sample(self) -> tuple[np.ndarray | None, list[float]]:
        """The reference now: its embeddings (at most ``cap``, newest first) and scores."""
        vecs = [v for v in self.vectors if len(v)]
        stacked = np.vstack(vecs)[-self.cap :] if vecs else None
        return stacked, [s for window in self.scores for s in window]

    def add(self, start: datetime, vectors: np.ndarray, scores: list[float]) -> None:
        """A closed window, once it has been measured."""
        if self.pinned:
            assert self.pinned_from is not None and self.pinned_to is not None
            if not self.pinned_from <= start < self.pinned_to:
                return
        self.vectors.append(vectors)
        self.scores.append(scores)
        if not self.pinned:
            while len(self.vectors) > self.windows:
                self.vectors.popleft()
                self.scores.popleft()


@dataclass
class DriftMeter:
    """Collects each window's sampled questions and top-1 scores; at the window's close,
    measures them against the reference and returns the drift points."""

    reference: Reference
    sample: float = 1.0
    per_window: int = 200
    min_questions: int = 20
    permutations: int = 200
    questions: dict[datetime, list[str]] = field(default_factory=dict)
    tops: dict[datetime, list[float]] = field(default_factory=dict)

    def add(self, start: datetime, trace_id: str, question: str, top: float | None) -> None:
        if not sampled(trace_id, self.sample):
            return
        qs = self.questions.setdefault(start, [])
        if len(qs) < self.per_window:
            qs.append(question)
        if top is not None:
            self.tops.setdefault(start, []).append(top)

    def measure(
        self, start: datetime, end: datetime, encode: Callable[[list[str]], list[list[float]]]
    ) -> list[MetricPoint]:
        """The window's drift points (blocking: the model encodes), then it joins the
        reference. A window or reference too small to judge gives no point (no data)."""
        qs, tops = self.questions.pop(start, []), self.tops.pop(start, [])
        vectors = np.asarray(encode(qs), dtype=np.float64) if qs else np.empty((0, 0))
        ref_vectors, ref_tops = self.reference.sample()
        points = []

        def point(name: str, count: int, value: float) -> MetricPoint:
            return MetricPoint(
                event_id=f"{name}|{start.isoformat()}",
                event_time=end,
                name=name,
                kind=MetricKind.GAUGE,
                window_start=start,
                window_end=end,
                count=count,
                value=value,
            )

        enough = self.min_questions
        if len(qs) >= enough and ref_vectors is not None and len(ref_vectors) >= enough:
            result = mmd_test(vectors, ref_vectors, self.permutations)
            points.append(point("question_drift_mmd", len(qs), result.mmd2))
            points.append(point("question_drift_p", len(qs), result.p))
        if len(tops) >= enough and len(ref_tops) >= enough:
            points.append(point("retrieval_score_drift_p", len(tops), score_shift(tops, ref_tops)))
        if len(qs):
            self.reference.add(start, vectors, tops)
        return points

"""Statistics for offline evaluation: intervals and agreement, from scipy and numpy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% (or other) interval; ``n`` is the sample it came from."""

    estimate: float
    low: float
    high: float
    n: int

    def separated_from(self, other: Interval) -> bool:
        """The two intervals do not overlap."""
        return self.low > other.high or other.low > self.high

    def show(self, digits: int = 2) -> str:
        """``0.62 [0.51, 0.71]``."""
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """A proportion with its Wilson score interval (good at small n and near 0 or 1)."""
    if n == 0:
        raise ValueError("no observations")
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / n, float(ci.low), float(ci.high), n)


def auroc(scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positive``: the chance a random positive
    scores higher than a random negative (ties count half), by the Mann-Whitney U."""
    x = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    pos, neg = x[y], x[~y]
    if not len(pos) or not len(neg):
        raise ValueError("AUROC needs both classes")
    u = stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u) / (len(pos) * len(neg))


def bootstrap(
    statistic: Callable[[np.ndarray], float],
    n: int,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over resamples of ``range(n)``; a
    resample where the statistic is undefined (ValueError) is skipped."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        try:
            values.append(statistic(rng.integers(0, n, n)))
        except ValueError:
            continue
    if not values:
        raise ValueError("the statistic is undefined on every resample")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def auroc_interval(
    scores: Sequence[float], positive: Sequence[bool], confidence: float = 0.95, seed: int = 0
) -> Interval:
    """AUROC with a bootstrap interval."""
    x = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    low, high = bootstrap(lambda i: auroc(x[i], y[i]), len(x), confidence, seed=seed)
    return Interval(auroc(x, y), low, high, len(x))


def mean_interval(values: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Interval:
    """A mean with a bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if not len(x):
        raise ValueError("no observations")
    low, high = bootstrap(lambda i: float(x[i].mean()), len(x), confidence, seed=seed)
    return Interval(float(x.mean()), low, high, len(x))

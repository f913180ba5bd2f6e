"""Online metrics: cheap, honest, computed on a trace alone with the embedding model.

Every metric is named for what it measures. None of them is a judge: ``support`` is how close
each answer sentence comes to some context sentence (a groundedness proxy, not faithfulness).
A metric that cannot be computed is recorded as missing, with the reason, never as NaN.

The functions here take a ``vectors`` lookup (text to unit vector) so that a whole batch of
traces is encoded in one model call: ``texts_of`` says what a trace needs encoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.contracts.events import Metric

# Bump when a metric's definition changes: results of two versions do not compare.
EVALUATOR_VERSION = "1"

Vectors = Mapping[str, np.ndarray]

# A sentence ends at . ! or ? followed by space and something that starts a sentence, or at
# a line break. Abbreviations ("e.g. the") stay whole because a lower-case word follows.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\[(\"'A-Z0-9])")
_CITATION = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_CITATION_AND_SPACE = re.compile(r"\s*" + _CITATION.pattern)
_WORD = re.compile(r"\w")
_REFUSAL = re.compile(
    r"\b(i\s+(do\s+not|don'?t)\s+know|(can\s?not|can'?t|unable\s+to)\s+(answer|find)|"
    r"no\s+(document|passage)s?\s+(i\s+may\s+read\s+)?(answers|contains?|says?|mentions?)|"
    r"(is|are)\s+not\s+(in|mentioned\s+in)\s+the\s+(passages|context|documents))",
    re.IGNORECASE,
)

# Direction of each metric: True when a higher value is better (agreement orients by it).
HIGHER_IS_BETTER: dict[str, bool] = {
    "support_mean": True,
    "support_min": True,
    "support_share": True,
    "answer_relevance": True,
    "refusal": False,
    "retrieval_top1": True,
    "retrieval_mean": True,
    "retrieval_margin": True,
    "retrieval_passed": True,
    "citation_rate": True,
    "citation_validity": True,
    "correction_similarity": True,
}
ONLINE = tuple(HIGHER_IS_BETTER)


def sentences(text: str) -> list[str]:
    """The sentences of ``text``: split at line breaks and sentence ends; pieces with no
    word character (a lone "[1]", a bullet) are dropped."""
    out: list[str] = []
    for line in text.splitlines():
        for piece in _SENTENCE_END.split(line.strip()):
            piece = piece.strip()
            if _WORD.search(_CITATION.sub("", piece)):
                out.append(piece)
    return out


def cited_numbers(text: str) -> list[int]:
    """Every passage number cited as [n] or [n, m], in order, repeats included."""
    return [int(n) for group in _CITATION.findall(text) for n in group.split(",")]


def cited_docs(answer: str, docs: Sequence[str]) -> list[str]:
    """The documents an answer cites, first citation first, each once: ``docs[n - 1]`` is
    the document of passage [n]; a number with no passage is ignored."""
    cited = (docs[n - 1] for n in cited_numbers(answer) if 1 <= n <= len(docs))
    return list(dict.fromkeys(cited))


def without_citations(text: str) -> str:
    """``text`` with its [n] markers removed and spaces tidied."""
    return " ".join(_CITATION_AND_SPACE.sub("", text).split())


def is_refusal(answer: str) -> bool:
    """Whether the answer says it does not know (the prompts ask for that)."""
    return bool(_REFUSAL.search(answer))


def missing(reason: str) -> Metric:
    """A metric that could not be computed."""
    return Metric(missing=reason)


def value(v: float) -> Metric:
    """A computed metric, rounded for the wire (a float that is not finite is missing)."""
    if not np.isfinite(v):
        return Metric(missing="not a finite number")
    return Metric(value=round(float(v), 6))


@dataclass(frozen=True)
class Answered:
    """What scoring needs of an answer: from a trace, or from an offline run."""

    question: str
    answer: str
    context: Sequence[str] | None  # None: not recorded (a schema v1 trace)
    scores: Sequence[float]  # retrieval scores of the passages, best first

    def answer_sentences(self) -> list[str]:
        """The answer's sentences without their citation markers."""
        return [without_citations(s) for s in sentences(self.answer)]

    def context_sentences(self) -> list[str]:
        """Every sentence of every passage."""
        return [s for passage in self.context or () for s in sentences(passage)]


def texts_of(a: Answered) -> set[str]:
    """Every text ``score`` will look up in the vectors."""
    texts = {a.question, without_citations(a.answer), *a.answer_sentences()}
    texts.update(a.context_sentences())
    texts.discard("")
    return texts


def encode_all(texts: Iterable[str], encode: Callable[[list[str]], list[list[float]]]) -> Vectors:
    """One model call for every distinct text; the lookup ``score`` takes."""
    unique = sorted(set(texts))
    return {t: np.asarray(v, dtype=np.float32) for t, v in zip(unique, encode(unique), strict=True)}


def cosine(vectors: Vectors, a: str, b: str) -> float:
    """Cosine of two encoded texts (the vectors are unit length)."""
    return float(np.dot(vectors[a], vectors[b]))


def support(a: Answered, vectors: Vectors, threshold: float) -> dict[str, Metric]:
    """For each answer sentence its best cosine to any context sentence: mean, minimum and
    the share at or over ``threshold``."""
    names = ("support_mean", "support_min", "support_share")
    reason = None
    if a.context is None:
        reason = "the trace has no context (schema v1)"
    elif not a.context:
        reason = "no passages were given to the model"
    elif is_refusal(a.answer):
        reason = "the answer is a refusal"
    elif not a.answer_sentences():
        reason = "the answer is empty"
    elif not a.context_sentences():
        reason = "the passages have no sentences"
    if reason is not None:
        return {n: missing(reason) for n in names}
    answer = np.stack([vectors[s] for s in a.answer_sentences()])
    context = np.stack([vectors[s] for s in a.context_sentences()])
    best = (answer @ context.T).max(axis=1)
    return {
        "support_mean": value(best.mean()),
        "support_min": value(best.min()),
        "support_share": value((best >= threshold).mean()),
    }


def retrieval(scores: Sequence[float]) -> dict[str, Metric]:
    """Top-1 and mean score, the margin between the first two, whether anything passed the
    score threshold (what inference keeps has passed it)."""
    ranked = sorted(scores, reverse=True)
    none = missing("no passage passed the score threshold")
    return {
        "retrieval_top1": value(ranked[0]) if ranked else none,
        "retrieval_mean": value(float(np.mean(ranked))) if ranked else none,
        "retrieval_margin": value(ranked[0] - ranked[1])
        if len(ranked) > 1
        else missing("fewer than two passages"),
        "retrieval_passed": value(1.0 if ranked else 0.0),
    }


def citation_metrics(a: Answered) -> dict[str, Metric]:
    """The share of answer sentences that cite [n], and the share of [n] that name a passage
    the model was actually given."""
    said = sentences(a.answer)
    if is_refusal(a.answer):
        reason = "the answer is a refusal"
        return {"citation_rate": missing(reason), "citation_validity": missing(reason)}
    if not said:
        return {n: missing("the answer is empty") for n in ("citation_rate", "citation_validity")}
    rate = value(sum(bool(cited_numbers(s)) for s in said) / len(said))
    cited = cited_numbers(a.answer)
    if a.context is None:
        validity = missing("the trace has no context (schema v1)")
    elif not cited:
        validity = missing("the answer cites nothing")
    else:
        validity = value(sum(1 <= n <= len(a.context) for n in cited) / len(cited))
    return {"citation_rate": rate, "citation_validity": validity}


def score(a: Answered, vectors: Vectors, support_threshold: float) -> dict[str, Metric]:
    """Every online metric but ``correction_similarity`` (that needs feedback)."""
    answer = without_citations(a.answer)
    metrics = support(a, vectors, support_threshold)
    metrics["answer_relevance"] = (
        value(cosine(vectors, a.question, answer)) if answer else missing("the answer is empty")
    )
    metrics["refusal"] = value(1.0 if is_refusal(a.answer) else 0.0)
    metrics.update(retrieval(a.scores))
    metrics.update(citation_metrics(a))
    metrics["correction_similarity"] = missing("no correction given")
    return metrics


def correction_similarity(answer: str, correction: str, vectors: Vectors) -> Metric:
    """Cosine of the answer and the answer that should have been given."""
    answer = without_citations(answer)
    if not answer:
        return missing("the answer is empty")
    return value(cosine(vectors, answer, without_citations(correction)))


def not_scored(reason: str) -> dict[str, Metric]:
    """Every metric missing for one reason (a trace not sampled, an error trace)."""
    return {n: missing(reason) for n in ONLINE}

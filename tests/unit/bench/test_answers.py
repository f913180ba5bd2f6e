"""Unit tests of ``bench.answers``: how bench/answers.py scores an answer: key facts, refusals,
the documents it cites."""

from __future__ import annotations

from bench.answers import cited_docs, has_facts, load_questions, refused


def test_facts_are_met_by_any_spelling_and_numbers_stand_alone() -> None:
    assert has_facts("Records stay 14 days [1].", (("14 days", "fourteen days"),))
    assert has_facts("It redacts E-mail and phone numbers", (("e-mail", "email"), ("phone",)))
    assert not has_facts("It redacts e-mail addresses", (("e-mail", "email"), ("phone",)))
    assert not has_facts("14 partitions", (("4", "four"),)), "4 is not in 14"
    assert not has_facts("0.4 of them", (("4",),))
    assert has_facts("[1] 4.", (("4", "four"),))


def test_refusals_are_recognised_and_answers_are_not() -> None:
    for answer in ["I do not know.", "I don't know", "The passages do not contain it.", " "]:
        assert refused(answer), answer
    assert not refused("[1] 35 days.")


def test_only_the_passages_an_answer_names_count_as_cited() -> None:
    citations = [(1, "README.md"), (2, "operations.md")]
    assert cited_docs("[2] 8000.", citations) == {"operations.md"}
    assert cited_docs("8000.", citations) == set()


def test_the_labelled_set_has_forty_questions_or_more_each_well_formed() -> None:
    qs = load_questions()
    assert len(qs) >= 40 and len({q.id for q in qs}) == len(qs)
    answerable = [q for q in qs if q.answerable]
    assert answerable and all(q.facts for q in answerable)
    assert len(qs) - len(answerable) >= 10, "unanswerable ones too"

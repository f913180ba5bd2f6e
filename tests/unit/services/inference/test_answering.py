"""Unit tests of ``services.inference.answering``: admission to the model: refuse at once when
the queue is full or the wait is too long."""

from __future__ import annotations

import pytest

from services.inference.answering import GenerationQueue, Overloaded


def test_admits_up_to_the_model_plus_the_queue_then_refuses_with_a_retry_after() -> None:
    q = GenerationQueue(concurrency=1, max_queued=2, timeout_s=60)
    for _ in range(3):
        q.admit()
    with pytest.raises(Overloaded, match="queue is full") as err:
        q.admit()
    assert err.value.retry_after_s >= 1 and q.refused == 1 and q.in_flight == 3
    q.release(4.0)
    q.admit()  # a slot freed up
    assert q.in_flight == 3


def test_refuses_when_the_wait_would_outlast_the_timeout() -> None:
    q = GenerationQueue(concurrency=1, max_queued=10, timeout_s=20)
    q.admit()
    q.release(8.0)  # a generation takes about 8 s
    q.admit()
    q.admit()  # one running, one waiting: a third would wait ~16 s, then run ~8 s
    with pytest.raises(Overloaded, match="outlast the 20 s") as err:
        q.admit()
    assert err.value.retry_after_s == 16


def test_a_failed_or_cancelled_generation_frees_its_slot_without_teaching_the_average() -> None:
    q = GenerationQueue(concurrency=2, max_queued=0, timeout_s=60)
    q.admit()
    q.release()
    assert q.in_flight == 0 and q.mean_s is None
    q.admit()
    q.release(2.0)
    q.admit()
    q.release(4.0)
    assert q.mean_s == pytest.approx(2.4)

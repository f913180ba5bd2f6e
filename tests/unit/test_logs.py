"""Repeated warnings are held back, then counted; distinct ones and info lines pass."""

from __future__ import annotations

import logging

from shared.logs import RepeatFilter, hold_back_repeats
from shared.worker import Worker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def records(logger: logging.Logger) -> list[str]:
    out: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.append(record.getMessage())

    logger.handlers = [Keep()]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return out


def test_a_flood_becomes_a_line_per_interval_with_a_count() -> None:
    clock = Clock()
    logger = logging.getLogger("test.flood")
    out = records(logger)
    logger.handlers[0].addFilter(RepeatFilter(10.0, clock))
    for i in range(5000):
        clock.now = i * 24 / 5000  # 5,000 lines in 24 s, as with the broker down
        logger.warning("cannot connect to %s", "broker:9092")
    logger.error("something else broke")
    logger.info("info lines always pass")
    assert out[0] == "cannot connect to broker:9092"
    assert "more like this" in out[1] and "more like this" in out[2]
    assert out[3:] == ["something else broke", "info lines always pass"]
    held = sum(int(line.split("[")[1].split()[0]) for line in out[1:3])
    assert held + 3 >= 4000  # nearly all of the flood was held back, and counted


def test_the_worker_and_the_cli_put_the_filter_on_their_handlers() -> None:
    logger = logging.getLogger("test.worker")
    logger.handlers = [logging.NullHandler()]
    Worker.on_setup_root_logger(Worker.__new__(Worker), logger, logging.INFO)
    hold_back_repeats(logger)  # idempotent
    (handler,) = logger.handlers
    assert sum(isinstance(f, RepeatFilter) for f in handler.filters) == 1

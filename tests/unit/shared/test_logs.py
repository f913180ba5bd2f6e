"""Unit tests of ``shared.logs``: repeated warnings are held back, then counted; libraries log
warnings only."""

from __future__ import annotations

import logging

from shared.kafka.worker import Worker
from shared.logs import RepeatFilter, hold_back_repeats, quiet_libraries


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


def test_libraries_log_warnings_only_unless_debug_and_the_start_up_error_is_info() -> None:
    quiet_libraries("info")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    out = records(coordinator)
    coordinator.setLevel(logging.NOTSET)  # as the library leaves it: the parent decides
    coordinator.error("Group Coordinator Request failed: [Error 15] CoordinatorNotAvailableError")
    coordinator.error("Group Coordinator Request failed: something else")
    assert out == ["Group Coordinator Request failed: something else"]
    quiet_libraries("debug")
    try:
        assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
        coordinator.error("Group Coordinator Request failed: CoordinatorNotAvailableError")
        assert out[-1].endswith("CoordinatorNotAvailableError"), "shown as INFO when debugging"
    finally:
        quiet_libraries("info")
        coordinator.handlers, coordinator.propagate = [], True


def test_a_closing_clients_errors_are_debug() -> None:
    # kafka-python 3.0, closing a client with a request under way: `llmops status` printed
    # these tracebacks now and then on a healthy stack
    quiet_libraries("info")
    transport, cluster = (
        logging.getLogger("kafka.net.transport"),
        logging.getLogger("kafka.cluster"),
    )
    out_t, out_c = records(transport), records(cluster)
    try:
        for logger in (transport, cluster):
            logger.setLevel(logging.NOTSET)
        try:
            None.recv(4096)  # type: ignore[attr-defined]
        except AttributeError:
            transport.exception("<KafkaTCPTransport [none] (closed)>: Error receiving network data")
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError:
            transport.exception("<KafkaTCPTransport [1] (connected)>: Error receiving network data")
        cluster.error("Metadata refresh: failed %s", "Cancelled")
        cluster.error("Metadata refresh: failed %s", "NodeNotReadyError")
        assert out_t == ["<KafkaTCPTransport [1] (connected)>: Error receiving network data"]
        assert out_c == ["Metadata refresh: failed NodeNotReadyError"]
    finally:
        for logger in (transport, cluster):
            logger.handlers, logger.propagate = [], True

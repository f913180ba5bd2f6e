"""Logging that stays readable when something keeps failing: repeated warnings are held back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RepeatFilter(logging.Filter):
    """Lets one warning (or worse) of a kind through every ``interval_s`` seconds; the next
    one that passes says how many like it were held back. A kind is the logger, the level and
    the message template, so "broker down" floods (thousands of lines a minute) become a line
    every ``interval_s`` while distinct problems still show at once."""

    def __init__(
        self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s, self.clock = interval_s, clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last, held = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.interval_s:
            self._seen[key] = (last, held + 1)
            return False
        self._seen[key] = (now, 0)
        if held and last is not None:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f} s]"
        return True


REPEATS = RepeatFilter()


def hold_back_repeats(logger: logging.Logger | None = None) -> None:
    """Put the process-wide RepeatFilter on every handler of ``logger`` (default: root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if REPEATS not in handler.filters:
            handler.addFilter(REPEATS)


# Libraries whose INFO lines describe their own plumbing (every HTTP request, every
# rebalance step): a user reads them only when debugging.
LIBRARIES = (
    "httpx",
    "httpcore",
    "kafka",
    "aiokafka",
    "faust",
    "mode",
    "urllib3",
    "asyncio",
    "aiohttp",
    "uvicorn.error",
    "sentence_transformers",
    "filelock",
)


class Lowered(logging.Filter):
    """Lowers to ``to`` the ERRORs of its ``loggers`` that ``matches`` says are not errors,
    so they show only where that level is on."""

    to = logging.INFO
    loggers: tuple[str, ...] = ()

    def matches(self, record: logging.LogRecord) -> bool:
        raise NotImplementedError

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and self.matches(record):
            record.levelno, record.levelname = self.to, logging.getLevelName(self.to)
            return logging.getLogger(record.name).isEnabledFor(self.to)
        return True


class ExpectedAtStart(Lowered):
    """Lowers to INFO a library's ERROR that is expected while a fresh cluster starts: the
    group coordinator is not available for the first seconds of a new broker (aiokafka logs
    "Group Coordinator Request failed: ...CoordinatorNotAvailable..." and retries)."""

    EXPECTED = ("CoordinatorNotAvailable", "GroupCoordinatorNotAvailable")
    loggers = ("aiokafka", "aiokafka.consumer.group_coordinator")

    def matches(self, record: logging.LogRecord) -> bool:
        return any(e in record.getMessage() for e in self.EXPECTED)


class ClosingClient(Lowered):
    """Lowers to DEBUG the ERRORs kafka-python 3.0 logs when a client is closed with a request
    under way, which are not errors: a read its selector delivers after the socket is gone
    (a traceback ending in ``AttributeError: 'NoneType' object has no attribute 'recv'``) and
    the metadata refresh the close cancels. ``llmops status`` printed both now and then on a
    healthy stack."""

    to = logging.DEBUG
    loggers = ("kafka.net.transport", "kafka.cluster")

    def matches(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == "kafka.net.transport":
            exc = record.exc_info[1] if record.exc_info else None
            return "(closed)" in message and isinstance(exc, AttributeError)
        return record.name == "kafka.cluster" and message == "Metadata refresh: failed Cancelled"


# a logger's own filters see only its own records: each is put on every logger it names
LOWERED: tuple[Lowered, ...] = (ExpectedAtStart(), ClosingClient())


def quiet_libraries(level: str | int) -> None:
    """Library loggers at WARNING unless ``level`` is debug (LLMOPS_LOG_LEVEL=debug or -v),
    and the coordinator's start-up error and a closing client's errors lowered to what they
    are."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    debug = isinstance(numeric, int) and numeric <= logging.DEBUG
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    # kafka-python times its own I/O tasks and warns of a "blocking event loop" whenever a
    # busy two-core machine delays one by 0.1 s: about itself, nothing a user can act on
    logging.getLogger("kafka.net.selector").setLevel(logging.DEBUG if debug else logging.ERROR)
    for lowered in LOWERED:
        for name in lowered.loggers:
            logger = logging.getLogger(name)
            if lowered not in logger.filters:
                logger.addFilter(lowered)

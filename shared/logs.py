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

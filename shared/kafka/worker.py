"""Running faust apps as workers."""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

import faust

from shared.logs import hold_back_repeats, quiet_libraries

log = logging.getLogger(__name__)

# After SIGINT or SIGTERM the worker stops cleanly within a few seconds while the broker is
# up; with the broker gone its last commit and its producer's flush can wait on timeouts.
# Past this long the process exits anyway: what it had not acknowledged is not committed,
# and a restart does it again.
STOP_DEADLINE_S = 6.0


class Worker(faust.Worker):
    """faust's worker, with repeated warnings held back once it has set up logging, and a
    stop that does not wait for events still in hand."""

    apps: tuple[faust.App, ...] = ()
    # called at the first signal: what runs beside the apps (HTTP servers) stops with them
    on_signal: tuple[Callable[[], None], ...] = ()

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        hold_back_repeats(logger)
        quiet_libraries(level)

    def _schedule_shutdown(self, signal: Any) -> None:
        if not self._signal_stop_time:
            stop_promptly(self.apps)
            for hook in self.on_signal:
                hook()
            deadline = threading.Timer(STOP_DEADLINE_S, _exit_late, args=(STOP_DEADLINE_S,))
            deadline.daemon = True
            deadline.start()
        super()._schedule_shutdown(signal)


def stop_promptly(apps: tuple[faust.App, ...]) -> None:
    """Make the apps' consumers stop without waiting for every event in hand to be
    acknowledged (faust's stream_wait_empty). Monitoring holds each input until its window
    is published, so a stop waited up to a window and more; what is not acknowledged is not
    committed, so a restart reads it again. Rebalances still wait (fewer redone events)."""
    for app in apps:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reconfiguring late is the point here
            app.conf.stream_wait_empty = False


def _exit_late(seconds: float) -> None:
    print(
        f"llmops: not stopped {seconds:.0f} s after the signal (is the broker away?); "
        "exiting: what was not acknowledged is done again on the next start",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


def run_worker(
    *apps: faust.App, loglevel: str = "info", on_signal: tuple[Callable[[], None], ...] = ()
) -> None:
    """Run the apps in one worker until SIGTERM/SIGINT; each keeps its own consumer group.
    ``on_signal`` hooks run at the first signal (to stop what runs beside the apps)."""
    first, *others = apps
    worker = Worker(
        first,
        *others,
        loglevel=loglevel,
        quiet=True,
        override_logging=True,
        redirect_stdouts=False,  # keep the CLI's own output (dev mode) as it is
    )
    worker.apps = tuple(apps)
    worker.on_signal = on_signal
    # At WARNING and above faust adds a terminal spinner that sets the root logger to DEBUG,
    # so every aiokafka debug call builds a log record: a measurable cost per event.
    worker.spinner = None
    worker.execute_from_commandline()

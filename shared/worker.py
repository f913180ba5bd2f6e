"""Running faust apps as workers."""

from __future__ import annotations

import logging

import faust

from shared.logs import hold_back_repeats


class Worker(faust.Worker):
    """faust's worker, with repeated warnings held back once it has set up logging."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        hold_back_repeats(logger)


def run_worker(*apps: faust.App, loglevel: str = "info") -> None:
    """Run the apps in one worker until SIGTERM/SIGINT; each keeps its own consumer group."""
    first, *others = apps
    worker = Worker(
        first,
        *others,
        loglevel=loglevel,
        quiet=True,
        override_logging=True,
        redirect_stdouts=False,  # keep the CLI's own output (dev mode) as it is
    )
    # At WARNING and above faust adds a terminal spinner that sets the root logger to DEBUG,
    # so every aiokafka debug call builds a log record: a measurable cost per event.
    worker.spinner = None
    worker.execute_from_commandline()

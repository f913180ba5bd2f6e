"""Running faust apps as workers."""

from __future__ import annotations

import faust


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    """Run ``app`` until SIGTERM/SIGINT; returns when the worker has stopped."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, override_logging=True)
    # At WARNING and above faust adds a terminal spinner that sets the root logger to DEBUG,
    # so every aiokafka debug call builds a log record: a measurable cost per event.
    worker.spinner = None
    worker.execute_from_commandline()

"""Unit tests of ``shared.kafka.broker``: the local broker's pid: a zombie or a pid another
program got since counts as gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from shared.kafka.broker import is_our_broker, local_broker


def test_a_zombie_or_another_program_is_not_our_broker(tmp_path: Path) -> None:
    config = tmp_path / "server.properties"
    # a child that exited and was not reaped: kill(pid, 0) still finds it
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stat = Path(f"/proc/{child.pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.05)
    os.kill(child.pid, 0)  # alive to the old check
    assert not is_our_broker(child.pid, config)
    child.wait()
    assert not is_our_broker(child.pid, config), "reaped: no such process"
    assert not is_our_broker(os.getpid(), config), "a live process that is not a broker"


def test_a_pid_file_naming_something_else_is_no_broker(tmp_path: Path) -> None:
    broker = local_broker(tmp_path, tmp_path / "cache", 1, 2)
    broker.run_dir.mkdir(parents=True)
    broker.pid_file.write_text(str(os.getpid()))  # pids are reused: this one is pytest
    assert broker.pid() is None and broker.status() == "stopped"

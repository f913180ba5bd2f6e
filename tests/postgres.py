"""A real PostgreSQL for the tests: Debian's server, its own cluster in a scratch folder, on
a free port, with logical decoding on (what Debezium reads). PostgreSQL refuses to run as
root, so as root it runs as the ``postgres`` user the Debian package creates. Statements go
through ``psql``, the package's own client (no Python driver needed)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql")


def pg_bin() -> Path:
    """The newest installed server's bin folder."""
    versions = sorted(
        (p for p in PG_BIN.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name),
    )
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1]


@dataclass
class Postgres:
    """One server: ``start`` it, connect with ``dsn``, ``stop`` it."""

    folder: Path
    port: int
    password: str = "llmops"
    user: str = "postgres"
    _proc: subprocess.Popen[bytes] | None = None

    def psql(self, sql: str, timeout_s: float = 60) -> str:
        """Run ``sql`` (one or more statements, each committed) with psql; its output."""
        proc = subprocess.run(
            [
                str(pg_bin() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
            ],
            input=sql,
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password},
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def _as_postgres(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        return ["runuser", "-u", "postgres", "--", *command]

    def start(self) -> None:
        data = self.folder / "data"
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            # the scratch folders above must be passable for the postgres user
            for parent in self.folder.parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        secret = self.folder / "pw"
        secret.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(secret, "postgres")
        subprocess.run(
            self._as_postgres(
                [
                    str(pg_bin() / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    self.user,
                    f"--pwfile={secret}",
                    "-A",
                    "scram-sha-256",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        log = (self.folder / "postgres.log").open("ab")
        self._proc = subprocess.Popen(
            self._as_postgres(
                [
                    str(pg_bin() / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.folder}",
                    "-c",
                    "wal_level=logical",
                    "-c",
                    "max_replication_slots=8",
                    "-c",
                    "max_wal_senders=8",
                    "-c",
                    "fsync=off",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.psql("SELECT 1", timeout_s=5)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                if self._proc.poll() is not None:
                    break
                time.sleep(0.3)
        tail = (self.folder / "postgres.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # smart shutdown; the replication connection ends with it
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()

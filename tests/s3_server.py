"""A real S3-compatible server for the tests: SeaweedFS (``weed server -s3``), built once from
the Go module proxy by ``make test`` into the cache (``LLMOPS_WEED`` names the binary).

It runs on loopback ports with one identity, so requests are signed and checked as by any
S3 store: a wrong key is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.ingestion.settings import S3Settings
from shared.kafka.broker import free_port

ACCESS_KEY, SECRET_KEY = "llmops-test", "llmops-test-secret"


@dataclass
class S3Server:
    """One ``weed server`` with its master, volume, filer and S3 gateway."""

    folder: Path
    binary: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> S3Settings:
        """S3_* settings for this server."""
        return S3Settings(
            endpoint_url=self.endpoint,
            region="us-east-1",
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,  # type: ignore[arg-type]
            addressing_style="path",
        )

    def env(self) -> dict[str, str]:
        """The same as environment variables, for a service process."""
        return {
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_ADDRESSING_STYLE": "path",
        }

    def start(self, timeout_s: float = 90.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        identity = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "tests",
                            "credentials": [identity],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.port = free_port()
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        (self.folder / "data").mkdir(exist_ok=True)
        cmd = [
            str(self.binary),
            "server",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-volume.max=8",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={grpc['s3']}",
            f"-s3.config={config}",
            # off: catalogs on fixed ports (8181, 9101), and telemetry to the internet
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
        ]
        log = open(self.folder / "weed.log", "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = self.client()
        until = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed server exited: {self.log()[-3000:]}")
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                if time.monotonic() > until:
                    self.stop()
                    raise RuntimeError(
                        f"weed's S3 gateway did not answer in {timeout_s:g} s ({exc}): "
                        + self.log()[-3000:]
                    ) from exc
                time.sleep(0.5)

    def client(self) -> Any:
        from services.ingestion import s3

        return s3.client(self.settings(), timeout_s=10)

    def log(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def weed_binary() -> Path | None:
    """The SeaweedFS binary ``make test`` built (LLMOPS_WEED), if it is there."""
    given = os.environ.get("LLMOPS_WEED")
    return Path(given) if given and Path(given).is_file() else None

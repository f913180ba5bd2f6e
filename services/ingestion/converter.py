"""The converter process: ``convert`` run in a child process with a time and a memory limit,
so a hostile file can stall or crash that process and nothing else.

The child (``python -m services.ingestion.converter``) reads requests from its stdin and
answers on its stdout, one at a time: a frame of JSON (the content type and the limits), a
frame of bytes (the document); back comes a frame of JSON (the sections, or an error code
and message). A frame is a 4-byte big-endian length and its bytes. JSON only, both ways: the
child reads hostile bytes, and nothing it sends back may run code here.

Past the time limit, or when it dies, the child and its own children (Tesseract) are killed
as a process group and the next document gets a fresh one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from typing import IO, Any

from services.ingestion.convert import Converted, Limits, convert
from services.ingestion.settings import IngestionSettings
from services.ingestion.validate import IngestError
from shared.contracts.events import ContentType

log = logging.getLogger(__name__)
_LEN = struct.Struct(">I")


class _Deadline(Exception):
    """The child took longer than the time limit."""


class _Gone(Exception):
    """The child closed its pipes (it died)."""


class Converter:
    """Converts documents in a child process, one at a time (thread-safe: callers queue)."""

    def __init__(self, limits: Limits, timeout_s: float, memory_mb: int) -> None:
        self.limits, self.timeout_s, self.memory_mb = limits, timeout_s, memory_mb
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    @classmethod
    def from_settings(cls, s: IngestionSettings) -> Converter:
        """The converter the ingestion settings describe (its process starts on first use)."""
        limits = Limits(
            max_pages=s.max_pages,
            max_unpacked_bytes=s.max_unpacked_bytes,
            ocr=s.ocr,
            ocr_languages=s.ocr_languages,
            ocr_dpi=s.ocr_dpi,
        )
        return cls(limits, s.convert_timeout_s, s.convert_memory_mb)

    @property
    def pid(self) -> int | None:
        """The child's pid, while one runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def convert(self, data: bytes, ctype: ContentType) -> Converted:
        """``data`` converted in the child (raises IngestError: the conversion's own codes,
        ConversionTimeout, ConversionCrashed)."""
        with self._lock:
            proc = self._child()
            until = time.monotonic() + self.timeout_s
            request = json.dumps({"type": ctype.value, "limits": asdict(self.limits)}).encode()
            try:
                assert proc.stdin is not None and proc.stdout is not None
                _write(proc.stdin, _LEN.pack(len(request)) + request, until)
                _write(proc.stdin, _LEN.pack(len(data)), until)
                _write(proc.stdin, data, until)
                answer = json.loads(_frame(proc.stdout, until))
            except _Deadline:
                self._kill()
                raise IngestError(
                    "ConversionTimeout",
                    f"conversion took over {self.timeout_s:g} s (INGESTION_CONVERT_TIMEOUT_S); "
                    "the converter process was killed",
                ) from None
            except (_Gone, BrokenPipeError, ValueError):
                code = self._kill()
                raise IngestError(
                    "ConversionCrashed",
                    f"the converter process died reading this document (exit status {code}); "
                    "a new one takes the next",
                ) from None
        if not answer.get("ok"):
            raise IngestError(str(answer.get("code")), str(answer.get("message")))
        return Converted.from_json(answer)

    def close(self) -> None:
        """Stop the child, if one runs."""
        with self._lock:
            self._kill()

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self._proc is not None:
            self._kill()
        env = dict(os.environ, OMP_THREAD_LIMIT="1", LLMOPS_CONVERT_MEMORY_MB=str(self.memory_mb))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "services.ingestion.converter"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own group: Tesseract dies with it
        )
        return self._proc

    def _kill(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            self.restarts += 1
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        return proc.wait()


def _write(pipe: IO[bytes], data: bytes, until: float) -> None:
    fd = pipe.fileno()
    view = memoryview(data)
    while view:
        left = until - time.monotonic()
        if left <= 0:
            raise _Deadline
        _, ready, _ = select.select([], [fd], [], left)
        if ready:
            n = os.write(fd, view[: 1 << 16])
            view = view[n:]


def _read(pipe: IO[bytes], n: int, until: float) -> bytes:
    fd = pipe.fileno()
    out = bytearray()
    while len(out) < n:
        left = until - time.monotonic()
        if left <= 0:
            raise _Deadline
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            piece = os.read(fd, min(n - len(out), 1 << 20))
            if not piece:
                raise _Gone
            out += piece
    return bytes(out)


def _frame(pipe: IO[bytes], until: float) -> bytes:
    (n,) = _LEN.unpack(_read(pipe, _LEN.size, until))
    return _read(pipe, n, until)


# ---- the child -----------------------------------------------------------------------------


def _child_read(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return data


def _answer(request: dict[str, Any], data: bytes) -> dict[str, Any]:
    try:
        out = convert(data, ContentType(request["type"]), Limits(**request["limits"]))
        return {"ok": True, **out.to_json()}
    except IngestError as exc:
        return {"ok": False, "code": exc.code, "message": str(exc)}
    except MemoryError:
        return {
            "ok": False,
            "code": "TooLarge",
            "message": "converting it needs more memory than INGESTION_CONVERT_MEMORY_MB="
            f"{os.environ.get('LLMOPS_CONVERT_MEMORY_MB')}",
        }
    except Exception as exc:  # noqa: BLE001 - a library failing on hostile bytes
        return {"ok": False, "code": "Unreadable", "message": f"{type(exc).__name__}: {exc}"}


def serve() -> None:
    """The child's loop: limit its own memory, then answer requests until stdin closes."""
    import ctypes
    import resource

    # die with the service: a SIGKILL of it must not leave a conversion running
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the service died before the line above
        return
    mb = int(os.environ.get("LLMOPS_CONVERT_MEMORY_MB", "2048"))
    resource.setrlimit(resource.RLIMIT_AS, (mb * 1024 * 1024, mb * 1024 * 1024))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's print must not corrupt the frames
    while True:
        try:
            (n,) = _LEN.unpack(_child_read(stdin, _LEN.size))
            request = json.loads(_child_read(stdin, n))
            (size,) = _LEN.unpack(_child_read(stdin, _LEN.size))
            data = _child_read(stdin, size)
        except EOFError:
            return
        answer = json.dumps(_answer(request, data)).encode()
        del data
        stdout.write(_LEN.pack(len(answer)) + answer)
        stdout.flush()


if __name__ == "__main__":
    serve()

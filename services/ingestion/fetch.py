"""A document's body as bytes: decoded from ``content_base64``, or fetched from
``content_uri`` (the claim check) within limits, then checked against ``content_sha256``.

An event must not be able to make the service read an arbitrary file or URL: only the
schemes, folders, hosts and buckets the settings allow, no redirect to another host, a size limit
enforced while reading (never after), and a time limit on the whole fetch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from services.ingestion import s3
from services.ingestion.settings import IngestionSettings, S3Settings
from services.ingestion.validate import IngestError
from shared.contracts.events import DocumentEvent

_READ = 1024 * 1024
_MAX_REDIRECTS = 5
# the schemes this fetcher can read at all; INGESTION_FETCH_SCHEMES narrows them
READABLE = ("file", "http", "https", "s3")


def sha256_hex(data: bytes) -> str:
    """The digest ``content_sha256`` holds."""
    return hashlib.sha256(data).hexdigest()


def host_allowed(host: str, allowed: list[str]) -> bool:
    """``host`` is one of ``allowed``, or under a ``.domain`` entry of it."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if host == entry or (entry.startswith(".") and host.endswith(entry)):
            return True
    return False


@dataclass
class Fetcher:
    """Reads bodies within the limits of the ingestion settings."""

    schemes: list[str]
    roots: list[Path]
    hosts: list[str]
    max_bytes: int
    timeout_s: float
    buckets: list[str] = field(default_factory=list)
    s3: S3Settings | None = None
    _s3_client: Any = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, s: IngestionSettings) -> Fetcher:
        """The fetcher the settings describe (roots resolved once, at start)."""
        return cls(
            schemes=[x.lower() for x in s.fetch_schemes],
            roots=[Path(r).resolve() for r in s.fetch_roots],
            hosts=list(s.fetch_hosts),
            max_bytes=s.max_document_bytes,
            timeout_s=s.fetch_timeout_s,
            buckets=list(s.fetch_buckets),
            s3=s.s3,
        )

    def body(self, event: DocumentEvent) -> bytes:
        """The bytes of an upsert's body, hash-checked (raises IngestError)."""
        if event.content_uri:
            data = self.fetch(event.content_uri)
        elif event.content_base64:
            if len(event.content_base64) * 3 // 4 > self.max_bytes:
                raise self._too_large(len(event.content_base64) * 3 // 4)
            try:
                data = base64.b64decode(event.content_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise IngestError("InvalidContent", f"content_base64 is not base64: {exc}") from exc
        else:
            data = event.content.encode()
        if event.content_sha256 and sha256_hex(data) != event.content_sha256:
            raise IngestError(
                "HashMismatch",
                f"the body's SHA-256 is {sha256_hex(data)}, the event says "
                f"{event.content_sha256}: not indexed",
            )
        return data

    def fetch(self, uri: str) -> bytes:
        """The bytes at ``uri`` (raises IngestError: FetchRefused, FetchFailed, TooLarge)."""
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        allowed = [s for s in self.schemes if s in READABLE]
        if scheme not in allowed:
            raise IngestError(
                "FetchRefused",
                f"content_uri scheme {scheme or '(none)'!r} is not allowed; allowed: "
                f"{', '.join(allowed)} (INGESTION_FETCH_SCHEMES)",
            )
        if scheme == "file":
            return self._file(parts.netloc, unquote(parts.path))
        if scheme == "s3":
            return self._s3(uri)
        return self._http(uri)

    def _too_large(self, size: int) -> IngestError:
        return IngestError(
            "TooLarge",
            f"the body is {size} bytes or more; the limit is {self.max_bytes} "
            "(INGESTION_MAX_DOCUMENT_BYTES)",
        )

    def _file(self, netloc: str, path: str) -> bytes:
        if netloc not in ("", "localhost"):
            raise IngestError("FetchRefused", f"file:// names host {netloc!r}; only local files")
        if not self.roots:
            raise IngestError(
                "FetchRefused", "file:// is not allowed: no folder in INGESTION_FETCH_ROOTS"
            )
        try:
            real = Path(path).resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise IngestError("FetchFailed", f"cannot read {path}: {exc}") from exc
        if not any(real.is_relative_to(root) for root in self.roots):
            # checked after resolving links: a link inside a root to /etc is outside it
            raise IngestError(
                "FetchRefused",
                f"{path} is outside the folders of INGESTION_FETCH_ROOTS",
            )
        try:
            with open(real, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > self.max_bytes:
                    raise self._too_large(size)
                data = f.read(self.max_bytes + 1)
        except OSError as exc:
            raise IngestError("FetchFailed", f"cannot read {path}: {exc}") from exc
        if len(data) > self.max_bytes:  # it grew while we read
            raise self._too_large(len(data))
        return data

    def _http(self, uri: str) -> bytes:
        until = time.monotonic() + self.timeout_s
        first = urlsplit(uri).hostname or ""
        with httpx.Client(follow_redirects=False, timeout=self.timeout_s) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                host = urlsplit(uri).hostname or ""
                if not host_allowed(host, self.hosts):
                    raise IngestError(
                        "FetchRefused",
                        f"host {host!r} is not in INGESTION_FETCH_HOSTS"
                        + ("" if host == first else f" (a redirect from {first!r})"),
                    )
                if host != first:
                    raise IngestError(
                        "FetchRefused", f"{first!r} redirects to another host, {host!r}"
                    )
                try:
                    with client.stream("GET", uri) as resp:
                        if resp.is_redirect:
                            uri = urljoin(uri, resp.headers.get("location", ""))
                            continue
                        if resp.status_code != 200:
                            raise IngestError(
                                "FetchFailed", f"GET {uri} answered {resp.status_code}"
                            )
                        length = resp.headers.get("content-length", "")
                        size = int(length) if length.isdigit() else None
                        return self._read(size, resp.iter_bytes(_READ), until)
                except httpx.HTTPError as exc:
                    raise IngestError(
                        "FetchFailed", f"GET {uri}: {type(exc).__name__}: {exc}"
                    ) from exc
        raise IngestError("FetchFailed", f"more than {_MAX_REDIRECTS} redirects from {first!r}")

    def _s3(self, uri: str) -> bytes:
        until = time.monotonic() + self.timeout_s
        try:
            bucket, key = s3.parse(uri)
        except ValueError as exc:
            raise IngestError("FetchRefused", str(exc)) from exc
        if bucket not in self.buckets:
            raise IngestError(
                "FetchRefused", f"bucket {bucket!r} is not in INGESTION_FETCH_BUCKETS"
            )
        if not key:
            raise IngestError("FetchRefused", f"{uri} names a bucket, not an object")
        try:
            if self._s3_client is None:
                self._s3_client = s3.client(self.s3 or S3Settings(), self.timeout_s)
            size, pieces = s3.open_object(self._s3_client, bucket, key)
            return self._read(size, pieces, until)
        except s3.S3Failure as exc:
            raise IngestError("FetchFailed", str(exc)) from exc

    def _read(self, size: int | None, pieces: Iterable[bytes], until: float) -> bytes:
        """The pieces of a body whose announced length is ``size``, within the limits."""
        try:
            if size is not None and size > self.max_bytes:
                raise self._too_large(size)
            out = bytearray()
            for piece in pieces:
                out += piece
                if len(out) > self.max_bytes:
                    raise self._too_large(len(out))
                if time.monotonic() > until:
                    raise IngestError(
                        "FetchFailed",
                        f"the fetch took over {self.timeout_s:g} s (INGESTION_FETCH_TIMEOUT_S)",
                    )
            return bytes(out)
        finally:
            close = getattr(pieces, "close", None)  # a generator: httpx's and the S3 body's
            if close is not None:
                close()  # a stream left early is closed now, not when collected

"""An S3-compatible store through boto3: the client the settings describe, ``s3://`` URIs,
a prefix listed, an object read as a stream of pieces.

boto3 is imported on first use: it takes a third of a second, and a service or a sync that
never meets ``s3://`` should not pay it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from services.ingestion.settings import S3Settings

_PIECE = 1024 * 1024


class S3Failure(RuntimeError):
    """The store refused or could not be reached (the message says which)."""


class Object(NamedTuple):
    """One object under a prefix: its key, size and last-modified time (ns)."""

    key: str
    size: int
    mtime_ns: int


def parse(uri: str) -> tuple[str, str]:
    """``s3://BUCKET/KEY`` as (bucket, key); the key is percent-decoded and may be empty (a
    whole bucket). Raises ValueError."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ValueError(f"{uri!r} is not s3://BUCKET/KEY")
    return parts.netloc, unquote(parts.path.lstrip("/"))


def uri(bucket: str, key: str) -> str:
    """The ``s3://`` URI of an object (``parse``'s inverse)."""
    return f"s3://{bucket}/{quote(key)}"


def client(settings: S3Settings, timeout_s: float = 30.0) -> Any:
    """A boto3 S3 client for the settings (thread-safe; one per process is enough)."""
    import boto3
    from botocore.config import Config

    secret = settings.secret_access_key
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": settings.addressing_style},
        ),
    )


def _failure(exc: Exception, what: str) -> S3Failure:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return S3Failure(f"{what}: {err.get('Code', '?')}: {err.get('Message', exc)}")
    return S3Failure(f"{what}: {type(exc).__name__}: {exc}")


def _errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def check_bucket(s3: Any, bucket: str) -> None:
    """Raise S3Failure unless the bucket exists and these keys may use it."""
    try:
        s3.head_bucket(Bucket=bucket)
    except _errors() as exc:
        raise _failure(exc, f"bucket {bucket!r}") from exc


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def objects(s3: Any, bucket: str, prefix: str) -> tuple[int, list[Object]]:
    """The store's time when it was asked (ns, from its first answer's Date: the clock
    its objects' times come from), and every object whose key starts with ``prefix``
    (raises S3Failure)."""
    found, now = [], 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            if not now:
                date = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
                now = _ns(parsedate_to_datetime(date)) if date else time.time_ns()
            for o in page.get("Contents", ()):
                found.append(Object(o["Key"], o["Size"], _ns(o["LastModified"])))
    except _errors() as exc:
        raise _failure(exc, f"listing s3://{bucket}/{prefix}") from exc
    return now, found


def open_object(s3: Any, bucket: str, key: str) -> tuple[int | None, Iterator[bytes]]:
    """The object's length (None when the store does not say) and its bytes in pieces,
    read as they are consumed (raises S3Failure, now or while reading)."""
    where = uri(bucket, key)
    try:
        resp = s3.get_object(Bucket=bucket, Key=key)
    except _errors() as exc:
        raise _failure(exc, f"GET {where}") from exc
    body = resp["Body"]

    def pieces() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(_PIECE)
        except _errors() as exc:
            raise _failure(exc, f"reading {where}") from exc
        finally:
            body.close()

    length = resp.get("ContentLength")
    return (int(length) if length is not None else None), pieces()


def read(s3: Any, bucket: str, key: str) -> bytes:
    """The whole object (raises S3Failure)."""
    _, pieces = open_object(s3, bucket, key)
    return b"".join(pieces)

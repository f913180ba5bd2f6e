"""The upstream side: turn files into DocumentEvents and publish them to ``ingest.documents``;
publish feedback on answers to ``feedback.events``.

Upstream Python systems call :func:`publish_documents` and :func:`publish_feedback`;
``llmops ingest`` is a thin shell on the first.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError
from tqdm import tqdm

from shared.contracts.events import ContentType, DocumentEvent, Event, FeedbackEvent, Op, record_key
from shared.contracts.producer import make_producer
from shared.contracts.topics import FEEDBACK_EVENTS, INGEST_DOCUMENTS, Topic

SUFFIX_TYPES = {
    ".txt": ContentType.TEXT,
    ".md": ContentType.MARKDOWN,
    ".markdown": ContentType.MARKDOWN,
    ".html": ContentType.HTML,
    ".htm": ContentType.HTML,
    ".pdf": ContentType.PDF,
    ".docx": ContentType.DOCX,
    ".pptx": ContentType.PPTX,
    ".xlsx": ContentType.XLSX,
    ".png": ContentType.PNG,
    ".jpg": ContentType.JPEG,
    ".jpeg": ContentType.JPEG,
    ".tif": ContentType.TIFF,
    ".tiff": ContentType.TIFF,
}
SUPPORTED_SUFFIXES = (*SUFFIX_TYPES, ".jsonl")
# Bodies up to this size travel inside the event (base64 makes them a third larger): under
# ingestion's default INGESTION_MAX_EVENT_BYTES (512 KiB) with room for the rest. Larger
# ones travel by reference (a file:// URI the service must be allowed to read).
INLINE_MAX_BYTES = 256 * 1024
_TITLE_MD = re.compile(r"^#\s+(.+)$", re.MULTILINE)
_TITLE_HTML = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class InputError(ValueError):
    """A file or line that cannot become a DocumentEvent."""


@dataclass
class PublishSummary:
    """What a publish run did."""

    sent: int = 0
    failed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


def _title(name: str, text: str, ctype: ContentType) -> str:
    m = (_TITLE_MD if ctype is ContentType.MARKDOWN else _TITLE_HTML).search(text)
    if m and ctype is not ContentType.TEXT:
        return " ".join(m.group(1).split())[:1024]
    return PurePosixPath(name).stem


def doc_id_of(name: str) -> str:
    """The doc id of a file named ``name`` (its path under its folder or bucket prefix, with
    '/'): the name with only the id's characters."""
    return re.sub(r"[^A-Za-z0-9._:/@+=-]", "_", name)


def doc_id_for(path: Path, root: Path) -> str:
    """A file's doc id: its path under ``root``, with '/' and only the id's characters."""
    rel = path.relative_to(root) if path != root else Path(path.name)
    return doc_id_of(rel.as_posix())


def iter_files(paths: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root) for every supported file under the given files and folders, sorted."""
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES:
                    yield f, p
        elif p.is_file():
            yield p, p.parent
        else:
            raise InputError(f"{p}: no such file or folder")


def events_from_paths(
    paths: Iterable[Path], tenant: str, acl: list[str] | None = None
) -> Iterator[DocumentEvent | InputError]:
    """DocumentEvents for files (``.jsonl`` lines are events already); errors are yielded."""
    for f, root in iter_files(paths):
        suffix = f.suffix.lower()
        if suffix == ".jsonl":
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    yield DocumentEvent.model_validate_json(line)
                except ValidationError as exc:
                    yield InputError(
                        f"{f}:{n}: {exc.errors()[0]['msg']} at "
                        f"{'.'.join(map(str, exc.errors()[0]['loc']))}"
                    )
            continue
        try:
            yield file_event(f, root, tenant, acl or [])
        except InputError as exc:
            yield exc


def file_event(
    f: Path,
    root: Path,
    tenant: str,
    acl: list[str],
    version: int | None = None,
    data: bytes | None = None,
    inline_max: int = INLINE_MAX_BYTES,
    sha256: str | None = None,
) -> DocumentEvent:
    """The upsert of one file (its doc id is its path under ``root``); see ``body_event``.
    ``data`` is the file's bytes, and ``sha256`` their digest, when the caller has them
    already. Raises InputError."""
    try:
        data = f.read_bytes() if data is None else data
    except OSError as exc:
        raise InputError(f"{f}: {exc.strerror or exc}") from None
    rel = f.relative_to(root).as_posix() if f != root else f.name
    return body_event(
        rel, f.resolve().as_uri(), data, tenant, acl, version, inline_max, sha256, label=str(f)
    )


def body_event(
    name: str,
    uri: str,
    data: bytes,
    tenant: str,
    acl: list[str],
    version: int | None = None,
    inline_max: int = INLINE_MAX_BYTES,
    sha256: str | None = None,
    label: str | None = None,
) -> DocumentEvent:
    """The upsert of a file's bytes, named ``name`` under its folder or bucket prefix (its
    doc id) and found at ``uri`` (its source). Text goes as ``content``; a PDF, Office file
    or image as ``content_base64`` up to ``inline_max`` bytes, else as a reference to
    ``uri`` with its SHA-256 (the claim check). Raises InputError (named by ``label``)."""
    label = label or uri
    suffix = PurePosixPath(name).suffix.lower()
    ctype = SUFFIX_TYPES.get(suffix)
    if ctype is None:
        raise InputError(f"{label}: unsupported file type {suffix!r}; use {SUPPORTED_SUFFIXES}")
    fields: dict[str, object] = {"content_type": ctype}
    if ctype.is_text:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{label}: not UTF-8 text ({exc.reason})") from None
        fields.update(content=text, title=_title(name, text, ctype))
    else:
        fields["content_sha256"] = sha256 or hashlib.sha256(data).hexdigest()
        if len(data) <= inline_max:
            fields["content_base64"] = base64.b64encode(data).decode()
        else:
            fields["content_uri"] = uri
    try:
        return DocumentEvent(
            tenant=tenant,
            doc_id=doc_id_of(name),
            # Publish time as version: newer than anything published before for this file.
            version=time.time_ns() if version is None else version,
            source=uri,
            acl=acl,
            **fields,
        )
    except ValidationError as exc:
        raise InputError(f"{label}: {exc.errors()[0]['msg']}") from None


def delete_event(tenant_doc: str) -> DocumentEvent:
    """A delete for ``TENANT/DOC_ID``."""
    tenant, sep, doc_id = tenant_doc.partition("/")
    if not sep or not doc_id:
        raise InputError(f"{tenant_doc!r}: expected TENANT/DOC_ID")
    try:
        return DocumentEvent(op=Op.DELETE, tenant=tenant, doc_id=doc_id, version=time.time_ns())
    except ValidationError as exc:
        raise InputError(f"{tenant_doc!r}: {exc.errors()[0]['msg']}") from exc


def publish_documents(
    events: Iterable[DocumentEvent | InputError],
    bootstrap: str,
    topic_prefix: str = "",
    progress: bool = False,
    total: int | None = None,
) -> PublishSummary:
    """Publish document events with acks=all and idempotence; return sent/failed/bytes.

    ``InputError`` items (as yielded by :func:`events_from_paths`) count as failed. The call
    returns once every record is acknowledged by the cluster or has failed.
    """
    return _publish(events, INGEST_DOCUMENTS, bootstrap, topic_prefix, progress, total, "doc")


def publish_feedback(
    events: Iterable[FeedbackEvent], bootstrap: str, topic_prefix: str = ""
) -> PublishSummary:
    """Publish feedback on answers (keyed by trace id, like the traces it joins), for apps
    that write to Kafka directly; the feedback service checks each against its trace's
    tenant. Returns once every record is acknowledged or has failed."""
    return _publish(events, FEEDBACK_EVENTS, bootstrap, topic_prefix, False, None, "feedback")


def _publish(
    events: Iterable[Event | InputError],
    topic_of: Topic,
    bootstrap: str,
    topic_prefix: str,
    progress: bool,
    total: int | None,
    unit: str,
) -> PublishSummary:
    summary = PublishSummary()
    topic = topic_of.name(topic_prefix)
    producer = make_producer(bootstrap)
    futures = []
    try:
        bar = tqdm(events, total=total, unit=unit, disable=not progress, desc="publishing")
        for item in bar:
            if isinstance(item, InputError):
                summary.failed += 1
                summary.errors.append(str(item))
                continue
            key = record_key(item)
            value = item.to_bytes()
            futures.append((key, len(value), producer.send(topic, key=key, value=value)))
        producer.flush()
        for sent_key, size, fut in futures:
            try:
                fut.get(timeout=60)
                summary.sent += 1
                summary.bytes += size
            except Exception as exc:  # noqa: BLE001 - reported per record
                summary.failed += 1
                summary.errors.append(f"{sent_key.decode()}: {type(exc).__name__}: {exc}")
    finally:
        producer.close()
    return summary

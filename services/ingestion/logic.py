"""Ingestion's pure logic: one raw record in, one ChunkBatch (or a reason) out. No Kafka here."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer

from services.ingestion.chunker import chunk_text
from services.ingestion.convert import Converted, Section
from services.ingestion.converter import Converter
from services.ingestion.fetch import Fetcher
from services.ingestion.headings import Headings, headings
from services.ingestion.normalize import normalize
from services.ingestion.settings import IngestionSettings
from services.ingestion.validate import IngestError, parse_event
from shared.contracts.events import (
    CHUNK_NAMESPACE,
    Chunk,
    ChunkBatch,
    ContentType,
    DocumentEvent,
    Op,
    chunk_id,
)
from shared.models.files import load_tokenizer, max_seq_length
from shared.redact import Redactor
from shared.store.payload import indexed_text

# What a document's body is once read: its text (a text type), or its converted sections.
Body = str | Converted

# Per chunk, the JSON around its text (ids, hash, offsets, field names): about 210 bytes.
CHUNK_OVERHEAD_BYTES = 320
# Normalisation (NFC can triple a text's UTF-8 bytes) and redaction placeholders, with room.
TEXT_GROWTH = 4

# The most tokens a chunk's context (title and heading path) takes from its budget; a longer
# context still goes in front of the chunk, and the model cuts the chunk's end.
MAX_CONTEXT_TOKENS = 48


def content_hash(text: str) -> str:
    """SHA-256 of a chunk's text."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Deadline:
    """The time one document may take (INGESTION_PROCESSING_TIMEOUT_S). Called between the
    steps of its processing and inside the long ones; past its time it raises, and the
    document is dead-lettered (ProcessingTimeout) so the documents behind it go on."""

    seconds: float
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.until = self.clock() + self.seconds

    def __call__(self) -> None:
        if self.clock() > self.until:
            raise IngestError(
                "ProcessingTimeout",
                f"processing took over {self.seconds:g} s (INGESTION_PROCESSING_TIMEOUT_S)",
            )


@dataclass(frozen=True)
class Stale:
    """An event older than the newest version already seen for its document."""

    event: DocumentEvent
    newest: int


@dataclass
class Ingestor:
    """Validates, normalises, redacts, chunks and hashes document events."""

    tokenizer: Tokenizer
    tokenizer_name: str
    redactor: Redactor
    max_event_bytes: int
    chunk_tokens: int
    chunk_overlap: int
    max_metadata_bytes: int
    max_metadata_depth: int
    allow_personal_ids: bool
    max_version_ahead_s: float = 3600.0
    processing_timeout_s: float = 30.0
    clock_ns: Callable[[], int] = time.time_ns
    clock: Callable[[], float] = time.monotonic
    fetcher: Fetcher | None = None
    converter: Converter | None = None

    @classmethod
    def from_settings(cls, s: IngestionSettings) -> Ingestor:
        """Build from settings; the chunk size is capped at the model's own limit."""
        limit = max_seq_length(s.tokenizer_model)
        return cls(
            fetcher=Fetcher.from_settings(s),
            converter=Converter.from_settings(s),
            tokenizer=load_tokenizer(s.tokenizer_model),
            tokenizer_name=s.tokenizer_model,
            redactor=Redactor.named(s.redact, private_ips=s.redact_private_ips),
            max_event_bytes=s.max_event_bytes,
            chunk_tokens=min(s.chunk_tokens, limit),
            chunk_overlap=s.chunk_overlap,
            max_metadata_bytes=s.max_metadata_bytes,
            max_metadata_depth=s.max_metadata_depth,
            allow_personal_ids=s.allow_personal_ids,
            max_version_ahead_s=s.max_version_ahead_s,
            processing_timeout_s=s.processing_timeout_s,
        )

    def max_batch_bytes(self) -> int:
        """An upper bound on the size of the ChunkBatch of any event this ingestor accepts.

        Every token takes at least one byte of the event, so there are at most
        ``max_event_bytes / step + 1`` chunks, where a chunk moves on by ``step`` tokens; each
        byte of text appears in at most ``ceil(chunk / step)`` chunks (the overlap), after
        growing at most ``TEXT_GROWTH`` times; title, metadata and the rest are copied once.
        """
        # [CLS] and [SEP] are counted in chunk_tokens; the context takes at most its share
        body = self.chunk_tokens - 2 - min(MAX_CONTEXT_TOKENS, self.chunk_tokens // 4)
        step = max(1, body - min(self.chunk_overlap, body // 2))  # as the chunker caps it
        e = self.max_event_bytes
        chunks = e // step + 1
        text = math.ceil(body / step) * TEXT_GROWTH * e
        return text + chunks * CHUNK_OVERHEAD_BYTES + 2 * e + 64 * 1024

    def parse(self, raw: bytes | None, key: bytes | None) -> DocumentEvent:
        """Validate a raw record (raises IngestError)."""
        event = parse_event(
            raw,
            key,
            self.max_event_bytes,
            max_metadata_bytes=self.max_metadata_bytes,
            max_metadata_depth=self.max_metadata_depth,
        )
        bound = self.clock_ns() + int(self.max_version_ahead_s * 1e9)
        if event.version > bound:
            raise IngestError(
                "VersionOutOfRange",
                f"version {event.version} is ahead of the current time in nanoseconds by more "
                f"than {self.max_version_ahead_s:g} s (INGESTION_MAX_VERSION_AHEAD_S): no later "
                "update of the document could ever be newer",
            )
        if not self.allow_personal_ids:
            self._no_personal_ids(event)
        return event

    def _no_personal_ids(self, event: DocumentEvent) -> None:
        """Ids are cited in answers, kept in traces and matched by filters: personal data in
        them cannot be redacted away, so such an event is refused."""
        names = [("doc_id", event.doc_id)]
        names += [("an acl group", g) for g in event.acl]
        names += [("a metadata key", k) for k in _keys(event.metadata)]
        for where, name in names:
            found = self.redactor.finds(name)
            if found:
                raise IngestError(
                    "PersonalIdentifier",
                    f"{where} holds personal data ({', '.join(found)}); ids, group names and "
                    "metadata keys are cited, filtered on and kept in traces, and cannot be "
                    "redacted: use opaque ones, or set INGESTION_ALLOW_PERSONAL_IDS",
                )

    def needs_reading(self, event: DocumentEvent) -> bool:
        """Whether the event's body must be fetched, decoded or converted first (slow: the
        worker does it off the event loop)."""
        return event.op is Op.UPSERT and bool(
            event.content_base64 or event.content_uri or event.content_sha256
        )

    def read_body(self, event: DocumentEvent) -> Body:
        """The body of an upsert: fetched or decoded, hash-checked, then decoded as UTF-8 (a
        text type) or converted in the converter process (raises IngestError)."""
        if not self.needs_reading(event):
            return event.content
        if self.fetcher is None:
            raise IngestError("FetchRefused", "this ingestor reads no bodies by reference")
        data = self.fetcher.body(event)
        if event.content_type.is_text:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise IngestError("InvalidText", f"the body is not UTF-8: {exc}") from None
        if self.converter is None:
            raise IngestError("UnsupportedContentType", "this ingestor converts no documents")
        return self.converter.convert(data, event.content_type)

    def to_batch(
        self, event: DocumentEvent, deadline: Deadline | None = None, body: Body | None = None
    ) -> ChunkBatch:
        """The ChunkBatch for a valid event whose ``body`` was read (``read_body``; an
        inline text body needs none). Raises IngestError for an empty upsert, or
        ProcessingTimeout once ``deadline`` has passed."""
        deadline = deadline or Deadline(self.processing_timeout_s, self.clock)
        chunks: list[Chunk] = []
        redactions: Counter[str] = Counter()
        if body is None:
            body = self.read_body(event)
        # Every free-text field is stored (docs.chunks is compacted, kept forever) and
        # published: redact them all, as the content.
        title = self._redacted(event.title or _own_title(event, body), redactions)
        if event.op is Op.UPSERT:
            chunks = self._chunks(event, body, title, redactions, deadline)
        source = self._redacted(event.source, redactions)
        metadata = self._redacted(event.metadata, redactions)
        return ChunkBatch(
            # Same source event, same batch id: a redelivery is recognisable as a duplicate.
            event_id=str(uuid.uuid5(CHUNK_NAMESPACE, f"batch/{event.event_id}")),
            op=event.op,
            tenant=event.tenant,
            doc_id=event.doc_id,
            version=event.version,
            source=source,
            title=title,
            content_type=event.content_type,
            metadata=metadata,
            acl=event.acl,
            chunks=chunks,
            redactions=dict(redactions),
            source_event_id=event.event_id,
            source_event_time=event.event_time,
            tokenizer=self.tokenizer_name,
        )

    def _sections(
        self, event: DocumentEvent, body: Body, found: Counter[str], deadline: Deadline
    ) -> tuple[list[Section], bool]:
        """The body's sections, normalised and redacted, and whether headings are marked."""
        if isinstance(body, str):
            text = normalize(body, event.content_type, deadline)
            sections = [Section(None, text)]
            marked = event.content_type in (ContentType.MARKDOWN, ContentType.HTML)
        else:
            sections = [
                Section(s.page, normalize(s.text, ContentType.MARKDOWN, deadline))
                for s in body.sections
            ]
            marked = True
        deadline()
        for s in sections:
            s.text = self._redacted(s.text, found)
        deadline()
        size = sum(len(s.text.encode()) for s in sections)
        if not isinstance(body, str) and size > self.max_event_bytes:
            raise IngestError(
                "TooLarge",
                f"the document's text is {size} bytes once converted; the limit is "
                f"{self.max_event_bytes} (INGESTION_MAX_EVENT_BYTES)",
            )
        return [s for s in sections if s.text], marked

    def _chunks(
        self,
        event: DocumentEvent,
        body: Body,
        title: str,
        found: Counter[str],
        deadline: Deadline,
    ) -> list[Chunk]:
        """The chunks of an upsert: each section (page) chunked on its own, so no chunk spans
        two pages; offsets and headings are those of the sections joined by blank lines."""
        sections, marked = self._sections(event, body, found, deadline)
        if not sections:
            scans = isinstance(body, Converted) and body.ocr_pages
            raise IngestError(
                "EmptyContent",
                "upsert has no text after normalisation"
                + (" (its pages are scans, and OCR found no text)" if scans else ""),
            )
        text = "\n\n".join(s.text for s in sections)
        marks = headings(text) if marked else Headings([], [])
        budget = self.chunk_tokens - self._context_tokens(title, marks)
        chunks: list[Chunk] = []
        at = 0
        for section in sections:
            spans = chunk_text(section.text, self.tokenizer, budget, self.chunk_overlap, deadline)
            for span in spans:
                i = len(chunks)
                chunks.append(
                    Chunk(
                        chunk_id=chunk_id(event.tenant, event.doc_id, i),
                        index=i,
                        text=span.text,
                        content_hash=content_hash(span.text),
                        token_count=span.token_count,
                        char_start=at + span.start,
                        char_end=at + span.end,
                        heading=marks.at(at + span.start),
                        page=section.page,
                    )
                )
            at += len(section.text) + 2
        return chunks

    def _context_tokens(self, title: str, marks: Headings) -> int:
        """Tokens the longest context of the document (title and heading path) takes in
        front of a chunk, so that the chunk and its context fit the model together."""
        longest = max(marks.paths, key=len, default="")
        context = indexed_text(title, longest, "")
        if not context:
            return 0
        n = len(self.tokenizer.encode(context, add_special_tokens=False).ids) + 1
        return min(n, MAX_CONTEXT_TOKENS, self.chunk_tokens // 4)

    def _redacted(self, value: Any, found: Counter[str]) -> Any:
        """``value`` with every string in it redacted (in metadata, the values: keys are
        names, refused by ``parse`` when they hold personal data); what was found is added to
        ``found``."""
        if isinstance(value, str):
            text, counts = self.redactor.redact(value)
            found.update(counts)
            return text
        if isinstance(value, dict):
            return {k: self._redacted(v, found) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redacted(v, found) for v in value]
        return value

    def process(
        self, raw: bytes | None, key: bytes | None, newest_version: int | None
    ) -> ChunkBatch | Stale:
        """One record: a batch to publish, or Stale to drop. Raises IngestError for bad input."""
        event = self.parse(raw, key)
        return stale(event, newest_version) or self.to_batch(event)


def stale(event: DocumentEvent, newest_version: int | None) -> Stale | None:
    """Stale when a newer version of the event's document was seen (an equal one passes:
    replays stay exact)."""
    if newest_version is not None and event.version < newest_version:
        return Stale(event, newest_version)
    return None


def _own_title(event: DocumentEvent, body: Body) -> str:
    """A converted document's title when the event gives none: its own (PDF or Office
    properties), else its first heading, else its file name."""
    if isinstance(body, str):
        return ""
    if body.title:
        return body.title[:1024]
    for s in body.sections:
        for line in s.text.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()[:1024]
    return event.doc_id.rsplit("/", 1)[-1]


def _keys(value: Any) -> Iterator[str]:
    """Every key of nested metadata."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v)

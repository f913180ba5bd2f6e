"""Ingestion settings (env prefix ``INGESTION_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.models.files import DEFAULT_MODEL
from shared.settings import KafkaSettings, PlatformSettings


class S3Settings(BaseSettings):
    """An S3-compatible object store: where ``s3://`` references are fetched from and
    ``llmops sync s3://BUCKET/PREFIX`` lists. Unset keys use boto3's own chain (``AWS_*``
    variables, ``~/.aws``, an instance role)."""

    model_config = SettingsConfigDict(env_prefix="S3_", extra="ignore")

    endpoint_url: str | None = Field(
        default=None,
        description="The store's URL (MinIO, SeaweedFS, Ceph, R2...); unset: AWS S3 itself.",
    )
    region: str | None = Field(default=None, description="Region; unset: boto3's default.")
    access_key_id: str | None = Field(default=None, description="Access key id.")
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key.")
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="'path' puts the bucket in the URL's path (most S3-compatible stores), "
        "'virtual' in its host name.",
    )


class IngestionSettings(BaseSettings):
    """How documents are validated, redacted and chunked."""

    model_config = SettingsConfigDict(env_prefix="INGESTION_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
    s3: S3Settings = Field(default_factory=S3Settings, description="The S3-compatible store.")
    platform: PlatformSettings = Field(default_factory=PlatformSettings, description="Paths.")
    max_event_bytes: int = Field(
        default=512 * 1024, gt=0, description="Largest accepted document event, in bytes."
    )
    chunk_tokens: int = Field(
        default=256,
        ge=8,
        description="Most tokens in a chunk, special tokens included; capped at the model's limit.",
    )
    chunk_overlap: int = Field(default=32, ge=0, description="Tokens shared by adjacent chunks.")
    tokenizer_model: str = Field(
        default=DEFAULT_MODEL, description="Embedding model whose tokenizer counts the tokens."
    )
    max_metadata_bytes: int = Field(
        default=16 * 1024,
        ge=0,
        description="Largest metadata of one event (as JSON, in bytes); larger is dead-lettered.",
    )
    max_metadata_depth: int = Field(
        default=4, ge=1, description="Deepest nesting of metadata objects and lists."
    )
    allow_personal_ids: bool = Field(
        default=False,
        description="Accept doc ids, acl group names and metadata keys that hold personal "
        "data (an e-mail address, a phone number...). They are cited in answers, filtered on "
        "and kept in traces, and cannot be redacted, so such events are dead-lettered "
        "unless this is set.",
    )
    max_version_ahead_s: float = Field(
        default=3600.0,
        ge=0,
        description="A version may be at most the current time in nanoseconds (what "
        "`llmops ingest` and publish_documents use) plus this many seconds; a larger one "
        "is dead-lettered (VersionOutOfRange), since no later update could ever be newer. "
        "Counters and older clocks (seconds, milliseconds) are far below the bound.",
    )
    processing_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest time one document's processing may take; past it the document "
        "is dead-lettered (ProcessingTimeout) and the ones behind it go on.",
    )
    max_document_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Largest body fetched by reference (content_uri) or decoded inline; "
        "larger is dead-lettered (TooLarge) before it is read whole.",
    )
    fetch_schemes: list[str] = Field(
        default=["file", "http", "https", "s3"],
        description="URI schemes content_uri may use (JSON list). file:// still needs "
        "INGESTION_FETCH_ROOTS, http(s):// INGESTION_FETCH_HOSTS, s3:// "
        "INGESTION_FETCH_BUCKETS.",
    )
    fetch_roots: list[str] = Field(
        default=[],
        description="Folders (a shared volume) whose files a file:// content_uri may name "
        "(JSON list); a path outside them, after resolving links, is refused. Empty: none.",
    )
    fetch_hosts: list[str] = Field(
        default=[],
        description="Hosts an http(s):// content_uri may name (JSON list; exact names, or "
        "'.example.com' for its subdomains). Redirects are followed only to allowed hosts. "
        "Empty: none.",
    )
    fetch_buckets: list[str] = Field(
        default=[],
        description="Buckets of the S3 store (S3_*) an s3:// content_uri may name (JSON "
        "list). Empty: none.",
    )
    fetch_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest fetch of one content_uri, connect to last byte."
    )
    convert_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest conversion of one document (PDF, Office, OCR) in the converter "
        "process; past it the process is killed and the document dead-lettered "
        "(ConversionTimeout).",
    )
    convert_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="Address space the converter process may take; a document that needs "
        "more is dead-lettered (TooLarge) and the process replaced.",
    )
    max_pages: int = Field(
        default=2000,
        gt=0,
        description="Most pages, slides, sheets or image frames in one document; more is "
        "dead-lettered (TooManyPages) before any is read.",
    )
    max_unpacked_bytes: int = Field(
        default=512 * 1024 * 1024,
        gt=0,
        description="Most bytes an Office file (a zip) may unpack to; more is a zip bomb, "
        "dead-lettered (TooLarge) before it is opened.",
    )
    ocr: bool = Field(
        default=True,
        description="Read images, and PDF pages without a text layer, with Tesseract.",
    )
    ocr_languages: str = Field(
        default="eng", description="Tesseract languages, '+'-joined (their packs installed)."
    )
    ocr_dpi: int = Field(
        default=200, ge=72, le=600, description="Resolution PDF pages are rendered at for OCR."
    )
    redact_private_ips: bool = Field(
        default=True,
        description="Whether private-range addresses (10.0.0.0/8, 192.168.0.0/16, fc00::/7, "
        "...) are redacted as personal data; loopback, link-local, multicast and "
        "documentation addresses never are.",
    )
    cdc_mapping_file: Path | None = Field(
        default=None,
        description="A YAML file mapping Debezium topics (one table each) to documents: "
        "the service then reads those topics too (README, From a database). A bad file "
        "stops the start with its line and reason. Unset: no table is read.",
    )
    redact: list[str] = Field(
        default=["email", "phone", "card", "iban", "ssn", "ip"],
        description="Personal-data detectors to apply (JSON list in the environment).",
    )


def ingestion_settings(**overrides: object) -> IngestionSettings:
    """Settings from the environment, with explicit overrides on top."""
    return IngestionSettings(**overrides)  # type: ignore[arg-type]

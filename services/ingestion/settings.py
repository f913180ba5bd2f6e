"""Ingestion settings (env prefix ``INGESTION_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.models.files import DEFAULT_MODEL
from shared.settings import KafkaSettings, PlatformSettings


class IngestionSettings(BaseSettings):
    """How documents are validated, redacted and chunked."""

    model_config = SettingsConfigDict(env_prefix="INGESTION_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
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
    redact_private_ips: bool = Field(
        default=True,
        description="Whether private-range addresses (10.0.0.0/8, 192.168.0.0/16, fc00::/7, "
        "...) are redacted as personal data; loopback, link-local, multicast and "
        "documentation addresses never are.",
    )
    redact: list[str] = Field(
        default=["email", "phone", "card", "iban", "ssn", "ip"],
        description="Personal-data detectors to apply (JSON list in the environment).",
    )


def ingestion_settings(**overrides: object) -> IngestionSettings:
    """Settings from the environment, with explicit overrides on top."""
    return IngestionSettings(**overrides)  # type: ignore[arg-type]

"""Ingestion settings (env prefix ``INGESTION_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.model_files import DEFAULT_MODEL
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
        description="Accept doc ids that hold personal data (an e-mail address, a phone "
        "number...). Ids are cited in answers and traces and cannot be redacted, so such "
        "events are dead-lettered unless this is set.",
    )
    redact: list[str] = Field(
        default=["email", "phone", "card", "iban", "ssn", "ip"],
        description="Personal-data detectors to apply (JSON list in the environment).",
    )


def ingestion_settings(**overrides: object) -> IngestionSettings:
    """Settings from the environment, with explicit overrides on top."""
    return IngestionSettings(**overrides)  # type: ignore[arg-type]

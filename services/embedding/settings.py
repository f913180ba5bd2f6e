"""Embedding settings (env prefix ``EMBEDDING_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.models.files import DEFAULT_MODEL
from shared.settings import KafkaSettings, PlatformSettings, QdrantSettings


class EmbeddingSettings(BaseSettings):
    """How chunks are batched, encoded and stored."""

    model_config = SettingsConfigDict(env_prefix="EMBEDDING_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings, description="Vector store.")
    platform: PlatformSettings = Field(default_factory=PlatformSettings, description="Paths.")
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Model for new collections: the packaged name or a local model folder.",
    )
    batch_size: int = Field(
        default=64, ge=1, description="Chunks per model call; also documents per Kafka batch."
    )
    batch_wait_s: float = Field(
        default=0.2, gt=0, description="Longest wait to fill a batch before it is flushed."
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest back-off between retries of a failing store."
    )


def embedding_settings(**overrides: object) -> EmbeddingSettings:
    """Settings from the environment, with explicit overrides on top."""
    return EmbeddingSettings(**overrides)  # type: ignore[arg-type]

"""Feedback settings (env prefix ``FEEDBACK_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.models.files import DEFAULT_MODEL
from shared.settings import KafkaSettings, PlatformSettings, QdrantSettings

DAY_S = 24 * 3600.0


class FeedbackSettings(BaseSettings):
    """How feedback joins traces and how answers are scored."""

    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings, description="Vector store.")
    platform: PlatformSettings = Field(default_factory=PlatformSettings, description="Paths.")
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Embedding model the online metrics use: the packaged name or a folder.",
    )
    sample_rate: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of ok query traces scored as they arrive (chosen by trace id, so "
        "every replica agrees). Feedback on a trace left out still joins; its metrics say "
        "'not sampled'.",
    )
    join_wait_s: float = Field(
        default=600.0,
        gt=0,
        description="How long feedback that came before its trace waits for it; after that it "
        "is dead-lettered (TraceNotFound).",
    )
    max_waiting: int = Field(
        default=100, ge=1, description="Most feedback events one unknown trace may hold waiting."
    )
    ttl_s: float = Field(
        default=7 * DAY_S,
        gt=0,
        description="How long a trace's state (its scores and feedback) is kept after its last "
        "event; feedback after that waits and is dead-lettered like feedback on no trace.",
    )
    sweep_interval_s: float = Field(
        default=10.0, gt=0, description="How often waiting feedback and old state are checked."
    )
    support_threshold: float = Field(
        default=0.5,
        ge=-1,
        le=1,
        description="An answer sentence counts as supported when its cosine to some context "
        "sentence reaches this (support_share).",
    )
    batch_size: int = Field(default=64, ge=1, description="Events per batch (one model call).")
    batch_wait_s: float = Field(
        default=0.2, gt=0, description="Longest wait to fill a batch before it is scored."
    )


def feedback_settings(**overrides: object) -> FeedbackSettings:
    """Settings from the environment, with explicit overrides on top."""
    return FeedbackSettings(**overrides)  # type: ignore[arg-type]

"""Monitoring settings (env prefix ``MONITORING_``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.models.files import DEFAULT_MODEL
from shared.settings import KafkaSettings, PlatformSettings

RULES_FILE = Path(__file__).resolve().parents[2] / "rules" / "alerts.yaml"


class MonitoringSettings(BaseSettings):
    """Windows, alert rules and where alerts go."""

    model_config = SettingsConfigDict(env_prefix="MONITORING_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
    platform: PlatformSettings = Field(default_factory=PlatformSettings, description="Paths.")
    window_s: float = Field(
        default=60.0, gt=0, description="Length of the tumbling event-time windows."
    )
    grace_s: float = Field(
        default=10.0,
        ge=0,
        description="How long past its end a window waits for late events before it closes; "
        "later ones are counted as late (monitoring_late_events), not merged.",
    )
    max_future_s: float = Field(
        default=300.0,
        ge=0,
        description="How far ahead of the wall clock a record's event time may be; a later "
        "one is counted as monitoring_future_events where it arrived and moves no window "
        "(one wrong clock would otherwise close every window before its time).",
    )
    rules_file: Path = Field(default=RULES_FILE, description="The alert rules (YAML).")
    retrieval_threshold: float = Field(
        default=0.3,
        description="A query whose best chunk scores under this counts as finding nothing "
        "(retrieval_empty_rate).",
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        description="Embedding model of the questions' drift: the packaged name or a folder.",
    )
    drift_sample: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of answered questions measured for drift (chosen by trace id).",
    )
    drift_max_per_window: int = Field(
        default=200, ge=1, description="Most questions of one window measured for drift."
    )
    drift_min_questions: int = Field(
        default=20,
        ge=2,
        description="Fewer questions than this in a window (or its reference): no drift figure.",
    )
    drift_reference_windows: int = Field(
        default=10,
        ge=1,
        description="Rolling reference: the questions of this many windows before the current.",
    )
    drift_reference_from: datetime | None = Field(
        default=None,
        description="Pinned reference instead: the windows from this time (ISO 8601) ...",
    )
    drift_reference_to: datetime | None = Field(
        default=None, description="... to this time; both or neither."
    )
    drift_permutations: int = Field(
        default=200, ge=20, description="Permutations of the MMD test (its p-value's grain)."
    )
    host: str = Field(default="127.0.0.1", description="Address of /metrics and /dashboard.")
    port: int = Field(default=8001, ge=1, le=65535, description="Port of /metrics and /dashboard.")
    alertmanager_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ALERTMANAGER_URL", "MONITORING_ALERTMANAGER_URL"),
        description="Alertmanager to post firing and resolved alerts to (its v2 API), as "
        "Prometheus does; unset: alerts go to monitoring.alerts only.",
    )
    alertmanager_resend_s: float = Field(
        default=60.0,
        gt=0,
        description="How often firing alerts are posted again to Alertmanager (it resolves "
        "an alert that is not renewed; Prometheus's resend delay).",
    )
    close_every_s: float = Field(
        default=1.0,
        gt=0,
        description="How often windows are checked for closing when no event moves time on.",
    )


def monitoring_settings(**overrides: object) -> MonitoringSettings:
    """Settings from the environment, with explicit overrides on top."""
    return MonitoringSettings(**overrides)  # type: ignore[arg-type]

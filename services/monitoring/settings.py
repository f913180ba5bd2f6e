"""Monitoring settings (env prefix ``MONITORING_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    rules_file: Path = Field(default=RULES_FILE, description="The alert rules (YAML).")
    retrieval_threshold: float = Field(
        default=0.3,
        description="A query whose best chunk scores under this counts as finding nothing "
        "(retrieval_empty_rate).",
    )
    close_every_s: float = Field(
        default=1.0,
        gt=0,
        description="How often windows are checked for closing when no event moves time on.",
    )


def monitoring_settings(**overrides: object) -> MonitoringSettings:
    """Settings from the environment, with explicit overrides on top."""
    return MonitoringSettings(**overrides)  # type: ignore[arg-type]

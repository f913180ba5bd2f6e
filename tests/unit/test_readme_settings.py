"""The README's settings table names every setting, so it cannot silently fall behind."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings

from services.embedding.settings import EmbeddingSettings
from services.feedback.settings import FeedbackSettings
from services.inference.settings import InferenceSettings
from services.ingestion.settings import IngestionSettings, S3Settings
from services.monitoring.settings import MonitoringSettings
from shared.settings import ConnectSettings, KafkaSettings, PlatformSettings, QdrantSettings

SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    ConnectSettings,
    PlatformSettings,
    IngestionSettings,
    S3Settings,
    QdrantSettings,
    EmbeddingSettings,
    InferenceSettings,
    FeedbackSettings,
    MonitoringSettings,
)
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def env_names(cls: type[BaseSettings]) -> list[str]:
    prefix = cls.model_config.get("env_prefix", "")
    return [
        f"{prefix}{name}".upper()
        for name, field in cls.model_fields.items()
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings))
    ]


def test_every_setting_is_in_the_readme() -> None:
    missing = [n for cls in SETTINGS for n in env_names(cls) if f"`{n}`" not in README]
    assert missing == []


def test_every_field_has_a_description() -> None:
    for cls in SETTINGS:
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name}"

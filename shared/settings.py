"""Settings shared by two services or more.

Each class reads its own environment prefix. Nothing is built at import: services call
the ``*_settings()`` functions (or construct the classes) so tests can inject values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.topics import DEFAULT_MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from shared.contracts.trace_ids import TraceIds


# Largest record the platform produces (a document's chunk batch can be a few times its event);
# topics are created with it and producers are configured with it.

# Where the inference API listens by default; the CLI's commands that call it start here.
DEFAULT_API_HOST, DEFAULT_API_PORT = "127.0.0.1", 8000


def default_cache_dir() -> Path:
    """Where heavy, version-keyed downloads live (Maven jars, pip wheels, model files)."""
    return Path.home() / ".cache" / "llmops"


class PlatformSettings(BaseSettings):
    """Where the platform keeps its state on this machine."""

    model_config = SettingsConfigDict(env_prefix="LLMOPS_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".llmops"),
        description="Folder for run-time state: the local broker's log and data, the embedded "
        "vector store, pid files.",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Folder for heavy downloads kept across clones (Maven repository, wheels).",
    )
    log_level: str = Field(default="info", description="Log level of services and the CLI.")
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx",
        description="How the embedding model runs: torch (sentence-transformers), onnx (ONNX "
        "Runtime, exported once into cache_dir; the default: 1.5 times torch's chunks/s, the "
        "same vectors to 1e-6) or onnx-int8 (int8-quantised: 2.6 times, recall@5 0.1 point "
        "lower); bench/embed.py measures them. Index and queries must use the same: after "
        "a change to or from onnx-int8, run `llmops reindex`.",
    )
    trace_secret: SecretStr | None = Field(
        default=None,
        # INFERENCE_TRACE_SECRET: its name before the feedback service checked trace ids too
        validation_alias=AliasChoices("LLMOPS_TRACE_SECRET", "INFERENCE_TRACE_SECRET"),
        description="Signs trace ids with their tenant: the API issues them, and checks "
        "feedback with it; the feedback service dead-letters a trace whose id was not issued "
        "to its tenant. Every API replica and the feedback service must share it. Unset: a "
        "random one kept in data_dir (enough for processes that share the folder).",
    )

    dlq_values: Literal["redacted", "raw", "omitted"] = Field(
        default="redacted",
        description="What a dead letter keeps of the record it could not process: redacted "
        "(personal data replaced, like everything the platform stores), raw (byte for byte, "
        "for a dead-letter topic only trusted people read) or omitted (read it at its offset).",
    )

    otel_capture_content: bool = Field(
        default=False,
        description="Export texts with OpenTelemetry spans (retrieved passages, answers; "
        "redacted as on Kafka). Off: ids, scores, counts and the redacted question only. "
        "Export itself is on when OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )

    def trace_ids(self) -> TraceIds:
        """The trace ids of this platform (the secret, or the one kept in data_dir)."""
        from shared.contracts.trace_ids import TraceIds, trace_secret

        given = self.trace_secret.get_secret_value() if self.trace_secret else None
        return TraceIds(trace_secret(given, self.data_dir))


class KafkaSettings(BaseSettings):
    """How to reach Kafka, and how to run the local broker when none is given."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None,
        description="Comma-separated host:port list of an existing cluster. When set, no local "
        "broker is started and this cluster is used.",
    )
    topic_prefix: str = Field(
        default="",
        description="Prefix put before every topic name and consumer group (tests use a fresh "
        "one each; deployments sharing a cluster may use it too).",
    )
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024 * 1024,
        description="Largest record the platform produces: topics are created with it "
        "(max.message.bytes) and producers and consumers allow it. Ingestion refuses to start "
        "when its largest possible chunk batch would not fit.",
    )
    session_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How soon the group coordinator gives a silent consumer's partitions to "
        "others: after a crash, a restarted service resumes within about this long (faust's "
        "own default, 60 s, made a killed dev process wait a minute).",
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Replicas of every topic the platform creates (its declared topics, "
        "faust's changelog and repartition topics). Unset: the smaller of 3 and the number "
        "of brokers the cluster reports, so a lost broker loses no acknowledged record.",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of those topics: an acks=all write is acknowledged "
        "once this many replicas have it. Unset: the replication factor minus one, at least "
        "1 (one broker of three may be down and writes go on).",
    )
    local_brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Brokers of the local KRaft cluster `llmops kafka start` runs when "
        "KAFKA_BOOTSTRAP_SERVERS is unset (3 for a replicated cluster on loopback ports: "
        "node n listens on local_port + 2(n-1), its controller on local_controller_port + "
        "2(n-1)).",
    )
    local_port: int = Field(default=9092, description="Client port of the local broker.")
    local_controller_port: int = Field(
        default=9093, description="KRaft controller port of the local broker."
    )
    local_heap: str = Field(default="512m", description="JVM heap of the local broker.")
    start_timeout_s: float = Field(
        default=90.0, description="How long to wait for the local broker to answer metadata."
    )


class ConnectSettings(BaseSettings):
    """The Kafka Connect worker that brings databases in (Debezium), and how to run the
    local one (``llmops connect start``)."""

    model_config = SettingsConfigDict(env_prefix="CONNECT_", extra="ignore")

    url: str | None = Field(
        default=None,
        description="REST address of an existing Connect cluster; unset: the local worker.",
    )
    local_port: int = Field(default=8083, description="REST port of the local worker.")
    local_heap: str = Field(default="512m", description="Java heap of the local worker.")
    group_id: str = Field(
        default="llmops-connect",
        description="The workers' group; its config, offset and status topics are named "
        "after it (GROUP.configs, GROUP.offsets, GROUP.status).",
    )
    start_timeout_s: float = Field(
        default=120.0, gt=0, description="How long `llmops connect start` waits for the REST API."
    )

    def rest_url(self) -> str:
        """Where the worker's REST API answers."""
        return (self.url or f"http://127.0.0.1:{self.local_port}").rstrip("/")


class QdrantSettings(BaseSettings):
    """Where vectors live: embedded Qdrant Edge on disk by default, a server when ``url`` is
    set."""

    model_config = SettingsConfigDict(env_prefix="QDRANT_", extra="ignore")

    url: str | None = Field(
        default=None, description="Qdrant server URL; unset uses embedded Qdrant Edge on disk."
    )
    api_key: SecretStr | None = Field(default=None, description="API key of the Qdrant server.")
    path: Path | None = Field(
        default=None, description="Folder of the embedded store; default <data_dir>/vectors."
    )
    alias: str = Field(
        default="chunks",
        description="Stable alias readers use; it points at the active collection.",
    )
    timeout_s: float = Field(default=30.0, description="Timeout of one Qdrant request.")

    def embedded_path(self, platform: PlatformSettings) -> Path:
        """The folder of the embedded store: ``path``, else ``<data_dir>/vectors``."""
        return self.path or platform.data_dir / "vectors"

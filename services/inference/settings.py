"""Inference settings (env prefix ``INFERENCE_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    KafkaSettings,
    PlatformSettings,
    QdrantSettings,
)
from shared.store.base import (
    DEFAULT_FUSION,
    DEFAULT_MODE,
    DEFAULT_RRF_K,
    Fusion,
    SearchMode,
)

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


class InferenceSettings(BaseSettings):
    """The HTTP API, its limits, retrieval, prompts and the LLM backend."""

    model_config = SettingsConfigDict(env_prefix="INFERENCE_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings, description="Vector store.")
    platform: PlatformSettings = Field(default_factory=PlatformSettings, description="Paths.")
    host: str = Field(default=DEFAULT_API_HOST, description="Address the HTTP server binds.")
    port: int = Field(default=DEFAULT_API_PORT, description="Port of the HTTP server.")
    api_keys_file: Path | None = Field(
        default=None, description="JSON file of API keys (sha256, tenant, groups, actions)."
    )
    api_keys: str | None = Field(
        default=None, description="The same JSON list inline (for containers and tests)."
    )
    rate_limit_per_min: int = Field(default=60, ge=1, description="Requests per key a minute.")
    max_question_chars: int = Field(default=2000, ge=1, description="Longest question.")
    max_body_bytes: int = Field(default=16 * 1024, ge=256, description="Largest request body.")
    top_k: int = Field(default=5, ge=1, le=50, description="Chunks retrieved by default.")
    max_top_k: int = Field(default=20, ge=1, le=100, description="Most chunks a caller may ask.")
    score_threshold: float = Field(
        default=0.3,
        description="Chunks scoring lower are ignored (bench/answers.py: every unanswerable "
        "question of its set scores under 0.28, all but two answerable ones over 0.3).",
    )
    retrieval_mode: SearchMode = Field(
        default=DEFAULT_MODE,
        description="dense (the embedding), sparse (BM25) or hybrid (both, fused in the "
        "engine); a request's `mode` overrides it (bench/retrieval.py compares them).",
    )
    fusion: Fusion = Field(
        default=DEFAULT_FUSION,
        description="How hybrid retrieval fuses its two rankings: dbsf (distribution-based "
        "score fusion) or rrf (reciprocal rank); bench/retrieval.py: dbsf finds the right "
        "document first 4 points more often.",
    )
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=1, description="k of reciprocal-rank fusion.")
    context_tokens: int = Field(
        default=256,
        ge=0,
        description="Most tokens of passages in a prompt (they are evaluated before the first "
        "answer token); 0: as many as the context window holds.",
    )
    prompts_dir: Path = Field(default=PROMPTS_DIR, description="Folder of prompt templates.")
    prompt: str = Field(default="rag", description="Default prompt template name.")
    prompt_split: str = Field(
        default="",
        description="A/B split of the default prompt's versions by weight, e.g. "
        "'v1=0.5,v2=0.5'; empty: its newest version for the model's mode.",
    )
    llm_backend: str = Field(default="llama_cpp", description="llama_cpp or openai.")
    llm_model: str = Field(
        default="gemma3-270m",
        description="Packaged model for llama_cpp: gemma3-270m (base) or smollm2-135m "
        "(instruction-tuned); `llmops models list` says more.",
    )
    llm_model_path: Path | None = Field(
        default=None, description="A GGUF file for llama_cpp instead of a packaged model."
    )
    llm_mode: str = Field(
        default="auto",
        description="How the model is driven: auto (chat if it has a chat template, else "
        "completion), chat or completion. Prompt versions are written for one mode.",
    )
    llm_chat_format: str = Field(
        default="",
        description="A llama.cpp chat format (e.g. gemma) for a GGUF without a chat template; "
        "empty: the template in the file's metadata.",
    )
    llm_threads: int = Field(default=2, ge=1, description="CPU threads for llama_cpp.")
    llm_context: int = Field(default=2048, ge=256, description="Context window in tokens.")
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible server, e.g. http://localhost:8001/v1."
    )
    openai_api_key: SecretStr = Field(
        default=SecretStr("none"), description="API key for the OpenAI-compatible server."
    )
    openai_model: str = Field(default="default", description="Model name on that server.")
    llm_timeout_s: float = Field(default=60.0, gt=0, description="Longest generation.")
    max_queued: int = Field(
        default=2,
        ge=0,
        description="Generations that may wait for the model beyond those it runs at once; "
        "past that, or when the wait would outlast INFERENCE_LLM_TIMEOUT_S, a question is "
        "refused at once with 503 and Retry-After.",
    )
    max_new_tokens: int = Field(default=192, ge=1, description="Most tokens in an answer.")
    redact_answers: bool = Field(
        default=True,
        description="Redact personal data in the answer returned to the caller, as in its "
        "trace (a model can repeat what a question held, or make data up). A stream holds "
        "back its last few dozen characters until no detector could match across them.",
    )
    temperature: float = Field(
        default=0.0,
        ge=0,
        description="Sampling temperature. 0 (the default): greedy decoding, so the same "
        "question over the same documents gets the same answer; sampling made RAG answers "
        "differ from one ask to the next, right once and wrong the next.",
    )
    top_p: float = Field(default=0.9, gt=0, le=1, description="Nucleus sampling.")
    repeat_penalty: float = Field(
        default=1.3, ge=1, description="Penalty on repeated tokens (small models loop without)."
    )
    trace_buffer: int = Field(default=10_000, ge=1, description="Traces held while Kafka is away.")
    feedback_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long POST /v1/feedback waits for the broker to store the feedback "
        "before answering 503.",
    )
    trace_linger_ms: int = Field(
        default=500, ge=0, description="Traces gathered into one produce request for this long."
    )
    trace_drain_s: float = Field(
        default=5.0,
        ge=0,
        description="On a clean stop (SIGTERM), how long the API waits for the broker to "
        "acknowledge the traces and feedback still queued; what is not acknowledged by then is "
        "lost, counted and logged.",
    )


def inference_settings(**overrides: object) -> InferenceSettings:
    """Settings from the environment, with explicit overrides on top."""
    return InferenceSettings(**overrides)  # type: ignore[arg-type]

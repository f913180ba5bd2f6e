"""The OpenAI-compatible backend against a real OpenAI-compatible server: the one that
llama-cpp-python ships, started here on the packaged Gemma 3 270M."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.embedding.indexer import Indexer
from services.inference.app import build_runtime, create_app
from services.inference.auth import new_key
from services.inference.client import parse_sse
from services.inference.llm import OpenAICompatLLM
from services.inference.models import GEMMA3_270M
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import DocumentEvent
from shared.contracts.topics import INFERENCE_COMPLETED
from shared.http import wait_ok
from shared.kafka.broker import free_port
from shared.models.embedder import get_embedder
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.open import open_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    gguf = GEMMA3_270M.locate(PlatformSettings().cache_dir)
    log = (tmp_path_factory.mktemp("oai") / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "gemma-270m",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        assert wait_ok(f"{url}/models", 120), "llama_cpp.server did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_queries_through_an_openai_compatible_server(
    openai_server: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    store = open_store(QdrantSettings(path=tmp_path / "q"), PlatformSettings(data_dir=tmp_path))
    try:
        ing = Ingestor.from_settings(IngestionSettings())
        Indexer(store, get_embedder()).index(
            [
                ing.to_batch(
                    DocumentEvent(
                        tenant="acme",
                        doc_id="office",
                        version=1,
                        title="Office",
                        content="The office in Porto opens at 8 and closes at 18.",
                    )
                )
            ]
        )
        key, rec = new_key("k", "acme", [])
        s = InferenceSettings(
            api_keys=json.dumps([rec.model_dump()]),
            llm_backend="openai",
            openai_base_url=openai_server,
            openai_model="gemma-270m",
            llm_mode="completion",
            max_new_tokens=32,
            # token for token: a redacted stream holds a short answer back until its end
            redact_answers=False,
        )
        # the packaged Gemma is a base model: served, it is driven through /v1/completions
        llm = OpenAICompatLLM(openai_server, "none", "gemma-270m", 60, 2048, mode="completion")
        app = create_app(
            build_runtime(
                s,
                store,
                llm,
                TracePublisher(kafka_bootstrap, INFERENCE_COMPLETED.name(topic_prefix)),
            )
        )
        with TestClient(app) as c:
            r = c.post(
                "/v1/query",
                json={"question": "When does the Porto office open?"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["answer"] and body["model"] == "gemma-270m"
            assert body["prompt"]["version"] == "v3", "the completion prompt was used"
            assert body["citations"][0]["doc_id"] == "office"
            with c.stream(
                "POST",
                "/v1/query",
                headers={"Authorization": f"Bearer {key}"},
                json={"question": "When does the office close?", "stream": True},
            ) as r:
                names = [e.name for e in parse_sse(r.iter_lines())]
            assert names.count("token") >= 2 and names[-1] == "done"
    finally:
        store.close()

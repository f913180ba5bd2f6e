"""The inference API over the real store, model, LLM (llama.cpp, Gemma 3 270M) and broker:
exact status codes, tenant isolation (property-tested), SSE, traces, backend failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.embedding.indexer import Indexer
from services.inference.app import build_runtime, create_app
from services.inference.auth import new_key
from services.inference.client import parse_sse
from services.inference.llm import OpenAICompatLLM, make_llm
from services.inference.settings import InferenceSettings
from services.inference.traces import TracePublisher
from services.ingestion.logic import Ingestor
from services.ingestion.settings import IngestionSettings
from shared.contracts.events import DocumentEvent, FeedbackEvent, InferenceTrace
from shared.contracts.topics import FEEDBACK_EVENTS, INFERENCE_COMPLETED
from shared.kafka.admin import create_topics
from shared.models.embedder import get_embedder
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.open import open_store
from tests.http_helpers import serving
from tests.kafka_helpers import consume

pytestmark = pytest.mark.integration

DOCS = [
    (
        "acme",
        "vpn",
        ["eng"],
        "To connect to the VPN, open the client and choose the Berlin gateway.",
    ),
    ("acme", "payroll", ["hr"], "Payroll runs on the 25th; salary bands are confidential."),
    ("acme", "lunch", [], "The canteen serves lunch from noon until two every weekday."),
    ("beta", "vpn", [], "Beta corp VPN uses the Lisbon gateway with hardware tokens."),
    ("beta", "secrets", [], "Beta corp launch codes and salaries for every employee."),
    (
        "acme",
        "handbook",
        ["ops"],
        "\n\n".join(
            f"On-call step {i}: page the duty engineer, check the VPN gateway {i} and write "
            "the incident log before handing over."
            for i in range(40)
        ),
    ),
]
ALLOWED_A = {"vpn", "lunch"}  # acme key with group eng: never payroll, never beta


def _policy_pdf() -> DocumentEvent:
    """A converted PDF (its second page a scan) that only the group travel may read."""
    import base64

    from tests import documents as make

    data = make.pdf(
        [
            make.Page(headings=[(1, "Travel policy")], paragraphs=["Book trains two weeks ahead."]),
            make.Page(scanned=True, paragraphs=["The daily meal allowance is forty euros."]),
        ]
    )
    return DocumentEvent(
        tenant="acme",
        doc_id="travel.pdf",
        version=1,
        acl=["travel"],
        content_type="application/pdf",
        content_base64=base64.b64encode(data).decode(),
    )


POLICY_PDF = _policy_pdf()


@pytest.fixture(scope="module")
def world(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("inference")
    prefix = f"inf{int(time.time() * 1000) % 10**8}."
    create_topics(kafka_bootstrap, prefix)
    store = open_store(QdrantSettings(path=tmp / "q"), PlatformSettings(data_dir=tmp))
    ing = Ingestor.from_settings(IngestionSettings())
    Indexer(store, get_embedder()).index(
        [
            ing.to_batch(
                DocumentEvent(
                    tenant=t,
                    doc_id=d,
                    version=1,
                    content=c,
                    acl=acl,
                    title=d,
                    metadata={"team": "it" if d == "vpn" else "ops"},
                )
            )
            for t, d, acl, c in DOCS
        ]
        + [ing.to_batch(POLICY_PDF)]
    )
    keys = {
        name: new_key(name, tenant, groups)
        for name, tenant, groups in [
            ("a", "acme", ["eng"]),
            ("b", "beta", []),
            ("hr", "acme", ["hr"]),
            ("ops", "acme", ["ops"]),
            ("travel", "acme", ["travel"]),
        ]
    }
    ro_key, ro = new_key("readonly", "acme", ["eng"])
    ro = ro.model_copy(update={"actions": ["retrieve"]})
    slow_key, slow = new_key("slow", "acme", [])
    slow = slow.model_copy(update={"rate_limit_per_min": 2})
    records = [r for _, r in keys.values()] + [ro, slow]
    s = InferenceSettings(
        api_keys=json.dumps([r.model_dump() for r in records]),
        max_body_bytes=4096,
        max_question_chars=500,
        max_new_tokens=48,
        rate_limit_per_min=100_000,
        platform=PlatformSettings(data_dir=tmp),
    )
    llm = make_llm(s)
    publisher = TracePublisher(kafka_bootstrap, INFERENCE_COMPLETED.name(prefix))
    feedback = TracePublisher(kafka_bootstrap, FEEDBACK_EVENTS.name(prefix))
    app = create_app(build_runtime(s, store, llm, publisher, feedback))
    with TestClient(app) as client:
        yield {
            "client": client,
            "keys": {k: v[0] for k, v in keys.items()},
            "ro": ro_key,
            "slow": slow_key,
            "prefix": prefix,
            "bootstrap": kafka_bootstrap,
            "settings": s,
            "store": store,
            "publisher": publisher,
        }
    store.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_health_and_ready(world: dict[str, Any]) -> None:
    c = world["client"]
    assert c.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and c.get("/readyz").status_code != 200:
        time.sleep(0.5)
    r = c.get("/readyz")
    assert r.status_code == 200, r.json()
    assert r.json()["checks"] == {"broker": True, "model": True, "vector_store": True}


def test_auth_statuses(world: dict[str, Any]) -> None:
    c, body = world["client"], {"question": "vpn"}
    r = c.post("/v1/retrieve", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.post("/v1/retrieve", json=body, headers=auth("llm_wrong")).status_code == 401
    assert c.post("/v1/retrieve", json=body, headers=auth(world["ro"])).status_code == 200
    r = c.post("/v1/query", json=body, headers=auth(world["ro"]))
    assert r.status_code == 403 and "may not query" in r.json()["detail"]
    codes = [
        c.post("/v1/retrieve", json=body, headers=auth(world["slow"])).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    r = c.post("/v1/retrieve", json=body, headers=auth(world["slow"]))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_size_limits_and_malformed_bodies(world: dict[str, Any]) -> None:
    c, h = world["client"], auth(world["keys"]["a"])
    r = c.post("/v1/retrieve", json={"question": "q" * 501}, headers=h)
    assert r.status_code == 413 and "500 characters" in r.json()["detail"]
    r = c.post("/v1/retrieve", json={"question": "q", "pad": "x" * 5000}, headers=h)
    assert r.status_code == 413 and "4096 bytes" in r.json()["detail"]
    r = c.post(
        "/v1/retrieve", content=b"{not json", headers={**h, "content-type": "application/json"}
    )
    assert r.status_code == 422
    for bad in (
        {},
        {"question": ""},
        {"question": "q", "top_k": 0},
        {"question": "q", "tenant": "beta"},
        {"question": "q", "filters": {"a.b": 1}},
    ):
        assert c.post("/v1/retrieve", json=bad, headers=h).status_code == 422, bad
    # integers past 64 bits: a 422 naming the field (the store's OverflowError was a 500)
    for big in (2**63, -(2**63) - 1, 2**64, 10**23, [1, 10**23]):
        r = c.post("/v1/retrieve", json={"question": "q", "filters": {"team": big}}, headers=h)
        assert r.status_code == 422, (big, r.text)
        assert all(e["loc"][:3] == ["body", "filters", "team"] for e in r.json()["detail"])
    ok = c.post("/v1/retrieve", json={"question": "q", "filters": {"n": 2**63 - 1}}, headers=h)
    assert ok.status_code == 200
    # more results than the server gives: said, never cut silently
    for endpoint in ("/v1/retrieve", "/v1/query"):
        r = c.post(endpoint, json={"question": "q", "top_k": 10**19}, headers=h)
        assert r.status_code == 422, r.text
        (error,) = r.json()["detail"]
        assert error["loc"] == ["body", "top_k"] and "INFERENCE_MAX_TOP_K" in error["msg"]
    r = c.post("/v1/query", json={"question": "q", "prompt": "rag/v9"}, headers=h)
    assert r.status_code == 422 and "no version" in r.json()["detail"]
    # a version written for the other mode is refused, with the versions that fit
    r = c.post("/v1/query", json={"question": "q", "prompt": "rag/v1"}, headers=h)
    assert r.status_code == 422 and "written for chat models" in r.json()["detail"]


filter_values = st.one_of(
    st.text(max_size=8), st.integers(), st.booleans(), st.lists(st.text(max_size=5), max_size=3)
)
bodies = st.fixed_dictionaries(
    {"question": st.text(min_size=1, max_size=80).filter(lambda q: q.strip())},
    optional={
        "top_k": st.integers(min_value=1, max_value=50),
        "filters": st.dictionaries(
            st.sampled_from(["team", "tenant", "acl", "doc_id"]), filter_values, max_size=3
        ),
        "tenant": st.sampled_from(["beta", "acme"]),
        "acl": st.lists(st.sampled_from(["hr", "*"]), max_size=2),
        "groups": st.lists(st.sampled_from(["hr", "*"]), max_size=2),
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_tenant_isolation_over_random_bodies(world: dict[str, Any], body: dict[str, Any]) -> None:
    r = world["client"].post("/v1/retrieve", json=body, headers=auth(world["keys"]["a"]))
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        docs = {ch["doc_id"] for ch in r.json()["chunks"]}
        assert docs <= ALLOWED_A, (body, docs)


def test_isolation_holds_for_answers_too(world: dict[str, Any]) -> None:
    c = world["client"]
    r = c.post(
        "/v1/query",
        json={"question": "salary bands and launch codes", "top_k": 10},
        headers=auth(world["keys"]["a"]),
    )
    assert r.status_code == 200
    assert {x["doc_id"] for x in r.json()["citations"]} <= ALLOWED_A
    r = c.post(
        "/v1/retrieve",
        json={"question": "salary bands", "top_k": 10},
        headers=auth(world["keys"]["hr"]),
    )
    assert "payroll" in {x["doc_id"] for x in r.json()["chunks"]}
    r = c.post(
        "/v1/retrieve",
        json={"question": "vpn gateway", "filters": {"team": "it"}},
        headers=auth(world["keys"]["b"]),
    )
    assert [x["doc_id"] for x in r.json()["chunks"]] == ["vpn"]
    assert "Lisbon" in r.json()["chunks"][0]["text"]


def test_retrieve_ranks_by_each_mode_one_chunk_per_document_best_first(
    world: dict[str, Any],
) -> None:
    c, key = world["client"], world["keys"]["ops"]
    for mode in ("dense", "sparse", "hybrid"):
        r = c.post(
            "/v1/retrieve",
            json={"question": "duty engineer VPN gateway", "top_k": 10, "mode": mode},
            headers=auth(key),
        )
        assert r.status_code == 200, r.text
        chunks = r.json()["chunks"]
        docs = [ch["doc_id"] for ch in chunks]
        assert docs[0] == "handbook" and len(docs) == len(set(docs)), (mode, docs)
        assert [ch["rank_score"] for ch in chunks] == sorted(
            (ch["rank_score"] for ch in chunks), reverse=True
        )
        # the title went into the indexed text, never into what is cited
        assert chunks[0]["text"].startswith("On-call step") and "handbook" not in chunks[0]["text"]
        assert all(ch["similarity"] >= world["settings"].score_threshold for ch in chunks)
    # a word only BM25 can match exactly, where the embedding ranks another document first
    r = c.post(
        "/v1/retrieve",
        json={"question": "canteen", "mode": "sparse"},
        headers=auth(world["keys"]["a"]),
    )
    assert [ch["doc_id"] for ch in r.json()["chunks"]][:1] == ["lunch"]
    r = c.post("/v1/retrieve", json={"question": "vpn", "mode": "fuzzy"}, headers=auth(key))
    assert r.status_code == 422 and "mode" in r.text


def test_retrieve_and_citations_show_the_page_of_a_converted_document(
    world: dict[str, Any],
) -> None:
    c, key = world["client"], world["keys"]["travel"]
    r = c.post("/v1/retrieve", json={"question": "daily meal allowance"}, headers=auth(key))
    assert r.status_code == 200, r.text
    top = r.json()["chunks"][0]
    assert (top["doc_id"], top["page"], top["title"]) == ("travel.pdf", 2, "Travel policy")
    assert "forty euros" in top["text"]
    r = c.post(
        "/v1/query", json={"question": "What is the daily meal allowance?"}, headers=auth(key)
    )
    assert r.status_code == 200, r.text
    cited = {(x["doc_id"], x["page"]) for x in r.json()["citations"]}
    assert ("travel.pdf", 2) in cited
    # text documents have no pages
    r = c.post("/v1/retrieve", json={"question": "canteen lunch"}, headers=auth(world["keys"]["a"]))
    assert {ch["page"] for ch in r.json()["chunks"]} == {None}


def test_query_answers_with_citations_and_publishes_a_full_trace(world: dict[str, Any]) -> None:
    c = world["client"]
    r = c.post(
        "/v1/query",
        json={"question": "How do I connect to the VPN? I am bob@example.com", "prompt": "rag/v3"},
        headers=auth(world["keys"]["a"]),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] and body["citations"][0]["doc_id"] == "vpn"
    assert body["prompt"] == {"name": "rag", "version": "v3", "mode": "completion"}
    assert body["model"] == "gemma3-270m"
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    assert {"embed", "retrieve", "generate", "total"} <= set(body["timings_ms"])
    traces = [
        InferenceTrace.from_bytes(rec.value)
        for rec in consume(world["bootstrap"], INFERENCE_COMPLETED.name(world["prefix"]), idle_s=3)
    ]
    (t,) = [t for t in traces if t.trace_id == body["trace_id"]]
    assert t.tenant == "acme" and t.api_key_id == "a" and t.status == "ok" and t.error is None
    assert "[EMAIL]" in t.question and "bob@" not in t.question
    assert t.retrieved and t.retrieved[0].doc_id == "vpn"
    # the trace keeps the answer, redacted (the model may repeat the caller's address)
    assert t.answer and "bob@" not in t.answer
    assert t.answer == body["answer"].replace("bob@example.com", "[EMAIL]")
    assert (t.prompt_name, t.prompt_version, t.model) == ("rag", "v3", body["model"])
    assert t.llm_mode == "completion", "the trace records how the model was driven"
    assert t.prompt_tokens > 0 and t.completion_tokens > 0
    assert {"embed", "retrieve", "generate", "total"} <= set(t.timings_ms)


def test_streaming_sends_tokens_then_citations(world: dict[str, Any]) -> None:
    c = world["client"]
    with c.stream(
        "POST",
        "/v1/query",
        json={"question": "When is lunch served?", "stream": True},
        headers=auth(world["keys"]["a"]),
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [(e.name, e.data) for e in parse_sse(r.iter_lines())]
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("token") >= 2 and set(kinds) == {"token", "done"}
    done = events[-1][1]
    assert done["answer"] == "".join(d["text"] for k, d in events if k == "token").strip()
    assert done["citations"][0]["doc_id"] == "lunch" and done["trace_id"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_backend_down_gives_503_and_an_error_trace(world: dict[str, Any]) -> None:
    s: InferenceSettings = world["settings"]
    down = OpenAICompatLLM(f"http://127.0.0.1:{free_port()}/v1", "x", "m", 5, 2048)
    publisher = TracePublisher(world["bootstrap"], INFERENCE_COMPLETED.name(world["prefix"]))
    app = create_app(build_runtime(s, world["store"], down, publisher))
    with TestClient(app) as c:
        r = c.post("/v1/query", json={"question": "vpn?"}, headers=auth(world["keys"]["a"]))
        assert r.status_code == 503 and "unreachable" in r.json()["detail"]
        deadline = time.monotonic() + 60
        while publisher.sent < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
    traces = [
        InferenceTrace.from_bytes(rec.value)
        for rec in consume(world["bootstrap"], INFERENCE_COMPLETED.name(world["prefix"]), idle_s=3)
    ]
    assert any(t.status == "error" and "unreachable" in (t.error or "") for t in traces), (
        publisher,
        [(t.status, t.error) for t in traces][-5:],
    )


def test_generation_timeout_gives_503(world: dict[str, Any]) -> None:
    s: InferenceSettings = world["settings"].model_copy(update={"llm_timeout_s": 0.001})
    publisher = TracePublisher(world["bootstrap"], INFERENCE_COMPLETED.name(world["prefix"]))
    rt = build_runtime(s, world["store"], world["client"].app.state.rt.answering.llm, publisher)
    with TestClient(create_app(rt)) as c:
        r = c.post("/v1/query", json={"question": "vpn?"}, headers=auth(world["keys"]["a"]))
    assert r.status_code == 503 and "timed out" in r.json()["detail"]


def test_kafka_away_never_blocks_answers_and_overflow_is_counted(world: dict[str, Any]) -> None:
    s: InferenceSettings = world["settings"]
    publisher = TracePublisher(f"127.0.0.1:{free_port()}", "nowhere", capacity=2)
    app = create_app(build_runtime(s, world["store"], None, publisher))
    with TestClient(app) as c:
        t0 = time.monotonic()
        codes = [
            c.post(
                "/v1/retrieve", json={"question": "vpn"}, headers=auth(world["keys"]["a"])
            ).status_code
            for _ in range(5)
        ]
        assert codes == [200] * 5 and time.monotonic() - t0 < 10
        assert publisher.pending == 2 and publisher.overflow == 3
        assert c.get("/readyz").status_code == 503


def test_traces_in_a_burst_go_out_batched_each_exactly_once(world: dict[str, Any]) -> None:
    topic = INFERENCE_COMPLETED.name(world["prefix"])
    publisher = TracePublisher(world["bootstrap"], topic, linger_ms=200)
    ids = [f"burst-{i:04d}" for i in range(300)]

    async def burst() -> int:
        await publisher.start()
        for trace_id in ids:
            publisher.submit(
                InferenceTrace(
                    trace_id=trace_id, tenant="acme", api_key_id="k", question="q", status="ok"
                )
            )
        seen_in_flight = 0
        async with asyncio.timeout(60):
            while publisher.sent < len(ids):
                # queued plus taken-but-unacknowledged: nothing is ever out of the count
                assert publisher.sent + publisher.pending == len(ids)
                seen_in_flight = max(seen_in_flight, len(publisher._batch))
                await asyncio.sleep(0.005)
        await publisher.stop()
        return seen_in_flight

    in_flight = asyncio.run(burst())
    assert publisher.pending == 0 and publisher.overflow == 0
    assert in_flight > 1  # sent as batches, not one request per trace
    got = Counter(
        t.trace_id
        for t in (InferenceTrace.from_bytes(r.value) for r in consume(world["bootstrap"], topic))
        if t.trace_id.startswith("burst-")
    )
    assert sorted(got) == ids and set(got.values()) == {1}


def test_openapi_documents_every_response_and_error_body(world: dict[str, Any]) -> None:
    spec = world["client"].get("/openapi.json").json()
    documented: dict[str, set[str]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            codes = set(op["responses"])
            documented[f"{method.upper()} {path}"] = codes
            for code, response in op["responses"].items():
                content = response.get("content", {})
                assert content, (path, method, code)
                for media in content.values():
                    assert media.get("schema"), (path, method, code)
    errors = {"400", "401", "403", "413", "422", "429"}
    assert documented["POST /v1/retrieve"] == {"200"} | errors
    assert documented["POST /v1/query"] == {"200", "502", "503"} | errors
    assert documented["GET /readyz"] == {"200", "503"}
    assert documented["GET /healthz"] == {"200"}
    query_200 = spec["paths"]["/v1/query"]["post"]["responses"]["200"]["content"]
    assert query_200["application/json"]["schema"] == {"$ref": "#/components/schemas/QueryResponse"}
    assert "text/event-stream" in query_200
    error = spec["paths"]["/v1/query"]["post"]["responses"]["422"]["content"]
    assert error["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_error_bodies_match_their_documented_schema(world: dict[str, Any]) -> None:
    from services.inference.schemas import ErrorBody

    c, h = world["client"], auth(world["keys"]["a"])
    responses = [
        c.post("/v1/retrieve", json={"question": "q"}),
        c.post("/v1/query", json={"question": "q"}, headers=auth(world["ro"])),
        c.post("/v1/retrieve", json={"question": "q" * 501}, headers=h),
        c.post("/v1/retrieve", json={"question": ""}, headers=h),
        c.post("/v1/query", json={"question": "q", "prompt": "nope/v1"}, headers=h),
    ]
    assert [r.status_code for r in responses] == [401, 403, 413, 422, 422]
    for r in responses:
        ErrorBody.model_validate(r.json())


HOSTILE = [
    '{"question": "q", "filters": {"a": 1.5}}',
    '{"question": "q", "top_k": 1e400}',
    '{"question": "\\ud800"}',
    '{"question": "q", "filters": {"\\ud800": 1}}',
    '{"question": "q", "stream": 0}',
    '{"question": "q", "filters": {"a": [false]}}',
    '{"question": "q", "top_k": "5"}',
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_bodies_get_422_with_a_reason_never_500(world: dict[str, Any], body: str) -> None:
    from services.inference.schemas import ErrorBody

    h = {**auth(world["keys"]["a"]), "content-type": "application/json"}
    for path in ("/v1/query", "/v1/retrieve"):
        if path == "/v1/retrieve" and '"stream"' in body:
            continue  # not a retrieve field: refused as extra, which is a 422 as well
        r = world["client"].post(path, content=body.encode(), headers=h)
        assert r.status_code == 422, (path, body, r.status_code, r.text)
        detail = ErrorBody.model_validate(r.json()).detail
        assert isinstance(detail, list) and detail and all(e.msg for e in detail)
        assert "input" not in r.text  # the caller's input is not echoed back


class ScriptedLLM:
    """A model that always answers the same, one word every ``delay_s``, to see what a trace
    keeps of an answer and how generation behaves under load and disconnects."""

    name = "scripted"
    mode = "completion"
    context_window = 2048
    concurrency = 1

    def __init__(self, answer: str, delay_s: float = 0.0) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.answer, self.delay_s = answer, delay_s
        self.threads = ThreadPoolExecutor(max_workers=1)
        self.generated = 0  # words produced, over every generation
        self.calls: list[int] = []  # words produced by each generation

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt: object, sampling: object, stop: threading.Event) -> Iterator[str]:
        self.calls.append(0)
        for word in re.findall(r"\S+\s*", self.answer):
            if stop.is_set():
                return
            time.sleep(self.delay_s)
            self.generated += 1
            self.calls[-1] += 1
            yield word


def test_traces_redact_personal_data_in_the_answer(world: dict[str, Any]) -> None:
    topic = INFERENCE_COMPLETED.name(world["prefix"])
    publisher = TracePublisher(world["bootstrap"], topic)
    llm = ScriptedLLM("Write to jane.doe@example.com or call +44 20 7946 0958.")
    with TestClient(
        create_app(build_runtime(world["settings"], world["store"], llm, publisher))
    ) as c:
        r = c.post(
            "/v1/query",
            json={"question": "vpn? I am bob@example.com"},
            headers=auth(world["keys"]["a"]),
        )
        assert r.status_code == 200, r.text
        trace_id = r.json()["trace_id"]
        deadline = time.monotonic() + 60
        while publisher.sent < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
    (t,) = [
        t
        for t in (
            InferenceTrace.from_bytes(rec.value)
            for rec in consume(world["bootstrap"], topic, idle_s=3)
        )
        if t.trace_id == trace_id
    ]
    assert t.answer == "Write to [EMAIL] or call [PHONE]."
    assert "bob@" not in t.question and "[EMAIL]" in t.question
    # and the caller gets it redacted too, whole or streamed, however the pieces fall
    assert r.json()["answer"] == "Write to [EMAIL] or call [PHONE]."


def test_the_answer_the_caller_gets_is_redacted_whole_and_streamed(world: dict[str, Any]) -> None:
    said = (
        "Ask the office at jane.doe@example.com, or call +44 20 7946 0958 before noon; the "
        "card on file is 4111.1111.1111.1111 and nothing else here is personal at all."
    )
    expected = (
        "Ask the office at [EMAIL], or call [PHONE] before noon; the card on file is [CARD] "
        "and nothing else here is personal at all."
    )
    llm = ScriptedLLM(said)
    publisher = TracePublisher(world["bootstrap"], INFERENCE_COMPLETED.name(world["prefix"]))
    with TestClient(
        create_app(build_runtime(world["settings"], world["store"], llm, publisher))
    ) as c:
        key = auth(world["keys"]["a"])
        whole = c.post("/v1/query", json={"question": "vpn?"}, headers=key)
        assert whole.json()["answer"] == expected
        with c.stream(
            "POST", "/v1/query", json={"question": "vpn?", "stream": True}, headers=key
        ) as r:
            events = [(e.name, e.data) for e in parse_sse(r.iter_lines())]
        tokens = [data["text"] for name, data in events if name == "token"]
        assert "".join(tokens).strip() == expected and len(tokens) > 1, tokens
        (done,) = [data for name, data in events if name == "done"]
        assert done["answer"] == expected


@contextlib.contextmanager
def served(world: dict[str, Any], llm: object, **settings: Any) -> Iterator[tuple[str, str]]:
    """The API on a real uvicorn server (client disconnects need a real socket); yields its
    URL and the traces topic."""
    topic = INFERENCE_COMPLETED.name(world["prefix"])
    s = world["settings"].model_copy(update=settings)
    app = create_app(
        build_runtime(s, world["store"], llm, TracePublisher(world["bootstrap"], topic))  # type: ignore[arg-type]
    )
    with serving(app) as url:
        yield url, topic


def traces_of(world: dict[str, Any], topic: str, ids: set[str]) -> dict[str, InferenceTrace]:
    deadline, found = time.monotonic() + 30, {}
    while time.monotonic() < deadline and set(found) != ids:
        for rec in consume(world["bootstrap"], topic, idle_s=1):
            t = InferenceTrace.from_bytes(rec.value)
            if t.trace_id in ids:
                found[t.trace_id] = t
    return found


@pytest.mark.chaos
def test_more_streams_than_the_queue_holds_are_refused_at_once(world: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    llm = ScriptedLLM("one two three four five six seven eight", delay_s=0.15)
    # token for token (redacting the answer would send this short one in a single piece)
    with served(world, llm, max_queued=1, redact_answers=False) as (url, topic):
        key = world["keys"]["a"]

        def ask(_: int) -> tuple[int, float, list[str], dict[str, str]]:
            t0 = time.monotonic()
            with httpx.stream(
                "POST",
                f"{url}/v1/query",
                json={"question": "vpn?", "stream": True},
                headers=auth(key),
                timeout=60,
            ) as r:
                if r.status_code != 200:
                    r.read()
                    return r.status_code, time.monotonic() - t0, [], dict(r.headers)
                names = [e.name for e in parse_sse(r.iter_lines())]
                return 200, time.monotonic() - t0, names, dict(r.headers)

        with ThreadPoolExecutor(max_workers=5) as pool:
            results = list(pool.map(ask, range(5)))
        readiness = httpx.get(f"{url}/readyz").json()
    served_ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(served_ok) == 2 and len(refused) == 3, [(r[0], r[2]) for r in results]
    for _, _, names, _ in served_ok:
        assert names[-1] == "done" and names.count("token") == 8
    for _, seconds, _, headers in refused:
        assert seconds < 1.0 and int(headers["retry-after"]) >= 1
    assert readiness["generations"] == {"in_flight": 0, "limit": 2, "refused": 3}


def test_a_caller_who_goes_away_stops_generation_and_is_traced_as_cancelled(
    world: dict[str, Any],
) -> None:
    words = 100  # 20 s at 0.2 s a word: a generation that is not stopped runs that long
    llm = ScriptedLLM(" ".join(f"w{i}" for i in range(words)), delay_s=0.2)
    with served(world, llm) as (url, topic):
        h = auth(world["keys"]["a"])
        # not streaming: the client gives up after a second
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/query", json={"question": "vpn?"}, headers=h, timeout=1.0)
        # streaming: the client reads two tokens, then hangs up
        with httpx.stream(
            "POST", f"{url}/v1/query", json={"question": "vpn?", "stream": True}, headers=h
        ) as r:
            trace_id = r.headers["x-trace-id"]
            for n, _ in enumerate(parse_sse(r.iter_lines())):
                if n == 1:
                    break
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            readiness = httpx.get(f"{url}/readyz").json()
            if readiness["generations"]["in_flight"] == 0 and len(llm.calls) == 2:
                break
            time.sleep(0.2)
        time.sleep(0.5)  # a generation left running would go on producing words
    assert readiness["generations"]["in_flight"] == 0, "every slot was given back"
    assert len(llm.calls) == 2 and all(n < words / 2 for n in llm.calls), llm.calls
    traces = [
        InferenceTrace.from_bytes(rec.value) for rec in consume(world["bootstrap"], topic, idle_s=2)
    ]
    cancelled = [t for t in traces if t.status == "cancelled" and t.model == "scripted"]
    assert len(cancelled) == 2, [(t.status, t.model) for t in traces][-6:]
    assert trace_id in {t.trace_id for t in cancelled}
    assert all(t.answer and t.answer.startswith("w0") for t in cancelled)


def test_a_chunked_body_over_the_limit_gets_413_and_the_key_is_checked_first(
    world: dict[str, Any],
) -> None:
    c = world["client"]
    h = {**auth(world["keys"]["a"]), "content-type": "application/json"}

    def chunked(total: int) -> Iterator[bytes]:
        body = json.dumps({"question": "q" + " " * total}).encode()
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    r = c.post("/v1/retrieve", content=chunked(10_000), headers=h)
    assert r.status_code == 413 and "4096 bytes" in r.json()["detail"], r.text
    assert c.post("/v1/retrieve", content=chunked(100), headers=h).status_code == 200
    # without a known key the body is never read: 401, whatever its size
    read = []

    def watched() -> Iterator[bytes]:
        for piece in chunked(10_000):
            read.append(piece)
            yield piece

    r = c.post("/v1/retrieve", content=watched(), headers=auth("llm_unknown"))
    assert r.status_code == 401 and r.json()["detail"] == "unknown API key"
    assert len(read) <= 1, "the body of an unknown caller was read"
    r = c.post("/v1/retrieve", content=b"x" * 10_000, headers={"content-type": "application/json"})
    assert r.status_code == 401 and "missing API key" in r.json()["detail"]


def test_feedback_is_stored_redacted_and_only_on_the_keys_own_tenants_traces(
    world: dict[str, Any],
) -> None:
    c, keys = world["client"], world["keys"]
    asked = c.post(
        "/v1/query", json={"question": "How do I connect to the VPN?"}, headers=auth(keys["a"])
    )
    assert asked.status_code == 200
    tid = asked.json()["trace_id"]
    body = {
        "trace_id": tid,
        "value": {"type": "thumbs", "thumbs": "down"},
        "comment": "wrong, mail me at jane.doe@example.com",
        "correction": "Choose the Berlin gateway.",
        "user": "u-42",
    }
    r = c.post("/v1/feedback", json=body, headers=auth(keys["a"]))
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["author"] == "a/u-42" and accepted["trace_id"] == tid
    # an author is kept and published: an e-mail as user id is refused, not stored
    r = c.post("/v1/feedback", json={**body, "user": "jane@example.com"}, headers=auth(keys["a"]))
    assert r.status_code == 422 and "personal data" in r.json()["detail"]
    assert "jane" not in r.text
    # the same tenant's other key may rate it; another tenant's may not, nor may a forged id
    assert c.post("/v1/feedback", json=body, headers=auth(keys["hr"])).status_code == 202
    for key, forged in ((keys["b"], tid), (keys["a"], "0" * 48), (keys["a"], tid[:32] + "0" * 16)):
        r = c.post("/v1/feedback", json={**body, "trace_id": forged}, headers=auth(key))
        assert r.status_code == 404 and "no trace" in r.json()["detail"]
    assert c.post("/v1/feedback", json=body).status_code == 401
    assert c.post("/v1/feedback", json=body, headers=auth(world["ro"])).status_code == 403
    for value in (
        {"type": "score", "score": 7, "min": 1, "max": 5},
        {"type": "label", "label": "rude", "allowed": ["outdated", "wrong_doc"]},
        {"type": "thumbs", "thumbs": "sideways"},
    ):
        r = c.post("/v1/feedback", json={**body, "value": value}, headers=auth(keys["a"]))
        assert r.status_code == 422, value
    assert (
        c.post("/v1/feedback", json={**body, "trace_id": "x"}, headers=auth(keys["a"])).status_code
        == 422
    )
    big = {**body, "correction": "x" * 5000}
    assert c.post("/v1/feedback", json=big, headers=auth(keys["a"])).status_code == 413
    limited = [
        c.post("/v1/feedback", json=body, headers=auth(world["slow"])).status_code for _ in range(3)
    ]
    assert limited[-1] == 429  # the slow key's own tenant, over its rate

    stored = [
        FeedbackEvent.from_bytes(r.value)
        for r in consume(world["bootstrap"], FEEDBACK_EVENTS.name(world["prefix"]), until=2)
    ]
    mine = next(f for f in stored if f.event_id == accepted["feedback_id"])
    assert mine.tenant == "acme" and mine.trace_id == tid and mine.down is True
    assert mine.comment == "wrong, mail me at [EMAIL]"
    assert mine.correction == "Choose the Berlin gateway."

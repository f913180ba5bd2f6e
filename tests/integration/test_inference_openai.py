"""The OpenAI-compatible routes, driven by the real ``openai`` SDK against the API on a real
uvicorn server over the real store, model, LLM (llama.cpp, Gemma 3 270M) and broker: the
same answers, citations and traces as /v1/query, streaming and not, and OpenAI's errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from services.inference.llm import make_llm
from tests.integration.test_inference_api import served, traces_of, world

pytestmark = pytest.mark.integration
__all__ = ["world"]  # the module's fixture, shared with the /v1/query tests

LUNCH = [{"role": "user", "content": "When is lunch served?"}]


@pytest.fixture(scope="module")
def api(world: dict[str, Any]) -> Iterator[tuple[OpenAI, str, str]]:
    """An SDK client for the key ``a`` (acme, group eng), its model id, the traces topic."""
    with served(world, make_llm(world["settings"])) as (url, topic):
        client = OpenAI(base_url=f"{url}/v1", api_key=world["keys"]["a"], max_retries=0)
        (model,) = [m.id for m in client.models.list()]
        yield client, model, topic


def test_models_name_the_rag_over_the_configured_llm(api: tuple[OpenAI, str, str]) -> None:
    _, model, _ = api
    assert model == "rag/gemma3-270m"


def test_an_answer_comes_with_citations_usage_and_a_trace(
    world: dict[str, Any], api: tuple[OpenAI, str, str]
) -> None:
    client, model, topic = api
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=LUNCH, user="u-1234"
    )
    done = raw.parse()
    answer = done.choices[0].message.content
    assert answer and done.choices[0].finish_reason in ("stop", "length")
    assert done.object == "chat.completion" and done.model == model
    assert done.usage and done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
    ext = (done.model_extra or {})["llmops"]
    assert ext["citations"][0]["doc_id"] == "lunch"
    assert raw.headers["x-trace-id"] == ext["trace_id"] and done.id.endswith(ext["trace_id"])
    (trace,) = traces_of(world, topic, {ext["trace_id"]}).values()
    assert (trace.endpoint, trace.status, trace.user) == ("chat.completions", "ok", "u-1234")
    assert trace.api_key_id == "a" and trace.answer == answer
    assert trace.retrieved[0].doc_id == "lunch" and trace.answered


def test_a_stream_of_chunks_ends_with_the_citations_and_the_usage(
    world: dict[str, Any], api: tuple[OpenAI, str, str]
) -> None:
    client, model, topic = api
    chunks = list(
        client.chat.completions.create(
            model=model, messages=LUNCH, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2
    (last,) = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    ext = (last.model_extra or {})["llmops"]
    assert ext["citations"][0]["doc_id"] == "lunch"
    usage = chunks[-1].usage
    assert not chunks[-1].choices and usage and usage.completion_tokens > 0
    (trace,) = traces_of(world, topic, {ext["trace_id"]}).values()
    assert trace.answer == text.strip() and trace.endpoint == "chat.completions"


def test_sampling_and_limits_of_the_request_are_honoured(api: tuple[OpenAI, str, str]) -> None:
    client, model, _ = api
    short = client.chat.completions.create(model=model, messages=LUNCH, max_tokens=2)
    assert short.usage and short.usage.completion_tokens <= 2
    assert short.choices[0].finish_reason == "length"
    whole = client.chat.completions.create(model=model, messages=LUNCH, temperature=0)
    first_word = (whole.choices[0].message.content or "").split()[0]
    stopped = client.chat.completions.create(
        model=model, messages=LUNCH, temperature=0, stop=[first_word]
    )
    assert first_word not in (stopped.choices[0].message.content or "")


def test_earlier_turns_are_carried_into_the_prompt(api: tuple[OpenAI, str, str]) -> None:
    client, model, _ = api
    alone = client.chat.completions.create(model=model, messages=LUNCH)
    conversation = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Who serves food here?"},
        {"role": "assistant", "content": "The canteen does."},
        *LUNCH,
    ]
    carried = client.chat.completions.create(model=model, messages=conversation)
    assert alone.usage and carried.usage
    assert carried.usage.prompt_tokens > alone.usage.prompt_tokens + 10


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"max_tokens": 10_000}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"user": "bob@example.com"}, "user"),
        ({"extra_body": {"surprise": 1}}, "surprise"),
    ],
)
def test_what_cannot_be_honoured_is_refused_in_openais_shape(
    api: tuple[OpenAI, str, str], extra: dict[str, Any], param: str
) -> None:
    client, model, _ = api
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model, messages=LUNCH, **extra)
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == param and body["message"], body
    assert body["type"] == "invalid_request_error"


def test_auth_model_and_conversation_errors_are_openais(
    world: dict[str, Any], api: tuple[OpenAI, str, str]
) -> None:
    client, model, _ = api
    stranger = client.with_options(api_key="llm_wrong")
    with pytest.raises(openai.AuthenticationError) as auth:
        stranger.chat.completions.create(model=model, messages=LUNCH)
    assert isinstance(auth.value.body, dict) and auth.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.PermissionDeniedError):  # a key for retrieval only
        client.with_options(api_key=world["ro"]).chat.completions.create(
            model=model, messages=LUNCH
        )
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=LUNCH)
    assert isinstance(missing.value.body, dict) and missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):  # the last message must be the user's
        client.chat.completions.create(
            model=model, messages=[*LUNCH, {"role": "assistant", "content": "At noon."}]
        )


def test_tenants_stay_apart_through_this_route_too(
    world: dict[str, Any], api: tuple[OpenAI, str, str]
) -> None:
    client, model, _ = api
    beta = client.with_options(api_key=world["keys"]["b"])
    done = beta.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Which gateway does the VPN use?"}]
    )
    cited = {c["doc_id"] for c in (done.model_extra or {})["llmops"]["citations"]}
    assert cited and cited <= {"vpn", "secrets"}
    trace_id = (done.model_extra or {})["llmops"]["trace_id"]
    assert traces_of(world, api[2], {trace_id})[trace_id].tenant == "beta"


def test_langchains_chat_openai_is_answered_streaming_and_not(
    world: dict[str, Any], api: tuple[OpenAI, str, str]
) -> None:
    # a framework client, as a team's existing code would be: only the base URL and key change
    from langchain_openai import ChatOpenAI

    client, model, topic = api
    chat = ChatOpenAI(
        model=model,
        base_url=str(client.base_url),
        api_key=client.api_key,
        max_retries=0,
        include_response_headers=True,
    )
    done = chat.invoke([("system", "Answer briefly."), ("user", "When is lunch served?")])
    assert isinstance(done.content, str) and done.content
    assert done.usage_metadata and done.usage_metadata["output_tokens"] > 0
    assert done.response_metadata["finish_reason"] in ("stop", "length")
    trace_id = done.response_metadata["headers"]["x-trace-id"]
    parts = list(chat.stream("When is lunch served?"))
    streamed = "".join(str(p.content) for p in parts)
    assert len([p for p in parts if p.content]) >= 2 and streamed
    (finish,) = [
        p.response_metadata["finish_reason"]
        for p in parts
        if "finish_reason" in p.response_metadata
    ]
    assert finish in ("stop", "length")
    (streamed_id,) = [
        p.response_metadata["headers"]["x-trace-id"]
        for p in parts
        if "headers" in p.response_metadata
    ]
    traces = traces_of(world, topic, {trace_id, streamed_id})
    assert traces[trace_id].answer == done.content
    assert traces[streamed_id].answer == streamed.strip()
    assert {t.endpoint for t in traces.values()} == {"chat.completions"}
    assert traces[trace_id].retrieved[0].doc_id == "lunch"

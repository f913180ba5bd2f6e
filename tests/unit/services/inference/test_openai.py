"""Unit tests of ``services.inference.openai``: what a chat completion request may ask, how a
conversation becomes a question and earlier turns, and errors in OpenAI's shape."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import HTTPException

from services.inference.openai import (
    ChatCompletionRequest,
    OpenAIError,
    from_http,
    refusal,
)

USER = {"role": "user", "content": "When is lunch?"}


def request(**kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **kw})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("tools", [{"type": "function"}]),
        ("tool_choice", "auto"),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("presence_penalty", 0.5),
        ("seed", 7),
        ("response_format", {"type": "json_object"}),
        ("some_new_field", 1),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_the_parameter(field: str, value: Any) -> None:
    with pytest.raises(OpenAIError) as err:
        request(**{field: value})
    assert err.value.status == 400 and err.value.param == field
    assert err.value.body()["error"]["code"] == "unsupported_parameter"


def test_neutral_values_that_sdks_send_pass() -> None:
    r = request(n=1, logprobs=False, presence_penalty=0, response_format={"type": "text"})
    assert r.model == "m"


def test_the_last_user_message_is_the_question_and_the_rest_are_earlier_turns() -> None:
    r = request(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Who cooks?"}]},
            {"role": "assistant", "content": "The canteen."},
            {"role": "assistant", "content": ""},
            USER,
        ]
    )
    question, earlier = r.conversation()
    assert question == "When is lunch?"
    assert earlier == (
        ("system", "Be brief."),
        ("user", "Who cooks?"),
        ("assistant", "The canteen."),
    )


@pytest.mark.parametrize(
    "messages",
    [
        [USER, {"role": "assistant", "content": "At noon."}],
        [{"role": "user", "content": "  "}],
        [{"role": "tool", "content": "42"}, USER],
    ],
)
def test_a_conversation_that_does_not_end_with_a_question_is_refused(
    messages: list[dict[str, Any]],
) -> None:
    with pytest.raises(OpenAIError) as err:
        request(messages=messages).conversation()
    assert err.value.param == "messages"


def test_stop_takes_a_string_or_up_to_four() -> None:
    assert request(stop="\n").stops() == ("\n",)
    assert request(stop=["a", "b"]).stops() == ("a", "b")
    with pytest.raises(OpenAIError):
        request(stop=list("abcde")).stops()


def test_refusals_before_the_routes_are_in_openais_shape_on_its_routes_only() -> None:
    exc = HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    mine = refusal("/v1/chat/completions", exc)
    assert mine.status_code == 401 and b'"code":"invalid_api_key"' in mine.body
    assert mine.headers["www-authenticate"] == "Bearer"
    assert refusal("/v1/query", exc).body == b'{"detail":"unknown API key"}'
    limited = from_http(HTTPException(429, "rate limit exceeded", headers={"Retry-After": "3"}))
    assert (limited.kind, limited.code, limited.headers) == (
        "rate_limit_error",
        "rate_limit_exceeded",
        {"Retry-After": "3"},
    )

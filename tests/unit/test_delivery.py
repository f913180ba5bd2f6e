"""An input is acknowledged only once its outputs are on the broker (shared.kafka.delivery).

faust's own message objects and reference counting, with a topic whose deliveries the test
settles by hand, so each step between "sent" and "delivered" can be looked at.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from faust.types.tuples import ConsumerMessage

from shared.contracts.events import DeadLetter
from shared.kafka.delivery import Deliveries, is_permanent
from shared.kafka.dlq import dead_letter
from shared.kafka.faust_app import handle_isolating


@dataclass
class Consumer:
    acked: list[int] = field(default_factory=list)

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True


@dataclass
class Topic:
    """Records sent, each with the future the test settles."""

    name: str
    sent: list[tuple[bytes | None, bytes, asyncio.Future[Any]]] = field(default_factory=list)

    def get_topic_name(self) -> str:
        return self.name

    async def send(
        self, key: bytes | None, value: bytes, headers: Any = None, partition: Any = None
    ) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((key, value, fut))
        return fut


def event(consumer: Consumer, offset: int, value: bytes = b"in") -> Any:
    msg = ConsumerMessage("src", 0, offset, 0.0, 0, None, b"k", value, None)
    msg.incref()  # the stream's own reference, as faust takes it
    return SimpleNamespace(message=msg, app=SimpleNamespace(consumer=consumer))


def stream_acks(ev: Any) -> None:
    """What faust does when the handler returns."""
    ev.message.ack(ev.app.consumer)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (pytest sees the test's own parameters)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@pytest.fixture
def parts() -> tuple[Consumer, Topic, Topic, list[str], Deliveries]:
    consumer, out, dlq, errors = Consumer(), Topic("out"), Topic("dlq"), []
    deliveries = Deliveries(dlq, "svc", 1 << 20, errors.append, retry_max_s=0.01)  # type: ignore[arg-type]
    return consumer, out, dlq, errors, deliveries


@in_loop
async def test_an_input_is_acknowledged_only_when_its_outputs_are_delivered(parts: Any) -> None:
    consumer, out, _, _, deliveries = parts
    ev = event(consumer, 7)
    await deliveries.send(ev, out, b"a", b"1")
    await deliveries.send(ev, out, b"b", b"2")
    stream_acks(ev)
    assert consumer.acked == [], "the handler returned, but nothing is delivered yet"
    out.sent[0][2].set_result("meta")
    await settle()
    assert consumer.acked == [], "one of two outputs is delivered"
    out.sent[1][2].set_result("meta")
    await settle()
    assert consumer.acked == [7] and deliveries.pending == 0


@in_loop
async def test_an_output_the_broker_refuses_dead_letters_its_input(parts: Any) -> None:
    consumer, out, dlq, errors, deliveries = parts
    ev = event(consumer, 3, b"the input")
    await deliveries.send(ev, out, b"a", b"1")
    await deliveries.send(ev, out, b"b", b"2")
    stream_acks(ev)
    for _, _, fut in out.sent:
        fut.set_exception(MessageSizeTooLargeError("over the topic's max.message.bytes"))
    await settle()
    assert consumer.acked == [], "acknowledged before the dead letter is on the broker"
    (letter_rec,) = dlq.sent  # once, though both outputs failed
    letter = DeadLetter.from_bytes(letter_rec[1])
    assert (letter.topic, letter.offset, letter.stage) == ("src", 3, "svc.deliver")
    assert letter.error_type == "MessageSizeTooLargeError" and errors == [letter.error_type]
    assert base64.b64decode(letter.value_b64) == b"the input"  # nothing personal in it
    letter_rec[2].set_result("meta")
    await settle()
    assert consumer.acked == [3]


@in_loop
async def test_a_passing_failure_is_sent_again_and_never_dead_lettered(parts: Any) -> None:
    consumer, out, dlq, _, deliveries = parts
    ev = event(consumer, 5)
    await deliveries.send(ev, out, b"a", b"1")
    stream_acks(ev)
    out.sent[0][2].set_exception(KafkaTimeoutError())
    for _ in range(50):
        await asyncio.sleep(0.005)
        if len(out.sent) == 2:
            break
    assert [v for _, v, _ in out.sent] == [b"1", b"1"] and consumer.acked == []
    out.sent[1][2].set_result("meta")
    await settle()
    assert consumer.acked == [5] and dlq.sent == []


@in_loop
async def test_a_letter_too_large_is_sent_without_the_input(parts: Any) -> None:
    consumer, out, dlq, _, deliveries = parts
    ev = event(consumer, 9, b"x" * 1000)
    await deliveries.send(ev, out, b"a", b"1")
    stream_acks(ev)
    out.sent[0][2].set_exception(MessageSizeTooLargeError())
    await settle()
    dlq.sent[0][2].set_exception(MessageSizeTooLargeError())
    await settle()
    smaller = DeadLetter.from_bytes(dlq.sent[1][1])
    assert smaller.value_b64 == "" and smaller.offset == 9
    assert "left out of this letter" in smaller.error_message
    assert consumer.acked == []
    dlq.sent[1][2].set_result("meta")
    await settle()
    assert consumer.acked == [9]


@in_loop
async def test_an_input_whose_outputs_are_cancelled_stays_unacknowledged(parts: Any) -> None:
    consumer, out, dlq, _, deliveries = parts
    ev = event(consumer, 4)
    await deliveries.send(ev, out, b"a", b"1")
    stream_acks(ev)
    out.sent[0][2].cancel()  # the producer stopped: the input is redone after a restart
    await settle()
    assert consumer.acked == [] and dlq.sent == [] and deliveries.pending == 0


@in_loop
async def test_one_output_of_several_inputs_holds_each_of_them(parts: Any) -> None:
    consumer, out, _, _, deliveries = parts
    a, b = event(consumer, 1), event(consumer, 2)
    await deliveries.send([a, b], out, b"doc", b"indexed")
    stream_acks(a)
    stream_acks(b)
    assert consumer.acked == []
    out.sent[0][2].set_result("meta")
    await settle()
    assert sorted(consumer.acked) == [1, 2]


def test_only_refusals_of_the_record_itself_are_permanent() -> None:
    assert is_permanent(MessageSizeTooLargeError())
    assert not is_permanent(KafkaTimeoutError())
    assert not is_permanent(ConnectionError())


@in_loop
async def test_one_record_a_batch_handler_chokes_on_is_dead_lettered_alone(parts: Any) -> None:
    consumer, out, dlq, errors, deliveries = parts
    events = [event(consumer, i, f"record {i}".encode()) for i in range(5)]
    handled: list[list[int]] = []

    async def handler(batch: list[Any]) -> None:
        handled.append([ev.message.offset for ev in batch])
        if any(ev.message.offset == 2 for ev in batch):
            raise ValueError("the logic chokes on record 2")
        for ev in batch:
            await deliveries.send(ev, out, b"k", ev.message.value)

    await handle_isolating(events, handler, deliveries, "svc")
    assert handled == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]
    (letter_rec,) = dlq.sent
    letter = DeadLetter.from_bytes(letter_rec[1])
    assert (letter.offset, letter.stage, letter.error_type) == (2, "svc", "ValueError")
    assert sorted(v for _, v, _ in out.sent) == [f"record {i}".encode() for i in (0, 1, 3, 4)]
    for ev in events:
        stream_acks(ev)
    for *_, fut in [*out.sent, *dlq.sent]:
        fut.set_result("meta")
    await settle()
    assert sorted(consumer.acked) == [0, 1, 2, 3, 4], "every record went somewhere"


def test_a_letter_keeps_its_value_redacted_by_default_and_its_message_always() -> None:
    value = b'{"doc_id": "d", "content": "write to jane.doe@example.com"}'
    kw: dict[str, Any] = dict(
        topic="t",
        partition=0,
        offset=1,
        key=b"acme/jane.doe@example.com",
        value=value,
        stage="s",
        error_type="E",
        error_message="input_value='jane.doe@example.com' is not valid",
    )
    letter = dead_letter(**kw)
    assert letter.value_form == "redacted"
    assert base64.b64decode(letter.value_b64) == value.replace(b"jane.doe@example.com", b"[EMAIL]")
    assert "jane.doe" not in letter.model_dump_json()
    raw = dead_letter(**kw, values="raw")
    assert raw.value_form == "raw" and base64.b64decode(raw.value_b64) == value
    assert "jane.doe" not in raw.error_message, "a message is redacted whatever the setting"
    binary = dead_letter(**{**kw, "value": b"\xff\xfe"})
    assert (binary.value_form, binary.value_b64) == ("omitted", "")
    # a version 1 letter (raw values, no value_form) still reads
    v1 = json.loads(raw.to_bytes())
    v1.pop("value_form")
    v1["schema_version"] = 1
    assert DeadLetter.model_validate(v1).value_form == "raw"

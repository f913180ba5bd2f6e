"""Unit tests of ``shared.kafka.delivery``: an input is acknowledged only once its outputs are on
the broker: faust's own message objects and reference counting, with topics whose deliveries
the test settles by hand."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from shared.contracts.events import DeadLetter
from shared.kafka.delivery import OutputTooLarge, check_record_size, is_permanent
from tests.unit.fakes import event, in_loop, settle, stream_acks


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


def test_an_output_over_the_record_limit_is_an_error_for_its_event() -> None:
    check_record_size(b"k", b"v" * 1000, 4096)
    with pytest.raises(OutputTooLarge, match="over KAFKA_MAX_MESSAGE_BYTES=4096"):
        check_record_size(b"k", b"v" * 4000, 4096)

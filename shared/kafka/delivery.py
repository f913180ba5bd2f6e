"""An input counts as done only once everything produced from it is on the broker.

Faust acknowledges an event when its handler returns, and ``topic.send`` only queues a record:
a record the broker then refuses (over the topic's ``max.message.bytes``, say) used to fail
after its input's offset was committed, and the input was lost without a trace. Here every
output record holds its input events' acknowledgement (a reference on faust's message) until
the broker confirms it. A record the broker can never accept dead-letters its inputs with the
reason; one that fails for a passing reason is sent again. Written once, for every service.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import errors as kerr
from faust.types import EventT, TopicT

from shared.contracts.events import DeadLetter, DeadLetterValue
from shared.kafka.dlq import dead_letter, dlq_headers

log = logging.getLogger(__name__)

# Inputs whose dead-lettering is remembered (to letter each once), more than a batch holds.
LETTERS_REMEMBERED = 65536

# Room for the record's own framing and headers beside its key and value.
RECORD_OVERHEAD_BYTES = 1024

# Refusals about the record itself: sending it again can never succeed.
PERMANENT: tuple[type[BaseException], ...] = (
    kerr.MessageSizeTooLargeError,
    kerr.RecordTooLargeError,
    kerr.InvalidTopicError,
    kerr.CorruptRecordException,
)


class OutputTooLarge(Exception):
    """A record the broker could never accept: dead-lettering its input is the only way on."""

    code = "OutputTooLarge"


def check_record_size(key: bytes | None, value: bytes, max_bytes: int) -> None:
    """Raise OutputTooLarge when a record is over ``max_bytes`` (KAFKA_MAX_MESSAGE_BYTES)."""
    size = len(key or b"") + len(value) + RECORD_OVERHEAD_BYTES
    if size > max_bytes:
        raise OutputTooLarge(
            f"the output record would be {size} bytes, over KAFKA_MAX_MESSAGE_BYTES={max_bytes}"
        )


def is_permanent(exc: BaseException) -> bool:
    """Whether a failed delivery can never succeed (its input must be dead-lettered)."""
    return isinstance(exc, PERMANENT)


def error_type(exc: BaseException) -> str:
    """The error type a dead letter records: an exception's ``code`` or its class name."""
    return str(getattr(exc, "code", None) or type(exc).__name__)


@dataclass
class Record:
    """One output record and the input events it was made from."""

    topic: TopicT
    key: bytes | None
    value: bytes | None
    sources: tuple[EventT[Any], ...]
    headers: list[tuple[str, bytes]] | None = None
    # a dead letter: its failure cannot be dead-lettered again
    letter: DeadLetter | None = None
    attempts: int = 0
    partition: int | None = None  # None: the key's partition


@dataclass
class Deliveries:
    """Sends an agent's records and holds each input's acknowledgement until they are delivered.

    ``stage`` names the service in dead letters; ``on_dead_letter`` is told each error type
    (for counters); ``retry_max_s`` caps the wait between attempts of a record that failed for
    a passing reason.
    """

    dlq: TopicT
    stage: str
    max_bytes: int
    on_dead_letter: Callable[[str], None] | None = None
    retry_max_s: float = 30.0
    # what a dead letter keeps of its input's value (LLMOPS_DLQ_VALUES)
    letter_values: DeadLetterValue = "redacted"
    pending: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # inputs dead-lettered lately: one is dead-lettered once, however many of its outputs
    # fail and however often a batch that held it is handled again record by record
    _lettered: OrderedDict[tuple[str, int, int], None] = field(default_factory=OrderedDict)

    async def send(
        self,
        sources: EventT[Any] | Sequence[EventT[Any]],
        topic: TopicT,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
    ) -> None:
        """Send a record made from ``sources``; they are acknowledged once it is delivered.
        A ``value`` of None is a tombstone (it deletes the key from a compacted topic);
        ``partition`` overrides the key's (a table's changelog follows its input's).

        A record over the limit raises OutputTooLarge here, inside the handler, so the
        consumer loop dead-letters the input with that reason.
        """
        check_record_size(key, value or b"", self.max_bytes)
        events = tuple(sources) if isinstance(sources, list | tuple) else (sources,)
        await self._send(Record(topic, key, value, events, partition=partition))

    async def forward(self, letter: DeadLetter, sources: Sequence[EventT[Any]]) -> None:
        """Send a dead letter made earlier (for a record no longer in hand, say one a service
        kept waiting); ``sources`` are acknowledged once it is delivered."""
        key = None if letter.key is None else letter.key.encode()
        await self._send(
            Record(self.dlq, key, letter.to_bytes(), tuple(sources), dlq_headers(letter), letter)
        )

    async def dead_letter(self, event: EventT[Any], stage: str, exc: BaseException) -> None:
        """Dead-letter ``event`` with the reason; it is acknowledged once the letter is
        delivered. An event is dead-lettered once, however many of its outputs fail."""
        msg = event.message
        where = (msg.topic, msg.partition, msg.offset)
        if where in self._lettered:
            return
        self._lettered[where] = None
        while len(self._lettered) > LETTERS_REMEMBERED:
            self._lettered.popitem(last=False)
        kind = error_type(exc)
        letter = dead_letter(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            value=msg.value,
            stage=stage,
            error_type=kind,
            error_message=str(exc) or repr(exc),
            values=self.letter_values,
        )
        log.warning(
            "dead-lettered %s[%d]@%d: %s: %s",
            msg.topic,
            msg.partition,
            msg.offset,
            kind,
            letter.error_message[:200],
        )
        if self.on_dead_letter is not None:
            self.on_dead_letter(kind)
        key = None if letter.key is None else letter.key.encode()
        await self._send(
            Record(self.dlq, key, letter.to_bytes(), (event,), dlq_headers(letter), letter)
        )

    def hold(self, event: EventT[Any]) -> None:
        """Keep ``event`` unacknowledged until ``release`` (a worker that must see more input
        before it can say what ``event`` produced: monitoring's open windows)."""
        event.message.incref()

    def release(self, events: Sequence[EventT[Any]]) -> None:
        """Drop the hold ``hold`` took on each of ``events``; one whose outputs are delivered
        (or that produced none) is acknowledged."""
        for event in events:
            event.message.ack(event.app.consumer)

    async def deliver(
        self,
        topic: TopicT,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send a record made from no input in hand and wait until the broker has it (what is
        written next relies on it: an alert's state after the alert, a swept state after the
        letter of the feedback it held). A failure raises here, for the caller's next try."""
        check_record_size(key, value or b"", self.max_bytes)
        sent = await topic.send(key=key, value=value, headers=headers, partition=partition)
        await sent

    async def deliver_letter(self, letter: DeadLetter) -> None:
        """``deliver`` a dead letter made earlier to the DLQ."""
        key = None if letter.key is None else letter.key.encode()
        await self.deliver(self.dlq, key, letter.to_bytes(), headers=dlq_headers(letter))

    async def _send(self, record: Record) -> None:
        """Queue ``record``; each of its inputs holds one more reference until it is settled."""
        for event in record.sources:
            event.message.incref()
        record.attempts += 1
        try:
            future = await record.topic.send(
                key=record.key,
                value=record.value,
                headers=record.headers,
                partition=record.partition,
            )
        except BaseException:
            for event in record.sources:
                event.message.decref()
            raise
        self.pending += 1
        asyncio.ensure_future(future).add_done_callback(lambda f: self._done(record, f))

    def _release(self, record: Record) -> None:
        """Drop ``record``'s references; an input whose last one this was is acknowledged."""
        self.release(record.sources)

    def _done(self, record: Record, future: asyncio.Future[Any]) -> None:
        self.pending -= 1
        if future.cancelled():
            return  # shutting down: the inputs stay unacknowledged and are redone on restart
        exc = future.exception()
        if exc is None:
            self._release(record)
            return
        task = asyncio.ensure_future(self._failed(record, exc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _failed(self, record: Record, exc: BaseException) -> None:
        """Keep ``record``'s hold on its inputs until another record holds them (the same
        record sent again, or their dead letters), then let it go."""
        while True:
            try:
                if not await self._recover(record, exc):
                    return  # keep the hold: stalling is better than losing the input
                break
            except asyncio.CancelledError:
                return
            except Exception as again:  # noqa: BLE001 - the recovery failed too: next step
                exc = again
        self._release(record)

    async def _recover(self, record: Record, exc: BaseException) -> bool:
        """Send again, or dead-letter; False when nothing more can be done."""
        if not is_permanent(exc):
            wait = min(self.retry_max_s, 0.5 * 2 ** min(record.attempts, 10))
            log.warning(
                "delivery to %s failed (%s: %s); sending again in %.1f s",
                record.topic.get_topic_name(),
                error_type(exc),
                exc,
                wait,
            )
            await asyncio.sleep(wait)
            await self._send(record)
            return True
        letter = record.letter
        if letter is None:
            for event in record.sources:
                await self.dead_letter(event, f"{self.stage}.deliver", exc)
            return True
        if letter.value_b64:
            # the letter is too large with the input inside: where the input is will do
            smaller = letter.model_copy(
                update={
                    "value_b64": "",
                    "error_message": f"{letter.error_message} (the input is left out of this "
                    f"letter: {error_type(exc)}; read it at its offset)",
                }
            )
            await self._send(
                Record(
                    self.dlq,
                    record.key,
                    smaller.to_bytes(),
                    record.sources,
                    dlq_headers(smaller),
                    smaller,
                )
            )
            return True
        log.error(
            "could not dead-letter %s[%d]@%d (%s): it stays unacknowledged",
            letter.topic,
            letter.partition,
            letter.offset,
            exc,
        )
        return False

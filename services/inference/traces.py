"""Publishes traces to ``inference.completed`` without ever holding up an answer (and
feedback to ``feedback.events``, where the caller waits for the broker's acknowledgement).

Traces go into a bounded in-memory buffer; a background task sends them with acks=all, in
batches: the first trace waits ``linger_ms`` for others, and they go out in one produce request.
A request per answer would put the event loop's and the broker's work beside every request
being served; on a small machine that showed in the latency tail. While Kafka is away traces
wait in the buffer; when it is full the newest trace is dropped and counted. Nothing here
raises into a request. A batch whose send fails is sent again after reconnecting, so delivery
is at least once (consumers key on ``trace_id``). A clean stop (SIGTERM) cuts the linger short
and waits, up to ``drain_s``, until the broker has acknowledged everything queued; a SIGKILL
loses what was queued or in flight: at most ``linger_ms`` of traces, or more while the broker
is away (up to ``capacity``). ``publish`` is the same path for a record
whose caller must know it is stored: it waits for the acknowledgement, up to a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from shared.contracts.events import Event, record_key

log = logging.getLogger(__name__)


class PublishFailed(RuntimeError):
    """A record could not be acknowledged in time (the broker is away, or the buffer full)."""


# An event, or how to make it: a trace's OpenTelemetry spans are built when it is sent, by
# this task, not in the request that made it.
Pending = Event | Callable[[], Event]
Item = tuple[Pending, "asyncio.Future[None] | None"]


@dataclass
class TracePublisher:
    """Bounded, non-blocking publishing of keyed events (traces, feedback)."""

    bootstrap: str
    topic: str
    capacity: int = 10_000
    linger_ms: int = 0
    max_batch: int = 500
    drain_s: float = 5.0
    sent: int = 0
    overflow: int = 0
    connected: bool = False
    _queue: asyncio.Queue[Item] | None = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _batch: list[Item] = field(default_factory=list, repr=False)  # taken, not yet acked
    _stopping: asyncio.Event | None = field(default=None, repr=False)

    def submit(self, trace: Pending, done: asyncio.Future[None] | None = None) -> bool:
        """Queue an event (or a function that makes it when it is sent); False (and
        counted) when the buffer is full."""
        if self._queue is None:
            self.overflow += 1
            return False
        try:
            self._queue.put_nowait((trace, done))
            return True
        except asyncio.QueueFull:
            self.overflow += 1
            if self.overflow == 1 or self.overflow % 1000 == 0:  # not a log line per request
                log.warning(
                    "trace buffer full (%d); %d traces dropped so far", self.capacity, self.overflow
                )
            return False

    async def publish(self, event: Event, timeout_s: float) -> None:
        """Queue ``event`` and wait until the broker has it; PublishFailed when it is not
        acknowledged within ``timeout_s`` (it may still go out later: consumers dedupe)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.submit(event, done):
            raise PublishFailed("the publishing buffer is full")
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout_s)
        except TimeoutError:
            raise PublishFailed(
                f"the broker did not acknowledge within {timeout_s:.0f} s"
            ) from None

    @property
    def pending(self) -> int:
        """Traces not yet acknowledged by Kafka (queued or in flight)."""
        return (self._queue.qsize() if self._queue else 0) + len(self._batch)

    async def start(self) -> None:
        """Start the background sender (it connects, and reconnects, by itself)."""
        self._queue = asyncio.Queue(maxsize=self.capacity)
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="trace-publisher")

    async def stop(self) -> None:
        """Send what is queued now (no more lingering), wait up to ``drain_s`` for the broker
        to acknowledge it, then stop; what is still unacknowledged is counted and said."""
        if self._task is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(self.drain_s):
                while self.pending:  # also while (re)connecting; bounded by drain_s
                    await asyncio.sleep(0.02)
        if self.pending:
            self.overflow += self.pending
            log.warning(
                "stopping with %d record(s) for %s not acknowledged in %.0f s: lost",
                self.pending,
                self.topic,
                self.drain_s,
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _linger(self) -> None:
        """Wait ``linger_ms`` for more records, or less when stopping."""
        assert self._stopping is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.linger_ms / 1000)

    def _take_ready(self) -> None:
        assert self._queue is not None
        while len(self._batch) < self.max_batch and not self._queue.empty():
            self._batch.append(self._queue.get_nowait())

    async def _run(self) -> None:
        assert self._queue is not None
        backoff = 0.5
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=10_000,
                max_batch_size=512 * 1024,  # a batch per partition; the gathering is done here
            )
            try:
                await producer.start()
                self.connected, backoff = True, 0.5
                while True:
                    if not self._batch:  # a failed batch is kept across reconnects
                        self._batch.append(await self._queue.get())
                        if self._queue.qsize() < self.max_batch:  # a full batch goes at once
                            await self._linger()
                    self._take_ready()
                    self._batch = [(made(t), done) for t, done in self._batch]
                    sends = [
                        await producer.send(self.topic, key=record_key(e), value=e.to_bytes())
                        for e in (made(t) for t, _ in self._batch)  # (each made once above)
                    ]
                    await asyncio.gather(*sends)
                    self.sent += len(self._batch)
                    for _, done in self._batch:
                        if done is not None and not done.done():
                            done.set_result(None)
                    self._batch = []
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka away: keep buffering, retry
                log.warning("trace publishing paused (%s); %d waiting", exc, self.pending)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await producer.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


def made(pending: Pending) -> Event:
    """The event itself: made now if it was queued as how to make it."""
    return pending if isinstance(pending, Event) else pending()

"""Stand-ins for what a worker talks to, around faust's own message objects: a consumer that
records acknowledgements, a topic whose deliveries the test settles by hand, events as the
stream hands them over. Shared by the delivery tests and every worker's tests."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faust.types.tuples import ConsumerMessage


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
    # the broker confirms each record at once (for records a test only counts)
    auto: bool = False

    def get_topic_name(self) -> str:
        return self.name

    async def send(
        self, key: bytes | None, value: bytes, headers: Any = None, partition: Any = None
    ) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.auto:
            fut.set_result("meta")
        self.sent.append((key, value, fut))
        return fut


def event(
    consumer: Consumer,
    offset: int,
    value: bytes | None = b"in",
    *,
    topic: str = "src",
    key: bytes | None = b"k",
    partition: int = 0,
) -> Any:
    """An event as faust's stream hands it to a handler: its message holds the stream's own
    reference, which ``stream_acks`` drops."""
    msg = ConsumerMessage(topic, partition, offset, 0.0, 0, None, key, value, None)
    msg.incref()  # the stream's own reference, as faust takes it
    return SimpleNamespace(message=msg, app=SimpleNamespace(consumer=consumer))


def deliver_all(topic: Topic) -> None:
    """The broker confirms every record ``topic`` holds that is not settled yet."""
    for _, _, fut in topic.sent:
        if not fut.done():
            fut.set_result("meta")


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

"""Background stages (engine/threads.py): a prefetching producer and a queued consumer."""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Generator, Iterator
from contextlib import closing
from typing import Any, TypeVar, cast

import pytest

from lipsync_api.engine.threads import Consumer, prefetched

T = TypeVar("T")
WAIT = 10.0  # seconds: only a bound on how long a broken implementation may hang the suite
HANG = 2.0  # seconds after which a close that should return at once counts as hung


def prefetch(items: Iterator[T], depth: int) -> Generator[T, None, None]:
    """``prefetched``, typed as the generator it is, so that tests may close it."""
    return cast(Generator[T, None, None], prefetched(items, depth))


def threads_named(name: str, before: set[threading.Thread]) -> list[threading.Thread]:
    """Live threads called ``name`` that were not running in ``before``."""
    return [t for t in threading.enumerate() if t.name == name and t not in before]


def assert_stopped(name: str, before: set[threading.Thread]) -> None:
    for thread in threads_named(name, before):
        thread.join(timeout=WAIT)
    assert threads_named(name, before) == []


class Boom(Exception):
    pass


# --- prefetched --------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 4])
def test_prefetched_yields_every_item_in_order(depth: int) -> None:
    before = set(threading.enumerate())
    assert list(prefetched(iter(range(200)), depth)) == list(range(200))
    assert_stopped("prefetch", before)


def test_prefetched_of_nothing_yields_nothing() -> None:
    assert list(prefetched(iter([]))) == []


def test_prefetched_produces_on_a_thread_called_prefetch() -> None:
    producers: list[str] = []

    def source() -> Iterator[int]:
        for i in range(3):
            producers.append(threading.current_thread().name)
            yield i

    assert list(prefetched(source())) == [0, 1, 2]
    assert producers == ["prefetch"] * 3


def test_source_error_reaches_the_consumer_after_the_items_before_it() -> None:
    before = set(threading.enumerate())

    def source() -> Iterator[int]:
        yield from range(3)
        raise Boom("source broke")

    received: list[int] = []
    with pytest.raises(Boom, match="source broke"):
        for item in prefetched(source(), depth=2):
            received.append(item)
    assert received == [0, 1, 2]
    assert_stopped("prefetch", before)


def test_source_error_on_the_first_item_is_raised() -> None:
    def source() -> Iterator[int]:
        raise Boom("nothing to give")
        yield 0  # a generator that fails at once

    with pytest.raises(Boom, match="nothing to give"):
        next(prefetched(source()))


@pytest.mark.parametrize("taken", [1, 3, 10])
def test_closing_early_stops_the_producer(taken: int) -> None:
    before = set(threading.enumerate())
    produced: list[int] = []

    def source() -> Iterator[int]:  # endless: the producer is always ahead, waiting for room
        for i in itertools.count():
            produced.append(i)
            yield i

    items = prefetch(source(), depth=2)
    assert [next(items) for _ in range(taken)] == list(range(taken))
    items.close()
    assert_stopped("prefetch", before)
    assert len(produced) <= taken + 2 + 1  # it stopped drawing from the source


def test_abandoning_a_loop_inside_closing_stops_the_producer() -> None:
    before = set(threading.enumerate())
    with closing(prefetch(itertools.count(), depth=3)) as items:
        for item in items:
            if item == 5:
                break
    assert_stopped("prefetch", before)


def test_closing_with_exactly_depth_items_left_does_not_hang() -> None:
    depth = 4
    exhausted = threading.Event()

    def source() -> Iterator[int]:
        yield from range(depth + 1)
        exhausted.set()

    items = prefetch(source(), depth)
    assert next(items) == 0
    assert exhausted.wait(WAIT)  # the other `depth` items fill the queue
    closer = threading.Thread(target=items.close, name="closer", daemon=True)
    closer.start()
    closer.join(timeout=HANG)
    hung = closer.is_alive()
    if hung:  # free the blocked producer so that no thread outlives the test
        inspect.getgeneratorlocals(items)["buffer"].get_nowait()
        closer.join(timeout=WAIT)
    assert not hung


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_producer_runs_at_most_depth_items_ahead(depth: int) -> None:
    produced: list[int] = []
    full = threading.Event()

    def source() -> Iterator[int]:
        for i in itertools.count():
            produced.append(i)
            if i == depth + 1:
                full.set()
            yield i

    with closing(prefetch(source(), depth)) as items:
        assert next(items) == 0
        # One item handed out, ``depth`` queued and one more drawn while waiting for room.
        assert full.wait(WAIT)
        assert len(produced) == depth + 2
        for received in range(2, 60):
            assert next(items) == received - 1
            assert len(produced) <= received + depth + 1


# --- Consumer ----------------------------------------------------------------------------------


def test_consumer_consumes_every_item_in_order_on_another_thread() -> None:
    consumed: list[int] = []
    workers: set[str] = set()

    def consume(item: int) -> None:
        workers.add(threading.current_thread().name)
        consumed.append(item)

    before = set(threading.enumerate())
    consumer: Consumer[int] = Consumer(consume, depth=3)
    for i in range(200):
        consumer.put(i)
    consumer.finish()
    assert consumed == list(range(200))
    assert workers == {"consumer"}
    assert_stopped("consumer", before)


def test_finish_waits_for_every_queued_item() -> None:
    gate = threading.Event()
    consumed: list[int] = []

    def consume(item: int) -> None:
        gate.wait(WAIT)
        consumed.append(item)

    consumer: Consumer[int] = Consumer(consume, depth=8)
    for i in range(5):
        consumer.put(i)
    finisher = threading.Thread(target=consumer.finish, name="finisher", daemon=True)
    finisher.start()
    finisher.join(timeout=0.05)
    assert finisher.is_alive()  # held at the gate: finish cannot have returned
    assert consumed == []
    gate.set()
    finisher.join(timeout=WAIT)
    assert not finisher.is_alive()
    assert consumed == list(range(5))


def test_finish_with_nothing_put_returns() -> None:
    before = set(threading.enumerate())
    consumer: Consumer[Any] = Consumer(lambda item: None)
    consumer.finish()
    assert_stopped("consumer", before)


def test_put_blocks_while_depth_items_wait() -> None:
    gate = threading.Event()
    depth = 2

    def consume(item: int) -> None:
        gate.wait(WAIT)

    consumer: Consumer[int] = Consumer(consume, depth=depth)
    for i in range(depth + 1):  # one in consume (held at the gate), ``depth`` queued
        consumer.put(i)
    extra = threading.Thread(target=consumer.put, args=(depth + 1,), name="extra", daemon=True)
    extra.start()
    extra.join(timeout=0.05)
    assert extra.is_alive()  # no room: it waits for consume
    gate.set()
    extra.join(timeout=WAIT)
    assert not extra.is_alive()
    consumer.finish()


def test_failing_consume_raises_on_a_later_put() -> None:
    consumed: list[int] = []

    def consume(item: int) -> None:
        if item == 2:
            raise Boom("encoder broke")
        consumed.append(item)

    before = set(threading.enumerate())
    consumer: Consumer[int] = Consumer(consume, depth=1)
    for i in range(3):
        consumer.put(i)
    # depth 1: the third put after the failing item cannot return before consume has failed.
    with pytest.raises(Boom, match="encoder broke"):
        for i in range(3, 6):
            consumer.put(i)
    assert consumed == [0, 1]  # nothing after the failure is consumed
    with pytest.raises(Boom, match="encoder broke"):
        consumer.finish()
    assert consumed == [0, 1]
    assert_stopped("consumer", before)


def test_failing_consume_raises_on_finish() -> None:
    consumed: list[int] = []

    def consume(item: int) -> None:
        if item == 4:
            raise Boom("last frame broke")
        consumed.append(item)

    consumer: Consumer[int] = Consumer(consume, depth=8)
    for i in range(5):
        consumer.put(i)
    with pytest.raises(Boom, match="last frame broke"):
        consumer.finish()
    assert consumed == [0, 1, 2, 3]


def test_consumer_error_is_the_original_exception() -> None:
    error = Boom("kept as is")

    def consume(item: int) -> None:
        raise error

    consumer: Consumer[int] = Consumer(consume)
    consumer.put(0)
    with pytest.raises(Boom) as raised:
        consumer.finish()
    assert raised.value is error

"""Overlapping stages on separate threads: PyAV decoding and encoding release the GIL, so a decoder
running ahead of face tracking, or an encoder behind the renderer, uses the second core."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Yield ``items`` while a background thread produces up to ``depth`` of them ahead."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        """Queue one item unless the consumer has gone away; False once it has."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_Failure(error))

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


class Consumer(Generic[T]):
    """Hands items to ``consume`` on a background thread, at most ``depth`` waiting; errors resurface."""

    def __init__(self, consume: Callable[[T], None], depth: int = 4) -> None:
        self._consume = consume
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:
                try:
                    self._consume(item)  # type: ignore[arg-type]
                except BaseException as error:  # kept, raised in the producer's thread
                    self._error = error

    def put(self, item: T) -> None:
        """Queue one item (blocks while ``depth`` are waiting); raises an earlier failure of ``consume``."""
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def finish(self) -> None:
        """Wait until every queued item is consumed; raises a failure of ``consume``."""
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

"""Read the next input in a background thread while the current one is worked on.

Decoding a 12 MP PNG and converting it to float takes 0.25-0.7 s on one core; the network
opening (OpenVINO's compile) and the previous image's denoising leave that core's time to spare
only if the read runs beside them. :class:`ReadAhead` starts reading the first input when it is
created (before the caller opens its network) and, each time an input is taken, the next one.
Errors (an :class:`~atbsn_edge.errors.ImageError`, ``MemoryError``) are raised by
:meth:`ReadAhead.get`, in the caller's thread, for the input they belong to.

Memory: at most ``depth`` inputs beyond the one being worked on (one, by default), and only
those that ``ahead`` accepts (``denoise`` reads ahead images of up to
:data:`READ_AHEAD_MAX_PIXELS`; a larger one is read when its turn comes). The reading thread
is a daemon: an interrupted or failed run exits without waiting for a read in progress (a
read writes nothing).
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
P = TypeVar("P")

READ_AHEAD_MAX_PIXELS = 50_000_000  # about 600 MB as float32 RGB, beside the image in work
_DEFERRED = object()  # a read ahead that ``ahead`` declined: read when the input is taken


class _DaemonWorker:
    """One daemon thread running submitted calls in order (a ThreadPoolExecutor's threads
    are joined at interpreter exit, which would wait for a read in progress)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="atbsn-read", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], object]) -> Future:
        future: Future = Future()
        self._calls.put((future, call))
        return future

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before it started
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller's thread by get()
                future.set_exception(exc)

    def stop(self, wait: bool) -> None:
        self._calls.put(None)
        if wait:
            self._thread.join()


class ReadAhead(Generic[P, T]):
    """``read(sources[i])`` for i = 0, 1, ... in order, each started in a background thread
    ``depth`` inputs ahead of the one :meth:`get` last returned (where ``ahead(source)``
    allows it); a context manager."""

    def __init__(self, read: Callable[[P], T], sources: Sequence[P], depth: int = 1,
                 ahead: Callable[[P], bool] | None = None) -> None:
        if depth < 0:
            raise ValueError(f"depth must be 0 or more, got {depth}")
        self._read = read
        self._ahead = ahead
        self._sources = list(sources)
        self._depth = depth
        self._worker = _DaemonWorker()
        self._futures: dict[int, Future] = {}
        self._submitted = 0
        self._taken = -1
        self._submit_through(0)  # the first input starts now, before the caller's set-up

    def _read_ahead(self, source: P) -> T | object:
        if self._ahead is not None and not self._ahead(source):
            return _DEFERRED
        return self._read(source)

    def _submit_through(self, index: int) -> None:
        while self._submitted <= min(index, len(self._sources) - 1):
            source = self._sources[self._submitted]
            needed_now = self._submitted <= self._taken + 1
            read = self._read if needed_now else self._read_ahead
            self._futures[self._submitted] = self._worker.submit(lambda r=read, s=source: r(s))
            self._submitted += 1

    def get(self, index: int) -> T:
        """The result of reading ``sources[index]`` (or its exception, raised here). Inputs
        before ``index`` that were never taken are dropped; the ones up to ``index + depth``
        start reading."""
        if not 0 <= index < len(self._sources):
            raise IndexError(f"input {index} of {len(self._sources)}")
        if index <= self._taken:
            raise ValueError(f"input {index} was taken already; take inputs in order")
        for skipped in [i for i in self._futures if i < index]:
            self._futures.pop(skipped).cancel()
        self._taken = index - 1
        self._submit_through(index)
        future = self._futures.pop(index)
        self._taken = index
        self._submit_through(index + self._depth)  # queued behind this one: no idle gap
        result = future.result()
        return self._read(self._sources[index]) if result is _DEFERRED else result

    def close(self, wait: bool = False) -> None:
        """Cancel the reads not started; one in progress finishes in the background (``wait``:
        return once it has)."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._worker.stop(wait)

    def __enter__(self) -> "ReadAhead[P, T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Read the next input in a background thread while the current one is worked on.

Decoding a 12 MP PNG and converting it to float takes 0.25-0.7 s on one core; the network
opening (OpenVINO's compile) and the previous image's denoising leave that core's time to spare
only if the read runs beside them. :class:`ReadAhead` starts reading the first input when it is
created (before the caller opens its network) and, each time an input is taken, the next one.
Errors (an :class:`~atbsn_edge.errors.ImageError`, ``MemoryError``) are raised by
:meth:`ReadAhead.get`, in the caller's thread, for the input they belong to.

Memory: at most ``depth`` inputs beyond the one being worked on (one, by default).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
P = TypeVar("P")


class ReadAhead(Generic[P, T]):
    """``read(sources[i])`` for i = 0, 1, ... in order, each started in a background thread
    ``depth`` inputs ahead of the one :meth:`get` last returned; a context manager."""

    def __init__(self, read: Callable[[P], T], sources: Sequence[P], depth: int = 1) -> None:
        if depth < 0:
            raise ValueError(f"depth must be 0 or more, got {depth}")
        self._read = read
        self._sources = list(sources)
        self._depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atbsn-read")
        self._futures: dict[int, Future] = {}
        self._submitted = 0
        self._submit_through(0)  # the first input starts now, before the caller's set-up

    def _submit_through(self, index: int) -> None:
        while self._submitted <= min(index, len(self._sources) - 1):
            self._futures[self._submitted] = self._pool.submit(
                self._read, self._sources[self._submitted])
            self._submitted += 1

    def get(self, index: int) -> T:
        """The result of reading ``sources[index]`` (or its exception, raised here). Inputs
        before ``index`` that were never taken are dropped; the ones up to ``index + depth``
        start reading."""
        if not 0 <= index < len(self._sources):
            raise IndexError(f"input {index} of {len(self._sources)}")
        for skipped in [i for i in self._futures if i < index]:
            self._futures.pop(skipped).cancel()
        self._submit_through(index)
        future = self._futures.pop(index, None)
        if future is None:
            raise ValueError(f"input {index} was taken already; take inputs in order")
        self._submit_through(index + self._depth)  # queued behind this one: no idle gap
        return future.result()

    def close(self) -> None:
        """Cancel the reads not started; one in progress finishes in the background."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "ReadAhead[P, T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

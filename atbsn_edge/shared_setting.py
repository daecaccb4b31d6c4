"""A process-wide setting of another library, changed only while this toolkit needs it.

Pillow's decompression-bomb limit, OpenCV's log level and the coremltools logger's level are
globals of their libraries:
the application that imports atbsn-edge owns them. :class:`SharedOverride` changes one for
the time of a call and puts the application's value back when the last of the threads
using it is done (saved and restored one by one, two threads left it changed for good).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator


class SharedOverride:
    """``value`` set through ``set_value`` while any caller is inside :meth:`applied`; the
    value ``get_value`` read before the first caller entered is restored after the last one
    left. Counted under a lock, so that threads may enter and leave in any order."""

    def __init__(self, get_value: Callable[[], Any], set_value: Callable[[Any], None],
                 value: Any) -> None:
        self._get, self._set, self._value = get_value, set_value, value
        self._lock = threading.Lock()
        self._users = 0
        self._saved: Any = None

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The override in force for the ``with`` block."""
        with self._lock:
            if self._users == 0:
                self._saved = self._get()
                self._set(self._value)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._set(self._saved)

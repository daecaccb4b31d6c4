"""Per-pixel work on large images, split into bands of rows that run on every core.

numpy and OpenCV release the GIL inside each call, so the bands of a 12 MP image run in
parallel in threads: the input's conversion to float RGB, the strength blend (the residual,
its energy, the blend) and the conversion to stored pixels, which had taken 0.3-0.6 s on one
core after or before the network's use of both (docs/tiling.md); the PNG encoder
(``png_encoder.py``) compresses its parts the same way. Each band computes exactly what the
whole-image call computes on its rows: the results are the same to the bit.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

ROWS_PER_BAND = 256
T = TypeVar("T")
MAX_WORKERS = 4


def band_workers() -> int:
    """Threads for band work: the cores this process may use, at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


_pools: dict[int, ThreadPoolExecutor] = {}  # by process id: a forked child gets its own
_pools_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """This process's band threads (a pool inherited through ``fork`` has no threads)."""
    pid = os.getpid()
    with _pools_lock:
        if pid not in _pools:
            _pools.clear()
            _pools[pid] = ThreadPoolExecutor(max_workers=band_workers(),
                                             thread_name_prefix="atbsn-band")
        return _pools[pid]


def map_bands(height: int, work: Callable[[int, int], T],
              rows: int = ROWS_PER_BAND) -> list[T]:
    """``[work(start, stop) for each band]`` over consecutive row bands covering
    ``0..height``, in parallel where there is more than one band and one core; the first
    exception is raised here, after every band has finished (no band is left writing into
    the caller's arrays)."""
    bands = [(start, min(start + rows, height)) for start in range(0, height, rows)]
    if len(bands) <= 1 or band_workers() == 1:
        return [work(start, stop) for start, stop in bands]
    futures = [_pool().submit(work, start, stop) for start, stop in bands]
    errors = [future.exception() for future in futures]  # waits for every band
    for error in errors:
        if error is not None:
            raise error
    return [future.result() for future in futures]


def for_each_band(height: int, work: Callable[[int, int], None],
                  rows: int = ROWS_PER_BAND) -> None:
    """:func:`map_bands` for work that writes its results itself."""
    map_bands(height, work, rows)

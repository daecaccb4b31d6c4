"""One interface over every inference backend (Polygraphy-style: public method, ``_impl`` hook).

A runtime takes float32 N x 3 x H x W batches on the 0..255 scale and returns the same shape.
Its :class:`InputSpec` says which shapes it accepts (static tiles, or any multiple of the
stride), and the tiler reads the tile shape from there.

:meth:`Runtime.run_many` takes a stream of batches and yields their outputs in the same
order. By default it runs them one after another; a backend that can keep several batches
in flight (OpenVINO with the throughput hint) overrides ``_infer_many_impl``.
"""
from __future__ import annotations

import abc
import collections
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from ..bundle.metadata import ArtifactMetadata
from ..errors import AtbsnError
from ..tiling import AUTO_TILE_AREA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    """Accepted input: ``batch``, ``height``, ``width`` are fixed ints or None for dynamic."""

    batch: int | None
    height: int | None
    width: int | None
    stride: int
    channels: int = 3
    name: str = "input"

    def check(self, array: np.ndarray) -> None:
        """Raise :class:`AtbsnError` when ``array`` is not a batch this runtime can take."""
        if array.ndim != 4:
            raise AtbsnError(f"expected an N x C x H x W batch, got shape {array.shape}")
        n, c, h, w = array.shape
        if c != self.channels:
            raise AtbsnError(f"the model takes {self.channels} channels, the input has {c}")
        for label, got, want in (("batch", n, self.batch), ("height", h, self.height),
                                 ("width", w, self.width)):
            if want is not None and got != want:
                raise AtbsnError(f"input {label} {got} does not match the model's fixed {label} "
                                 f"{want}; tile the image (atbsn_edge.tiling) or re-export")
        if self.height is None and h % self.stride or self.width is None and w % self.stride:
            raise AtbsnError(f"input {h}x{w} is not a multiple of the stride {self.stride}")


@dataclass
class RuntimeInfo:
    """What a runtime knows about the model it runs (read from the artifact's metadata).

    ``default_overlap`` is the tile overlap the network needs; ``device`` where it runs
    (``CPU``, ``cuda:0 NVIDIA Orin``, ...); ``inference_precision`` what the backend computes
    in when that differs from the artifact's precision (OpenVINO's bf16 for an fp16 IR)."""

    backend: str
    model: str
    precision: str
    hole_size: int | None
    default_overlap: int
    device: str
    inference_precision: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, backend: str, metadata: ArtifactMetadata, device: str,
                      **extra: Any) -> "RuntimeInfo":
        """The info of an exported artifact, from its parsed metadata."""
        raw = dict(metadata.raw)
        raw.update({k: str(v) for k, v in extra.items() if v is not None})
        return cls(backend=backend, model=metadata.model, precision=metadata.precision,
                   hole_size=metadata.hole_size, default_overlap=metadata.default_overlap,
                   device=device, inference_precision=extra.get("inference_precision"),
                   metadata=raw)


#: the most threads a runtime is given, per CPU of the machine (more only oversubscribes the
#: cores; each thread also takes memory: 100,000 took 22 GB and killed the process)
MAX_THREADS_PER_CPU = 4
#: the most infer requests in flight (each holds its own input and output tensors)
MAX_REQUESTS = 64


def check_counts(threads: Any = None, infer_requests: Any = None) -> None:
    """Refuse a ``threads`` outside 0 (the backend's default) to :data:`MAX_THREADS_PER_CPU`
    per CPU, and ``infer_requests`` outside 0 (the default) to :data:`MAX_REQUESTS` (None: not
    given)."""
    cpus = os.cpu_count() or 1
    top = MAX_THREADS_PER_CPU * cpus
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 0 <= threads <= top):
        raise AtbsnError(f"threads={threads!r}: give 0 (the backend's default) to {top} "
                         f"({MAX_THREADS_PER_CPU}x the {cpus} CPUs of this machine; about "
                         f"{cpus} is fastest)")
    if infer_requests is not None and (isinstance(infer_requests, bool)
                                       or not isinstance(infer_requests, int)
                                       or not 0 <= infer_requests <= MAX_REQUESTS):
        raise AtbsnError(f"infer_requests={infer_requests!r}: give 0 (the default: one per "
                         f"stream, which keeps the CPU busy) to {MAX_REQUESTS}")


class Runtime(abc.ABC):
    """Base class: ``infer`` validates and delegates to ``_infer_impl``; usable as a context."""

    backend: str = ""
    reshapable: bool = False
    """True where a static tile shape can be changed after opening (:meth:`set_tile_shape`)."""
    auto_tile_area: int = AUTO_TILE_AREA
    """The largest tile ``--tile auto`` gives this backend, in pixels: a bound on the memory a
    tile in flight takes, which depends on the backend (docs/tiling.md)."""

    def __init__(self) -> None:
        self._closed = False
        # one network call or recompile at a time: a backend's request and its output buffer
        # are shared, and two threads calling at once got each other's output (OpenVINO)
        self._lock = threading.RLock()

    @property
    @abc.abstractmethod
    def input_spec(self) -> InputSpec:
        """The shapes this runtime accepts."""

    @property
    @abc.abstractmethod
    def info(self) -> RuntimeInfo:
        """Model, precision and metadata of what is loaded."""

    @property
    def any_tile_shape(self) -> bool:
        """Whether this runtime takes tiles of any shape on its stride: a dynamic input, or a
        static one it recompiles for (:meth:`set_tile_shape`)."""
        spec = self.input_spec
        return self.reshapable or (spec.height is None and spec.width is None)

    def set_tile_shape(self, height: int, width: int) -> None:
        """Take ``height`` x ``width`` tiles from now on: nothing to do where the input is
        dynamic or already that shape; a backend that can recompile a static input for
        another shape (``reshapable``) does it in ``_set_tile_shape_impl``; others raise
        :class:`AtbsnError`."""
        spec = self.input_spec
        if spec.height in (None, height) and spec.width in (None, width):
            return
        if not self.reshapable:
            raise AtbsnError(f"the {self.backend} artifact's tile is fixed at "
                             f"{spec.height}x{spec.width} and cannot become {height}x{width}: "
                             "drop --tile, or re-export with that --tile (or --dynamic)")
        if height <= 0 or width <= 0 or height % spec.stride or width % spec.stride:
            raise AtbsnError(f"tile {height}x{width}: each side must be a positive multiple of "
                             f"the network's stride {spec.stride}")
        with self._lock:
            self._set_tile_shape_impl(height, width)

    def ready_tile_shapes(self) -> list[tuple[int, int]]:
        """Tile shapes this runtime runs without recompiling: none to prefer where any shape
        is free (a dynamic input), its static shape otherwise; a reshapable backend adds the
        shapes it keeps compiled."""
        spec = self.input_spec
        if spec.height is None or spec.width is None:
            return []
        return [(spec.height, spec.width)]

    def _set_tile_shape_impl(self, height: int, width: int) -> None:
        """Backend-specific: recompile for ``height`` x ``width`` tiles (``reshapable``
        backends only)."""
        raise NotImplementedError(f"{type(self).__name__} is not reshapable")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one float32 N x 3 x H x W batch (0..255) and return the denoised batch."""
        checked = self._checked(batch)
        with self._lock:
            return self._infer_impl(checked)

    def _checked(self, batch: np.ndarray) -> np.ndarray:
        """``batch`` as a contiguous float32 array this open runtime accepts."""
        if self._closed:
            raise AtbsnError(f"{self.backend} runtime is closed")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self.input_spec.check(batch)
        return batch

    def _fixed_chunks(self, batch: np.ndarray) -> list[np.ndarray]:
        """``batch`` split into, or zero-padded up to, the artifact's fixed batch size (one
        chunk, ``batch`` itself, when the batch is dynamic or already that size)."""
        if not len(batch):
            raise AtbsnError(f"an empty batch (shape {batch.shape}): give at least one image")
        fixed = self.input_spec.batch
        if fixed is None or len(batch) == fixed:
            return [batch]
        chunks = []
        for start in range(0, len(batch), fixed):
            chunk = batch[start:start + fixed]
            padded = np.zeros((fixed,) + batch.shape[1:], dtype=np.float32)
            padded[:len(chunk)] = chunk
            chunks.append(padded)
        return chunks

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Like :meth:`infer` for any batch size: split into, or zero-pad up to, the
        artifact's fixed batch size when it has one."""
        outputs = [self.infer(chunk) for chunk in self._fixed_chunks(batch)]
        return (outputs[0] if len(outputs) == 1 else np.concatenate(outputs))[:len(batch)]

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """:meth:`infer` over a stream of batches: yields each output, in input order.

        Batches are drawn from ``batches`` only as the backend can take them, so a lazy
        generator keeps memory to the batches in flight. Not re-entrant: finish (or close)
        one stream before starting another on the same runtime."""
        yield from self._infer_many_impl(self._checked(batch) for batch in batches)

    def run_many(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """:meth:`run` over a stream of batches of any size: yields each output, in input
        order, with as many network calls in flight as the backend keeps (see
        :meth:`infer_many`)."""
        layout: collections.deque[tuple[int, int]] = collections.deque()  # (chunks, rows)

        def chunks() -> Iterator[np.ndarray]:
            for batch in batches:
                pieces = self._fixed_chunks(np.asarray(batch))
                layout.append((len(pieces), len(batch)))
                yield from pieces

        parts: list[np.ndarray] = []
        outputs = self.infer_many(chunks())
        try:
            for output in outputs:
                parts.append(output)
                count, rows = layout[0]
                if len(parts) == count:
                    layout.popleft()
                    yield (parts[0] if count == 1 else np.concatenate(parts))[:rows]
                    parts = []
        finally:
            outputs.close()  # left early: the backend finishes what it has in flight

    @abc.abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        """Backend-specific inference on a validated batch."""

    def _infer_many_impl(self, batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Backend-specific inference on a stream of validated batches, outputs in input
        order (default: one at a time through ``_infer_impl``)."""
        for batch in batches:
            with self._lock:
                output = self._infer_impl(batch)
            yield output

    def close(self) -> None:
        """Release the backend's resources; idempotent."""
        if not self._closed:
            self._close_impl()
            self._closed = True

    def _close_impl(self) -> None:
        """Backend-specific clean-up (default: nothing)."""

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

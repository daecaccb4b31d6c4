"""OpenVINO backend: an IR compiled for the CPU with an explicit inference precision.

OpenVINO's CPU plugin computes in its *default* reduced float type (bf16 on CPUs with bf16
units: AMX, or AVX512-BF16 as on the AMD EPYC development machines), which would make an
"fp32" artifact's parity bf16's (~2.5e-3 relative) rather than float rounding. So the hint is
always set, from the artifact's precision and the device:

- fp32 -> f32;
- fp16 and int8 (its layers kept in float) -> the device's own default inference precision,
  the reduced float type OpenVINO picks for that CPU (bf16 with AMX or AVX512-BF16, f32
  without). Capability flags are not enough: a Xeon with AMX also reports FP16 (AVX512-FP16),
  and there student C's fp16 IR took 537 ms in f16 against 97 ms in bf16, its int8 IR 169-193
  against 92 ms (f16 runs on vector units, bf16 on the AMX matrix units; issue 12's figures);
  on the EPYC (no FP16) the default is bf16 too, measured fastest there
  (``benchmarks/inference_precision.py`` times every hint on the CPU at hand).

``inference_precision=`` (``--inference-precision``) overrides the choice; nothing of it is
stored in the bundle, and ``info.inference_precision`` says what ran.

An int8 IR is compiled with the CPU plugin's snippets off (:data:`INT8_COMPILE_PROPERTIES`):
then the requantization between two int8 layers (each decoder's sum, its LeakyReLU and the next
quantizer) fuses into the convolution as post-ops instead of running as a separate JIT
``Subgraph`` pass over the map. On the AMX Xeon that pass is 7 ms of the default bundle's 50 at
512 x 512 (the 96-channel full-resolution map of ``dec1``), and the bundle runs 1.12-1.16x faster
without it; on the AVX-512 EPYC the two were within that VM's run-to-run spread (docs/export.md,
"OpenVINO's snippets"). Float IRs and NNCF's mixed int8 IR compute the same either way and are
left at OpenVINO's default.

Throughput: the ``THROUGHPUT`` hint compiles several CPU streams, and only several infer
requests in flight use them. :meth:`Runtime.run_many` (the tiler's path) then keeps
``infer_requests`` (default: the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``)
batches in flight on as many asynchronous infer requests, each output copied out of its
request before the request is reused, and yields them in input order. (Not
``openvino.AsyncInferQueue``: its Python callback is freed on an OpenVINO stream thread that
takes the GIL, and closing the compiled model hung on it with OpenVINO 2026.4.) The ``LATENCY`` hint
compiles one stream: one request, the synchronous path. :func:`auto_performance_hint` chooses
between them for the images at hand (``denoise``'s default): throughput once an image needs
several tiles, measured at least as fast for a 12 MP photo on the AMX Xeon and the AVX-512
EPYC, and with OpenVINO capped at AVX2 (docs/tiling.md); latency for an image of one tile,
which then gets every thread.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..bundle.metadata import ArtifactMetadata, read_openvino_metadata
from ..errors import AtbsnError, require
from ..tiling import (DEFAULT_TILE, TileSpec, overlap_for_tile, plan_tiles, preferred_tile_shape,
                      round_up)
from .base import InputSpec, Runtime, RuntimeInfo
from .openvino_cache import compile_cache_dir

log = logging.getLogger(__name__)


HINTS = ("f32", "bf16", "f16")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT")
COMPILED_SHAPES_KEPT = 3  # tile shapes an OpenVINO runtime keeps compiled besides the IR's own
# --tile auto's largest tile: OpenVINO computes a pixel of student C in about a third of the
# memory PyTorch takes, so 1 MP tiles, two in flight, peak where PyTorch's 0.5 MP tile does
# (the 12 MP photo: int8 1.41 GB, fp16 1.10 GB, against the checkpoint's 1.37 GB; docs/tiling.md)
OPENVINO_AUTO_TILE_AREA = 1024 * 1024
#: compile properties of an int8 IR on top of the precision and performance hints (module doc)
INT8_COMPILE_PROPERTIES: dict[str, str] = {"SNIPPETS_MODE": "DISABLE"}
_TYPE_NAMES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16",
               "f16": "f16", "float16": "f16"}


@functools.lru_cache(maxsize=1)
def openvino_core() -> Any:
    """The process's one ``openvino.Core``, kept until exit.

    OpenVINO's CPU plugin sets an alternate signal stack for the thread that creates it and
    puts back the one it found when it is destroyed; Cores created and freed out of order
    (a runtime kept open while another Core comes and goes) left the main thread's pointing
    at freed memory, and the next signal (SIGTERM, Ctrl-C) crashed the process with SIGSEGV
    instead of exiting 143. One Core for every runtime and read avoids it, and its plugin is
    loaded once."""
    return require("openvino", "openvino").Core()


def _openvino_version() -> str:
    return str(getattr(require("openvino", "openvino"), "__version__", "?"))


def choose_inference_precision(precision: str, device_default: str,
                               requested: str | None = None) -> str:
    """The ``INFERENCE_PRECISION_HINT`` for an artifact ``precision`` on a device whose own
    default hint is ``device_default`` (``requested`` overrides unless it is None/"auto")."""
    if requested not in (None, "", "auto"):
        if requested not in HINTS:
            raise AtbsnError(f"--inference-precision {requested!r}: valid are auto, "
                             f"{', '.join(HINTS)}")
        return requested
    if precision == "fp32":
        return "f32"
    return _TYPE_NAMES.get(str(device_default).lower(), "f32")


def performance_hint_name(hint: str) -> str:
    """``hint`` as OpenVINO spells it (``latency`` -> ``LATENCY``), or :class:`AtbsnError`."""
    name = str(hint).upper()
    if name not in PERFORMANCE_HINTS:
        raise AtbsnError(f"performance hint {hint!r}: valid are "
                         f"{', '.join(h.lower() for h in PERFORMANCE_HINTS)}")
    return name


def _input_dims(model: Any) -> list[int | None]:
    """The model input's N, C, H, W: a length where static, None where dynamic."""
    return [d.get_length() if d.is_static else None for d in model.inputs[0].partial_shape]


def read_ir(path: str | os.PathLike) -> Any:
    """``Core.read_model`` of an IR ``.xml``, after OpenVINO's IR reader has said it takes the
    file: otherwise OpenVINO tries its other readers on it, and TensorFlow's prints lines of
    its own (``Error parsing text-format tensorflow.GraphDef``) before the error."""
    import openvino as ov

    if str(path).lower().endswith(".xml"):
        reader = ov.frontend.FrontEndManager().load_by_framework("ir")
        if not reader.supported(str(path)):
            raise RuntimeError("not an OpenVINO IR: its XML is not a network OpenVINO reads")
    return openvino_core().read_model(str(path))


def auto_performance_hint(path: str | os.PathLike, image_sizes: Iterable[tuple[int, int]],
                          tile: int | str | None = None, overlap: int | None = None) -> str:
    """``THROUGHPUT`` when some image of ``image_sizes`` ((height, width) pairs) needs more than
    one tile, so that several tiles can be in flight, one per CPU stream; else ``LATENCY``
    (one tile, on every thread). The tiles are the IR's own, or ``tile``'s where the IR is
    dynamic (default 512, 0: whole images), or with ``tile="auto"`` the shape
    :func:`~atbsn_edge.tiling.preferred_tile_shape` gives each image, as the tiled runtime
    will (``overlap``: default the IR's). Reads the IR's input shape and metadata without
    compiling it. An IR it cannot read gets ``LATENCY``: opening it reports the error."""
    require("openvino", "openvino")  # a missing extra is named here, not swallowed below
    try:
        model = read_ir(path)
        metadata = ArtifactMetadata.parse(read_openvino_metadata(model), Path(path))
    except Exception:  # truncated or foreign: the runtime's own open says what is wrong
        return "LATENCY"
    stride = metadata.stride
    if tile == "auto":
        own = _input_dims(model)[2:]
        if overlap is None:  # reduced where the IR's own tile is small, as the runtime's spec
            overlap = overlap_for_tile(metadata.default_overlap, *own)
        ready = [tuple(own)] if None not in own and min(own) > overlap else []

        def tiles(height: int, width: int) -> int:  # as TiledRuntime.spec_for will tile it
            shape = preferred_tile_shape(height, width, overlap, stride=stride, ready=ready,
                                         max_area=OPENVINO_AUTO_TILE_AREA)
            return plan_tiles(height, width, TileSpec(*shape, overlap, stride=stride)).count

        several = any(tiles(h, w) > 1 for h, w in image_sizes)
        return "THROUGHPUT" if several else "LATENCY"
    if tile == 0:  # whole images: one call each, static IRs recompiled to each
        return "LATENCY"
    dims = _input_dims(model)
    side = DEFAULT_TILE if tile is None else tile
    tile_h, tile_w = (side, side) if tile else (dims[2] or side, dims[3] or side)
    if not (tile_h and tile_w):  # a dynamic IR run on whole images: one tile each
        return "LATENCY"
    several = any(round_up(h, stride) > tile_h or round_up(w, stride) > tile_w
                  for h, w in image_sizes)
    return "THROUGHPUT" if several else "LATENCY"


def openvino_error(exc: BaseException) -> str:
    """OpenVINO's message without its C++ source locations (``Exception from src/...cpp:123``),
    which tell a user nothing: the lines that say what is wrong, joined into one."""
    lines = [line.strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Exception from", "Check '"))
              and ".cpp:" not in line]
    text = "; ".join(useful) or (lines[0] if lines else type(exc).__name__)
    return text[:300]


class OpenVinoRuntime(Runtime):
    """An IR (``.xml`` with its ``.bin``) compiled on ``device`` with a latency or
    throughput performance hint; ``profile`` turns on OpenVINO's per-layer performance
    counters (``self.request.profiling_info``, read by ``benchmarks/layer_profile.py``).

    ``infer_requests`` is how many batches :meth:`run_many` keeps in flight: 0 (default)
    takes the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` (1 with the latency hint;
    one per stream with the throughput hint); more than 1 needs the throughput hint.
    ``compile_cache`` keeps compiled IRs in OpenVINO's model cache for the next process
    (``openvino_cache.py``; ``ATBSN_EDGE_OPENVINO_CACHE=0`` turns it off everywhere)."""

    backend = "openvino"
    reshapable = True
    auto_tile_area = OPENVINO_AUTO_TILE_AREA

    def __init__(self, path: str | os.PathLike, *, device: str = "CPU",
                 performance_hint: str = "LATENCY", threads: int = 0,
                 inference_precision: str | None = None, profile: bool = False,
                 infer_requests: int = 0, compile_cache: bool = True) -> None:
        super().__init__()
        require("openvino", "openvino")
        path = Path(path)
        if not path.is_file():
            raise AtbsnError(f"OpenVINO artifact {path} does not exist")
        if not path.with_suffix(".bin").is_file():
            raise AtbsnError(f"OpenVINO artifact {path} has no {path.with_suffix('.bin').name} "
                             "beside it (an IR is the .xml and its .bin); copy both files")
        hint = performance_hint_name(performance_hint)
        if infer_requests < 0:
            raise AtbsnError(f"infer_requests {infer_requests}: give 0 (the compiled model's "
                             "optimal number) or a positive count")
        if infer_requests > 1 and hint != "THROUGHPUT":
            raise AtbsnError(f"{infer_requests} infer requests with the {hint.lower()} hint: "
                             "give 0 (the compiled model's optimal number) or 1, or compile "
                             "with the throughput hint (--performance-hint throughput), the "
                             "one with several streams to run requests in parallel")
        core = openvino_core()
        try:
            model = read_ir(path)
        except Exception as exc:  # truncated or foreign file
            raise AtbsnError(f"cannot load OpenVINO artifact {path}: {openvino_error(exc)}; "
                             "re-export it, or copy both files again") from None
        self.metadata = ArtifactMetadata.parse(read_openvino_metadata(model), path)
        precision = self.metadata.precision
        device_default = core.get_property(device, "INFERENCE_PRECISION_HINT")
        self.inference_precision = choose_inference_precision(
            precision, getattr(device_default, "get_type_name", lambda: str(device_default))(),
            inference_precision)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.inference_precision,
                                  "PERFORMANCE_HINT": hint}
        unkeyed = INT8_COMPILE_PROPERTIES if precision == "int8" \
            and device.upper().startswith("CPU") else {}
        config.update(unkeyed)
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if profile:
            config["PERF_COUNT"] = True
        cache = compile_cache_dir(unkeyed=unkeyed) if compile_cache else None
        if cache is not None:  # compiled IRs imported by the next process (openvino_cache.py)
            config["CACHE_DIR"] = str(cache)
        self.model = model
        self.path = path
        self.device = device
        self._core, self._config = core, config
        self.compiled = self._compile(model)
        dims = _input_dims(model)
        self._own_shape = (dims[2], dims[3])
        self._compiled_by_shape = {self._own_shape: self.compiled}
        self.performance_hint = hint
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.infer_requests = infer_requests or max(
            1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.peak_in_flight = 0  # most requests in flight during the last run_many
        self.request = self.compiled.create_infer_request()
        self._spec = InputSpec(batch=dims[0], height=dims[2], width=dims[3],
                               channels=dims[1] or 3, stride=self.metadata.stride)
        log.debug("%s compiled with the %s hint: %d stream(s), %d infer request(s)%s",
                  path.name, hint.lower(), self.streams, self.infer_requests,
                  " (imported from the model cache)" if self.loaded_from_cache else "")

    @property
    def loaded_from_cache(self) -> bool:
        """Whether OpenVINO imported the compiled model from its model cache."""
        try:
            return bool(self.compiled.get_property("LOADED_FROM_CACHE"))
        except Exception:  # noqa: BLE001 - an OpenVINO without the property
            return False

    def _compile(self, model: Any) -> Any:
        """``model`` compiled on this runtime's device with its configuration. A property of
        :data:`INT8_COMPILE_PROPERTIES` that this OpenVINO refuses (``SNIPPETS_MODE`` is one
        of the CPU plugin's internal properties) is dropped with a warning, and the IR compiled
        without it."""
        try:
            return self._core.compile_model(model, self.device, self._config)
        except Exception as exc:
            refused = [key for key in INT8_COMPILE_PROPERTIES
                       if key in self._config and key in str(exc)]
            if refused:
                log.warning("this OpenVINO (%s) does not take %s: %s compiled without it, "
                            "which can be slower (docs/export.md)", _openvino_version(),
                            ", ".join(refused), self.path.name)
                for key in refused:
                    del self._config[key]
                return self._compile(model)
            raise AtbsnError(f"OpenVINO cannot compile {self.path} for {self.device}: "
                             f"{openvino_error(exc)}") from None

    def _set_tile_shape_impl(self, height: int, width: int) -> None:
        """Recompile the IR with its input reshaped to ``height`` x ``width`` (a convolutional
        network computes the same per pixel at any shape); the IR's own shape and the last
        ``COMPILED_SHAPES_KEPT`` others stay compiled, so a folder of photos of one size
        compiles once."""
        compiled = self._compiled_by_shape.pop((height, width), None)
        if compiled is None:
            model = self.model.clone()
            spec = self._spec
            model.reshape({model.inputs[0].get_any_name():
                           [spec.batch or -1, spec.channels, height, width]})
            compiled = self._compile(model)
            log.debug("%s recompiled for %dx%d tiles", self.path.name, height, width)
        self._compiled_by_shape[(height, width)] = compiled  # most recent last
        others = [shape for shape in self._compiled_by_shape if shape != self._own_shape]
        for shape in others[:max(0, len(others) - COMPILED_SHAPES_KEPT)]:
            del self._compiled_by_shape[shape]  # the oldest; the IR's own shape stays
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._spec = dataclasses.replace(self._spec, height=height, width=width)

    def ready_tile_shapes(self) -> list[tuple[int, int]]:
        """The shapes compiled and kept, the IR's own first (the recompile rule prices a new
        shape in its calls), none for a dynamic IR."""
        shapes = sorted(self._compiled_by_shape, key=lambda shape: shape != self._own_shape)
        return [shape for shape in shapes if None not in shape]

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_metadata(self.backend, self.metadata, self.device,
                                         inference_precision=self.inference_precision,
                                         performance_hint=self.performance_hint,
                                         streams=self.streams,
                                         infer_requests=self.infer_requests)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: batch})[0], copy=True)

    def _infer_many_impl(self, batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Up to ``infer_requests`` batches in flight on as many infer requests, round robin.

        When every request is busy, the oldest is waited for, its output copied out, and the
        request restarted on the next batch before that output is yielded, so the CPU streams
        stay busy while the caller blends. Outputs therefore come in input order. No Python
        callback is used: OpenVINO frees it on a stream thread that takes the GIL, which hung
        closing the compiled model."""
        if self.infer_requests == 1:
            self.peak_in_flight = 1
            yield from super()._infer_many_impl(batches)
            return
        idle = [self.compiled.create_infer_request() for _ in range(self.infer_requests)]
        busy: collections.deque[Any] = collections.deque()  # started, oldest first
        self.peak_in_flight = 0
        try:
            for batch in batches:
                ready = None
                if not idle:
                    oldest = busy.popleft()
                    ready = self._finished_output(oldest)
                    idle.append(oldest)
                request = idle.pop()
                request.start_async({0: batch}, share_inputs=False)  # the input is copied in
                busy.append(request)
                self.peak_in_flight = max(self.peak_in_flight, len(busy))
                if ready is not None:
                    yield ready
            while busy:
                yield self._finished_output(busy.popleft())
        finally:
            for request in busy:  # left early: no request may still run once we return
                try:
                    request.wait()
                except Exception:  # noqa: BLE001 - the first error is already propagating
                    pass

    @staticmethod
    def _finished_output(request: Any) -> np.ndarray:
        """Wait for ``request`` and copy its output out (the request will be reused)."""
        try:
            request.wait()
            return np.array(request.get_output_tensor(0).data, copy=True)
        except Exception as exc:
            raise AtbsnError(f"an OpenVINO infer request failed: {openvino_error(exc)}; run "
                             "with --performance-hint latency to see whether it is the "
                             "parallel path") from None

    def _close_impl(self) -> None:
        self.request = None
        self.compiled = None
        self._compiled_by_shape.clear()

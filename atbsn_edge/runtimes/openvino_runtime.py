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
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..bundle.metadata import ArtifactMetadata, read_openvino_metadata
from ..errors import AtbsnError, require
from .base import InputSpec, Runtime, RuntimeInfo

log = logging.getLogger(__name__)


HINTS = ("f32", "bf16", "f16")
_TYPE_NAMES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16",
               "f16": "f16", "float16": "f16"}


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
    counters (``self.request.profiling_info``, read by ``benchmarks/layer_profile.py``)."""

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, *, device: str = "CPU",
                 performance_hint: str = "LATENCY", threads: int = 0,
                 inference_precision: str | None = None, profile: bool = False) -> None:
        super().__init__()
        ov = require("openvino", "openvino")
        path = Path(path)
        if not path.is_file() or not path.with_suffix(".bin").is_file():
            raise AtbsnError(f"OpenVINO artifact {path} (and its .bin) does not exist")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # truncated or foreign file
            raise AtbsnError(f"cannot load OpenVINO artifact {path}: {openvino_error(exc)}; "
                             "re-export it, or copy both files again") from None
        self.metadata = ArtifactMetadata.parse(read_openvino_metadata(model), path)
        precision = self.metadata.precision
        device_default = core.get_property(device, "INFERENCE_PRECISION_HINT")
        self.inference_precision = choose_inference_precision(
            precision, getattr(device_default, "get_type_name", lambda: str(device_default))(),
            inference_precision)
        config = {"INFERENCE_PRECISION_HINT": self.inference_precision,
                  "PERFORMANCE_HINT": performance_hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if profile:
            config["PERF_COUNT"] = True
        self.model = model
        try:
            self.compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise AtbsnError(f"OpenVINO cannot compile {path} for {device}: "
                             f"{openvino_error(exc)}") from None
        self.device = device
        self.request = self.compiled.create_infer_request()
        shape = model.inputs[0].partial_shape
        dims = [d.get_length() if d.is_static else None for d in shape]
        self._spec = InputSpec(batch=dims[0], height=dims[2], width=dims[3],
                               channels=dims[1] or 3, stride=self.metadata.stride)
        self.path = path

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_metadata(self.backend, self.metadata, self.device,
                                         inference_precision=self.inference_precision)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: batch})[0], copy=True)

    def _close_impl(self) -> None:
        self.request = None
        self.compiled = None

"""OpenVINO backend: an IR compiled for the CPU with an explicit inference precision.

OpenVINO's CPU plugin computes in bf16 by default on CPUs with bf16 units (AMX, or AVX512-BF16
as on the development machine), which makes an "fp32" artifact's parity bf16's (~2.5e-3
relative) rather than float rounding. The precision hint is therefore always set from the
artifact's precision: fp32 -> f32; fp16 -> f16 where the CPU has native fp16, otherwise bf16
(the CPU's reduced float type; the manifest records which one ran); int8 -> the quantized
layers in int8 and the layers kept in float in the CPU's reduced float type where it has one
(f16 or bf16), else f32. With student C on the Nam pairs that is faster than f32 and loses
nothing against fp32 (docs/export.md).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import AtbsnError, require
from .base import InputSpec, Runtime, RuntimeInfo

log = logging.getLogger(__name__)
RT_INFO_KEY = "atbsn"


def inference_precision(precision: str, capabilities: list[str]) -> str:
    """The ``INFERENCE_PRECISION_HINT`` for an artifact precision on a device."""
    if precision == "fp32":
        return "f32"
    if precision == "fp16":
        return "f16" if "FP16" in capabilities else "bf16"
    if "FP16" in capabilities:  # int8: the layers kept in float run in the reduced type
        return "f16"
    return "bf16" if "BF16" in capabilities else "f32"


class OpenVinoRuntime(Runtime):
    """An IR (``.xml`` with its ``.bin``) compiled on ``device`` with a latency or
    throughput performance hint; ``profile`` turns on OpenVINO's per-layer performance
    counters (``self.request.profiling_info``, read by ``benchmarks/layer_profile.py``)."""

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, *, device: str = "CPU",
                 performance_hint: str = "LATENCY", threads: int = 0,
                 profile: bool = False) -> None:
        super().__init__()
        ov = require("openvino", "openvino")
        path = Path(path)
        if not path.is_file() or not path.with_suffix(".bin").is_file():
            raise AtbsnError(f"OpenVINO artifact {path} (and its .bin) does not exist")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # truncated or foreign file
            raise AtbsnError(f"cannot load OpenVINO artifact {path}: {str(exc).splitlines()[0][:200]}") from None
        self.metadata = {}
        if model.has_rt_info([RT_INFO_KEY]):
            for key in model.get_rt_info()[RT_INFO_KEY]:
                self.metadata[key] = model.get_rt_info([RT_INFO_KEY, key]).astype(str)
        precision = self.metadata.get("precision", "fp32")
        capabilities = list(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        self.inference_precision = inference_precision(precision, capabilities)
        config = {"INFERENCE_PRECISION_HINT": self.inference_precision,
                  "PERFORMANCE_HINT": performance_hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if profile:
            config["PERF_COUNT"] = True
        self.model = model
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        shape = model.inputs[0].partial_shape
        dims = [d.get_length() if d.is_static else None for d in shape]
        self._spec = InputSpec(batch=dims[0], height=dims[2], width=dims[3],
                               channels=dims[1] or 3, stride=int(self.metadata.get("stride", 32)))
        self.path = path

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_artifact_metadata(
            self.backend, {**self.metadata, "inference_precision": self.inference_precision})

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: batch})[0], copy=True)

    def _close_impl(self) -> None:
        self.request = None
        self.compiled = None

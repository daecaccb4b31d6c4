"""The ``onnx-*`` targets' converters: from the bundle's fp32 ONNX, no PyTorch.

- ``onnx-fp32``: the fp32 graph itself (written by ``checkpoint_to_bundle``);
- ``onnx-fp16``: its fp16 graph with fp32 I/O (``onnx_fp32_to_fp16``);
- ``onnx-int8``: its calibrated Q/DQ graph (``onnx_fp32_to_int8``), nodes matching the
  keep-float patterns left float; for a quantization-aware checkpoint the graph with learned
  ranges that ``checkpoint_to_bundle`` wrote (``torch_qat_to_int8_onnx``), no calibration.
"""
from __future__ import annotations

import logging

from ..atomic import atomic_path
from ..bundle import FP32_ONNX, READY, ArtifactEntry, onnx_name
from ..bundle.metadata import write_onnx_metadata
from ..errors import require
from .job import ConversionJob

log = logging.getLogger(__name__)


def fp32(job: ConversionJob) -> ArtifactEntry:
    """``onnx-fp32``: the bundle's fp32 graph (present in every bundle)."""
    return job.bundle.artifact("onnx-fp32")


def fp16(job: ConversionJob) -> ArtifactEntry:
    """``onnx-fp16``: the fp32 graph in fp16, inputs and outputs kept fp32."""
    from .onnx_fp32_to_fp16 import onnx_fp32_to_fp16

    onnx = require("onnx", "onnx")
    job.ensure("onnx-fp32")
    metadata = job.metadata("fp16")
    model = onnx_fp32_to_fp16(onnx.load(str(job.folder / FP32_ONNX)))
    write_onnx_metadata(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    name = onnx_name("fp16")
    with atomic_path(job.folder / name) as tmp:
        onnx.save(model, str(tmp))
    log.info("wrote %s", name)
    return ArtifactEntry("onnx-fp16", name, "onnxruntime", "fp16", READY, metadata=metadata)


def int8(job: ConversionJob) -> ArtifactEntry:
    """``onnx-int8``: the calibrated Q/DQ graph (symmetric int8, per-channel weights,
    per-tensor activations, zero points 0: the graph TensorRT takes too)."""
    from .onnx_fp32_to_int8 import onnx_fp32_to_int8

    learned = job.learned_int8()
    if learned is not None:
        job.bundle.verify(learned)
        log.info("int8 graph with learned ranges (quantization-aware training): %s", learned.entry)
        return learned
    onnx = require("onnx", "onnx")
    job.ensure("onnx-fp32")
    calibration, keep_float = job.calibration(), job.keep_float()
    method = job.int8.method
    name = onnx_name("int8")
    path = job.folder / name
    done = onnx_fp32_to_int8(job.folder / FP32_ONNX, path, calibration, method,
                             batch=job.network.batch or 1, keep_float=keep_float)
    metadata = job.metadata("int8", **calibration.int8_metadata(method, keep_float,
                                                                 done["calibration_cached"]))
    model = onnx.load(str(path))
    write_onnx_metadata(model, metadata)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return ArtifactEntry("onnx-int8", name, "onnxruntime", "int8", READY, metadata=metadata,
                         details=int8_details(job, keep_float))


def int8_details(job: ConversionJob, keep_float: list[str]) -> dict:
    """What an int8 artifact's manifest entry records about its calibration."""
    request = job.int8
    return {"calibration": {**job.calibration().describe(), "method": request.method,
                            "mode": request.mode, "seed": request.seed},
            "int8_request": request.key(keep_float)}

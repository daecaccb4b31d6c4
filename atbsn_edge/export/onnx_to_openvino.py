"""ONNX -> OpenVINO IR (``.xml`` + ``.bin``), the ``openvino-*`` targets' converter.

The toolkit's metadata travels in the IR's ``rt_info`` under ``atbsn``. fp16 compresses the
weights to fp16 in the IR (``save_model(compress_to_fp16=True)``); fp32 keeps them fp32. The
precision the CPU computes in is chosen at run time (``INFERENCE_PRECISION_HINT``, see
``runtimes/openvino_runtime.py``), because OpenVINO's CPU plugin otherwise runs bf16 on CPUs
with bf16 units (AMX or AVX512-BF16, as on the development machine) even for an fp32 IR.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..bundle import FP32_ONNX, READY, ArtifactEntry, artifact_name
from ..bundle.metadata import write_openvino_metadata
from ..errors import require
from .job import ConversionJob

log = logging.getLogger(__name__)


def onnx_to_openvino(onnx_path: str | Path, xml_path: str | Path, *, compress_to_fp16: bool,
                     metadata: Mapping[str, Any]) -> None:
    """Convert an ONNX file to IR at ``xml_path`` (the ``.bin`` beside it) with metadata."""
    ov = require("openvino", "openvino")
    save_ir(ov.convert_model(str(onnx_path)), xml_path, compress_to_fp16=compress_to_fp16,
            metadata=metadata)


def save_ir(model: Any, xml_path: str | Path, *, compress_to_fp16: bool,
            metadata: Mapping[str, Any], announce: bool = True) -> None:
    """Write an ``openvino.Model`` as IR with the toolkit's metadata, atomically: the ``.bin``
    lands before the ``.xml`` that needs it, so a crash never leaves a readable half.
    ``announce`` False: no ``wrote`` line (a cache file, whose name means nothing to the user)."""
    ov = require("openvino", "openvino")
    write_openvino_metadata(model, metadata)
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=xml_path.parent, prefix=".ir-") as tmp:
        staged = Path(tmp) / xml_path.name
        ov.save_model(model, str(staged), compress_to_fp16=compress_to_fp16)
        # weights first: an .xml is never visible without the .bin it needs
        os.replace(staged.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(staged, xml_path)
    if announce:
        log.info("wrote %s (weights %s)", xml_path.name, "fp16" if compress_to_fp16 else "fp32")


def _entry(job: ConversionJob, precision: str, metadata: dict, **details) -> ArtifactEntry:
    return ArtifactEntry(f"openvino-{precision}", artifact_name("openvino", precision), "openvino",
                         precision, READY, metadata=metadata, details=details)


def fp32(job: ConversionJob) -> ArtifactEntry:
    """``openvino-fp32``: the fp32 ONNX as IR, fp32 weights."""
    return _float(job, "fp32")


def fp16(job: ConversionJob) -> ArtifactEntry:
    """``openvino-fp16``: the fp32 ONNX as IR with fp16-compressed weights."""
    return _float(job, "fp16")


def _float(job: ConversionJob, precision: str) -> ArtifactEntry:
    job.ensure("onnx-fp32")
    metadata = job.metadata(precision)
    onnx_to_openvino(job.folder / FP32_ONNX, job.folder / artifact_name("openvino", precision),
                     compress_to_fp16=precision == "fp16", metadata=metadata)
    return _entry(job, precision, metadata)


QUANTIZERS = ("qdq", "nncf")


def int8(job: ConversionJob) -> ArtifactEntry:
    """``openvino-int8``, by one of two quantizers (``benchmarks/latency.py`` measures both;
    see docs/export.md):

    - ``nncf``: NNCF post-training quantization of the fp32 IR, OpenVINO's own path;
    - ``qdq``: the calibrated Q/DQ ONNX of ``onnx-int8`` (kept in the bundle) converted to IR,
      whose Q/DQ pairs OpenVINO reads as FakeQuantize; always for a quantization-aware
      checkpoint, whose Q/DQ graph carries the learned ranges.
    """
    from ..errors import AtbsnError
    from .onnx_target import int8_details

    quantizer = job.int8.quantizer if job.int8 else "nncf"
    if job.learned_int8() is not None:
        quantizer = "qdq"  # the learned ranges are the Q/DQ graph's; NNCF would recalibrate
    if quantizer not in QUANTIZERS:
        raise AtbsnError(f"--int8-quantizer must be one of {', '.join(QUANTIZERS)}, got {quantizer!r}")
    path = job.folder / artifact_name("openvino", "int8")
    keep_float = job.keep_float()
    if quantizer == "qdq":
        source = job.ensure("onnx-int8")
        metadata = {**source.metadata, "int8_quantizer": "qdq"}
        onnx_to_openvino(job.folder / source.entry, path, compress_to_fp16=False, metadata=metadata)
        return _entry(job, "int8", metadata, **source.details)
    from ..calibration.cache import calibration_cache_path
    from ..hashing import file_sha256
    from .openvino_fp32_to_int8 import openvino_fp32_to_int8

    job.ensure("onnx-fp32")
    onnx_path = job.folder / FP32_ONNX
    calibration, method = job.calibration(), job.int8.method
    ov = require("openvino", "openvino")
    # NNCF keeps no ranges to reuse: the cache holds the quantized IR itself.
    cached_ir = calibration_cache_path(file_sha256(onnx_path), calibration.fingerprint,
                                       f"nncf:{method}", keep_float).with_suffix(".xml")
    cached = cached_ir.is_file() and cached_ir.with_suffix(".bin").is_file()
    if cached:
        from ..runtimes.openvino_runtime import openvino_core

        quantized = openvino_core().read_model(str(cached_ir))
        log.info("NNCF int8 from the calibration cache")
    else:
        quantized = openvino_fp32_to_int8(ov.convert_model(str(onnx_path)), calibration,
                                          method=method, keep_float=keep_float)
        save_ir(quantized, cached_ir, compress_to_fp16=False, metadata={}, announce=False)
        log.debug("NNCF int8 IR cached as %s", cached_ir)
    metadata = job.metadata("int8", **calibration.int8_metadata(method, keep_float, cached),
                            int8_quantizer="nncf")
    save_ir(quantized, path, compress_to_fp16=False, metadata=metadata)
    return _entry(job, "int8", metadata, **int8_details(job, keep_float))

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
from typing import Any, Mapping, Sequence

from ..errors import require

log = logging.getLogger(__name__)
RT_INFO_KEY = "atbsn"


def onnx_to_openvino(onnx_path: str | Path, xml_path: str | Path, *, compress_to_fp16: bool,
                     metadata: Mapping[str, Any]) -> None:
    """Convert an ONNX file to IR at ``xml_path`` (the ``.bin`` beside it) with metadata."""
    ov = require("openvino", "openvino")
    save_ir(ov.convert_model(str(onnx_path)), xml_path, compress_to_fp16=compress_to_fp16,
            metadata=metadata)


def save_ir(model: Any, xml_path: str | Path, *, compress_to_fp16: bool,
            metadata: Mapping[str, Any]) -> None:
    """Write an ``openvino.Model`` as IR with the toolkit's metadata, atomically: the ``.bin``
    lands before the ``.xml`` that needs it, so a crash never leaves a readable half."""
    ov = require("openvino", "openvino")
    for key, value in metadata.items():
        model.set_rt_info(str(value), [RT_INFO_KEY, key])
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=xml_path.parent, prefix=".ir-") as tmp:
        staged = Path(tmp) / xml_path.name
        ov.save_model(model, str(staged), compress_to_fp16=compress_to_fp16)
        # weights first: an .xml is never visible without the .bin it needs
        os.replace(staged.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(staged, xml_path)
    log.info("wrote %s (weights %s)", xml_path, "fp16" if compress_to_fp16 else "fp32")


def build(denoiser: Any, path: str | Path, *, precision: str = "fp32",
          **options: Any) -> dict[str, str]:
    """Export the fp32 ONNX beside ``path`` (kept in the bundle; ``options`` go to
    ``onnx_target.build``), then convert it to IR."""
    from .onnx_target import build as build_onnx

    path = Path(path)
    onnx_path = path.with_name("model-fp32.onnx")
    metadata = build_onnx(denoiser, onnx_path, **options)
    metadata["precision"] = precision
    onnx_to_openvino(onnx_path, path, compress_to_fp16=precision == "fp16", metadata=metadata)
    return metadata


def build_fp16(denoiser: Any, path: str | Path, **options: Any) -> dict[str, str]:
    """The ``openvino-fp16`` converter."""
    return build(denoiser, path, precision="fp16", **options)


QUANTIZERS = ("qdq", "nncf")


def build_int8(denoiser: Any, path: str | Path, *, calibration: Any, method: str = "max",
               keep_float: Sequence[str] = (), quantizer: str = "nncf",
               **options: Any) -> dict[str, str]:
    """The ``openvino-int8`` converter, by one of two quantizers (``benchmarks/latency.py``
    measures both; see docs/export.md):

    - ``nncf``: NNCF post-training quantization of the fp32 IR, OpenVINO's own path;
    - ``qdq``: the calibrated Q/DQ ONNX of ``onnx-int8`` (kept in the bundle) converted to IR,
      whose Q/DQ pairs OpenVINO reads as FakeQuantize.
    """
    from ..errors import AtbsnError

    if quantizer not in QUANTIZERS:
        raise AtbsnError(f"--int8-quantizer must be one of {', '.join(QUANTIZERS)}, got {quantizer!r}")
    path = Path(path)
    if quantizer == "qdq":
        from .onnx_target import build_int8 as build_onnx_int8

        onnx_path = path.with_name("model-int8.onnx")
        metadata = build_onnx_int8(denoiser, onnx_path, calibration=calibration, method=method,
                                   keep_float=keep_float, **options)
        metadata["int8_quantizer"] = "qdq"
        onnx_to_openvino(onnx_path, path, compress_to_fp16=False, metadata=metadata)
        return metadata
    from ..calibration.cache import calibration_cache_path
    from ..hashing import file_sha256
    from .onnx_target import build as build_onnx
    from .openvino_fp32_to_int8 import openvino_fp32_to_int8

    onnx_path = path.with_name("model-fp32.onnx")
    metadata = build_onnx(denoiser, onnx_path, **options)
    ov = require("openvino", "openvino")
    # NNCF keeps no ranges to reuse: the cache holds the quantized IR itself.
    cached_ir = calibration_cache_path(file_sha256(onnx_path), calibration.fingerprint,
                                       f"nncf:{method}", keep_float).with_suffix(".xml")
    cached = cached_ir.is_file() and cached_ir.with_suffix(".bin").is_file()
    if cached:
        quantized = ov.Core().read_model(str(cached_ir))
        log.info("NNCF int8 from the calibration cache (%s)", cached_ir)
    else:
        quantized = openvino_fp32_to_int8(ov.convert_model(str(onnx_path)), calibration,
                                          method=method, keep_float=keep_float)
        save_ir(quantized, cached_ir, compress_to_fp16=False, metadata={})
    metadata.update(calibration.int8_metadata(method, keep_float, cached), int8_quantizer="nncf")
    save_ir(quantized, path, compress_to_fp16=False, metadata=metadata)
    return metadata

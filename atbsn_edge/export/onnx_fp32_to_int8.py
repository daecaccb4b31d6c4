"""fp32 ONNX -> int8 Q/DQ ONNX, calibrated on the CPU with ONNX Runtime's ``quantize_static``.

The form TensorRT's explicit quantization takes (and ONNX Runtime and OpenVINO run):
QuantizeLinear/DequantizeLinear pairs, symmetric (zero point 0) int8, per-channel weights,
per-tensor activations. TensorRT 10 deprecated, and 11 removed, implicit int8 calibration, so
the ranges live in the graph. Calibration ranges are cached (``calibration/cache.py``): a
second export with the same model, data and method does no calibration work.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration.cache import calibration_cache_path
from ..calibration.data import CalibrationSet
from ..errors import AtbsnError, require
from ..hashing import file_sha256

log = logging.getLogger(__name__)
METHODS = {"max": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def onnx_fp32_to_int8(fp32_path: str | Path, int8_path: str | Path, calibration: CalibrationSet,
                      method: str = "max", batch: int = 1) -> dict[str, Any]:
    """Quantize ``fp32_path`` into ``int8_path``; returns what was done (for the manifest)."""
    require("onnx", "onnx")
    quantization = require("onnxruntime.quantization", "onnx")
    if method not in METHODS:
        raise AtbsnError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            crops = calibration.crops
            usable = len(crops) - len(crops) % batch if len(crops) >= batch else 0
            if usable == 0:
                raise AtbsnError(f"{len(crops)} calibration crops cannot fill one batch of {batch}")
            self._batches = iter(crops[i:i + batch] for i in range(0, usable, batch))

        def get_next(self):
            chunk = next(self._batches, None)
            return None if chunk is None else {"input": np.ascontiguousarray(chunk)}

    cache = calibration_cache_path(file_sha256(fp32_path), calibration.fingerprint, method)
    options: dict[str, Any] = {}
    cached = False
    if "calibration_cache_path" in inspect.signature(quantization.quantize_static).parameters:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cached = cache.is_file()
        options["calibration_cache_path"] = str(cache)
    quantization.quantize_static(
        str(fp32_path), str(int8_path), None if cached else Reader(),
        quant_format=quantization.QuantFormat.QDQ, per_channel=True,
        activation_type=quantization.QuantType.QInt8, weight_type=quantization.QuantType.QInt8,
        calibrate_method=getattr(quantization.CalibrationMethod, METHODS[method]),
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True}, **options)
    log.info("int8 Q/DQ written to %s (%s calibration%s)", int8_path, method,
             ", from cache" if cached else f" on {len(calibration.crops)} crops")
    return {"calibration_method": method, "calibration_cached": cached,
            "calibration_cache": str(cache) if options else "", **calibration.describe()}

"""fp32 ONNX -> int8 Q/DQ ONNX, calibrated on the CPU with ONNX Runtime's ``quantize_static``.

The form TensorRT's explicit quantization takes (and ONNX Runtime and OpenVINO run):
QuantizeLinear/DequantizeLinear pairs, symmetric (zero point 0) int8, per-channel weights,
per-tensor activations. TensorRT 10 deprecated, and 11 removed, implicit int8 calibration, so
the ranges live in the graph. A transposed convolution (a decoder's folded upsampling) keeps a
float output: it is summed with the skip convolution's, and quantizing that sum's input cost
student C 0.150 dB on the Nam pairs against 0.124 without, at the same speed. Calibration
ranges are cached (``calibration/cache.py``): a second export with the same model, data and
method does no calibration work.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..calibration.cache import calibration_cache_path
from ..calibration.data import CalibrationSet
from ..errors import AtbsnError, require
from ..hashing import file_sha256
from .keep_float import float_node_names

log = logging.getLogger(__name__)
METHODS = {"max": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


class _DropPreprocessAdvice(logging.Filter):
    """Drops ONNX Runtime's "consider pre-processing before quantization" warnings (twice per
    call, on the root logger): its pre-processing renames and folds nodes, which the
    ``keep_float`` patterns and the measured accuracy depend on, so it is not run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocess_advice() -> Iterator[None]:
    root = logging.getLogger()
    advice = _DropPreprocessAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def float_nodes(fp32_path: str | Path, keep_float: Sequence[str]) -> list[str]:
    """Names of the graph's nodes that the ``keep_float`` patterns select (``keep_float.py``)."""
    onnx = require("onnx", "onnx")
    if not keep_float:
        return []
    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    return float_node_names((node.name for node in graph.node), keep_float, str(fp32_path))


def onnx_fp32_to_int8(fp32_path: str | Path, int8_path: str | Path, calibration: CalibrationSet,
                      method: str = "max", batch: int = 1,
                      keep_float: Sequence[str] = ()) -> dict[str, Any]:
    """Quantize ``fp32_path`` into ``int8_path``, leaving the nodes that match ``keep_float`` in
    float (mixed precision); returns what was done (for the manifest)."""
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

    excluded = float_nodes(fp32_path, keep_float)
    cache = calibration_cache_path(file_sha256(fp32_path), calibration.fingerprint, method,
                                   keep_float)
    options: dict[str, Any] = {}
    cached = False
    if "calibration_cache_path" in inspect.signature(quantization.quantize_static).parameters:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cached = cache.is_file()
        options["calibration_cache_path"] = str(cache)
    with _without_preprocess_advice():
        quantization.quantize_static(
            str(fp32_path), str(int8_path), None if cached else Reader(),
            quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=quantization.QuantType.QInt8, weight_type=quantization.QuantType.QInt8,
            calibrate_method=getattr(quantization.CalibrationMethod, METHODS[method]),
            nodes_to_exclude=excluded,
            # biases stay float: TensorRT's parser refuses int32 DequantizeLinear inputs and
            # folds a float bias into the int8 convolution (onnx_tensorrt_readiness)
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                           "QuantizeBias": False,
                           "OpTypesToExcludeOutputQuantization": ["ConvTranspose"]}, **options)
    # the name only: int8_path lies in the bundle's temporary folder, renamed when it is done
    log.info("int8 Q/DQ graph %s quantized (%s calibration%s)", Path(int8_path).name, method,
             ", from cache" if cached else f" on {len(calibration.crops)} crops")
    return {"calibration_method": method, "calibration_cached": cached,
            "float_nodes": len(excluded), "keep_float": list(keep_float),
            "calibration_cache": str(cache) if options else "", **calibration.describe()}

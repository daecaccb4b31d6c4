"""fp32 OpenVINO model -> int8 with NNCF post-training quantization (OpenVINO's own path).

Symmetric int8 (NNCF's ``PERFORMANCE`` preset: zero point 0 for weights and activations),
per-channel weights, ranges from the calibration crops; the nodes the ``keep_float`` patterns
select (``keep_float.py``) become an ``IgnoredScope``, so they stay in float (mixed
precision). NNCF also applies its fast bias correction, which the ONNX Runtime Q/DQ path does
not have.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Iterator, Sequence

from ..calibration.data import CalibrationSet
from ..errors import AtbsnError, require
from .keep_float import float_node_names

log = logging.getLogger(__name__)

#: calibration method -> NNCF range estimator preset for activations
RANGE_ESTIMATORS = {"max": "MINMAX", "entropy": None, "percentile": "MEAN_QUANTILE"}


@contextlib.contextmanager
def nncf_output_on_stderr() -> Iterator[None]:
    """NNCF's log handler and its progress bars (rich, on ``sys.stdout``) write to stderr
    while inside: stdout stays clean for the tables and JSON of the CLIs."""
    handlers = [(h, h.stream) for h in logging.getLogger("nncf").handlers
                if isinstance(h, logging.StreamHandler)
                and h.stream in (sys.stdout, sys.__stdout__)]
    for handler, _ in handlers:
        handler.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in handlers:  # the stream each had, not today's sys.stdout
            handler.setStream(stream)


def openvino_fp32_to_int8(model: Any, calibration: CalibrationSet, *, method: str = "max",
                          keep_float: Sequence[str] = ()) -> Any:
    """The quantized copy of ``model`` (an ``openvino.Model`` with one 1x3xHxW input)."""
    nncf = require("nncf", "openvino")
    if method not in RANGE_ESTIMATORS:
        raise AtbsnError(f"calibration method must be one of {', '.join(RANGE_ESTIMATORS)}, "
                         f"got {method!r}")
    batch = int(model.inputs[0].get_partial_shape()[0].get_length()) \
        if model.inputs[0].get_partial_shape()[0].is_static else 1
    crops = calibration.crops
    samples = [crops[i:i + batch] for i in range(0, len(crops) - batch + 1, batch)]
    if not samples:
        raise AtbsnError(f"{len(crops)} calibration crops cannot fill one batch of {batch}")
    options: dict[str, Any] = {}
    if keep_float:
        names = float_node_names((op.get_friendly_name() for op in model.get_ops()), keep_float,
                                 "the model")
        options["ignored_scope"] = nncf.IgnoredScope(names=names, validate=False)
    estimator = RANGE_ESTIMATORS[method]
    if estimator is not None:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        options["advanced_parameters"] = AdvancedQuantizationParameters(
            activations_range_estimator_params=getattr(RangeEstimatorParametersSet, estimator))
    else:
        log.warning("NNCF has no entropy range estimator; using its default for activations")
    if not log.isEnabledFor(logging.DEBUG):
        nncf.set_log_level(logging.WARNING)  # NNCF lists every ignored node at INFO
    log.info("NNCF: statistics of every activation over %d calibration batches (AT-BSN's 64: "
             "5-9 minutes on a 2-core AMD EPYC)", len(samples))
    with nncf_output_on_stderr():
        quantized = nncf.quantize(model, nncf.Dataset(samples),
                                  preset=nncf.QuantizationPreset.PERFORMANCE,
                                  target_device=nncf.TargetDevice.CPU, subset_size=len(samples),
                                  **options)
    log.info("NNCF int8 on %d calibration batches (%s ranges)", len(samples), method)
    return quantized

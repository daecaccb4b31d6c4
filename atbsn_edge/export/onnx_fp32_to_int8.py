"""fp32 ONNX -> int8 Q/DQ ONNX, calibrated on the CPU with ONNX Runtime's ``quantize_static``.

The form TensorRT's explicit quantization takes (and ONNX Runtime and OpenVINO run):
QuantizeLinear/DequantizeLinear pairs, symmetric (zero point 0) int8, per-channel weights,
per-tensor activations. TensorRT 10 deprecated, and 11 removed, implicit int8 calibration, so
the ranges live in the graph. A transposed convolution (a decoder's folded upsampling) keeps a
float output: it is summed with the skip convolution's, and quantizing that sum's input cost
student C 0.150 dB on the Nam pairs against 0.124 without, at the same speed. Calibration
ranges are cached (``calibration/cache.py``): a second export with the same model, data and
method does no calibration work.

The histogram methods are calibrated here, with ONNX Runtime's own calibrators, and handed to
``quantize_static`` through its calibration cache (2026-12-07):

- ``entropy`` is TensorRT's entropy calibration (the threshold whose int8 histogram is closest
  to the float one by KL divergence) over :data:`ENTROPY_BINS` bins. ``quantize_static``
  builds its entropy calibrator with 128 histogram bins for 128 quantized bins, which leaves
  one candidate threshold, the whole range: every scale came out equal to ``max``'s.
- ``quantize_static`` keeps every intermediate tensor of every calibration batch in memory
  before it makes a histogram: ``percentile`` on 64 crops of 512 x 512 (the export's default
  tile) was killed at 24 GB. Here the batches go in :data:`HISTOGRAM_CHUNK` at a time.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..calibration.cache import calibration_cache_path
from ..calibration.data import CalibrationSet
from ..errors import AtbsnError, require
from ..hashing import file_sha256
from ..progress import progress_bar
from .keep_float import float_node_names

log = logging.getLogger(__name__)
METHODS = {"max": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
# TensorRT's entropy calibration: 2048 histogram bins, thresholds from 128 bins up
ENTROPY_BINS, ENTROPY_QUANTIZED_BINS = 2048, 128
# the calibrators computed here (the histogram ones), with what they are built with:
# percentile as quantize_static builds it (99.999%, 2048 bins, symmetric)
HISTOGRAM_OPTIONS: dict[str, dict[str, Any]] = {
    "entropy": {"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS},
    "percentile": {}}
# batches per collect_data call of a histogram calibrator: it keeps every tensor of the
# batches of one call in memory (64 crops of 512 x 512 at once: student C past 24 GB, killed)
HISTOGRAM_CHUNK = 4


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


def batch_reader(quantization: Any, batches: Sequence[np.ndarray]) -> Any:
    """An ONNX Runtime ``CalibrationDataReader`` over ``batches`` (input name ``input``)."""
    class Reader(quantization.CalibrationDataReader):
        """Gives ``{"input": batch}`` for each of ``batches`` in turn, then None."""

        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {"input": np.ascontiguousarray(batch)}
    return Reader()


def fix_entropy_bins(calibrator: Any, batches: Sequence[np.ndarray]) -> None:
    """Give the entropy calibrator's histograms their final range before any data: a pass of
    the calibrator's own session over ``batches`` finds each tensor's minimum and maximum, and
    each histogram starts empty with ``num_bins`` bins over plus and minus the larger. ONNX
    Runtime fixes the bin width from the first ``collect_data`` call and adds bins of that
    width for a wider later chunk; a dark first chunk made 20480 bins of one tensor and its
    thresholds 40 times slower. Seeded, the histograms are those of one pass over every batch,
    bin for bin."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    session = calibrator.infer_session
    names = [output.name for output in session.get_outputs()]
    lowest: dict[str, np.ndarray] = {}
    highest: dict[str, np.ndarray] = {}
    for batch in progress_bar(batches, desc="entropy: ranges first", unit="batch", leave=False):
        outputs = session.run(None, {"input": np.ascontiguousarray(batch)})
        for name, value in zip(names, outputs):
            if name not in calibrator.tensors_to_calibrate or value.size == 0:
                continue
            low, high = np.nanmin(value), np.nanmax(value)
            lowest[name] = min(lowest.get(name, low), low)
            highest[name] = max(highest.get(name, high), high)
    collector = HistogramCollector(method="entropy", symmetric=calibrator.symmetric,
                                   num_bins=calibrator.num_bins,
                                   num_quantized_bins=calibrator.num_quantized_bins,
                                   percentile=calibrator.percentile, scenario=calibrator.scenario)
    for name, low in lowest.items():
        threshold = np.array(max(abs(low), abs(highest[name])), dtype=low.dtype)
        # the edges np.histogram gives the first call's data (ORT's collect_value)
        edges = np.histogram(np.zeros(0, low.dtype), calibrator.num_bins,
                             range=(-threshold, threshold))[1]
        collector.histogram_dict[name] = (np.zeros(calibrator.num_bins, np.int64), edges, low,
                                          highest[name], threshold)
    calibrator.collector = collector


def histogram_ranges_into(cache: Path, quantization: Any, fp32_path: str | Path, method: str,
                          batches: Sequence[np.ndarray]) -> None:
    """Calibrate ``fp32_path`` by ``method`` (``entropy`` or ``percentile``) on ``batches``
    and write the ranges to ``cache`` (atomically) in the form ``quantize_static`` reads from
    its ``calibration_cache_path``. :data:`HISTOGRAM_CHUNK` batches at a time, so that memory
    stays that of a few batches; the calibrator's own prints go to the debug log."""
    from onnxruntime.quantization.calibrate import save_tensors_data

    with tempfile.TemporaryDirectory(prefix="atbsn_calibration_") as tmp, \
            contextlib.redirect_stdout(io.StringIO()) as printed:
        calibrator = quantization.create_calibrator(
            Path(fp32_path), None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=getattr(quantization.CalibrationMethod, METHODS[method]),
            extra_options=HISTOGRAM_OPTIONS[method])
        log.info("%s calibration: histograms of every activation over %d batches (one core; "
                 "student C's 64 crops of 512 x 512: entropy 4, percentile 8 minutes)", method,
                 len(batches))
        if method == "entropy":
            fix_entropy_bins(calibrator, batches)
        with progress_bar(total=len(batches), desc=f"{method} calibration", unit="batch",
                          leave=False) as bar:
            for start in range(0, len(batches), HISTOGRAM_CHUNK):
                chunk = batches[start:start + HISTOGRAM_CHUNK]
                calibrator.collect_data(batch_reader(quantization, chunk))
                bar.update(len(chunk))
        ranges = calibrator.compute_data()
        del calibrator
    log.debug("%s calibrator: %s", method, " ".join(printed.getvalue().split()))
    save_tensors_data(ranges, cache)  # atomic: a temporary file renamed


def onnx_fp32_to_int8(fp32_path: str | Path, int8_path: str | Path, calibration: CalibrationSet,
                      method: str = "max", batch: int = 1,
                      keep_float: Sequence[str] = ()) -> dict[str, Any]:
    """Quantize ``fp32_path`` into ``int8_path``, leaving the nodes that match ``keep_float`` in
    float (mixed precision); returns what was done (for the manifest)."""
    require("onnx", "onnx")
    quantization = require("onnxruntime.quantization", "onnx")
    if method not in METHODS:
        raise AtbsnError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")

    crops = calibration.crops
    usable = len(crops) - len(crops) % batch if len(crops) >= batch else 0
    if usable == 0:
        raise AtbsnError(f"{len(crops)} calibration crops cannot fill one batch of {batch}")
    batches = [crops[i:i + batch] for i in range(0, usable, batch)]

    excluded = float_nodes(fp32_path, keep_float)
    # a histogram method's key names its options (entropy's old 128-bin ranges were max's)
    options_key = "".join(f"-{k}{v}" for k, v in sorted(HISTOGRAM_OPTIONS.get(method, {}).items()))
    cache = calibration_cache_path(file_sha256(fp32_path), calibration.fingerprint,
                                   method + options_key, keep_float)
    options: dict[str, Any] = {}
    cached = False
    if "calibration_cache_path" in inspect.signature(quantization.quantize_static).parameters:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cached = cache.is_file()
        options["calibration_cache_path"] = str(cache)
    elif method in HISTOGRAM_OPTIONS:
        import onnxruntime

        raise AtbsnError(f"--calib-method {method} needs an ONNX Runtime whose quantize_static "
                         f"takes a calibration cache (1.32 does; this is "
                         f"{onnxruntime.__version__}): upgrade onnxruntime, or give "
                         "--calib-method max")
    if method in HISTOGRAM_OPTIONS and not cached:
        histogram_ranges_into(cache, quantization, fp32_path, method, batches)
    # the histogram methods' ranges are in the cache by now; max calibrates in quantize_static
    calibrates_here = not cached and method not in HISTOGRAM_OPTIONS
    with _without_preprocess_advice():
        quantization.quantize_static(
            str(fp32_path), str(int8_path),
            batch_reader(quantization, batches) if calibrates_here else None,
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

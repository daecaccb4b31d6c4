"""PyTorch -> Core ML ML program (``.mlpackage``), the ``coreml-*`` targets' converter.

coremltools has no ONNX frontend, so this is the one target converted from the PyTorch network
itself (``job.require_denoiser``; a ``--from-bundle`` run cannot add it): the bare network
(hole fixed, upsampling folded when the bundle's graph is fused) traced at the bundle's tile
shape and converted with ``ct.convert(convert_to="mlprogram")``:

- input ``input``, float32 ``(batch, 3, H, W)``, 0..255; output ``output``, float32, same shape
  (the fp16 and int8 programs cast to fp16 inside, so the app always feeds float32);
- ``coreml-fp32``: ``compute_precision=FLOAT32``; ``coreml-fp16``: ``FLOAT16`` (fp16 weights and
  fp16 tensors throughout); minimum deployment target iOS 16 / macOS 13;
- ``coreml-int8`` of an int8-ready checkpoint (``python -m atbsn_edge.qat``, the default
  int8 export): W8A8 with the learned ranges, every layer int8, the graph its ONNX Q/DQ export
  writes (symmetric int8, zero points 0, per-channel weights, per-tensor activations), traced
  in that form and converted through ``coreml_fake_quant.py``; no calibration;
- ``coreml-int8`` of a float checkpoint: W8A8, calibrated in PyTorch by
  ``coremltools.optimize.torch``'s ``LinearQuantizer`` used post-training (observers on the
  calibration crops, no training, min/max ranges; int8 per-channel weights, uint8 per-tensor
  activations with zero points), layers matching the keep-float patterns left float, the rest
  fp16. Both forms' ``quantize``/``dequantize`` ops need iOS 17 / macOS 14. Where W8A8 does not convert it falls back to weight-only 8-bit
  (``ct.optimize.coreml.linear_quantize_weights`` of the fp16 program) and records that.

Why iOS 16 / macOS 13 for the float targets: it is the first release whose Core ML takes fp16
program inputs and compressed weights (the iOS 16 opset, ``constexpr_*`` ops), and it covers
every iPhone from the XS (A12) on, the first Neural Engine that runs ML programs well; iOS 15's
opset would also hold these float programs, but coremltools 9's iOS 15 mlprogram path is the
least exercised one, and iOS 15 devices are all iOS 16 capable except the iPhone 6s/7 line.

Every artifact carries the toolkit's metadata in ``user_defined_metadata`` (``atbsn.<key>``),
the Core ML facts included (``coreml_minimum_deployment_target``, ``coreml_compute_precision``,
``int8_scheme``). The package is a folder: it is saved into a staging folder beside its
place and renamed into it (``atomic_path``).
"""
from __future__ import annotations

import logging
import re
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..atomic import atomic_path
from ..bundle import READY, ArtifactEntry, artifact_name
from ..bundle.metadata import write_coreml_metadata
from ..coreml_mil.package import quiet_coremltools
from ..errors import AtbsnError
from .job import ConversionJob

log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "input", "output"
# Minimum deployment target per precision (coremltools' ct.target names; the macOS release that
# goes with each iOS one is recorded beside it).
DEPLOYMENT_TARGETS = {"fp32": "iOS16", "fp16": "iOS16", "int8": "iOS17"}
DEPLOYMENT_PLATFORMS = {"iOS16": "iOS 16 / macOS 13 / tvOS 16 / watchOS 9",
                        "iOS17": "iOS 17 / macOS 14 / tvOS 17 / watchOS 10"}
COMPUTE_PRECISION = {"fp32": "FLOAT32", "fp16": "FLOAT16", "int8": "FLOAT16"}
W8A8, WEIGHT_ONLY = "w8a8", "w8-weight-only"
# Activation scheme of W8A8. Measured on the 12 Nam pairs (demo student C, 512x512, 64 crops,
# benchmarks/coreml_int8_quality.py): affine (uint8 with zero points) loses 0.215 dB against
# PyTorch fp32, symmetric 0.737 dB (a fixed zero point halves the range of the mostly
# non-negative activations).
INT8_ACTIVATION_SCHEME = "affine"
#: the activation scheme of an int8-ready checkpoint's program: its learned symmetric ranges
LEARNED_ACTIVATION_SCHEME = "symmetric-learned"


# --- the torch network -----------------------------------------------------------------------

def prepare_network(denoiser: Any, hole_size: int | None, *, fuse: bool) -> Any:
    """The bare network (hole fixed), upsampling folded when ``fuse``, in eval mode."""
    module = denoiser.core(hole_size)
    if fuse:
        from ..models.upsample_fusion import fuse_upsampling

        module, count = fuse_upsampling(module)
        log.info("upsampling folded into %d decoder convolutions", count)
    return module.eval()


def kept_float_modules(module: Any, keep_float: Sequence[str]) -> list[str]:
    """The (transposed) convolutions whose names match a keep-float pattern. Patterns are
    searched in the module path written like ONNX node names (``unet.dec1.conv2.conv`` ->
    ``/unet/dec1/conv2/conv/``), so the architecture's int8 defaults mean the same layers here."""
    import torch

    patterns = [re.compile(p) for p in keep_float]
    names = []
    for name, layer in module.named_modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            path = "/" + name.replace(".", "/") + "/"
            if any(p.search(path) for p in patterns):
                names.append(name)
    return names


def quantize_w8a8(module: Any, crops: np.ndarray, keep_float: Sequence[str], *,
                  scheme: str = INT8_ACTIVATION_SCHEME) -> tuple[Any, list[str]]:
    """Post-training W8A8 of ``module`` in PyTorch with ``coremltools.optimize.torch``:
    ``LinearQuantizer`` prepared with observers on and fake quantization off (milestones
    ``[0, inf, inf, inf]``), every calibration crop run once, then ``finalize``. Returns the
    finalized module (quantize/dequantize around each int8 layer) and the layers kept float."""
    import torch

    quiet_coremltools()
    from coremltools.optimize.torch.quantization import (LinearQuantizer,
                                                         LinearQuantizerConfig,
                                                         ModuleLinearQuantizerConfig)

    never = 1 << 30
    kept = kept_float_modules(module, keep_float)
    config = LinearQuantizerConfig(
        global_config=ModuleLinearQuantizerConfig(quantization_scheme=scheme,
                                                  activation_observer="min_max",
                                                  weight_observer="min_max",
                                                  milestones=[0, never, never, never]),
        module_name_configs={name: None for name in kept})
    quantizer = LinearQuantizer(module, config)
    example = torch.from_numpy(np.ascontiguousarray(crops[:1], dtype=np.float32))
    with warnings.catch_warnings():
        # torch 2.13 deprecates the quantized tensors torch.ao's reference modules produce
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*",
                                category=DeprecationWarning)
        prepared = quantizer.prepare(example_inputs=(example,))
        quantizer.step()    # step 0: observers on
        with torch.no_grad():
            for crop in crops:
                prepared(torch.from_numpy(np.ascontiguousarray(crop[None], dtype=np.float32)))
        return quantizer.finalize(), kept


def convert_module(module: Any, *, batch: int, height: int, width: int, precision: str) -> Any:
    """Trace ``module`` at ``(batch, 3, height, width)`` and convert it to an ML program."""
    import torch

    ct = quiet_coremltools()
    example = torch.rand(batch, 3, height, width) * 255
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        traced = torch.jit.trace(module, example)
    target = DEPLOYMENT_TARGETS[precision]
    return ct.convert(
        traced, convert_to="mlprogram",
        inputs=[ct.TensorType(name=INPUT_NAME, shape=(batch, 3, height, width), dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
        compute_precision=getattr(ct.precision, COMPUTE_PRECISION[precision]),
        minimum_deployment_target=getattr(ct.target, target))


def weight_only_int8(mlmodel: Any) -> Any:
    """8-bit symmetric per-channel weights of an fp16 program (activations stay fp16)."""
    import coremltools.optimize as cto

    config = cto.coreml.OptimizationConfig(
        global_config=cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric",
                                                         weight_threshold=0))
    return cto.coreml.linear_quantize_weights(mlmodel, config=config)


def op_counts(mlmodel_or_spec: Any) -> dict[str, int]:
    """Op types of the ``main`` function of an ML program (a model or its spec)."""
    spec = mlmodel_or_spec.get_spec() if hasattr(mlmodel_or_spec, "get_spec") else mlmodel_or_spec
    counts: Counter = Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            counts.update(op.type for op in block.operations)
    return dict(sorted(counts.items()))


def save_package(mlmodel: Any, path: Path) -> None:
    """Save ``mlmodel`` as the package folder ``path``: staged beside it, then renamed in
    (an existing package is swapped out, never left half-written)."""
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(dir=path.parent,
                                                               prefix=".mlpackage-") as staging:
        staged = Path(staging) / path.name
        mlmodel.save(str(staged))
        staged.rename(tmp)
    log.info("wrote %s", path.name)


# --- the converters -------------------------------------------------------------------------

def fp32(job: ConversionJob) -> ArtifactEntry:
    """``coreml-fp32``: ML program computing in float32."""
    return convert(job, "fp32")


def fp16(job: ConversionJob) -> ArtifactEntry:
    """``coreml-fp16``: ML program with fp16 weights and tensors (float32 input and output)."""
    return convert(job, "fp16")


def int8(job: ConversionJob) -> ArtifactEntry:
    """``coreml-int8``: W8A8 with the learned ranges of an int8-ready checkpoint; of a float
    checkpoint, calibrated on the bundle's calibration data (weight-only 8-bit where W8A8
    does not convert)."""
    return convert(job, "int8")


def convert(job: ConversionJob, precision: str) -> ArtifactEntry:
    """Build ``coreml-<precision>`` into ``job.folder`` and return its manifest entry."""
    quiet_coremltools()  # imported quietly, before anything else imports it
    target = f"coreml-{precision}"
    denoiser = job.require_denoiser(target)
    network = job.network
    if network.tile is None:
        raise AtbsnError(f"{target} needs a fixed tile shape (the Neural Engine takes static "
                         "shapes); export the bundle without --dynamic")
    height, width = network.tile
    batch = network.batch or 1
    fuse = network.raw.get("upsampling", "fused") == "fused"
    ct = quiet_coremltools()
    extra: dict[str, Any] = {}
    details: dict[str, Any] = {}
    learned = job.learned_int8() if precision == "int8" else None  # refuses calibration flags
    if learned is not None:
        mlmodel, extra, details = _learned_int8(learned, denoiser, batch, height, width)
        fuse = True  # the quantization-aware network computes the folded form itself
    else:
        module = prepare_network(denoiser, network.hole_size, fuse=fuse)
        if precision == "int8":
            mlmodel, extra, details = _int8(job, module, batch, height, width)
        else:
            mlmodel = convert_module(module, batch=batch, height=height, width=width,
                                     precision=precision)
    deployment = extra.pop("coreml_minimum_deployment_target", DEPLOYMENT_TARGETS[precision])
    metadata = job.metadata(precision, **extra, coreml_minimum_deployment_target=deployment,
                            coreml_compute_precision=COMPUTE_PRECISION[precision],
                            coreml_input=f"{INPUT_NAME}:float32:{batch}x3x{height}x{width}",
                            coreml_output=f"{OUTPUT_NAME}:float32:{batch}x3x{height}x{width}",
                            coremltools_version=ct.__version__)
    write_coreml_metadata(mlmodel.user_defined_metadata, metadata)
    mlmodel.short_description = (f"atbsn-edge {network.model} denoiser ({precision}): float32 "
                                 f"RGB 0..255, {batch}x3x{height}x{width} tiles")
    name = artifact_name("coreml", precision)
    save_package(mlmodel, job.folder / name)
    _check_saved(job.folder / name)
    details.update(minimum_deployment_target=deployment,
                   deployment_platforms=DEPLOYMENT_PLATFORMS[deployment],
                   compute_precision=COMPUTE_PRECISION[precision],
                   upsampling="fused" if fuse else "explicit", op_counts=op_counts(mlmodel),
                   coremltools_version=ct.__version__)
    return ArtifactEntry(target, name, "coreml", precision, READY, metadata=metadata,
                         details=details)


def _int8(job: ConversionJob, module: Any, batch: int, height: int,
          width: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from .onnx_target import int8_details

    calibration, keep_float = job.calibration(), job.keep_float()
    method = job.int8.method
    if method != "max":
        log.warning("coreml-int8 calibrates with coremltools' min/max observers; "
                    "--calib-method %s is not used for it", method)
    extra = calibration.int8_metadata("max", keep_float, False)
    details = int8_details(job, keep_float)
    try:
        quantized, kept = quantize_w8a8(module, calibration.crops, keep_float)
        mlmodel = convert_module(quantized, batch=batch, height=height, width=width,
                                 precision="int8")
        scheme = W8A8
    except Exception as exc:  # an op coremltools cannot quantize or convert
        log.warning("W8A8 did not convert (%s: %s); coreml-int8 falls back to weight-only "
                    "8-bit", type(exc).__name__, str(exc)[:200])
        mlmodel = weight_only_int8(convert_module(module, batch=batch, height=height,
                                                  width=width, precision="fp16"))
        scheme, kept = WEIGHT_ONLY, []
        extra["coreml_minimum_deployment_target"] = DEPLOYMENT_TARGETS["fp16"]
        details["w8a8_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    extra.update(int8_scheme=scheme, int8_layers_kept_float=",".join(kept),
                 int8_activation_scheme=INT8_ACTIVATION_SCHEME if scheme == W8A8 else "float16")
    details.update(int8_scheme=scheme, layers_kept_float=kept)
    return mlmodel, extra, details


def learned_int8_program(denoiser: Any, *, batch: int, height: int, width: int) -> Any:
    """The W8A8 ML program of an int8-ready checkpoint's learned ranges: its
    quantization-aware network traced at ``(batch, 3, height, width)`` in the export form and
    converted with the fake-quantize converters of ``coreml_fake_quant.py``."""
    import torch

    from ..quantization.fake_quant import export_form
    from .coreml_fake_quant import register_fake_quantize_converters
    from .torch_qat_to_int8_onnx import learned_network

    wrapped = learned_network(denoiser)
    register_fake_quantize_converters()
    with export_form(), warnings.catch_warnings():
        # its constants (the folded integer weights) and shape checks, fixed at this tile
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return convert_module(wrapped, batch=batch, height=height, width=width,
                              precision="int8")


def _learned_int8(source: ArtifactEntry, denoiser: Any, batch: int, height: int,
                  width: int) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """W8A8 from an int8-ready checkpoint: its quantization-aware network traced in the export
    form (the graph of its learned-range ONNX: symmetric int8, zero points 0, every layer
    int8) and its fake-quantize operators converted to ``quantize``/``dequantize`` and int8
    weights (``coreml_fake_quant.py``); fp16 between them. No calibration. ``source``: the
    bundle's learned onnx-int8 entry, whose details the manifest repeats."""
    from .torch_qat_to_int8_onnx import LEARNED

    mlmodel = learned_int8_program(denoiser, batch=batch, height=height, width=width)
    extra = {"int8_ranges": LEARNED, "int8_keep_float": "", "upsampling": "fused",
             "int8_scheme": W8A8, "int8_layers_kept_float": "",
             "int8_activation_scheme": LEARNED_ACTIVATION_SCHEME}
    details = {**source.details, "int8_scheme": W8A8, "layers_kept_float": []}
    log.info("coreml-int8 from the learned ranges of the int8-ready checkpoint: every layer "
             "int8, symmetric activations")
    return mlmodel, extra, details


def _check_saved(path: Path) -> None:
    """Re-read the saved package: its protobuf parses and every op is one the numpy
    evaluator (and so parity off macOS) covers; otherwise the export fails here."""
    from ..coreml_mil.evaluator import ProgramEvaluator

    ProgramEvaluator(path)

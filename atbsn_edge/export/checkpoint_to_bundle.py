"""Checkpoint -> bundle: the one converter that needs PyTorch.

It writes what every other target is converted from: the fp32 ONNX of the bare network (hole
fixed, upsampling folded by default) with the toolkit's metadata, and the reference data
(real noisy crops of the tile shape with PyTorch's outputs for them). Every target is then
built from that ONNX by a converter that imports no torch (``export/job.py``), here or on the
device (``export --from-bundle``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..bundle import FP32_ONNX, READY, ArtifactEntry, Bundle, onnx_name, save_reference
from ..strength import STRENGTH_KEY
from .torch_qat_to_int8_onnx import LEARNED, learned_ranges, torch_qat_to_int8_onnx

log = logging.getLogger(__name__)


def artifact_metadata(denoiser: Any, hole_size: int | None, precision: str) -> dict[str, Any]:
    """What every artifact records about its network (read back by the runtimes)."""
    arch = denoiser.architecture
    return {"model": arch.name, "hole_size": "" if hole_size is None else hole_size,
            "value_range": "0,255", "stride": arch.stride, "default_overlap": arch.default_overlap,
            "precision": precision, "checkpoint_sha256": denoiser.metadata.get("checkpoint_sha256", ""),
            STRENGTH_KEY: denoiser.metadata.get(STRENGTH_KEY, ""), "toolkit_version": __version__}


def export_fp32_onnx(denoiser: Any, path: str | Path, *, tile: int, batch: int = 1,
                     hole_size: int | None = None, dynamic: bool = False,
                     fuse_upsampling: bool = True) -> dict[str, str]:
    """Export ``denoiser``'s bare network (hole fixed) as fp32 ONNX at ``tile`` x ``tile``.

    ``fuse_upsampling`` folds each decoder's upsampling into its first convolution
    (``atbsn_edge.models.upsample_fusion``: same outputs, 4/9 of that convolution's work).
    Dynamic exports are verified against PyTorch at two sizes.
    """
    from ..models.checkpoint import float_network
    from ..models.upsample_fusion import fuse_upsampling as fuse
    from .torch_to_onnx import export_onnx

    hole = denoiser.resolve_hole(hole_size)
    module = float_network(denoiser.core(hole))  # an int8-ready checkpoint: its float weights
    metadata = artifact_metadata(denoiser, hole, "fp32")
    if fuse_upsampling:
        module, fused = fuse(module)
        log.info("upsampling folded into %d decoder convolutions", fused)
    metadata["upsampling"] = "fused" if fuse_upsampling else "explicit"
    checks = ((tile, tile), (tile + 2 * denoiser.stride, tile + denoiser.stride)) if dynamic else ()
    return export_onnx(module, path, height=tile, width=tile, batch=batch, dynamic=dynamic,
                       metadata=metadata, check_sizes=checks)


def checkpoint_to_bundle(denoiser: Any, folder: Path, *, checkpoint: str, part: str | None = None,
                         tile: int,
                         batch: int = 1, hole_size: int | None = None, dynamic: bool = False,
                         fuse_upsampling: bool = True, reference_images: Sequence[Path],
                         reference_crops: int = 2) -> Bundle:
    """Write the fp32 ONNX and the reference data of ``denoiser`` into the (new, empty)
    ``folder`` and return its :class:`Bundle` with the ``onnx-fp32`` artifact recorded."""
    from .reference import reference_crops as cut_crops
    from .reference import torch_outputs

    hole = denoiser.resolve_hole(hole_size)
    network = export_fp32_onnx(denoiser, folder / FP32_ONNX, tile=tile, batch=batch,
                               hole_size=hole, dynamic=dynamic, fuse_upsampling=fuse_upsampling)
    learned = learned_ranges(denoiser) is not None
    bundle = Bundle.new(folder, network=network, checkpoint=checkpoint,
                        checkpoint_sha256=denoiser.metadata.get("checkpoint_sha256", ""), part=part,
                        int8_keep_float_default=() if learned else
                        denoiser.architecture.int8_keep_float)
    inputs, names = cut_crops(reference_images, tile, tile, reference_crops)
    save_reference(folder, inputs, torch_outputs(denoiser, hole, inputs), names)
    bundle.set_reference(names, [str(p) for p in reference_images])
    bundle.add_artifact(ArtifactEntry("onnx-fp32", FP32_ONNX, "onnxruntime", "fp32", READY,
                                      metadata=network), default=False)
    if learned:  # every int8 target of this bundle starts from the graph with learned ranges
        name = onnx_name("int8")
        metadata = torch_qat_to_int8_onnx(
            denoiser, folder / name, tile=tile, batch=batch, dynamic=dynamic,
            metadata=artifact_metadata(denoiser, hole, "int8"))
        bundle.add_artifact(ArtifactEntry("onnx-int8", name, "onnxruntime", "int8", READY,
                                          metadata=metadata,
                                          details={"int8_ranges": LEARNED,
                                                   "qat": _qat_details(denoiser)}), default=False)
    return bundle


def _qat_details(denoiser: Any) -> dict[str, Any]:
    """What the manifest records about a quantization-aware checkpoint's fine-tuning."""
    from ..quantization.sums import sums_of

    meta = denoiser.metadata
    ranges = meta.get("int8_ranges") or {}
    steps = ranges.get("steps", {})
    bits = ranges.get("weight_bits", 8)  # ranges written before weight widths existed: 8
    widths = list(bits.values()) if isinstance(bits, dict) else [bits] * len(steps)
    continued = meta.get("qat_continued") or {}  # python -m atbsn_edge.qat --continue-from
    return {"from": meta.get("qat_from", ""), "iterations": meta.get("iterations"),
            **({"continued_from_iterations": continued.get("iterations")} if continued else {}),
            "points": len(steps), "sums": sums_of(ranges),
            "weights_7bit": sum(b == 7 for b in widths), "weights_8bit": sum(b == 8 for b in widths),
            "offsets": dict(ranges.get("offsets") or {})}

"""Build the ONNX artifact of a loaded network (the ``onnx-*`` targets' converter)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..models.upsample_fusion import fuse_upsampling as fuse
from .torch_to_onnx import export_onnx

log = logging.getLogger(__name__)


def artifact_metadata(denoiser: Any, hole_size: int | None, precision: str) -> dict[str, Any]:
    """What every artifact records about its network (read back by the runtimes)."""
    arch = denoiser.architecture
    return {"model": arch.name, "hole_size": "" if hole_size is None else hole_size,
            "value_range": "0,255", "stride": arch.stride, "default_overlap": arch.default_overlap,
            "precision": precision, "checkpoint_sha256": denoiser.metadata.get("checkpoint_sha256", ""),
            "toolkit_version": __version__}


def build(denoiser: Any, path: str | Path, *, tile: int, batch: int = 1,
          hole_size: int | None = None, dynamic: bool = False,
          fuse_upsampling: bool = True) -> dict[str, str]:
    """Export ``denoiser``'s bare network (hole fixed) as fp32 ONNX at ``tile`` x ``tile``.

    ``fuse_upsampling`` folds each decoder's upsampling into its first convolution
    (``atbsn_edge.models.upsample_fusion``: same outputs, 4/9 of that convolution's work).
    Dynamic exports are verified against PyTorch at two sizes.
    """
    hole = denoiser.resolve_hole(hole_size)
    module = denoiser.core(hole)
    metadata = artifact_metadata(denoiser, hole, "fp32")
    if fuse_upsampling:
        module, fused = fuse(module)
        log.info("upsampling folded into %d decoder convolutions", fused)
    metadata["upsampling"] = "fused" if fuse_upsampling else "explicit"
    checks = ((tile, tile), (tile + 2 * denoiser.stride, tile + denoiser.stride)) if dynamic else ()
    return export_onnx(module, path, height=tile, width=tile, batch=batch, dynamic=dynamic,
                       metadata=metadata, check_sizes=checks)


def build_fp16(denoiser: Any, path: str | Path, **options: Any) -> dict[str, str]:
    """The ``onnx-fp16`` converter: the fp32 ONNX beside ``path``, then its fp16 graph."""
    from ..atomic import atomic_path
    from ..errors import require
    from .onnx_fp32_to_fp16 import onnx_fp32_to_fp16
    from .torch_to_onnx import set_onnx_metadata

    onnx = require("onnx", "onnx")
    path = Path(path)
    fp32_path = path.with_name("model-fp32.onnx")
    metadata = build(denoiser, fp32_path, **options)
    metadata["precision"] = "fp16"
    model = onnx_fp32_to_fp16(onnx.load(str(fp32_path)))
    set_onnx_metadata(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return metadata


def build_int8(denoiser: Any, path: str | Path, *, calibration: Any, method: str = "max",
               keep_float: Sequence[str] = (), **options: Any) -> dict[str, str]:
    """The ``onnx-int8`` converter: fp32 ONNX beside ``path``, then a calibrated Q/DQ graph
    (nodes matching ``keep_float`` stay float)."""
    from ..errors import require
    from .onnx_fp32_to_int8 import onnx_fp32_to_int8
    from .torch_to_onnx import set_onnx_metadata

    onnx = require("onnx", "onnx")
    path = Path(path)
    fp32_path = path.with_name("model-fp32.onnx")
    metadata = build(denoiser, fp32_path, **options)
    done = onnx_fp32_to_int8(fp32_path, path, calibration, method, batch=options.get("batch", 1),
                             keep_float=keep_float)
    metadata.update(calibration.int8_metadata(method, keep_float, done["calibration_cached"]))
    model = onnx.load(str(path))
    set_onnx_metadata(model, metadata)
    onnx.save(model, str(path))
    return metadata

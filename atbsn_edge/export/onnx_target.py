"""Build the ONNX artifact of a loaded network (the ``onnx-*`` targets' converter)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__
from .torch_to_onnx import export_onnx


def artifact_metadata(denoiser: Any, hole_size: int | None, precision: str) -> dict[str, Any]:
    """What every artifact records about its network (read back by the runtimes)."""
    arch = denoiser.architecture
    return {"model": arch.name, "hole_size": "" if hole_size is None else hole_size,
            "value_range": "0,255", "stride": arch.stride, "default_overlap": arch.default_overlap,
            "precision": precision, "checkpoint_sha256": denoiser.metadata.get("checkpoint_sha256", ""),
            "toolkit_version": __version__}


def build(denoiser: Any, path: str | Path, *, tile: int, batch: int = 1,
          hole_size: int | None = None, dynamic: bool = False) -> dict[str, str]:
    """Export ``denoiser``'s bare network (hole fixed) as fp32 ONNX at ``tile`` x ``tile``.

    Dynamic exports are verified against PyTorch at two sizes.
    """
    hole = denoiser.resolve_hole(hole_size)
    checks = ((tile, tile), (tile + 2 * denoiser.stride, tile + denoiser.stride)) if dynamic else ()
    return export_onnx(denoiser.core(hole), path, height=tile, width=tile, batch=batch,
                       dynamic=dynamic, metadata=artifact_metadata(denoiser, hole, "fp32"),
                       check_sizes=checks)

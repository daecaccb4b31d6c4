"""A checkpoint opened for tiled denoising: the set-up the denoise and evaluate CLIs share.

:func:`open_tiled` loads a checkpoint into a :class:`~atbsn_edge.runtimes.torch_runtime.TorchRuntime`
and builds the :class:`~atbsn_edge.tiling.TileSpec` for it: the architecture's default
overlap unless one is given, the runtime's stride. Bad flags and checkpoints become
:class:`~atbsn_edge.errors.AtbsnError` (one line from a CLI).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import AtbsnError
from .runtimes.base import Runtime
from .tiling import DEFAULT_TILE, TileSpec, denoise_tiled

log = logging.getLogger(__name__)


@dataclass
class TiledRuntime:
    """A runtime and the tile layout to run it with; closes the runtime as a context manager."""

    runtime: Runtime
    spec: TileSpec
    device: str = "cpu"

    def denoise(self, rgb: np.ndarray, progress: Callable[[int], object] | None = None) -> np.ndarray:
        """Denoise an H x W x 3 float32 image (0..255), tiled."""
        return denoise_tiled(rgb, self.runtime.run, self.spec, progress)

    def describe(self) -> str:
        """One line: model, hole, device, tiles, overlap, batch."""
        info = self.runtime.info
        hole = f" (hole {info.hole_size})" if info.hole_size is not None else ""
        return (f"{info.model}{hole} on {self.device}, tiles {self.spec.tile_h or 'whole image'}, "
                f"overlap {self.spec.overlap}, batch {self.spec.batch}")

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "TiledRuntime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_tiling_arguments(p) -> None:
    """``--hole``, ``--tile``, ``--overlap``, ``--batch``, ``--device``: shared by the CLIs
    that denoise through :func:`open_tiled`."""
    from .cli import hole_size_arg

    p.add_argument("--hole", type=hole_size_arg,
                   help="AT-BSN blind-spot size at inference (default: the checkpoint's)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"tile side, multiple of 32; 0 = whole image at once (default {DEFAULT_TILE})")
    p.add_argument("--overlap", type=int,
                   help="tile overlap, multiple of 32 (default: the network's measured need, "
                        "128 for AT-BSN and students B/C, 64 for student A)")
    p.add_argument("--batch", type=int, default=1, help="tiles per network call (default 1)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))


def fitting_overlap(default: int, tile_h: int, tile_w: int) -> int:
    """The network's default overlap, reduced (with a warning) to fit a small tile."""
    tiles = [t for t in (tile_h, tile_w) if t]
    if not tiles or default < min(tiles):
        return default
    reduced = max(0, min(tiles) - 32)
    log.warning("tile %d leaves no room for the default overlap %d; using %d (seams may show: "
                "export a larger tile)", min(tiles), default, reduced)
    return reduced


def resolve_artifact(path: str | os.PathLike) -> Path:
    """An artifact file as given, or the artifact a bundle folder's manifest names."""
    path = Path(path)
    if path.is_dir():
        manifest = path / "manifest.json"
        try:
            return path / json.loads(manifest.read_text())["artifact"]
        except (OSError, ValueError, KeyError) as exc:
            raise AtbsnError(f"{path} is not a bundle: cannot read the artifact from "
                             f"{manifest} ({exc})") from None
    return path


def open_artifact_tiled(artifact: str | os.PathLike, *, tile: int = DEFAULT_TILE,
                        overlap: int | None = None, batch: int = 1,
                        **runtime_options: Any) -> TiledRuntime:
    """Open an exported artifact (file or bundle); tile shape, batch, stride and the default
    overlap come from its metadata, so no other flag is needed. ``runtime_options``
    (``threads``, ``performance_hint``) go to the backend that takes them."""
    from .runtimes.registry import open_artifact

    runtime = open_artifact(resolve_artifact(artifact), **runtime_options)
    spec_in = runtime.input_spec
    meta = runtime.info.metadata
    tile_h = spec_in.height or tile
    tile_w = spec_in.width or tile
    if overlap is None:
        overlap = fitting_overlap(int(meta.get("default_overlap", 128)), tile_h, tile_w)
    spec = TileSpec(tile_h=tile_h, tile_w=tile_w, overlap=overlap, batch=spec_in.batch or batch,
                    stride=spec_in.stride)
    return _validated(runtime, spec, "cpu")


def _validated(runtime: Runtime, spec: TileSpec, device: str) -> TiledRuntime:
    try:
        spec.validate()
    except ValueError as exc:
        runtime.close()
        raise AtbsnError(str(exc)) from None
    tiled = TiledRuntime(runtime, spec, device)
    log.info("%s", tiled.describe())
    return tiled


def open_tiled(checkpoint: str | os.PathLike, *, part: str | None = None,
               hole_size: int | None = None, device: str = "cpu", tile: int = DEFAULT_TILE,
               overlap: int | None = None, batch: int = 1) -> TiledRuntime:
    """Load ``checkpoint`` into a PyTorch runtime and lay out square tiles of side ``tile``.

    ``overlap`` defaults to the architecture's ``default_overlap``; ``tile=0`` runs whole
    images. Raises :class:`AtbsnError` for an unusable checkpoint, hole size or tile layout.
    """
    from .runtimes.torch_runtime import TorchRuntime

    try:
        runtime = TorchRuntime.from_checkpoint(checkpoint, part=part, hole_size=hole_size,
                                               device=device)
    except ValueError as exc:
        raise AtbsnError(str(exc)) from None
    if overlap is None:
        overlap = fitting_overlap(runtime.denoiser.architecture.default_overlap, tile, tile)
    spec = TileSpec(tile_h=tile, tile_w=tile, overlap=overlap, batch=batch,
                    stride=runtime.input_spec.stride)
    return _validated(runtime, spec, device)

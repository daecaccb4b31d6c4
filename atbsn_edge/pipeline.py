"""A checkpoint opened for tiled denoising: the set-up the denoise and evaluate CLIs share.

:func:`open_tiled` loads a checkpoint into a :class:`~atbsn_edge.runtimes.torch_runtime.TorchRuntime`
and builds the :class:`~atbsn_edge.tiling.TileSpec` for it: the architecture's default
overlap unless one is given, the runtime's stride. Bad flags and checkpoints become
:class:`~atbsn_edge.errors.AtbsnError` (one line from a CLI).

The denoising strength (:mod:`atbsn_edge.strength`: a number ``s``, ``input + s * (output -
input)``, or ``auto``, a per-pixel gain from the residual) is applied after tiling, the same on
every backend. Its default is the model's own (the ``strength`` entry of the checkpoint's or
artifact's metadata), 1 where it has none.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import AtbsnError
from .runtimes.base import Runtime
from .strength import (Strength, blend_with_input, describe_strength, model_strength,
                       parse_strength, strength_arg)
from .tiling import (AUTO_TILE_AREA, DEFAULT_TILE, TilePlan, TileSpec, check_image,
                     denoise_tiled_many, overlap_for_tile, plan_tiles, preferred_tile_shape)

log = logging.getLogger(__name__)

AUTO = "auto"
Tile = int | str  # a tile side, 0 (whole images) or "auto" (a shape per image)


@dataclass
class TiledRuntime:
    """A runtime, the tile layout to run it with and the denoising strength; closes the
    runtime as a context manager.

    With ``auto_tile_area`` (``--tile auto``, for runtimes that take any tile shape) each
    image gets the tile shape that computes it in the fewest pixels, at most that many
    pixels a tile (:func:`~atbsn_edge.tiling.auto_tile_shape`); ``spec`` gives the overlap,
    batch and stride."""

    runtime: Runtime
    spec: TileSpec
    strength: Strength = 1.0
    auto_tile_area: int = 0

    @property
    def lanes(self) -> int:
        """Tiles computed at once: the batch times the requests the runtime keeps in flight."""
        return self.spec.batch * int(self.runtime.info.metadata.get("infer_requests", 1))

    def spec_for(self, height: int, width: int) -> TileSpec:
        """The tile layout for an image of ``height`` x ``width``.

        With auto tiles on a runtime that recompiles for a new shape (OpenVINO), a shape it
        has compiled already is kept unless the new one saves more than
        ``RESHAPE_PENALTY_CALLS`` calls' worth of pixels of the artifact's own tile (a
        recompile took 0.10-0.14 s here, about one 512 x 512 call), so a folder of small
        images of many sizes does not recompile for each."""
        if not self.auto_tile_area:
            return self.spec
        spec = self.spec
        shape = preferred_tile_shape(
            height, width, spec.overlap, stride=spec.stride, grid=spec.grid,
            max_area=self.auto_tile_area, lanes=self.lanes,
            ready=self.runtime.ready_tile_shapes())
        return replace(spec, tile_h=shape[0], tile_w=shape[1])

    def prepare(self, height: int, width: int) -> tuple[TileSpec, TilePlan]:
        """Make the runtime ready for an image of ``height`` x ``width`` (OpenVINO compiles
        its tile shape now, e.g. while the image is still being read) and return its tile
        layout and plan; :meth:`denoise` calls it."""
        spec = self.spec_for(height, width)
        plan = plan_tiles(height, width, spec)
        self.runtime.set_tile_shape(plan.tile_h, plan.tile_w)
        return spec, plan

    def denoise(self, rgb: np.ndarray, progress: Callable[[int], object] | None = None) -> np.ndarray:
        """Denoise an H x W x 3 float32 image (0..255), tiled, with as many batches in
        flight as the runtime keeps (``Runtime.run_many``), at :attr:`strength`. Anything
        else (a tensor, another shape or dtype, NaN or infinite values) is a ValueError
        (:func:`~atbsn_edge.tiling.check_image`)."""
        check_image(rgb)
        spec, plan = self.prepare(*rgb.shape[:2])
        if self.auto_tile_area:
            log.debug("%dx%d image: %d tiles of %dx%d (width x height)", rgb.shape[1],
                      rgb.shape[0], plan.count, plan.tile_w, plan.tile_h)
        denoised = denoise_tiled_many(rgb, self.runtime.run_many, spec, progress, checked=True)
        return blend_with_input(rgb, denoised, self.strength, in_place=True)

    def describe(self) -> str:
        """One line: model, hole, device, tiles (width x height), overlap, batch (and the
        requests in flight where the backend keeps several)."""
        info = self.runtime.info
        hole = f" (hole {info.hole_size})" if info.hole_size is not None else ""
        requests = int(info.metadata.get("infer_requests", 1))
        in_flight = f", {requests} requests in flight" if requests > 1 else ""
        strength = (f", strength {describe_strength(self.strength)}"
                    if self.strength != 1.0 else "")
        if self.auto_tile_area:
            tiles = f"tiles auto (at most {self.auto_tile_area / 1e6:.2g} MP)"
        elif self.spec.tile_h == self.spec.tile_w:
            tiles = f"tiles {self.spec.tile_h or 'whole image'}"
        else:
            tiles = f"tiles {self.spec.tile_w}x{self.spec.tile_h}"  # width x height
        return (f"{info.model}{hole} {info.precision} ({info.backend}) on {info.device}, "
                f"{tiles}, "
                f"overlap {self.spec.overlap}, batch {self.spec.batch}{in_flight}{strength}")

    def close(self) -> None:
        """Close the runtime (:meth:`Runtime.close`; idempotent)."""
        self.runtime.close()

    def __enter__(self) -> "TiledRuntime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_tiling_arguments(p: argparse.ArgumentParser) -> None:
    """``--hole``, ``--tile``, ``--overlap``, ``--batch``, ``--device``: shared by the CLIs
    that denoise through :func:`open_tiled`."""
    from .arguments import DEVICE_HELP, hole_size_arg, multiple_of_32, positive_int, torch_device

    p.add_argument("--hole", type=hole_size_arg,
                   help="AT-BSN blind-spot size at inference (default: the checkpoint's)")
    p.add_argument("--tile", type=tile_arg, default=AUTO,
                   help="tile side, multiple of 32; 0 = whole image at once; auto (default): "
                        "per image, the tile shape that computes it in the fewest pixels, at "
                        f"most {AUTO_TILE_AREA} pixels a tile (twice that on OpenVINO, whose "
                        "tiles take less memory; docs/tiling.md), where the backend takes any "
                        "shape, else an exported artifact's own tile")
    p.add_argument("--overlap", type=multiple_of_32,
                   help="tile overlap, multiple of 32 (default: the network's measured need, "
                        "128 for AT-BSN and students B/C, 64 for student A)")
    p.add_argument("--batch", type=positive_int,
                   help="tiles per network call (default 1; an exported artifact's own batch)")
    p.add_argument("--device", default="cpu", type=torch_device, help=DEVICE_HELP)
    p.add_argument("--strength", type=strength_arg,
                   help="output = input + S x (network output - input), S in 0..2: below 1 "
                        "keeps more of the input's texture (and noise); 'auto': S per pixel, "
                        "lower where the network removed more than the image's noise level "
                        "(texture), the picture's low frequencies kept from the input; "
                        "default: the model's own (its metadata's strength), else 1")


def tile_arg(text: str) -> Tile:
    """argparse type of ``--tile``: ``auto``, or 0 or a positive multiple of 32."""
    import argparse

    from .arguments import multiple_of_32

    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return multiple_of_32(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, 0 or a positive multiple of 32, got "
                                         f"{text!r}") from None


def _check_tile(tile_h: int, tile_w: int, stride: int) -> None:
    """:class:`AtbsnError` for tile sides no image can take, before the overlap is fitted to
    them (whose warning would otherwise come before the error)."""
    try:
        TileSpec(tile_h=tile_h, tile_w=tile_w, overlap=0, stride=stride).validate()
    except ValueError as exc:
        raise AtbsnError(str(exc)) from None


def fitting_overlap(default: int, tile_h: int, tile_w: int) -> int:
    """The network's default overlap, reduced (with a warning) to fit a small tile."""
    reduced = overlap_for_tile(default, tile_h, tile_w)
    if reduced == default:
        return default
    tiles = [t for t in (tile_h, tile_w) if t]
    log.warning("tile %d leaves no room for the default overlap %d; using %d (seams may show: "
                "export a larger tile)", min(tiles), default, reduced)
    return reduced


def locate_artifact(path: str | os.PathLike, target: str | None = None) -> tuple[Path, str | None]:
    """(entry file, runtime name) of what ``path`` names: a bundle folder's artifact (the
    default target or ``target``), every file verified against the manifest; or an artifact
    file as given (its runtime from its suffix, ``None``)."""
    from .bundle import MANIFEST_FILE, Bundle

    path = Path(path)
    folder_artifact = path.suffix == ".mlpackage" and not (path / MANIFEST_FILE).exists()
    if path.is_dir() and not folder_artifact:
        bundle = Bundle.open(path)
        entry_path = bundle.entry_path(target)
        return entry_path, bundle.artifact(target).runtime
    if target is not None:
        raise AtbsnError(f"--target chooses an artifact of a bundle; {path} is an artifact file")
    if not path.exists():
        raise AtbsnError(f"artifact {path} does not exist")
    return path, _verified_in_bundle(path)


def _verified_in_bundle(path: Path) -> str | None:
    """For an artifact file given inside its bundle folder: verify it against the manifest
    (as the folder would be) and return its runtime name; None for a file outside any
    bundle, or one the manifest does not list as an artifact's entry."""
    from .bundle import READY, Bundle
    from .bundle.manifest import is_bundle

    if not is_bundle(path.parent):
        return None
    try:
        bundle = Bundle.open(path.parent)
    except AtbsnError as exc:  # an old or foreign manifest: the file runs as given, as before
        log.warning("%s is not verified against %s: %s", path.name, path.parent, exc)
        return None
    for entry in bundle.artifacts.values():
        if entry.entry == path.name and entry.status == READY:
            bundle.verify(entry)
            log.debug("%s verified against the manifest of %s", path.name, path.parent)
            return entry.runtime
    return None


def _artifact_spec(runtime: Runtime, tile: Tile | None, batch: int | None,
                   overlap: int | None) -> TileSpec:
    """The tile layout for an artifact: its fixed tile and batch, or the given ones where it
    is dynamic or reshapable (``auto`` there: the artifact's own tile, or 512, for the
    overlap; each image then gets its own shape). A --tile or --batch that a fixed
    artifact cannot take is refused."""
    spec_in = runtime.input_spec
    fixed_tile = (spec_in.height, spec_in.width)
    if not (tile is None or tile == AUTO or (isinstance(tile, int) and not isinstance(tile, bool)
                                             and tile >= 0)):
        raise AtbsnError(f"tile={tile!r}: give a multiple of {spec_in.stride} (0: each whole "
                         "image), \"auto\" or None (the artifact's own)")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise AtbsnError(f"batch={batch!r}: give a whole number of tiles per call, at least 1")
    if tile == AUTO:
        tile = None if None not in fixed_tile else DEFAULT_TILE
    if None not in fixed_tile and runtime.reshapable and tile is not None:
        fixed_tile = (tile, tile)  # recompiled for it (0: each whole image) when images come
    if None not in fixed_tile:
        if tile is not None and (tile, tile) != fixed_tile:
            redo = (f"--tile {tile} (or --dynamic)" if tile else
                    "--dynamic (an artifact that takes each whole image)")
            raise AtbsnError(f"the artifact's tile is fixed at {fixed_tile[0]}x{fixed_tile[1]}; "
                             f"--tile {tile} cannot apply: drop --tile, or re-export with {redo}")
        tile_h, tile_w = fixed_tile
    else:
        tile = DEFAULT_TILE if tile is None else tile  # 0: the whole image at once
        tile_h = spec_in.height or tile
        tile_w = spec_in.width or tile
    if spec_in.batch is not None and batch is not None and batch != spec_in.batch:
        raise AtbsnError(f"the artifact's batch is fixed at {spec_in.batch}; --batch {batch} "
                         f"cannot apply: drop --batch, or re-export with --batch {batch}")
    _check_tile(tile_h or 0, tile_w or 0, spec_in.stride)
    if overlap is None:
        overlap = fitting_overlap(runtime.info.default_overlap, tile_h, tile_w)
    return TileSpec(tile_h=tile_h, tile_w=tile_w, overlap=overlap,
                    batch=spec_in.batch or batch or 1, stride=spec_in.stride)


def open_artifact_tiled(artifact: str | os.PathLike, *, target: str | None = None,
                        tile: Tile | None = None, overlap: int | None = None,
                        batch: int | None = None, strength: Strength | None = None,
                        image_sizes: Iterable[tuple[int, int]] = (),
                        openvino_flags: Sequence[str] = (),
                        **runtime_options: Any) -> TiledRuntime:
    """Open an exported artifact (a bundle folder, verified, or an artifact file); tile shape,
    batch, stride and the default overlap come from its metadata, so no other flag is needed.
    ``tile`` and ``batch`` apply to dynamic artifacts and are refused where the artifact
    fixes another value; a reshapable one (OpenVINO) takes any ``tile``, and ``"auto"``
    (where the runtime takes any tile shape) gives each image its own
    (:meth:`TiledRuntime.spec_for`). ``strength`` defaults to the artifact's own (metadata), else 1.
    ``runtime_options`` (``threads``, ``performance_hint``, ``infer_requests``) go to the
    backend that takes them. ``performance_hint="auto"`` (OpenVINO) compiles for throughput
    when one of ``image_sizes`` ((height, width) of the images to come) needs several tiles,
    else for latency. ``openvino_flags``: the OpenVINO-only flags the caller was given
    (``--inference-precision``, ...), refused before anything opens where another backend
    runs the artifact, which would ignore them."""
    from .runtimes.registry import backend_for_file, open_artifact, runtime_here

    entry, runtime_name = locate_artifact(artifact, target)
    backend = runtime_name or backend_for_file(entry)
    if openvino_flags and backend != "openvino":
        verb = "is" if len(openvino_flags) == 1 else "are"
        raise AtbsnError(f"{' and '.join(openvino_flags)} {verb} for OpenVINO artifacts; "
                         f"{artifact} runs in {backend}, which would ignore it: drop the flag, "
                         "or export an openvino-* target")
    runtime_name = runtime_here(backend)  # Core ML: the numpy evaluator off macOS
    if str(runtime_options.get("performance_hint", "")).lower() == "auto":
        runtime_options["performance_hint"] = _auto_hint(backend, entry, image_sizes, tile,
                                                         overlap, runtime_options)
    runtime = open_artifact(entry, runtime=runtime_name, **runtime_options)
    try:
        spec = _artifact_spec(runtime, tile, batch, overlap)
    except AtbsnError:
        runtime.close()
        raise
    auto_area = runtime.auto_tile_area if tile == AUTO and runtime.any_tile_shape else 0
    return _validated(runtime, spec, strength, str(entry), auto_area, "open_artifact_tiled")


def _auto_hint(backend: str, entry: Path, image_sizes: Iterable[tuple[int, int]],
               tile: Tile | None, overlap: int | None, options: Mapping[str, Any]) -> str | None:
    """The performance hint ``auto`` stands for: throughput where several requests in flight
    were asked for, else the choice from the images; None for backends that take no hint."""
    from .runtimes.registry import backend_function

    choose = backend_function(backend, "auto_hint")
    if choose is None:
        return None  # a backend without the column takes no performance hint
    if int(options.get("infer_requests") or 0) > 1:
        return "THROUGHPUT"
    hint = choose(entry, image_sizes, tile, overlap)
    log.debug("performance hint auto: %s", hint.lower())
    return hint


def _validated(runtime: Runtime, spec: TileSpec, strength: Strength | None,
               source: str, auto_tile_area: int = 0, caller: str = "open_tiled") -> TiledRuntime:
    try:
        spec.validate()
        if strength is None:
            strength = model_strength(runtime.info.metadata, source)
        else:  # the same check as --strength
            strength = parse_strength(strength, caller)
    except (ValueError, AtbsnError) as exc:
        runtime.close()
        raise AtbsnError(str(exc)) from None
    tiled = TiledRuntime(runtime, spec, strength, auto_tile_area)
    log.info("%s", tiled.describe())
    return tiled


def open_tiled(checkpoint: str | os.PathLike, *, part: str | None = None,
               hole_size: int | None = None, device: str = "cpu", tile: Tile | None = None,
               overlap: int | None = None, batch: int | None = None,
               strength: Strength | None = None) -> TiledRuntime:
    """Load ``checkpoint`` into a PyTorch runtime and lay out square tiles of side ``tile``
    (default 512; ``"auto"``: a shape per image, :meth:`TiledRuntime.spec_for`), ``batch``
    tiles per call (default 1), at ``strength`` (default: the checkpoint's own, its
    metadata's ``strength``, else 1).

    ``overlap`` defaults to the architecture's ``default_overlap``; ``tile=0`` runs whole
    images. Raises :class:`AtbsnError` for an unusable checkpoint, hole size or tile layout.
    """
    from .runtimes.torch_runtime import TorchRuntime

    try:
        runtime = TorchRuntime.from_checkpoint(checkpoint, part=part, hole_size=hole_size,
                                               device=device)
    except ValueError as exc:
        raise AtbsnError(str(exc)) from None
    auto_area = runtime.auto_tile_area if tile == AUTO else 0
    tile = DEFAULT_TILE if tile is None or tile == AUTO else tile
    try:
        _check_tile(tile, tile, runtime.input_spec.stride)
    except AtbsnError:
        runtime.close()
        raise
    if overlap is None:
        overlap = fitting_overlap(runtime.denoiser.architecture.default_overlap, tile, tile)
    spec = TileSpec(tile_h=tile, tile_w=tile, overlap=overlap,
                    batch=1 if batch is None else batch, stride=runtime.input_spec.stride)
    return _validated(runtime, spec, strength, str(checkpoint), auto_area)

"""Tiled denoising of images of any size through any fixed-shape network call.

The image is (virtually) reflect-padded at the bottom and right to the network's stride,
exactly as the whole-image path pads it, and to at least one tile. Tiles of a fixed shape
start on the 32-pixel pooling grid (the last one shifted back flush with the padded image,
which keeps it on the network's own grid), overlap by at least the network's
effective receptive field, go through the network in batches and are blended with
separable linear feathers that sum to one. Because all tiles are aligned to the pooling grid
of the whole padded image, tiled output equals whole-image output up to the influence of
pixels farther away than half the overlap. Memory: the output array plus one batch of tiles
(plus the batches in flight, with :func:`denoise_tiled_many`).

:func:`denoise_tiled_many` feeds a stream-of-batches function (``Runtime.run_many``), which may
keep several batches in flight; it yields outputs in input order, so tiles are blended in the
same order, and so to the same sums, as :func:`denoise_tiled` one batch at a time.
"""
from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

GRID = 32
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 128
RESHAPE_PENALTY_CALLS = 2  # a recompile for another tile shape, in calls of the compiled one
AUTO_TILE_AREA = 512 * 1024  # the largest tile ``--tile auto`` chooses, in pixels (docs/tiling.md)
InferFn = Callable[[np.ndarray], np.ndarray]
InferManyFn = Callable[[Iterable[np.ndarray]], Iterable[np.ndarray]]
VALID_IMAGE = "a numpy H x W x 3 RGB array, float on 0..255 (float32 best) or uint8"


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """``image`` itself if it can be denoised: :data:`VALID_IMAGE`, at least one pixel, every
    value finite; else a ValueError that names what was given and what is valid. (Other
    integer types are refused rather than guessed at: a uint16 array may be 16-bit on
    0..65535 or 10- or 12-bit data; the image readers scale 16 bits by 1/257.)"""
    if not isinstance(image, np.ndarray):
        kind = type(image)
        given = f"{kind.__module__}.{kind.__qualname__}".replace("builtins.", "")
        hint = ""
        if kind.__module__.split(".")[0] == "torch":
            hint = (" (a tensor: tensor.cpu().numpy(), a 3 x H x W one transposed with "
                    ".permute(1, 2, 0); an N x 3 x H x W batch goes to the model itself)")
        raise ValueError(f"{what}: expected {VALID_IMAGE}, got a {given}{hint}")
    if image.ndim != 3 or image.shape[2] != 3:
        hint = ""
        if image.ndim == 3 and image.shape[0] == 3:
            hint = " (3 x H x W? give image.transpose(1, 2, 0))"
        elif image.ndim == 2:
            hint = " (gray? give np.repeat(image[:, :, None], 3, axis=2))"
        raise ValueError(f"{what}: expected an H x W x 3 image ({VALID_IMAGE}), got shape "
                         f"{image.shape}{hint}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what}: expected an H x W x 3 image of at least 1 x 1 pixels, got "
                         f"shape {image.shape}")
    if image.dtype != np.uint8 and image.dtype.kind != "f":
        hint = ""
        if image.dtype == np.uint16:
            hint = " (16 bits on 0..65535: image.astype(np.float32) / 257, as the image readers do)"
        elif image.dtype.kind in "iu":
            hint = " (on 0..255: image.astype(np.float32))"
        raise ValueError(f"{what}: {image.dtype} values are not supported; expected "
                         f"{VALID_IMAGE}{hint}")
    if image.dtype.kind != "f":
        return image
    # one fast pass (float16 summed in float32: its own sum overflows)
    total = float(image.sum(dtype=np.float32 if image.dtype == np.float16 else None))
    if not math.isfinite(total):
        nan = int(np.count_nonzero(np.isnan(image)))
        inf = int(np.count_nonzero(np.isinf(image)))
        if nan or inf:   # else only the sum overflowed
            raise ValueError(f"{what}: {nan} NaN and {inf} infinite values (of {image.size}); "
                             "every value must be finite (0..255)")
    elif 0 < total <= image.size and 0 < float(image.max()) <= 1.0:  # a black image, or 0..1
        log.warning("%s: every value lies within 0..1, but images are on 0..255 here (an "
                    "image scaled to 0..1? multiply it by 255); it is denoised as given", what)
    return image


def reflect_indices(length: int, total: int) -> np.ndarray:
    """Indices ``0..total-1`` folded into ``0..length-1`` by repeated reflection (no edge repeat)."""
    idx = np.arange(total)
    if length == 1:
        return np.zeros(total, dtype=np.int64)
    period = 2 * (length - 1)
    idx = idx % period
    return np.where(idx < length, idx, period - idx).astype(np.int64)


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return int(math.ceil(value / multiple) * multiple)


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one padded axis of ``length``: every ``tile - overlap``, last flush."""
    if length <= tile:
        return [0]
    step = tile - overlap
    origins = list(range(0, length - tile, step))
    origins.append(length - tile)
    return origins


def _ramp(distance: np.ndarray, overlap: int) -> np.ndarray:
    """0 in the outer quarter of an overlap, linear across its middle half, 1 beyond.

    A tile's own border pixels (padding effects) get no weight at all; the seam is smooth.
    Tiles that only abut (no overlap) weigh 1 up to their edge.
    """
    if overlap <= 0:
        return np.ones_like(distance)
    return np.clip((distance - overlap / 4) / (overlap / 2), 0.0, 1.0)


def feather_weights(origins: list[int], tile: int, length: int) -> list[np.ndarray]:
    """Per-tile 1-D blending weights across each overlap, normalised to sum to one."""
    raw = []
    for i, o in enumerate(origins):
        t = np.arange(tile, dtype=np.float64) + 0.5
        w = np.ones(tile)
        if i > 0:
            w = np.minimum(w, _ramp(t, origins[i - 1] + tile - o))
        if i < len(origins) - 1:
            w = np.minimum(w, _ramp(tile - t, o + tile - origins[i + 1]))
        raw.append(w)
    total = np.zeros(max(length, origins[-1] + tile))
    for o, w in zip(origins, raw):
        total[o:o + tile] += w
    return [(w / total[o:o + tile]).astype(np.float32) for o, w in zip(origins, raw)]


@dataclass(frozen=True)
class TileSpec:
    """How to cut an image: fixed tile shape (0 = whole padded image), overlap, batch.

    ``stride`` is the network's own size multiple (32 for AT-BSN and student C, 4 for
    students A and B): the image is padded to it exactly as the whole-image path pads it.
    Tile sizes, the overlap and so every tile origin stay on the 32-pixel ``grid``.
    """

    tile_h: int = DEFAULT_TILE
    tile_w: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    batch: int = 1
    stride: int = GRID
    grid: int = GRID

    def validate(self) -> None:
        """Raise ValueError for a layout no image can take. (A side off the grid, a multiple
        of the stride only, is checked against the image by :func:`plan_tiles`.)"""
        for name, value in (("tile height", self.tile_h), ("tile width", self.tile_w),
                            ("overlap", self.overlap), ("batch", self.batch),
                            ("stride", self.stride), ("grid", self.grid)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be a whole number; got {value!r}")
        if self.stride < 1 or self.grid % self.stride:
            raise ValueError(f"the network stride {self.stride} must divide the grid {self.grid}")
        for name, tile in (("tile height", self.tile_h), ("tile width", self.tile_w)):
            if tile < 0 or tile % self.stride:
                raise ValueError(f"{name} must be 0 (whole image) or a positive multiple of "
                                 f"the network stride {self.stride}; got {tile}")
            if tile and self.overlap >= tile:
                raise ValueError(f"overlap {self.overlap} must be smaller than the tile ({tile})")
        if self.overlap < 0 or self.overlap % self.grid:
            raise ValueError(f"overlap must be a non-negative multiple of {self.grid} so that "
                             f"every tile starts on the pooling grid; got {self.overlap}")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1; got {self.batch}")


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one image: padded size, origins along each axis and blending weights."""

    height: int
    width: int
    tile_h: int
    tile_w: int
    ys: list[int]
    xs: list[int]
    wy: list[np.ndarray]
    wx: list[np.ndarray]

    @property
    def count(self) -> int:
        """How many tiles: rows times columns."""
        return len(self.ys) * len(self.xs)

    def tiles(self) -> Iterator[tuple[int, int]]:
        """(row index, column index) of every tile, row-major."""
        for i in range(len(self.ys)):
            for j in range(len(self.xs)):
                yield i, j


def plan_tiles(height: int, width: int, spec: TileSpec) -> TilePlan:
    """Lay out the tiles for an image of ``height`` x ``width``."""
    spec.validate()
    padded_h, padded_w = round_up(height, spec.stride), round_up(width, spec.stride)
    tile_h = spec.tile_h or padded_h
    tile_w = spec.tile_w or padded_w
    for name, tile, length in (("height", tile_h, padded_h), ("width", tile_w, padded_w)):
        if tile % spec.grid and tile < length:  # several origins: they would leave the grid
            raise ValueError(f"tile {name} {tile} must be a multiple of {spec.grid}, or cover "
                             f"the image's padded {name} ({length}) in one tile")
    padded_h, padded_w = max(padded_h, tile_h), max(padded_w, tile_w)
    ys = tile_origins(padded_h, tile_h, spec.overlap)
    xs = tile_origins(padded_w, tile_w, spec.overlap)
    return TilePlan(height, width, tile_h, tile_w, ys, xs,
                    feather_weights(ys, tile_h, padded_h), feather_weights(xs, tile_w, padded_w))


def computed_pixels(height: int, width: int, tile_h: int, tile_w: int, overlap: int, *,
                    stride: int = GRID, lanes: int = 1) -> int:
    """The pixels a network computes for an image in ``tile_h`` x ``tile_w`` tiles, in rounds
    of ``lanes`` tiles (a round with idle lanes costs as much as a full one): the cost that
    :func:`auto_tile_shape` minimises."""
    padded_h, padded_w = round_up(height, stride), round_up(width, stride)
    count = (len(tile_origins(max(padded_h, tile_h), tile_h, overlap)) *
             len(tile_origins(max(padded_w, tile_w), tile_w, overlap)))
    return -(-count // lanes) * lanes * tile_h * tile_w


def axis_tile_counts(length: int, overlap: int, grid: int = GRID,
                     longest: int | None = None) -> dict[int, int]:
    """Tiles along one padded axis of ``length`` for every tile side, in increasing order:
    the multiples of ``grid`` above ``overlap`` and below ``length`` (several tiles each),
    then ``length`` itself (one tile, exactly the padded axis, so that the network sees the
    image's own border as the whole-image path does; the smallest grid side above the overlap
    where the axis is not longer than the overlap), none beyond ``longest``."""
    whole = length if length > overlap else overlap + grid
    sides = [*range(overlap + grid, length, grid), whole]
    if longest is not None:
        sides = [side for side in sides if side <= max(longest, overlap + grid)]
    return {side: len(tile_origins(max(length, side), side, overlap)) for side in sides}


def overlap_for_tile(default: int, tile_h: int | None, tile_w: int | None) -> int:
    """``default`` where it leaves room in a tile of ``tile_h`` x ``tile_w`` (None: any
    side), else reduced to the largest multiple of 32 below the shorter side (a tile must be
    wider than its overlap, and the overlap on the pooling grid)."""
    tiles = [t for t in (tile_h, tile_w) if t]
    if not tiles or default < min(tiles):
        return default
    return max(0, (min(tiles) - 1) // GRID * GRID)


def auto_tile_shape(height: int, width: int, overlap: int, *, stride: int = GRID,
                    grid: int = GRID, max_area: int = AUTO_TILE_AREA,
                    lanes: int = 1) -> tuple[int, int]:
    """The tile shape (height, width) that computes the fewest pixels for an image.

    Fixed 512 x 512 tiles with the 128-pixel overlap compute a 4000 x 3000 photo 1.9 times
    over (88 tiles); tiles sized to the image compute it 1.46 times (36 tiles of 608 x 800,
    two in flight), and a network's time is close to proportional to the pixels it computes at any tile size
    (docs/tiling.md). Candidates are every pair of sides on the ``grid`` above ``overlap`` with
    an area of at most ``max_area`` (the memory bound); the cost of one is
    ``ceil(tiles / lanes) * lanes * area``, ``lanes`` being the tiles computed at once (a
    batch, or requests in flight on separate CPU streams: a round with an idle lane costs
    as much as a full one). Ties go to fewer tiles, then to the squarer shape.
    """
    if lanes < 1 or max_area < 1:
        raise ValueError(f"lanes and max_area must be positive; got {lanes}, {max_area}")
    padded_h, padded_w = round_up(height, stride), round_up(width, stride)
    smallest = overlap + grid
    if smallest * smallest > max_area:
        raise ValueError(f"no tile above the overlap {overlap} fits in {max_area} pixels: "
                         f"give a larger area or a smaller overlap")
    rows = axis_tile_counts(padded_h, overlap, grid, max_area // smallest)
    cols = axis_tile_counts(padded_w, overlap, grid, max_area // smallest)
    best: tuple[int, int, int, int, int] | None = None
    for tile_h, count_h in rows.items():
        for tile_w, count_w in cols.items():
            area = tile_h * tile_w
            if area > max_area:
                break
            count = count_h * count_w
            key = (-(-count // lanes) * lanes * area, count, abs(tile_h - tile_w), tile_h, tile_w)
            if best is None or key < best:
                best = key
    assert best is not None  # the smallest square always fits
    return best[3], best[4]


def preferred_tile_shape(height: int, width: int, overlap: int, *, stride: int = GRID,
                         grid: int = GRID, max_area: int = AUTO_TILE_AREA, lanes: int = 1,
                         ready: Sequence[tuple[int, int]] = ()) -> tuple[int, int]:
    """:func:`auto_tile_shape`, unless one of the ``ready`` shapes (compiled already; the
    artifact's own first) computes the image in no more pixels than it plus a recompile's
    cost, ``RESHAPE_PENALTY_CALLS`` calls of the artifact's own shape: then that one, so that
    a new shape is compiled only where it saves more than the compile costs."""
    shape = auto_tile_shape(height, width, overlap, stride=stride, grid=grid,
                            max_area=max_area, lanes=lanes)
    if not ready or shape in ready:
        return shape
    switch_cost = RESHAPE_PENALTY_CALLS * ready[0][0] * ready[0][1]

    def cost(candidate: tuple[int, int]) -> int:
        return computed_pixels(height, width, *candidate, overlap, stride=stride, lanes=lanes)

    kept = min(ready, key=cost)
    return kept if cost(kept) <= cost(shape) + switch_cost else shape


def denoise_tiled(image: np.ndarray, infer: InferFn, spec: TileSpec = TileSpec(),
                  progress: Callable[[int], object] | None = None) -> np.ndarray:
    """Denoise an H x W x 3 float32 image (0..255) with ``infer`` on N x 3 x th x tw batches,
    one batch at a time.

    ``progress`` is called with the number of tiles finished after each batch.
    """
    return denoise_tiled_many(image, lambda batches: map(infer, batches), spec, progress)


def denoise_tiled_many(image: np.ndarray, infer_many: InferManyFn, spec: TileSpec = TileSpec(),
                       progress: Callable[[int], object] | None = None, *,
                       checked: bool = False) -> np.ndarray:
    """Denoise an H x W x 3 float32 image (0..255) with ``infer_many``, which maps a lazy
    stream of N x 3 x th x tw batches to their outputs *in the same order* (e.g.
    ``Runtime.run_many``, which may keep several in flight).

    Batches are cut only as ``infer_many`` draws them, so memory is the output array plus
    the batches it holds. ``progress`` is called with the number of tiles finished after
    each batch. ``checked``: the caller has passed ``image`` through :func:`check_image`
    already (its finiteness pass reads the whole image: 12 ms at 12 MP).
    """
    if not checked:
        check_image(image)
    height, width = image.shape[:2]
    plan = plan_tiles(height, width, spec)
    rows = [reflect_indices(height, y + plan.tile_h)[y:] for y in plan.ys]
    cols = [reflect_indices(width, x + plan.tile_w)[x:] for x in plan.xs]
    indices = list(plan.tiles())
    groups = [indices[start:start + spec.batch] for start in range(0, len(indices), spec.batch)]

    def cut(i: int, j: int) -> np.ndarray:
        """Tile (i, j): a view where it lies inside the image, else gathered with reflection."""
        y, x = plan.ys[i], plan.xs[j]
        if y + plan.tile_h <= height and x + plan.tile_w <= width:
            return image[y:y + plan.tile_h, x:x + plan.tile_w]
        return image[np.ix_(rows[i], cols[j])]

    def batches() -> Iterator[np.ndarray]:
        for group in groups:
            batch = np.stack([cut(i, j).transpose(2, 0, 1) for i, j in group])
            yield np.ascontiguousarray(batch, dtype=np.float32)

    output = np.zeros((height, width, 3), dtype=np.float32)
    scratch = np.empty((3, plan.tile_h, plan.tile_w), dtype=np.float32)  # one weighted tile
    outputs = infer_many(batches())
    blended = 0
    try:
        for result in outputs:
            if blended == len(groups):
                raise ValueError(f"the network returned more outputs than the {len(groups)} "
                                 "batches it was given")
            group = groups[blended]
            _blend(output, plan, group, np.asarray(result), scratch)
            blended += 1
            if progress is not None:
                progress(len(group))
    finally:
        close = getattr(outputs, "close", None)
        if close is not None:  # a generator left early still finishes its requests
            close()
    if blended != len(groups):
        raise ValueError(f"the network returned {blended} outputs for {len(groups)} batches")
    return output


def _blend(output: np.ndarray, plan: TilePlan, group: list[tuple[int, int]],
           result: np.ndarray, scratch: np.ndarray) -> None:
    """Add the feathered tiles ``result`` of the tiles ``group`` into ``output``, each
    weighted plane by plane in ``scratch`` (3 x tile_h x tile_w float32), then interleaved
    (``cv2.merge``: one tile-sized array at a time) and added by OpenCV. The same sums as
    weighting the transposed tile in numpy, which took 0.2 s of a 12 MP photo alone (0.5-0.8 s
    beside OpenVINO's streams); this takes 0.08 s."""
    import cv2

    height, width = output.shape[:2]
    expected = (len(group), 3, plan.tile_h, plan.tile_w)
    if result.shape != expected:
        raise ValueError(f"network returned shape {result.shape}, expected {expected}")
    for (i, j), tile in zip(group, result):
        y, x = plan.ys[i], plan.xs[j]
        h, w = min(plan.tile_h, height - y), min(plan.tile_w, width - x)
        if h <= 0 or w <= 0:
            continue
        weight = plan.wy[i][:h, None] * plan.wx[j][None, :w]
        planes = np.multiply(tile[:, :h, :w], weight, out=scratch[:, :h, :w])
        cv2.accumulate(cv2.merge(list(planes)), output[y:y + h, x:x + w])

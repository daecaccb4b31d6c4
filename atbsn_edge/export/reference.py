"""Cutting a bundle's reference data: real noisy crops of the artifact's tile shape and
PyTorch's outputs for them (the file itself belongs to ``atbsn_edge.bundle.reference``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..imageio import read_image
from ..tiling import reflect_indices

log = logging.getLogger(__name__)


def reference_crops(images: Sequence[Path], tile_h: int, tile_w: int, count: int,
                    seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Up to ``count`` distinct crops (N x 3 x th x tw float32), spread over the images: first
    the centre of each image, then seeded random positions. An image smaller than the tile is
    reflect-padded (as the tiler does) and gives one crop only; both are logged."""
    rng = np.random.default_rng(seed)
    pictures = [(Path(p).name, read_image(p).rgb) for p in images]
    for name, rgb in pictures:
        if rgb.shape[0] < tile_h or rgb.shape[1] < tile_w:
            log.warning("reference image %s is %dx%d, smaller than the %dx%d tile: its crop is "
                        "reflect-padded", name, rgb.shape[1], rgb.shape[0], tile_w, tile_h)
    crops, names, seen = [], [], set()
    for index in range(count * 4):  # random positions may repeat: a few tries each
        if len(crops) == count:
            break
        name, rgb = pictures[index % len(pictures)]
        h, w = rgb.shape[:2]
        if index < len(pictures):
            y, x = max(0, (h - tile_h) // 2), max(0, (w - tile_w) // 2)
        else:
            y, x = int(rng.integers(0, max(1, h - tile_h + 1))), int(rng.integers(0, max(1, w - tile_w + 1)))
        if (name, y, x) in seen:
            continue
        seen.add((name, y, x))
        rows = reflect_indices(h, y + tile_h)[y:]
        cols = reflect_indices(w, x + tile_w)[x:]
        crops.append(rgb[np.ix_(rows, cols)].transpose(2, 0, 1))
        names.append(f"{name}@{y},{x}")
    if len(crops) < count:
        log.warning("the reference images hold only %d distinct %dx%d crops (asked for %d); "
                    "storing those", len(crops), tile_w, tile_h, count)
    return np.ascontiguousarray(np.stack(crops), dtype=np.float32), names


def torch_outputs(denoiser: Any, hole_size: int | None, inputs: np.ndarray) -> np.ndarray:
    """PyTorch float32 outputs of the bare network (hole fixed) for reference inputs."""
    import torch

    core = denoiser.core(hole_size)
    with torch.inference_mode():
        return np.concatenate([core(torch.from_numpy(x[None])).numpy() for x in inputs])

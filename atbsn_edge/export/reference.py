"""Reference data for a bundle: real noisy crops of the artifact's tile shape and PyTorch's
outputs for them, so that parity runs on the device with no PyTorch installed."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..imageio import read_image
from ..tiling import reflect_indices

log = logging.getLogger(__name__)
REFERENCE_FILE = "reference.npz"


def reference_crops(images: Sequence[Path], tile_h: int, tile_w: int, count: int,
                    seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``count`` crops (N x 3 x th x tw float32), spread over the images: first the centre of
    each image, then seeded random positions. Small images are reflect-padded."""
    rng = np.random.default_rng(seed)
    pictures = [(Path(p).name, read_image(p).rgb) for p in images]
    crops, names = [], []
    for index in range(count):
        name, rgb = pictures[index % len(pictures)]
        h, w = rgb.shape[:2]
        if index < len(pictures):
            y, x = max(0, (h - tile_h) // 2), max(0, (w - tile_w) // 2)
        else:
            y, x = int(rng.integers(0, max(1, h - tile_h + 1))), int(rng.integers(0, max(1, w - tile_w + 1)))
        rows = reflect_indices(h, y + tile_h)[y:]
        cols = reflect_indices(w, x + tile_w)[x:]
        crops.append(rgb[np.ix_(rows, cols)].transpose(2, 0, 1))
        names.append(f"{name}@{y},{x}")
    return np.ascontiguousarray(np.stack(crops), dtype=np.float32), names


def torch_outputs(denoiser: Any, hole_size: int | None, inputs: np.ndarray) -> np.ndarray:
    """PyTorch float32 outputs of the bare network (hole fixed) for reference inputs."""
    import torch

    core = denoiser.core(hole_size)
    with torch.inference_mode():
        return np.concatenate([core(torch.from_numpy(x[None])).numpy() for x in inputs])


def save_reference(folder: Path, inputs: np.ndarray, outputs: np.ndarray, names: list[str]) -> Path:
    """Write ``reference.npz`` (float32 inputs and outputs, crop names) into a bundle folder."""
    path = folder / REFERENCE_FILE
    np.savez_compressed(path, inputs=inputs, outputs=outputs, names=np.array(names))
    return path


def load_reference(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs, PyTorch outputs and names from a bundle's ``reference.npz``."""
    with np.load(folder / REFERENCE_FILE) as data:
        return data["inputs"], data["outputs"], [str(n) for n in data["names"]]

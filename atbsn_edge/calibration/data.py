"""Calibration data: noisy images, folders or video files cut into crops of the tile shape.

Crops are random (seeded) or on a grid; video files contribute evenly spaced frames. The
result carries a fingerprint of exactly what went in, so that a cache can recognise the same
data and the manifest can record the calibration source.
"""
from __future__ import annotations

import glob
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AtbsnError
from ..sources import expand_sources, load_pictures

log = logging.getLogger(__name__)

RECOMMENDED_CROPS = 32
MODES = ("random", "grid")


@dataclass
class CalibrationSet:
    """N x 3 x th x tw float32 crops (0..255) and where they came from."""

    crops: np.ndarray
    sources: list[str] = field(default_factory=list)
    fingerprint: str = ""

    def int8_metadata(self, method: str, keep_float: Sequence[str], cached: bool) -> dict[str, str]:
        """What an int8 artifact records about its calibration (string values)."""
        return {"precision": "int8", "calibration_method": method,
                "int8_keep_float": ",".join(keep_float), "calibration_crops": str(len(self.crops)),
                "calibration_fingerprint": self.fingerprint,
                "calibration_cached": str(cached).lower()}

    def describe(self) -> dict:
        """What an int8 artifact's details record of the set: crop count, tile (height,
        width), sources and fingerprint."""
        return {"crops": int(len(self.crops)), "tile": list(self.crops.shape[2:]),
                "sources": self.sources, "fingerprint": self.fingerprint}


def _existing_sources(items: Sequence[str | Path]) -> list[Path]:
    missing = [str(item) for item in items
               if not Path(item).exists() and not glob.has_magic(str(item))]
    if missing:
        raise AtbsnError(f"calibration data {', '.join(missing)} does not exist")
    try:
        return expand_sources(items)
    except AtbsnError:
        raise AtbsnError(f"no calibration images or videos in {', '.join(map(str, items))}") from None


def _check_counts(**counts: int) -> None:
    """Every count must be at least 1 (``crops=0`` would calibrate on nothing)."""
    for name, value in counts.items():
        if value < 1:
            flag = {"crops": "--calib-crops", "max_images": "--calib-images"}.get(name, name)
            raise AtbsnError(f"{flag} must be at least 1, got {value}")


def collect_crops(items: Sequence[str | Path], tile_h: int, tile_w: int, *,
                  max_images: int = 64, crops: int = 64, mode: str = "random",
                  seed: int = 0, frames_per_video: int = 8) -> CalibrationSet:
    """Cut ``crops`` crops of ``tile_h`` x ``tile_w`` from up to ``max_images`` images/frames."""
    if mode not in MODES:
        raise AtbsnError(f"calibration mode must be one of {', '.join(MODES)}, got {mode!r}")
    _check_counts(crops=crops, max_images=max_images, frames_per_video=frames_per_video)
    if seed < 0:
        raise AtbsnError(f"--calib-seed must be a non-negative integer, got {seed}")
    pictures = load_pictures(_existing_sources(items)[:max_images], frames_per_video)
    usable = [(name, rgb) for name, rgb in pictures if rgb.shape[0] >= tile_h and rgb.shape[1] >= tile_w]
    if not pictures:
        raise AtbsnError(f"none of the calibration data could be read ({', '.join(map(str, items))}"
                         "; each unreadable file was named above); give readable images or videos")
    if not usable:
        raise AtbsnError(f"no calibration image is at least {tile_w}x{tile_h} (the tile); "
                         "give larger images or export a smaller tile")
    rng = np.random.default_rng(seed)
    out = []
    digest = hashlib.sha256(f"{tile_h}x{tile_w}:{mode}:{seed}:{crops}".encode())
    for index in range(crops):
        name, rgb = usable[index % len(usable)]
        h, w = rgb.shape[:2]
        if mode == "random":
            y, x = int(rng.integers(0, h - tile_h + 1)), int(rng.integers(0, w - tile_w + 1))
        else:
            cell = index // len(usable)
            cols = max(1, w // tile_w)
            y = min((cell // cols) * tile_h, h - tile_h)
            x = min((cell % cols) * tile_w, w - tile_w)
        crop = np.ascontiguousarray(rgb[y:y + tile_h, x:x + tile_w].transpose(2, 0, 1))
        out.append(crop)
        digest.update(crop.tobytes())
    if crops < RECOMMENDED_CROPS:
        log.warning("calibrating on %d crops; at least %d are recommended for stable int8 ranges",
                    crops, RECOMMENDED_CROPS)
    return CalibrationSet(np.stack(out).astype(np.float32), [n for n, _ in usable],
                          digest.hexdigest())

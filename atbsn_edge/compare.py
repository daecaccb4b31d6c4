"""Side-by-side comparison pictures: the same zoomed crop of noisy | denoised (| clean), so a
reader sees what a PSNR figure means.

The crop is chosen where the image has most detail (the window with the largest mean
absolute Laplacian of the noisy image, on a coarse grid), unless given; it is enlarged by an integer
factor with nearest-neighbour sampling (no interpolation hides or invents noise) and each
panel is labelled.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ImageError
from .imageio import write_encoded

log = logging.getLogger(__name__)
LABEL_HEIGHT = 22
GAP = 4
#: the largest comparison picture written (all panels): 64 MP is 192 MB of RGB, a 2 x 2048^2
#: crop at zoom 16 with a clean panel is 12.6 MP
MAX_COMPARISON_PIXELS = 64_000_000


@dataclass(frozen=True)
class Crop:
    """A window ``x, y, width, height`` in image pixels."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> "Crop":
        """``X,Y,W,H`` as given on the command line."""
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"a crop is X,Y,WIDTH,HEIGHT in pixels, got {text!r}") from None
        if min(x, y) < 0 or min(w, h) < 1:
            raise ValueError(f"a crop needs X, Y >= 0 and a positive size, got {text!r}")
        return cls(x, y, w, h)

    def fitted(self, height: int, width: int) -> "Crop":
        """This crop moved (and shrunk) to lie inside an image of ``height`` x ``width``."""
        w, h = min(self.width, width), min(self.height, height)
        return Crop(min(self.x, width - w), min(self.y, height - h), w, h)


def detailed_crop(rgb: np.ndarray, size: int = 128) -> Crop:
    """The ``size`` x ``size`` window (on a grid of half windows) with the most fine detail:
    the largest mean absolute Laplacian (edges, texture and noise; not mere brightness
    differences)."""
    import cv2

    h, w = rgb.shape[:2]
    side_h, side_w = min(size, h), min(size, w)
    gray = np.abs(cv2.Laplacian(rgb.mean(axis=2).astype(np.float32), cv2.CV_32F))
    best, best_score = Crop(0, 0, side_w, side_h), -1.0
    for y in range(0, h - side_h + 1, max(1, side_h // 2)):
        for x in range(0, w - side_w + 1, max(1, side_w // 2)):
            score = float(gray[y:y + side_h, x:x + side_w].mean())
            if score > best_score:
                best, best_score = Crop(x, y, side_w, side_h), score
    return best


def comparison_size(crop: Crop, zoom: int, panels: int) -> tuple[int, int]:
    """Height and width of the comparison picture of ``panels`` panels of ``crop`` at ``zoom``."""
    return (LABEL_HEIGHT + crop.height * zoom,
            panels * crop.width * zoom + (panels - 1) * GAP)


def check_comparison_size(crop: Crop, zoom: int, panels: int) -> None:
    """Raise ImageError when that picture would pass :data:`MAX_COMPARISON_PIXELS`."""
    height, width = comparison_size(crop, zoom, panels)
    if height * width > MAX_COMPARISON_PIXELS:
        raise ImageError(
            f"a comparison of {panels} panels of a {crop.width}x{crop.height} crop at zoom {zoom} "
            f"would be {width}x{height} pixels, over the {MAX_COMPARISON_PIXELS // 1_000_000} MP "
            "limit; give a smaller --compare-crop or --compare-zoom")


def comparison_picture(panels: Sequence[tuple[str, np.ndarray]], crop: Crop,
                       zoom: int = 3) -> np.ndarray:
    """H x W x 3 uint8 RGB: each (label, H x W x 3 float 0..255 image) cropped, enlarged
    ``zoom`` times and labelled, side by side with a 4-pixel white gap."""
    import cv2

    shapes = {p.shape[:2] for _, p in panels}
    if len(shapes) != 1:
        raise ImageError(f"comparison panels differ in size: {sorted(shapes)}")
    check_comparison_size(crop, zoom, len(panels))
    tiles = []
    for label, image in panels:
        part = image[crop.y:crop.y + crop.height, crop.x:crop.x + crop.width]
        part = np.clip(np.rint(part), 0, 255).astype(np.uint8)
        part = np.repeat(np.repeat(part, zoom, axis=0), zoom, axis=1)
        bar = np.full((LABEL_HEIGHT, part.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, label, (4, LABEL_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0),
                    1, cv2.LINE_AA)
        tiles.append(np.concatenate([bar, part], axis=0))
    gap = np.full((tiles[0].shape[0], GAP, 3), 255, np.uint8)
    row = [tiles[0]]
    for tile in tiles[1:]:
        row += [gap, tile]
    return np.concatenate(row, axis=1)


def write_comparison(path: Path, panels: Sequence[tuple[str, np.ndarray]],
                     crop: Crop | None = None, zoom: int = 3) -> Crop:
    """Write the comparison PNG of ``panels`` atomically; returns the crop used."""
    import cv2

    height, width = panels[0][1].shape[:2]
    shown = (crop or detailed_crop(panels[0][1])).fitted(height, width)
    if crop is not None and shown != crop:
        log.warning("%s: --compare-crop %d,%d,%d,%d reaches past the %dx%d image; showing "
                    "%d,%d,%d,%d instead", path, crop.x, crop.y, crop.width, crop.height, width,
                    height, shown.x, shown.y, shown.width, shown.height)
    crop = shown
    picture = comparison_picture(panels, crop, zoom)
    ok, png = cv2.imencode(".png", picture[:, :, ::-1])
    if not ok:
        raise ImageError(f"{path}: cannot encode the comparison picture")
    write_encoded(path, png.tobytes())
    log.debug("comparison %s (crop %s, zoom %d)", path, crop, zoom)
    return crop

"""Denoising strength: how much of the network's output replaces its input.

A number ``s`` blends globally, ``input + s * (output - input)``: 1 is the network's output,
0 the input unchanged, below 1 keeps more of the input's texture (and noise).

``auto`` blends pixel by pixel with a local Wiener gain computed from the residual
``r = output - input`` alone (no clean image, no noise model): where the network removed no more
energy than the image's noise level, its output is kept; where it removed more (texture the
network took for noise), the gain falls as ``noise level / removed energy``::

    level = FACTOR x the QUANTILE of the BLOCK x BLOCK means of |r|^2 (mean over channels),
            over the blocks with no clipped input pixel (all blocks if under a tenth qualify)
    gain  = min(1, level / (WINDOW x WINDOW box mean of |r|^2))
    c     = gain * r
    out   = input + c - lowpass(c, its blocks with a clipped input pixel set to 0)

``lowpass`` is a Gaussian of LOW_SIGMA pixels (computed at 1/LOW_STEP of the resolution and
interpolated back): the input's low frequencies are kept. Noise has almost no energy at that
scale (white noise of sigma 5 keeps about 0.09 grey levels of it), so what the network changes
there is not noise but a drift of its own: the bundled student's output is tinted (on the 12
Nam and 44 PolyU pairs its mean moves green up by about 0.3 and blue down by about 0.5 grey
levels from its input's) and on PolyU its low-frequency error exceeds its input's
(docs/quality.md section 8). Blocks with a clipped input pixel count as 0 in the low pass:
there the input's own low frequencies are biased by the clipping, so little of the network's
change of them is taken back (some still is, from the unclipped blocks around).

If ``r`` were the noise plus lost detail ``d`` uncorrelated with it, the MSE-optimal gain
is ``sigma^2 / (sigma^2 + |d|^2)``: the formula above with the level as the noise variance.
The level comes from the quietest blocks (a low quantile, scaled up) because on an image that is
texture everywhere every block's residual holds lost detail, and a high quantile reads that as
noise (docs/quality.md). Clipped blocks (black or white in the input) hold no noise to remove;
left in, they would pull a low quantile to 0 and turn the blend off. The constants were chosen
on the 12 Nam pairs (``benchmarks/strength_blend.py --auto-grid`` and ``--low-sigmas``).

Everything here is numpy and OpenCV: it runs on a device without PyTorch, after tiling, the
same on every backend.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np

from .bands import for_each_band
from .errors import AtbsnError

STRENGTH_KEY = "strength"        # a model's recommended strength, in its metadata
STRENGTH_RANGE = (0.0, 2.0)
AUTO = "auto"

# The auto gain, chosen on the 12 Nam pairs (benchmarks/strength_blend.py --auto-grid)
AUTO_BLOCK = 8                   # block side of the noise-level estimate
AUTO_QUANTILE = 0.1              # the level: FACTOR x this quantile of the blocks' residual energy
AUTO_FACTOR = 5.0
AUTO_WINDOW = 11                 # window side of the local residual energy
UNCLIPPED = (2.5, 252.5)         # unclipped input values (0..255): <= 2 and >= 253 count as clipped
MIN_UNCLIPPED_SHARE = 0.1        # fewer unclipped blocks than this: the level uses all blocks
AUTO_LOW_SIGMA = 16.0            # the input's frequencies below a Gaussian of this sigma are kept
AUTO_LOW_STEP = 8                # ... computed at 1/8 of the resolution

Strength = Union[float, str]     # a number in STRENGTH_RANGE, or AUTO


def check_strength(value: Strength, source: str) -> Strength:
    """``value`` if it is :data:`AUTO` or a number in :data:`STRENGTH_RANGE`, else
    :class:`AtbsnError`."""
    if value == AUTO:
        return AUTO
    low, high = STRENGTH_RANGE
    if isinstance(value, str) or not low <= value <= high:   # also refuses NaN
        raise AtbsnError(f"{source}: strength {value} is neither '{AUTO}' nor in {low:g}..{high:g} "
                         "(1: the network's output, 0: the input unchanged)")
    return float(value)


def parse_strength(text: Any, source: str) -> Strength:
    """A strength from text or a number (``"auto"``, ``"0.65"``, ``0.65``); :class:`AtbsnError`
    for anything else."""
    if isinstance(text, str) and text.strip().lower() == AUTO:
        return AUTO
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise AtbsnError(f"{source}: strength {text!r} is not a number or '{AUTO}'") from None
    return check_strength(number, source)


def model_strength(metadata: Mapping[str, Any], source: str = "the model") -> Strength:
    """The strength a model's metadata recommends (its ``strength`` entry), 1.0 without one."""
    value = metadata.get(STRENGTH_KEY, "")
    if value in ("", None):
        return 1.0
    try:
        return parse_strength(value, f"{source} metadata")
    except AtbsnError as exc:
        raise AtbsnError(f"{exc}; re-export it, or give --strength") from None


def describe_strength(strength: Strength) -> str:
    """``auto`` or the number, for logs and tables."""
    return AUTO if strength == AUTO else f"{strength:g}"


def strength_arg(text: str) -> Strength:
    """argparse type: ``auto`` or a denoising strength in :data:`STRENGTH_RANGE`."""
    import argparse

    try:
        return parse_strength(text, "--strength")
    except AtbsnError as exc:
        low, high = STRENGTH_RANGE
        raise argparse.ArgumentTypeError(f"expected '{AUTO}' or a number in {low:g}..{high:g}, "
                                         f"got {text!r}") from exc


def _residual_energy(residual: np.ndarray) -> np.ndarray:
    """H x W float32 mean over channels of ``residual ** 2`` (no H x W x 3 temporary), in
    bands of rows on every core."""
    energy = np.empty(residual.shape[:2], np.float32)
    channels = residual.shape[2]

    def band(start: int, stop: int) -> None:
        out = energy[start:stop]
        out.fill(0.0)
        for c in range(channels):
            plane = residual[start:stop, :, c]
            out += plane * plane
        out /= np.float32(channels)

    for_each_band(energy.shape[0], band)
    return energy


def _block_view(plane: np.ndarray, block: int) -> np.ndarray:
    """``plane`` cropped to whole blocks, as (rows, block, columns, block)."""
    h, w = plane.shape
    return plane[:h - h % block, :w - w % block].reshape(h // block, block, w // block, block)


def _block_side(shape: tuple, block: int) -> int:
    """``block`` clamped to an image of ``shape`` (H, W, ...): at least 1, at most its sides."""
    return max(1, min(block, shape[0], shape[1]))


def unclipped_pixels(image: np.ndarray) -> np.ndarray:
    """H x W uint8 of an H x W x C image on 0..255: 255 where every channel lies in
    :data:`UNCLIPPED` (inclusive), 0 where one is clipped."""
    import cv2

    channels = image.shape[2]
    low, high = UNCLIPPED
    return cv2.inRange(image, (low,) * channels, (high,) * channels)


def _unclipped_blocks(image: np.ndarray, block: int) -> np.ndarray:
    """Boolean (rows, columns) of the whole BLOCK x BLOCK blocks of an H x W x C image on
    0..255 in which every pixel is unclipped (:func:`unclipped_pixels`); ``block`` clamped
    to the image's sides."""
    import cv2

    block = _block_side(image.shape, block)
    h, w = image.shape[0] - image.shape[0] % block, image.shape[1] - image.shape[1] % block
    inside = unclipped_pixels(image)[:h, :w]   # 255 or 0
    # each block's mean (INTER_AREA at a whole-number scale): 255 only where all 255
    means = cv2.resize(inside, (w // block, h // block), interpolation=cv2.INTER_AREA)
    return means == 255


def auto_gain(residual: np.ndarray, image: Optional[np.ndarray] = None, *, block: int = AUTO_BLOCK,
              quantile: float = AUTO_QUANTILE, factor: float = AUTO_FACTOR,
              window: int = AUTO_WINDOW, unclipped: Optional[np.ndarray] = None) -> np.ndarray:
    """H x W float32 gain in 0..1 of the ``auto`` strength for an H x W x C residual
    ``output - input``; ``image``, the input (0..255), lets the level skip clipped blocks
    (module docstring), or ``unclipped``, those blocks' mask already computed from it at
    ``block``; the other keywords are for the benchmark's grid."""
    import cv2

    energy = _residual_energy(residual)
    block = _block_side(energy.shape, block)
    blocks = _block_view(energy, block).mean(axis=(1, 3))
    if unclipped is None and image is not None:
        unclipped = _unclipped_blocks(image, block)
    if unclipped is not None and unclipped.mean() >= MIN_UNCLIPPED_SHARE:
        blocks = blocks[unclipped]
    level = np.float32(factor * np.quantile(blocks, quantile))
    local = cv2.blur(energy, (window, window), borderType=cv2.BORDER_REPLICATE)
    np.maximum(local, np.float32(1e-6), out=local)
    np.divide(level, local, out=local)
    return np.minimum(local, np.float32(1.0), out=local)


class LowPass:
    """The low-pass of an H x W x C float32 ``image``, row by row: its ``step`` x ``step`` block
    means (whole blocks; ``step`` clamped to the image), those outside ``keep`` (a boolean
    array of the blocks, if given) set to 0, blurred by a Gaussian of ``sigma / step``,
    interpolated back linearly (as ``cv2.resize``'s ``INTER_LINEAR``; where a side is not a
    multiple of ``step`` the whole-block grid is stretched over it, a shift of under a block).
    Two full-width arrays 1/``step`` as high are kept, so that bands of a 12 MP image need no
    image-sized buffer."""

    def __init__(self, image: np.ndarray, sigma: float = AUTO_LOW_SIGMA,
                 step: int = AUTO_LOW_STEP, keep: Optional[np.ndarray] = None) -> None:
        import cv2

        h, w = image.shape[:2]
        step = _block_side(image.shape, step)
        small_h, small_w = h // step, w // step
        small = cv2.resize(image[:small_h * step, :small_w * step], (small_w, small_h),
                           interpolation=cv2.INTER_AREA).reshape(small_h, small_w, -1)
        if keep is not None:
            small = small * keep.reshape(small_h, small_w, 1)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / step, sigmaY=sigma / step,
                                 borderType=cv2.BORDER_REFLECT)
        self._wide = cv2.resize(small, (w, small_h), interpolation=cv2.INTER_LINEAR)
        self._wide = self._wide.reshape(small_h, w, -1)       # cv2 drops a single channel's axis
        self._rise = np.diff(self._wide, axis=0, append=self._wide[-1:])  # to the next row
        self._scale = small_h / h

    def _sources(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """For rows start:stop, the block row each interpolates from and its weight towards
        the next one."""
        source = (np.arange(start, stop, dtype=np.float64) + 0.5) * self._scale - 0.5
        source = np.clip(source, 0.0, self._wide.shape[0] - 1.0)
        below = np.floor(source).astype(np.intp)
        return below, (source - below).astype(np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start:stop of the low pass, as a new (stop - start) x W x C array."""
        below, weight = self._sources(start, stop)
        low = np.take(self._wide, below, axis=0)
        step_up = np.take(self._rise, below, axis=0)
        step_up *= weight[:, None, None]
        low += step_up
        return low

    def subtract_from(self, target: np.ndarray, start: int) -> None:
        """``target -= rows(start, start + len(target))``, in place, a few rows at a time (the
        rows that share a block row), the same numbers as :meth:`rows` to the bit."""
        if target.shape[0] == 0:
            return
        below, weight = self._sources(start, start + target.shape[0])
        cuts = np.flatnonzero(np.diff(below)) + 1
        for first, last in zip(np.r_[0, cuts], np.r_[cuts, len(below)]):
            k = below[first]
            low = self._rise[k] * weight[first:last, None, None]
            low += self._wide[k]
            target[first:last] -= low


def low_pass_keep(rgb: np.ndarray, unclipped: np.ndarray) -> np.ndarray:
    """The blocks ``auto``'s low pass keeps (:class:`LowPass` ``keep``), given ``unclipped``,
    the input's unclipped blocks at :data:`AUTO_BLOCK`: clipping biases the input's own low
    frequencies (its noise is no longer zero-mean there), so blocks with a clipped pixel
    count as 0."""
    return unclipped if AUTO_LOW_STEP == AUTO_BLOCK else _unclipped_blocks(rgb, AUTO_LOW_STEP)


def _check_pair(rgb: np.ndarray, denoised: np.ndarray) -> None:
    """ValueError unless ``rgb`` (uint8 or float) and ``denoised`` (float) are H x W x C numpy
    arrays of one shape."""
    for name, array, kinds, valid in (("rgb", rgb, "fu", "uint8 or float"),
                                      ("denoised", denoised, "f", "float")):
        if not isinstance(array, np.ndarray):
            raise ValueError(f"blend_with_input: {name} must be a numpy H x W x C array "
                             f"({valid}); got a {type(array).__name__}")
        if array.dtype.kind not in kinds or (array.dtype.kind == "u" and array.dtype != np.uint8):
            raise ValueError(f"blend_with_input: {name} must be {valid}; got {array.dtype}")
    if rgb.shape != denoised.shape or rgb.ndim != 3:
        raise ValueError(f"blend_with_input: the input and the denoised image must be H x W x C "
                         f"arrays of one shape; got {rgb.shape} and {denoised.shape}")


def blend_with_input(rgb: np.ndarray, denoised: np.ndarray, strength: Strength, *,
                     in_place: bool = False) -> np.ndarray:
    """``rgb + s * (denoised - rgb)`` in float32, ``s`` the strength or the :func:`auto_gain`
    map (``denoised`` itself at strength 1); ``auto`` then keeps ``rgb``'s low frequencies
    (:class:`LowPass`, the module docstring). ``in_place`` writes it into ``denoised`` (a float32
    array) instead of new arrays: no extra image-sized buffers, which matter at 12 MP (144 MB
    each). Per-pixel steps run in bands of rows on every core (:mod:`atbsn_edge.bands`).

    ``strength`` is checked as ``--strength`` is (:func:`parse_strength`: ``auto`` or a number
    in :data:`STRENGTH_RANGE`, else :class:`AtbsnError`); arrays of different shapes, or not
    H x W x C numbers, are a ValueError."""
    strength = parse_strength(strength, "blend_with_input")
    _check_pair(rgb, denoised)
    if strength == 1.0:
        return denoised
    if in_place and denoised.dtype != np.float32:
        raise ValueError(f"in_place blending writes into float32 arrays; got {denoised.dtype}")
    out = denoised if in_place else np.empty(denoised.shape, np.float32)

    def residual(start: int, stop: int) -> None:
        np.subtract(denoised[start:stop].astype(np.float32, copy=False), rgb[start:stop],
                    out=out[start:stop])

    for_each_band(out.shape[0], residual)
    if strength == AUTO:
        unclipped = _unclipped_blocks(rgb, AUTO_BLOCK)
        gain = auto_gain(out, block=AUTO_BLOCK, unclipped=unclipped)[:, :, None]
    else:
        gain = np.float32(strength)

    def blend(start: int, stop: int) -> None:
        rows = out[start:stop]
        np.multiply(rows, gain[start:stop] if gain.ndim else gain, out=rows)
        if strength != AUTO:
            np.add(rows, rgb[start:stop], out=rows)

    for_each_band(out.shape[0], blend)
    if strength != AUTO:
        return out
    gain = None   # an H x W array no longer needed (the closure above shares the name)
    low = LowPass(out, step=AUTO_LOW_STEP, keep=low_pass_keep(rgb, unclipped))

    def keep_low_frequencies(start: int, stop: int) -> None:
        rows = out[start:stop]
        low.subtract_from(rows, start)
        np.add(rows, rgb[start:stop], out=rows)

    for_each_band(out.shape[0], keep_low_frequencies)
    return out

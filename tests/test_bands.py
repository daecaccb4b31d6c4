"""Band-parallel per-pixel work: every row once, errors raised after every band, and the
strength blend and the stored pixels equal to the bit to the whole-image computation."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from atbsn_edge import bands
from atbsn_edge.bands import for_each_band
from atbsn_edge.errors import ImageError
from atbsn_edge.imageio import Picture, to_storage
from atbsn_edge.strength import (AUTO, AUTO_LOW_STEP, LowPass, _residual_energy, _unclipped_blocks,
                                 auto_gain, blend_with_input)


@pytest.mark.parametrize("height, rows", [(0, 4), (1, 4), (7, 4), (8, 4), (600, 256)])
def test_every_row_is_worked_on_once(height, rows):
    seen = np.zeros(height, np.int64)
    lock = threading.Lock()

    def work(start, stop):
        assert 0 <= start < stop <= height and stop - start <= rows
        with lock:
            seen[start:stop] += 1

    for_each_band(height, work, rows)
    assert (seen == 1).all()


def test_bands_run_in_threads_beside_each_other(monkeypatch):
    """Two bands wait for each other: only threads running at once get both past the barrier
    (serially the first would time out)."""
    monkeypatch.setattr(bands, "band_workers", lambda: 2)
    monkeypatch.setattr(bands, "_pools", {})
    barrier = threading.Barrier(2, timeout=10)
    for_each_band(2, lambda start, stop: barrier.wait(), rows=1)


def test_a_forked_child_gets_its_own_band_threads(monkeypatch):
    """A pool inherited through fork has no threads: work submitted to it would never run.
    The child makes its own (the parent's pool is used first, then the child must finish)."""
    import multiprocessing

    monkeypatch.setattr(bands, "band_workers", lambda: 2)
    monkeypatch.setattr(bands, "_pools", {})
    assert sum(bands.map_bands(4, lambda start, stop: stop - start, rows=1)) == 4
    child = multiprocessing.get_context("fork").Process(target=_bands_in_a_child)
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0


def _bands_in_a_child() -> None:
    values = bands.map_bands(4, lambda start, stop: start, rows=1)
    raise SystemExit(0 if values == [0, 1, 2, 3] else 1)


def test_an_error_is_raised_after_every_band_finished():
    finished = []

    def work(start, stop):
        if start == 0:
            raise ImageError("band 0 failed")
        finished.append(start)

    with pytest.raises(ImageError, match="band 0 failed"):
        for_each_band(40, work, rows=4)
    assert sorted(finished) == list(range(4, 40, 4))


def whole_image_blend(rgb: np.ndarray, denoised: np.ndarray, strength) -> np.ndarray:
    """The blend on whole arrays, step by step as before the bands (the reference)."""
    out = denoised.astype(np.float32, copy=True)
    np.subtract(out, rgb, out=out)
    gain = auto_gain(out, rgb)[:, :, None] if strength == AUTO else np.float32(strength)
    np.multiply(out, gain, out=out)
    if strength == AUTO:
        low = LowPass(out, keep=_unclipped_blocks(rgb, AUTO_LOW_STEP))
        np.subtract(out, low.rows(0, out.shape[0]), out=out)
    np.add(out, rgb, out=out)
    return out


def test_banded_residual_energy_equals_the_whole_image_sum():
    residual = np.random.default_rng(5).normal(0, 6, (530, 40, 3)).astype(np.float32)
    expected = np.zeros(residual.shape[:2], np.float32)
    for c in range(3):
        expected += residual[:, :, c] * residual[:, :, c]
    expected /= np.float32(3)
    np.testing.assert_array_equal(_residual_energy(residual), expected)


@pytest.mark.parametrize("strength", [AUTO, 0.65])
def test_banded_blend_equals_the_whole_image_computation_to_the_bit(strength):
    rng = np.random.default_rng(3)
    rgb = rng.uniform(20, 230, (700, 90, 3)).astype(np.float32)  # 3 bands, the last short;
    rgb[:40, :40] = 255.0                                          # unclipped but for a corner
    denoised = (rgb + rng.normal(0, 4, rgb.shape)).astype(np.float32)
    expected = whole_image_blend(rgb, denoised, strength)
    np.testing.assert_array_equal(blend_with_input(rgb, denoised, strength), expected)
    in_place = denoised.copy()
    assert blend_with_input(rgb, in_place, strength, in_place=True) is in_place
    np.testing.assert_array_equal(in_place, expected)


@pytest.mark.parametrize("depth, grayscale, alpha", [(8, False, False), (16, False, True),
                                                     (8, True, False), (16, True, True)])
def test_banded_storage_equals_the_whole_image_conversion(depth, grayscale, alpha):
    rng = np.random.default_rng(4)
    rgb = rng.uniform(-10, 265, (600, 50, 3)).astype(np.float32)
    top = 65535.0 if depth == 16 else 255.0
    alpha_plane = rng.integers(0, int(top) + 1, (600, 50)).astype(
        np.uint16 if depth == 16 else np.uint8) if alpha else None
    picture = Picture(rgb=rgb, bit_depth=depth, grayscale=grayscale, alpha=alpha_plane)
    values = rgb.mean(axis=2, keepdims=True) if grayscale else rgb[:, :, ::-1]
    expected = np.clip(np.rint(values * np.float32(top / 255.0)), 0, top).astype(
        np.uint16 if depth == 16 else np.uint8)
    if alpha:
        expected = np.concatenate([expected, alpha_plane[:, :, None]], axis=2)
    stored = to_storage(picture, rgb)
    np.testing.assert_array_equal(stored, expected[:, :, 0] if expected.shape[2] == 1
                                  else expected)


def test_a_non_finite_value_in_a_late_band_is_refused():
    rgb = np.full((900, 20, 3), 10.0, np.float32)
    rgb[850, 3, 2] = np.nan
    with pytest.raises(ImageError, match="NaN or infinite"):
        to_storage(Picture(rgb=rgb, source="late.png"), rgb)


@pytest.mark.parametrize("channels, dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8),
                                             (1, np.uint16), (3, np.uint16), (4, np.uint16)])
def test_read_image_converts_in_bands_like_opencv_then_numpy(tmp_path, channels, dtype):
    """read_image's one-pass banded gray or BGR(A) -> RGB float equals OpenCV's colour
    conversion (gray: numpy's repetition) followed by numpy's float conversion (and the
    16-bit scaling), to the bit."""
    import cv2

    from atbsn_edge.imageio import read_image

    top = np.iinfo(dtype).max
    shape = (600, 70) if channels == 1 else (600, 70, channels)
    stored = np.random.default_rng(6).integers(0, top + 1, shape, dtype=dtype)
    path = tmp_path / "bands.png"
    assert cv2.imwrite(str(path), stored)
    if channels == 1:
        expected = np.repeat(stored.astype(np.float32)[:, :, None], 3, axis=2)
    else:
        code = cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGB
        expected = cv2.cvtColor(stored, code).astype(np.float32)
    if dtype == np.uint16:
        expected *= np.float32(255.0 / 65535.0)
    picture = read_image(path)
    np.testing.assert_array_equal(picture.rgb, expected)
    assert picture.bit_depth == (16 if dtype == np.uint16 else 8)

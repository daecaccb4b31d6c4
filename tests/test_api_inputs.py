"""The documented Python API refuses unusable inputs with a clear error that names what was
given and what is valid (never a torch/OpenCV/numpy error from deep inside, never garbage)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from atbsn_edge import load_checkpoint
from atbsn_edge.errors import AtbsnError, CheckpointError
from atbsn_edge.pipeline import open_tiled
from atbsn_edge.strength import STRENGTH_RANGE, blend_with_input, strength_arg
from atbsn_edge.tiling import TileSpec, check_image, denoise_tiled, overlap_for_tile
from conftest import textured_image


@pytest.fixture
def ckpt(make_checkpoint):
    return make_checkpoint("student_c")


@pytest.fixture
def tiled(ckpt):
    with open_tiled(ckpt, tile=0, strength=1.0) as runtime:
        yield runtime


@pytest.mark.parametrize("bad, counts", [(np.nan, "2 NaN and 0 infinite"),
                                         (np.inf, "0 NaN and 2 infinite")])
def test_non_finite_values_are_refused_naming_how_many(tiled, bad, counts):
    image = textured_image(40, 40)
    image[3, 4, 1] = image[20, 7, 0] = bad
    with pytest.raises(ValueError, match=counts):
        tiled.denoise(image)
    with pytest.raises(ValueError, match=counts):   # the low-level call too
        denoise_tiled(image, lambda batch: batch, TileSpec(0, 0, 0))


@pytest.mark.parametrize("dtype, fragment", [(np.uint16, "uint16 values are not supported.*/ 257"),
                                             (np.int32, "int32 values are not supported"),
                                             (bool, "bool values are not supported"),
                                             (np.complex64, "complex64 values")])
def test_other_dtypes_are_refused(tiled, dtype, fragment):
    image = textured_image(40, 40).astype(dtype)
    with pytest.raises(ValueError, match=fragment) as info:
        tiled.denoise(image)
    assert "uint8" in str(info.value) and "float" in str(info.value)


@pytest.mark.parametrize("shape, fragment", [((10,), r"got shape \(10,\)"),
                                             ((0, 0, 3), "at least 1 x 1"),
                                             ((0, 5, 3), "at least 1 x 1"),
                                             ((16, 16), "gray"),
                                             ((3, 16, 16), "transpose"),
                                             ((16, 16, 4), r"\(16, 16, 4\)")])
def test_wrong_shapes_are_refused(tiled, shape, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        tiled.denoise(np.zeros(shape, np.float32))
    assert "H x W x 3" in str(info.value)


def test_a_tensor_or_list_given_to_tiled_denoise_is_refused(tiled):
    image = textured_image(16, 16)
    with pytest.raises(ValueError, match="numpy H x W x 3.*got a torch.Tensor.*numpy()"):
        tiled.denoise(torch.from_numpy(image))
    with pytest.raises(ValueError, match="got a list"):
        tiled.denoise(image.tolist())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
def test_the_model_names_the_dtype_it_takes(ckpt, dtype):
    model = load_checkpoint(ckpt)
    with pytest.raises(ValueError, match=f"float32 tensor.*got {dtype}.*x.to"):
        model(torch.zeros(1, 3, 16, 16, dtype=dtype))
    with pytest.raises(ValueError, match="torch tensor.*ndarray"):
        model(np.zeros((1, 3, 16, 16), np.float32))


@pytest.mark.parametrize("strength, fragment", [("x", "'x' is not a number or 'auto'"),
                                                (3, "neither 'auto' nor in 0..2"),
                                                (-1, "neither 'auto' nor in 0..2"),
                                                (float("nan"), "neither 'auto' nor in 0..2")])
def test_open_tiled_checks_the_strength_as_the_cli_does(ckpt, strength, fragment):
    with pytest.raises(AtbsnError, match=fragment):
        open_tiled(ckpt, strength=strength)
    with pytest.raises(Exception) as cli:   # the CLI's --strength: the same bounds
        strength_arg(str(strength))
    assert f"{STRENGTH_RANGE[0]:g}..{STRENGTH_RANGE[1]:g}" in str(cli.value)


@pytest.mark.parametrize("strength", [float("nan"), 5, -1, "x", None])
def test_blend_refuses_strengths_the_cli_refuses(strength):
    rgb = textured_image(20, 20)
    with pytest.raises(AtbsnError, match="blend_with_input: strength"):
        blend_with_input(rgb, rgb + 1, strength)


def test_blend_refuses_images_of_other_shapes():
    rgb = textured_image(100, 100)
    with pytest.raises(ValueError, match=r"one shape; got \(100, 100, 3\) and \(50, 100, 3\)"):
        blend_with_input(rgb, rgb[:50], 0.5)
    with pytest.raises(ValueError, match="denoised must be a numpy"):
        blend_with_input(rgb, rgb.tolist(), 0.5)


def test_a_bogus_part_is_refused_for_every_checkpoint(ckpt):
    with pytest.raises(CheckpointError, match="part must be one of student, teacher.*'bogus'"):
        load_checkpoint(ckpt, part="bogus")
    with pytest.raises(CheckpointError, match="part must be one of student, teacher.*'bogus'"):
        open_tiled(ckpt, part="bogus")


@pytest.mark.parametrize("tile, fragment", [(50, "positive multiple of 32; got 50"),
                                            (-32, "got -32"),
                                            ("x", "whole number; got 'x'")])
def test_an_invalid_tile_is_refused_before_any_overlap_warning(ckpt, caplog, tile, fragment):
    with caplog.at_level(logging.WARNING), pytest.raises(AtbsnError, match=fragment):
        open_tiled(ckpt, tile=tile)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("kwargs, fragment", [({"batch": 0}, "batch must be at least 1"),
                                              ({"batch": 1.5}, "batch must be a whole number"),
                                              ({"overlap": "x"}, "overlap must be a whole")])
def test_bad_batch_or_overlap_is_refused(ckpt, kwargs, fragment):
    with pytest.raises(AtbsnError, match=fragment):
        open_tiled(ckpt, **kwargs)


def test_a_reduced_overlap_stays_on_the_pooling_grid():
    assert overlap_for_tile(128, 100, 100) == 96
    assert overlap_for_tile(128, 64, 64) == 32
    assert overlap_for_tile(128, 32, 32) == 0
    assert overlap_for_tile(128, 512, 512) == 128


def test_valid_inputs_still_work(ckpt):
    image = textured_image(40, 48)
    with open_tiled(ckpt, tile=0, strength=0.5) as tiled:
        reference = tiled.denoise(image)
        assert reference.shape == image.shape and reference.dtype == np.float32
        assert np.isfinite(reference).all()
        rounded = np.rint(image)
        np.testing.assert_allclose(tiled.denoise(rounded.astype(np.uint8)),
                                   tiled.denoise(rounded), atol=1e-3)
        np.testing.assert_allclose(tiled.denoise(image.astype(np.float64)), reference,
                                   atol=1e-3)
        flipped = np.asfortranarray(image)[:, ::-1]             # neither C- nor F-contiguous
        np.testing.assert_allclose(tiled.denoise(flipped),
                                   tiled.denoise(np.ascontiguousarray(flipped)), atol=1e-4)
        small = tiled.denoise(image[:8, :8])
        assert small.shape == (8, 8, 3) and np.isfinite(small).all()
    with open_tiled(ckpt, strength="auto") as tiled:            # default tiles, auto strength
        assert np.isfinite(tiled.denoise(image)).all()
    assert check_image(image) is image
    model = load_checkpoint(ckpt)
    with torch.no_grad():
        out = model(torch.from_numpy(image).permute(2, 0, 1)[None])
    assert out.shape == (1, 3, 40, 48)
    assert load_checkpoint(ckpt, part="student") is not None

"""The documented Python API refuses unusable inputs with a clear error that names what was
given and what is valid (never a torch/OpenCV/numpy error from deep inside, never garbage)."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from atbsn_edge import load_checkpoint
from atbsn_edge.errors import AtbsnError, CheckpointError
from atbsn_edge.pipeline import open_tiled
from atbsn_edge.strength import STRENGTH_RANGE, blend_with_input, strength_arg
from atbsn_edge.tiling import TileSpec, check_image, denoise_tiled, overlap_for_tile
from conftest import checkout_env, textured_image


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


@pytest.mark.parametrize("tile, fragment", [(50, "positive multiple of the network stride 32; got 50"),
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


@pytest.mark.parametrize("device, fragment", [
    ("gpu", "device 'gpu': valid are cpu, cuda or cuda:N"),   # was PyTorch's own error
    (0, "device 0: valid are"),
    ("cuda:99", "numbered from 0" if torch.cuda.is_available() else "sees no CUDA GPU")])
def test_a_device_pytorch_cannot_use_is_refused_in_our_words(ckpt, device, fragment):
    with pytest.raises(AtbsnError, match=fragment):
        open_tiled(ckpt, device=device)


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


# --- found by an audit of the API on 2026-12-07 ------------------------------------------------

@pytest.fixture(scope="module")
def openvino_bundle(tmp_path_factory):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from atbsn_edge.export.__main__ import main as export
    from conftest import write_checkpoint

    folder = tmp_path_factory.mktemp("api")
    out = folder / "ov"
    assert export(["--target", "openvino-fp32", "--checkpoint",
                   str(write_checkpoint(folder, "student_a")), "--tile", "64",
                   "--out", str(out)]) == 0
    return out


def test_a_runtime_shared_by_two_threads_gives_each_its_own_output(openvino_bundle):
    """Two threads on one OpenVINO runtime got each other's outputs (or "request busy")."""
    import threading

    from atbsn_edge.runtimes.registry import open_artifact
    from atbsn_edge.pipeline import locate_artifact

    entry, name = locate_artifact(openvino_bundle)
    inputs = [textured_image(64, 64, seed).transpose(2, 0, 1)[None].copy() for seed in (1, 2)]
    with open_artifact(entry, runtime=name) as runtime:
        expected = [runtime.infer(x) for x in inputs]
        wrong, errors = [], []

        def calls(k: int) -> None:
            try:
                for _ in range(40):
                    if not np.array_equal(runtime.infer(inputs[k]), expected[k]):
                        wrong.append(k)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=calls, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and not wrong


def test_reading_from_threads_restores_pillows_limit(tmp_path):
    import threading

    import cv2
    from PIL import Image

    from atbsn_edge.imageio import probe_image

    path = tmp_path / "a.png"
    cv2.imwrite(str(path), textured_image(20, 30).astype(np.uint8))
    before = Image.MAX_IMAGE_PIXELS
    threads = [threading.Thread(target=lambda: [probe_image(path) for _ in range(40)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Image.MAX_IMAGE_PIXELS == before is not None


def test_reading_leaves_the_applications_opencv_log_level(tmp_path, capfd, monkeypatch):
    """The first image read set OPENCV_LOG_LEVEL=OFF in the environment and silenced
    OpenCV's log for the whole process (found by the API audit): the host application lost
    OpenCV's messages for good. Now only this toolkit's own OpenCV calls are silent."""
    import threading

    import cv2

    from atbsn_edge.errors import ImageError
    from atbsn_edge.imageio import read_image

    monkeypatch.delenv("OPENCV_LOG_LEVEL", raising=False)
    bad = tmp_path / "bad.bmp"
    bad.write_bytes(b"BM\0\0garbage")
    logging_module = cv2.utils.logging
    before = logging_module.getLogLevel()
    logging_module.setLogLevel(logging_module.LOG_LEVEL_WARNING)
    try:
        def read() -> None:
            for _ in range(20):
                with pytest.raises(ImageError, match="not a readable image"):
                    read_image(bad)

        threads = [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert capfd.readouterr().err == ""       # ours: one line from this toolkit, no more
        assert logging_module.getLogLevel() == logging_module.LOG_LEVEL_WARNING
        assert "OPENCV_LOG_LEVEL" not in os.environ
        cv2.imdecode(np.frombuffer(bad.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
        assert "imdecode" in capfd.readouterr().err  # the application's: OpenCV still talks
    finally:
        logging_module.setLogLevel(before)


@pytest.mark.parametrize("options, error, fragment", [
    ({"therads": 2}, TypeError, "unknown option therads"),
    ({"threads": 100000}, AtbsnError, "threads=100000: give 0"),
    ({"threads": -1}, AtbsnError, "threads=-1: give 0"),
    ({"infer_requests": 100000}, AtbsnError, "infer_requests=100000: give 0 "),
    ({"tile": "512"}, AtbsnError, "tile='512': give a multiple of"),
    ({"batch": 0}, AtbsnError, "batch=0: give a whole number of tiles per call")])
def test_artifact_options_out_of_range_or_misspelt_are_refused(openvino_bundle, options, error,
                                                               fragment):
    from atbsn_edge.pipeline import open_artifact_tiled

    with pytest.raises(error, match=fragment):
        open_artifact_tiled(openvino_bundle, **options)


def test_an_image_on_0_to_1_is_denoised_with_a_warning(tiled, caplog):
    image = textured_image(40, 40) / 255
    with caplog.at_level(logging.WARNING, logger="atbsn_edge"):
        tiled.denoise(image)
    assert "every value lies within 0..1, but images are on 0..255 here" in caplog.text
    caplog.clear()
    tiled.denoise(textured_image(40, 40))
    assert "0..1" not in caplog.text


def test_float16_images_are_checked_without_an_overflow_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_image(np.full((300, 300, 3), 250, np.float16))


@pytest.mark.parametrize("array, fragment", [
    (np.zeros((3, 20, 30), np.float32), r"got a \(3, 20, 30\) float32 array"),
    (np.zeros((20, 30, 3), np.uint16), "a uint16 image on 0..65535 is image / 257"),
    ([[0.0]], "got a list")])
def test_write_image_refuses_what_it_would_store_wrongly(tmp_path, array, fragment):
    from atbsn_edge.imageio import Picture, write_image

    picture = Picture(rgb=np.zeros((20, 30, 3), np.float32))
    with pytest.raises(ValueError, match=fragment):
        write_image(tmp_path / "o.png", picture, array)
    assert not list(tmp_path.iterdir())


def test_the_library_prints_nothing_before_logging_is_configured():
    import subprocess
    import sys

    code = ("import logging, atbsn_edge; "
            "logging.getLogger('atbsn_edge.tiling').warning('visible?')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=checkout_env())
    assert result.returncode == 0 and result.stderr == ""

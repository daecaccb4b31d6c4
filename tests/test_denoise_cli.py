"""The denoise command line (atbsn_edge.denoise), run in-process through ``main`` and once as
``python -m atbsn_edge.denoise``. The network is a random-weight student A (the fastest)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from atbsn_edge.denoise import main
from atbsn_edge.imageio import read_image, to_storage
from conftest import textured_image, write_checkpoint

REPO = Path(__file__).resolve().parents[1]
H, W = 40, 50
TILED = ["--tile", "64", "--overlap", "32"]


@pytest.fixture
def ckpt(make_checkpoint):
    return make_checkpoint("student_a")


def rgb_u8(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.rint(textured_image(h, w, seed)).astype(np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    """Write an OpenCV-ordered (BGR/BGRA/gray) array; parents are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path
    return path


def load(path: Path) -> np.ndarray:
    out = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert out is not None, path
    return out


def error_lines(text: str) -> list[str]:
    """Lines starting with 'error:' (progress bars redraw with carriage returns)."""
    return [line for line in re.split(r"[\r\n]", text) if line.startswith("error:")]


def only_error(capsys) -> str:
    """The captured stderr must hold exactly one error line, and stdout none; return it."""
    out, err = capsys.readouterr()
    assert error_lines(out) == []
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def expected_output(path: Path, ckpt: Path, tile: int = 64, overlap: int = 32) -> np.ndarray:
    """What the CLI should store for ``path``, computed through the library API."""
    from atbsn_edge.runtimes.torch_runtime import TorchRuntime
    from atbsn_edge.tiling import TileSpec, denoise_tiled

    picture = read_image(path)
    with TorchRuntime.from_checkpoint(ckpt) as runtime:
        result = denoise_tiled(picture.rgb, runtime.infer, TileSpec(tile, tile, overlap))
    return to_storage(picture, result)


# --------------------------------------------------------------------------------------------
# Normal runs
# --------------------------------------------------------------------------------------------

def test_folder_of_two_images_into_output_folder(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    a = save(src / "a.png", rgb_u8(seed=1)[:, :, ::-1])
    b = save(src / "b.jpg", rgb_u8(seed=2)[:, :, ::-1])
    before = {p: p.read_bytes() for p in (a, b)}
    out = tmp_path / "out"

    assert main([str(src), "-o", str(out), "--checkpoint", str(ckpt), *TILED]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]  # nothing else left
    got_a, got_b = load(out / "a.png"), load(out / "b.jpg")
    assert got_a.shape == got_b.shape == (H, W, 3)
    assert got_a.dtype == got_b.dtype == np.uint8
    # The PNG holds exactly what the library computes for that checkpoint and tiling.
    np.testing.assert_array_equal(got_a, expected_output(a, ckpt))
    # The JPEG is the same result within JPEG loss (quality 95; mean error measured < 2).
    assert np.abs(got_b.astype(np.float32) - expected_output(b, ckpt)).mean() < 4.0
    # The network did something: the output is not the input.
    assert np.abs(got_a.astype(np.float32) - load(a)).mean() > 1.0
    assert {p: p.read_bytes() for p in (a, b)} == before
    assert error_lines(capsys.readouterr().err) == []


def test_grayscale_16bit_and_alpha_keep_their_form(tmp_path, ckpt):
    src = tmp_path / "in"
    gray = save(src / "gray.png", rgb_u8()[:, :, 1])
    deep = save(src / "deep.png", (rgb_u8(seed=3).astype(np.uint16) * 257)[:, :, ::-1])
    deep_tif = save(src / "deep_gray.tif", rgb_u8(seed=4)[:, :, 0].astype(np.uint16) * 257)
    alpha = np.random.default_rng(5).integers(0, 256, (H, W), dtype=np.uint8)
    rgba = save(src / "rgba.png", np.dstack([rgb_u8(seed=6)[:, :, ::-1], alpha]))
    out = tmp_path / "out"

    assert main([str(src), "-o", str(out), "--checkpoint", str(ckpt), *TILED]) == 0
    g = load(out / "gray.png")
    assert g.shape == (H, W) and g.dtype == np.uint8
    d = load(out / "deep.png")
    assert d.shape == (H, W, 3) and d.dtype == np.uint16
    # Really 16-bit content, not 8-bit values stored in 16 bits.
    assert np.any(d % 257 != 0)
    dt = load(out / "deep_gray.tif")
    assert dt.shape == (H, W) and dt.dtype == np.uint16
    r = load(out / "rgba.png")
    assert r.shape == (H, W, 4) and r.dtype == np.uint8
    np.testing.assert_array_equal(r[:, :, 3], alpha)
    for path in (gray, deep, deep_tif, rgba):
        np.testing.assert_array_equal(load(out / path.name), expected_output(path, ckpt))


def test_single_input_to_a_named_file_and_bmp_to_png(tmp_path, ckpt):
    # 32 x 64: whole-image padding is the same whatever multiple (4 or 32) the tiler pads to.
    src = save(tmp_path / "photo.png", rgb_u8(32, 64)[:, :, ::-1])
    target = tmp_path / "result" / "clean.tif"
    assert main([str(src), "-o", str(target), "--checkpoint", str(ckpt), "--tile", "0"]) == 0
    assert not (tmp_path / "result" / "photo.png").exists()
    np.testing.assert_array_equal(load(target), expected_output(src, ckpt, tile=0))

    bmp = save(tmp_path / "bmps" / "scan.bmp", rgb_u8(seed=7)[:, :, ::-1])
    out = tmp_path / "bmp_out"
    assert main([str(bmp), str(src), "-o", str(out), "--checkpoint", str(ckpt), *TILED]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.png", "scan.png"]
    assert load(out / "scan.png").shape == (H, W, 3)
    assert load(out / "photo.png").shape == (32, 64, 3)


# --------------------------------------------------------------------------------------------
# Per-image errors: exit code 1, the rest of the batch still done
# --------------------------------------------------------------------------------------------

def test_corrupt_image_among_good_ones(tmp_path, ckpt, capsys):
    src = tmp_path / "in"
    save(src / "a.png", rgb_u8(seed=1)[:, :, ::-1])
    bad = src / "b.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    save(src / "c.png", rgb_u8(seed=2)[:, :, ::-1])
    out = tmp_path / "out"

    assert main([str(src), "-o", str(out), "--checkpoint", str(ckpt), *TILED]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert load(out / "a.png").shape == load(out / "c.png").shape == (H, W, 3)
    line = only_error(capsys)
    assert str(bad) in line and "not a readable image" in line
    assert "a.png" not in line and "c.png" not in line


def test_out_of_memory_while_reading_is_one_error_and_the_rest_go_on(tmp_path, ckpt, capsys,
                                                                     monkeypatch):
    """The inputs are read in a background thread; running out of memory there is reported
    for its own image, in one line, and the other images are still denoised."""
    import atbsn_edge.denoise as denoise_module

    src = tmp_path / "in"
    for name, seed in (("a.png", 1), ("b.png", 2), ("c.png", 3)):
        save(src / name, rgb_u8(seed=seed)[:, :, ::-1])

    def read_or_run_out(path):
        if Path(path).name == "b.png":
            raise MemoryError
        return read_image(path)

    monkeypatch.setattr(denoise_module, "read_image", read_or_run_out)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--checkpoint", str(ckpt), *TILED]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    line = only_error(capsys)
    assert "b.png" in line and "out of memory while reading it" in line


def test_only_inputs_of_moderate_size_are_read_ahead(tmp_path, monkeypatch):
    import atbsn_edge.denoise as denoise_module

    image = save(tmp_path / "a.png", rgb_u8())
    assert denoise_module.small_enough_to_read_ahead(image)
    monkeypatch.setattr(denoise_module, "READ_AHEAD_MAX_PIXELS", H * W - 1)
    assert not denoise_module.small_enough_to_read_ahead(image)
    corrupt = tmp_path / "b.png"
    corrupt.write_bytes(b"not an image")
    assert denoise_module.small_enough_to_read_ahead(corrupt)  # its error comes in its turn


@pytest.mark.parametrize("how", ["input folder", "input file"])
def test_output_over_an_input_is_refused(tmp_path, ckpt, capsys, how):
    src = tmp_path / "in"
    a = save(src / "a.png", rgb_u8(seed=1)[:, :, ::-1])
    before = a.read_bytes()
    if how == "input folder":
        args = [str(src), "-o", str(src)]
    else:
        args = [str(a), "-o", str(a), "--overwrite"]  # not even --overwrite allows it
    assert main([*args, "--checkpoint", str(ckpt), *TILED]) == 1
    assert a.read_bytes() == before
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]  # no temporary left
    line = only_error(capsys)
    assert str(a) in line and "is an input" in line


def test_two_inputs_with_one_output_name(tmp_path, ckpt, capsys):
    first = save(tmp_path / "x" / "a.png", rgb_u8(seed=1)[:, :, ::-1])
    second = save(tmp_path / "y" / "a.png", rgb_u8(seed=2)[:, :, ::-1])
    out = tmp_path / "out"
    assert main([str(first), str(second), "-o", str(out), "--checkpoint", str(ckpt),
                 *TILED]) == 1
    np.testing.assert_array_equal(load(out / "a.png"), expected_output(first, ckpt))
    line = only_error(capsys)
    assert str(second) in line and "already writes" in line


def test_existing_output_needs_overwrite(tmp_path, ckpt, capsys):
    src = save(tmp_path / "in" / "a.png", rgb_u8(seed=1)[:, :, ::-1])
    out = tmp_path / "out"
    out.mkdir()
    old = save(out / "a.png", np.zeros((8, 8, 3), np.uint8))
    old_bytes = old.read_bytes()
    base = [str(src), "-o", str(out), "--checkpoint", str(ckpt), *TILED]

    assert main(base) == 1
    assert old.read_bytes() == old_bytes
    line = only_error(capsys)
    assert str(old) in line and "--overwrite" in line

    assert main([*base, "--overwrite"]) == 0
    np.testing.assert_array_equal(load(old), expected_output(src, ckpt))
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]


# --------------------------------------------------------------------------------------------
# User errors that stop the run: exit code 2, one line, nothing written
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["missing", "truncated", "empty", "not torch"])
def test_bad_checkpoint_exits_2_with_one_line(tmp_path, ckpt, capsys, damage):
    src = save(tmp_path / "in" / "a.png", rgb_u8()[:, :, ::-1])
    bad = tmp_path / "bad.pt"
    if damage == "truncated":
        data = ckpt.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "not torch":
        bad.write_text("this is not a checkpoint\n")
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--checkpoint", str(bad), *TILED]) == 2
    line = only_error(capsys)
    assert str(bad) in line
    assert ("does not exist" if damage == "missing" else "damaged, truncated") in line
    assert not out.exists()


def test_hole_size_for_a_student_is_refused(tmp_path, ckpt, capsys):
    src = save(tmp_path / "in" / "a.png", rgb_u8()[:, :, ::-1])
    out = tmp_path / "out"
    code = main([str(src), "-o", str(out), "--checkpoint", str(ckpt), "--hole", "3", *TILED])
    assert code == 2
    line = only_error(capsys)
    assert "student_a has no tunable blind spot" in line and "3" in line
    assert not out.exists()


def test_malformed_hole_size_is_an_argparse_error(tmp_path, ckpt, capsys):
    with pytest.raises(SystemExit) as info:
        main(["x.png", "-o", str(tmp_path), "--checkpoint", str(ckpt), "--hole", "-1"])
    assert info.value.code == 2
    assert "hole size must be a non-negative integer" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    # refused by argparse, before any work and without a warning about the overlap
    (["--tile", "100"], "argument --tile: expected auto, 0 or a positive multiple of 32, got '100'"),
    (["--tile", "-32"], "argument --tile: expected auto, 0 or a positive multiple of 32, got '-32'"),
    (["--tile", "64", "--overlap", "16"], "argument --overlap: expected 0 or a positive multiple"),
    (["--batch", "0"], "argument --batch: expected a positive integer (>= 1), got '0'"),
    # refused by the tile layout
    (["--tile", "64", "--overlap", "64"], "overlap 64 must be smaller than the tile (64)"),
], ids=["tile-100", "tile-negative", "overlap-16", "batch-0", "overlap-equals-tile"])
def test_invalid_tiling_exits_2_with_a_clear_message(tmp_path, ckpt, capsys, caplog, extra,
                                                     message):
    src = save(tmp_path / "in" / "a.png", rgb_u8()[:, :, ::-1])
    out = tmp_path / "out"
    try:
        code = main([str(src), "-o", str(out), "--checkpoint", str(ckpt), *extra])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert message in only_error(capsys)
    assert "using" not in caplog.text  # no "using N" overlap warning before the refusal
    assert not out.exists()


def test_missing_input_exits_2_naming_it(tmp_path, ckpt, capsys):
    missing = tmp_path / "nope.png"
    assert main([str(missing), "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt)]) == 2
    line = only_error(capsys)
    assert line.startswith("error: no image files found for: ") and str(missing) in line


def test_user_error_in_a_subprocess_is_one_line_without_traceback(tmp_path, ckpt):
    src = save(tmp_path / "in" / "a.png", rgb_u8()[:, :, ::-1])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ckpt.read_bytes()[:1000])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "atbsn_edge.denoise", str(src), "-o", str(tmp_path / "out"),
         "--checkpoint", str(bad), "--tile", "0"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot read checkpoint ") and str(bad) in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Tiled against whole image
# --------------------------------------------------------------------------------------------

def _tile_vs_whole(tmp_path, ckpt, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Denoise one 16-bit image with --tile 0 and with 64/32 tiles; both on the 0..255 scale."""
    src = save(tmp_path / "in" / "big.png",
               (np.rint(textured_image(height, width, 3)) * 257).astype(np.uint16)[:, :, ::-1])
    results = []
    for name, extra in (("whole", ["--tile", "0"]), ("tiled", TILED)):
        out = tmp_path / name
        assert main([str(src), "-o", str(out), "--checkpoint", str(ckpt), *extra]) == 0
        stored = load(out / "big.png")
        assert stored.dtype == np.uint16 and stored.shape == (height, width, 3)
        results.append(stored.astype(np.float64) * 255.0 / 65535.0)  # 16 bits: ~0.004 steps
    whole, tiled = results
    # The comparison means something only if the output is mostly not clipped.
    assert np.mean((whole > 0) & (whole < 255)) > 0.5
    return whole, tiled


def test_tiled_equals_whole_image_outside_the_overlap(tmp_path, ckpt):
    """64 x 96 needs no padding: one tile row, tile columns at 0 and 32 (64 wide). Columns
    outside 32..63 come from one tile only, at least 32 px from that tile's inner edge, beyond
    student A's receptive field (about 14 px), so there both runs must agree exactly."""
    whole, tiled = _tile_vs_whole(tmp_path, ckpt, 64, 96)
    outside = np.r_[0:32, 64:96]
    diff = np.abs(whole - tiled)[:, outside]
    assert diff.max() <= 0.01, diff.max()  # float rounding plus 16-bit quantisation
    assert np.abs(whole - tiled).max() <= 0.5


def test_whole_image_and_tiled_agree_within_half_a_level(tmp_path, ckpt):
    """70 x 90, everywhere including the overlap bands, where the feathers of tiling.py may give
    some weight to tile pixels closer to the tile's inner edge than the receptive field (those
    pixels lack part of their context). Measured max difference: 1.51 with a linear ramp across
    the whole overlap (the committed tiling.py), 0.36 with the ramp over the central half of
    the overlap, 3e-4 with the ramp over its central quarter."""
    whole, tiled = _tile_vs_whole(tmp_path, ckpt, 70, 90)
    assert np.abs(whole - tiled).max() <= 0.5


def test_bundled_defaults_denoise_the_example_image(tmp_path):
    """What `make demo` runs: no flags but input and output; the result is a denoised image."""
    import cv2

    from atbsn_edge.assets import EXAMPLE_IMAGE, default_checkpoint

    assert default_checkpoint() is not None, "the demo model is missing from atbsn_edge/assets"
    assert main([str(EXAMPLE_IMAGE), "-o", str(tmp_path)]) == 0
    noisy = cv2.imread(str(EXAMPLE_IMAGE)).astype(np.float32)
    out = cv2.imread(str(tmp_path / EXAMPLE_IMAGE.name)).astype(np.float32)
    assert out.shape == noisy.shape
    blur = lambda im: cv2.GaussianBlur(im, (0, 0), 3)  # noqa: E731
    assert np.abs(blur(out) - blur(noisy)).mean() < 4  # the picture is kept (measured 1.7) ...
    high_freq = lambda im: cv2.Laplacian(im, cv2.CV_32F).var()  # noqa: E731
    assert high_freq(out) < 0.8 * high_freq(noisy)  # ... and its pixel noise reduced


# --------------------------------------------------------------------------------------------
# Denoising strength
# --------------------------------------------------------------------------------------------

def test_strength_blends_the_network_output_with_the_input(tmp_path, make_checkpoint):
    from atbsn_edge.pipeline import open_tiled

    rgb = textured_image(64, 96).astype(np.float32)
    plain = make_checkpoint("student_a")
    with open_tiled(plain, tile=0) as tiled:        # no strength in its metadata: 1
        assert tiled.strength == 1.0
        full = tiled.denoise(rgb)
    with open_tiled(plain, tile=0, strength=0.25) as tiled:
        np.testing.assert_allclose(tiled.denoise(rgb), rgb + 0.25 * (full - rgb), atol=1e-4)
    recommended = write_checkpoint(tmp_path / "rec", "student_a", strength=0.4)
    with open_tiled(recommended, tile=0) as tiled:   # the model's own, from its metadata
        assert tiled.strength == 0.4 and "strength 0.4" in tiled.describe()
        np.testing.assert_allclose(tiled.denoise(rgb), rgb + 0.4 * (full - rgb), atol=1e-4)
    with open_tiled(recommended, tile=0, strength=1.0) as tiled:  # --strength 1 overrides it
        np.testing.assert_allclose(tiled.denoise(rgb), full, atol=0)
    from atbsn_edge.strength import blend_with_input

    with open_tiled(plain, tile=0, strength="auto") as tiled:   # per pixel, after tiling
        assert "strength auto" in tiled.describe()
        np.testing.assert_allclose(tiled.denoise(rgb), blend_with_input(rgb, full, "auto"),
                                   atol=1e-3)


def test_the_bundled_student_recommends_its_strength():
    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.models.checkpoint import load_checkpoint

    assert load_checkpoint(DEMO_STUDENT_C).metadata["strength"] == "auto"


@pytest.mark.parametrize("value, message", [("3", "auto' or a number in 0..2"), ("nan", "0..2"),
                                            ("x", "0..2")])
def test_bad_strength_is_an_argparse_error(tmp_path, ckpt, capsys, value, message):
    image = save(tmp_path / "in.png", rgb_u8())
    with pytest.raises(SystemExit) as exit_info:
        main([str(image), "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt),
              "--strength", value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_malformed_strength_in_a_model_exits_2(tmp_path, capsys):
    bad = write_checkpoint(tmp_path / "bad", "student_a", strength="strong")
    image = save(tmp_path / "in.png", rgb_u8())
    assert main([str(image), "-o", str(tmp_path / "out"), "--checkpoint", str(bad)]) == 2
    assert "metadata: strength 'strong' is not a number or 'auto'" in only_error(capsys)


def test_a_bundle_given_as_checkpoint_points_to_artifact(tmp_path, capsys):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    image = save(tmp_path / "a.png", rgb_u8()[:, :, ::-1])
    assert main([str(image), "-o", str(tmp_path / "o"), "--checkpoint", str(bundle)]) == 2
    assert only_error(capsys) == (f"error: checkpoint {bundle} is a folder, not a checkpoint "
                                  "file (a bundle: give it as --artifact, or to export as "
                                  "--from-bundle)")


def test_a_comparison_crop_past_the_image_is_moved_with_a_warning(tmp_path, ckpt, caplog):
    image = save(tmp_path / "a.png", rgb_u8()[:, :, ::-1])    # 50 x 40
    assert main([str(image), "-o", str(tmp_path / "o"), "--checkpoint", str(ckpt), "--compare",
                 "--compare-crop", "45,30,10,10", *TILED]) == 0
    assert "--compare-crop 45,30,10,10 reaches past the 50x40 image; showing 40,30,10,10 " \
           "instead" in caplog.text

"""The evaluate command line (atbsn_edge.evaluate) on tiny pairs: scikit-image photograph crops
with synthetic camera noise (atbsn_edge.synthetic), a random-weight student A checkpoint.
Expected numbers are computed here through TorchRuntime + denoise_tiled directly."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from atbsn_edge.errors import AtbsnError
from atbsn_edge.evaluate import main
from atbsn_edge.imageio import read_image
from atbsn_edge.metrics import psnr, residual_stats, ssim
from atbsn_edge.synthetic import camera_noise

skimage_data = pytest.importorskip("skimage.data")

REPO = Path(__file__).resolve().parents[1]
SIZE = 96  # with --tile 64 --overlap 32: 2 x 2 tiles
TILED = ["--tile", "64", "--overlap", "32"]


@pytest.fixture
def ckpt(make_checkpoint):
    return make_checkpoint("student_a")


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb.astype(np.uint8)[:, :, ::-1]))
    return path


@pytest.fixture
def pairs(tmp_path) -> tuple[Path, Path]:
    """noisy/ and clean/ folders holding two pairs (names sort the same way in both)."""
    for i, (name, y, x) in enumerate([("astronaut", 40, 200), ("coffee", 150, 250)]):
        clean = getattr(skimage_data, name)()[y:y + SIZE, x:x + SIZE].astype(np.float32)
        noisy = camera_noise(clean, gain=0.3, read_noise=4.0, rng=np.random.default_rng(i),
                             jpeg_quality=90)
        write_rgb(tmp_path / "clean" / f"{i}_{name}.png", clean)
        write_rgb(tmp_path / "noisy" / f"{i}_{name}.png", noisy)
    return tmp_path / "noisy", tmp_path / "clean"


def denoise_directly(path: Path, ckpt: Path, tile: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, denoised) for ``path`` through the library API, not through evaluate."""
    from atbsn_edge.runtimes.torch_runtime import TorchRuntime
    from atbsn_edge.tiling import TileSpec, denoise_tiled

    noisy = read_image(path).rgb
    with TorchRuntime.from_checkpoint(ckpt) as runtime:
        out = denoise_tiled(noisy, runtime.infer,
                            TileSpec(tile, tile, overlap, stride=runtime.input_spec.stride))
    return noisy, out


def error_lines(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", text) if line.startswith("error:")]


def only_error(capsys) -> str:
    out, err = capsys.readouterr()
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and error_lines(out) == []
    return lines[0]


def test_reference_scores_equal_the_metrics_of_the_tiled_output(tmp_path, pairs, ckpt, capsys):
    noisy_dir, clean_dir = pairs
    report_path = tmp_path / "out" / "report.json"
    rc = main(["--checkpoint", str(ckpt), "--noisy", str(noisy_dir), "--clean", str(clean_dir),
               *TILED, "--json", str(report_path)])
    assert rc == 0
    report = json.loads(report_path.read_text())
    assert report["mode"] == "reference" and report["model"] == "student_a"
    assert (report["tile"], report["overlap"], report["strength"]) == (64, 32, 1.0)
    rows = report["images"]
    assert [Path(r["noisy"]).name for r in rows] == ["0_astronaut.png", "1_coffee.png"]
    assert [Path(r["clean"]).parent for r in rows] == [clean_dir, clean_dir]
    for row in rows:
        noisy, out = denoise_directly(Path(row["noisy"]), ckpt, 64, 32)
        clean = read_image(row["clean"]).rgb
        assert row["psnr"] == pytest.approx(psnr(out, clean), abs=1e-6)
        assert row["ssim"] == pytest.approx(ssim(out, clean), abs=1e-6)
        assert row["noisy_psnr"] == pytest.approx(psnr(noisy, clean), abs=1e-6)
        assert row["noisy_ssim"] == pytest.approx(ssim(noisy, clean), abs=1e-6)
        assert abs(row["psnr"] - row["noisy_psnr"]) > 0.01  # the network did change the image
    for key in ("psnr", "ssim", "noisy_psnr", "noisy_ssim"):
        assert report["mean"][key] == pytest.approx(np.mean([r[key] for r in rows]), abs=1e-9)
    # the markdown table on stdout: header, rule, one row per image and the mean row
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 + 1
    assert table[2].startswith("| 0_astronaut.png | 0_astronaut.png |")
    assert f"{rows[0]['psnr']:.3f}" in table[2]
    assert table[-1].startswith("| **mean** |") and f"{report['mean']['psnr']:.3f}" in table[-1]
    assert not list(report_path.parent.glob(".*.tmp"))  # atomic: no temporary left behind


def test_identical_noisy_and_clean_give_null_psnr_in_json(tmp_path, pairs, ckpt):
    """PSNR of identical images is infinite; JSON has no infinity, so it is written as null."""
    _, clean_dir = pairs
    report_path = tmp_path / "same.json"
    first = sorted(clean_dir.iterdir())[0]
    assert main(["--checkpoint", str(ckpt), "--noisy", str(first), "--clean", str(first),
                 *TILED, "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["images"][0]["noisy_psnr"] is None and report["mean"]["noisy_psnr"] is None
    assert report["images"][0]["noisy_ssim"] == pytest.approx(1.0, abs=1e-12)
    assert math.isfinite(report["images"][0]["psnr"])


def test_no_reference_report_has_the_residual_statistics(tmp_path, pairs, ckpt, capsys):
    """Without --clean: residual std and autocorrelation per image, equal to residual_stats
    of the tiled output; default overlap is student A's (64), here with 128-pixel tiles."""
    noisy_dir, _ = pairs
    report_path = tmp_path / "noref.json"
    assert main(["--checkpoint", str(ckpt), "--noisy", str(noisy_dir), "--tile", "128",
                 "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["mode"] == "no-reference" and report["overlap"] == 64
    lags = {"0,1", "1,0", "1,1", "0,2", "2,0"}
    for row in report["images"]:
        assert "psnr" not in row and "clean" not in row
        assert set(row["autocorr"]) == lags
        noisy, out = denoise_directly(Path(row["noisy"]), ckpt, 128, 64)
        stats = residual_stats(noisy, out)
        assert row["residual_std"] == pytest.approx(stats.std, abs=1e-6)
        assert row["residual_mean"] == pytest.approx(stats.mean, abs=1e-6)
        for lag in lags:
            assert row["autocorr"][lag] == pytest.approx(stats.autocorr[lag], abs=1e-9)
    mean = report["mean"]
    assert set(mean["autocorr"]) == lags
    assert mean["autocorr"]["0,1"] == pytest.approx(
        np.mean([r["autocorr"]["0,1"] for r in report["images"]]), abs=1e-12)
    assert mean["residual_std"] == pytest.approx(
        np.mean([r["residual_std"] for r in report["images"]], axis=0).tolist(), abs=1e-12)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert "ρ(0,1)" in table[0] and len(table) == 5 and table[-1].startswith("| **mean** |")


def test_mismatched_counts_exit_2_with_one_line(tmp_path, pairs, ckpt, capsys):
    noisy_dir, clean_dir = pairs
    report_path = tmp_path / "r.json"
    rc = main(["--checkpoint", str(ckpt), "--noisy", str(noisy_dir),
               "--clean", str(sorted(clean_dir.iterdir())[0]), "--json", str(report_path)])
    assert rc == 2
    line = only_error(capsys)
    assert "2 noisy image(s) (--noisy) but 1 clean reference(s) (--clean)" in line
    assert not report_path.exists()


def test_pairs_follow_the_order_given_and_a_reference_may_serve_two_frames(tmp_path, pairs):
    """evaluate paired sorted lists: files named out of order were scored against each
    other's references, and a reference named for two frames was refused by the count. Now
    it pairs as denoise, parity and training's validation do."""
    from atbsn_edge.evaluate import pair_inputs

    noisy_dir, clean_dir = pairs
    n0, n1 = sorted(noisy_dir.iterdir())
    c0, c1 = sorted(clean_dir.iterdir())
    assert pair_inputs([str(n1), str(n0)], [str(c1), str(c0)]) == [(n1, c1), (n0, c0)]
    assert pair_inputs([str(n0), str(n1)], [str(c0), str(c0)]) == [(n0, c0), (n1, c0)]
    assert pair_inputs([str(noisy_dir)], [str(clean_dir)]) == [(n0, c0), (n1, c1)]
    assert pair_inputs([str(n1), str(n0)], None) == [(n1, None), (n0, None)]
    with pytest.raises(AtbsnError, match="given twice, with the clean references"):
        pair_inputs([str(n0), str(n0)], [str(c0), str(c1)])


@pytest.mark.parametrize("with_clean", [False, True])
def test_a_file_that_is_no_image_is_named_unreadable_not_too_small(tmp_path, ckpt, capsys,
                                                                   with_clean):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"abc")  # no header a reader knows: its size is unknown, not 0 x 0
    argv = ["--checkpoint", str(ckpt), "--noisy", str(bad)]
    assert main(argv + (["--clean", str(bad)] if with_clean else [])) == 2
    line = only_error(capsys)
    assert "not a readable image" in line and "too small" not in line


def test_mismatched_shapes_name_both_files(tmp_path, pairs, ckpt, capsys):
    noisy_dir, _ = pairs
    small = write_rgb(tmp_path / "small" / "ref.png", np.zeros((SIZE, SIZE - 8, 3)))
    noisy = sorted(noisy_dir.iterdir())[0]
    rc = main(["--checkpoint", str(ckpt), "--noisy", str(noisy), "--clean", str(small), *TILED])
    assert rc == 2
    line = only_error(capsys)
    assert str(noisy) in line and str(small) in line and f"{SIZE - 8}x{SIZE}" in line


def test_json_into_a_folder_and_missing_inputs_exit_2(tmp_path, pairs, ckpt, capsys):
    noisy_dir, _ = pairs
    assert main(["--checkpoint", str(ckpt), "--noisy", str(noisy_dir), "--json",
                 str(tmp_path)]) == 2
    assert "is a folder" in only_error(capsys)
    assert main(["--checkpoint", str(ckpt), "--noisy", str(tmp_path / "nothing")]) == 2
    assert "no image files found" in only_error(capsys)


def test_module_entry_point_reports_one_line(tmp_path, pairs, ckpt):
    """``python -m atbsn_edge.evaluate`` exits 2 with one error line and no traceback (the
    count check comes before PyTorch is loaded, so this stays quick)."""
    noisy_dir, clean_dir = pairs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "atbsn_edge.evaluate", "--checkpoint", str(ckpt),
         "--noisy", str(sorted(noisy_dir.iterdir())[0]), "--clean", str(clean_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert lines == ["error: 1 noisy image(s) (--noisy) but 2 clean reference(s) (--clean); "
                     "give one clean reference per noisy image, in the same order (a reference "
                     "may be named again for another image)"]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_evaluate_without_checkpoint_scores_the_bundled_demo_model(tmp_path, capsys):
    """Like denoise and export, evaluate takes the bundled demo model when no --checkpoint is
    given (it was required; found 2026-12-07)."""
    from atbsn_edge.assets import default_checkpoint
    from atbsn_edge.evaluate import main as evaluate_main

    if default_checkpoint() is None:
        pytest.skip("this install has no bundled demo model")
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), np.full((96, 96, 3), 128, np.uint8))
    report = tmp_path / "r.json"
    assert evaluate_main(["--noisy", str(image), "--tile", "64", "--overlap", "32",
                          "--json", str(report)]) == 0
    assert json.loads(report.read_text())["checkpoint"] == str(default_checkpoint())

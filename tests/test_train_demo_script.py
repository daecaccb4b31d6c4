"""benchmarks/train_demo_models.sh: its exit code and lines say which steps failed (found
2026-12-07: `$?` after `$(date)` printed "exit 0" for a failed step, and the script exited 0)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import textured_image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_demo_models.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out"),
            "CLAIM_A": "0", "TRAIN_SECONDS": "5", "DISTILL_SECONDS": "5", "BATCH": "1",
            "CROP": "128", "THREADS": "1", **env}
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=full, capture_output=True,
                          text=True, timeout=300)


def small_data(folder: Path) -> Path:
    (folder / "dnd_patches").mkdir(parents=True)
    (folder / "nam_pairs").mkdir()
    cv2.imwrite(str(folder / "dnd_patches" / "0001.png"),
                np.rint(textured_image(160, 160, 0)).astype(np.uint8))
    for i in range(1, 5):
        clean = textured_image(160, 160, i)
        noisy = clean + np.random.default_rng(i).normal(0, 10, clean.shape)
        cv2.imwrite(str(folder / "nam_pairs" / f"0{i}_clean.png"), np.rint(clean).astype(np.uint8))
        cv2.imwrite(str(folder / "nam_pairs" / f"0{i}_noisy.png"),
                    np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    return folder


def test_a_data_folder_without_the_pairs_is_refused_before_anything(tmp_path):
    (tmp_path / "data").mkdir()
    done = run_script(tmp_path, DATA=str(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    assert "must hold dnd_patches/*.png and nam_pairs/NN_noisy.png" in done.stderr
    assert not (tmp_path / "out").exists()


def test_failed_steps_are_reported_and_the_exit_code_is_1(tmp_path):
    pytest.importorskip("torch")
    data = small_data(tmp_path / "data")
    done = run_script(tmp_path, DATA=str(data), DEVICE="cuda:99")  # no such GPU here
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "hole-9 training exit 2" in done.stdout
    assert "exit 0" not in done.stdout
    assert "finished with failures: hole-9 training (exit 2" in done.stderr
    assert "distillation (no teacher)" in done.stderr
    assert "done" not in done.stdout.splitlines()[-1]


def test_an_interpreter_without_the_toolkit_is_refused_before_anything(tmp_path):
    data = small_data(tmp_path / "data")
    done = run_script(tmp_path, DATA=str(data), PYTHON=shutil.which("false") or "/bin/false")
    assert done.returncode == 2, done.stderr
    assert "cannot import atbsn_edge and torch; set PYTHON" in done.stderr
    assert not (tmp_path / "out").exists()

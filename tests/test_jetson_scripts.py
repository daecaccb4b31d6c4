"""examples/jetson/bundle_to_profile.sh off a Jetson: arguments are checked before anything is
created, and a failed engine build leaves no empty OUT_DIR behind (found 2026-12-07)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "jetson" / "bundle_to_profile.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": shutil.which("false") or "/bin/false"}  # every step fails
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_bad_arguments_create_nothing(tmp_path):
    done = run(tmp_path, str(tmp_path / "nope"), "fp16", str(tmp_path / "out"))
    assert done.returncode == 2 and "is not a bundle" in done.stderr
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    done = run(tmp_path, str(bundle), "fp8", str(tmp_path / "out"))
    assert done.returncode == 2 and "is not fp16 or int8" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_a_failed_engine_build_removes_the_out_dir_it_created(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    done = run(tmp_path, str(bundle), "fp16", str(tmp_path / "out"))
    assert done.returncode == 10 and "engine build failed" in done.stdout
    assert not (tmp_path / "out").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert run(tmp_path, str(bundle), "int8", str(kept)).returncode == 10
    assert kept.is_dir()  # a folder the user gave, existing before: left as it was

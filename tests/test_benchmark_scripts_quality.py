"""Benchmark scripts: a user's mistake is one ``error:`` line and exit code 2 before any work,
and what the scripts cache, label and write says what it holds (tiny generated data only)."""
from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark_scripts import BENCHMARKS, assert_one_line_error, run_script
from conftest import textured_image

pytest.importorskip("torch")


def script_module(name: str, monkeypatch):
    """A benchmark script imported as a module (the folder on sys.path, as when it runs)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module(name)


def run_main(module, argv: list[object], monkeypatch) -> None:
    """``module.main()`` with ``argv`` as its command line."""
    monkeypatch.setattr(sys, "argv", [module.__name__, *map(str, argv)])
    module.main()


def write_image(path: Path, height: int, width: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.rint(textured_image(height, width, seed))[:, :, ::-1].astype(np.uint8))


def write_pair(folder: Path, noisy: str, clean: str, size: int, seed: int) -> None:
    """A noisy image (textured image plus noise) and its clean image, ``size`` x ``size``."""
    folder.mkdir(parents=True, exist_ok=True)
    image = textured_image(size, size, seed)
    noise = np.random.default_rng(seed).normal(0, 12, image.shape)
    for name, rgb in ((noisy, image + noise), (clean, image)):
        cv2.imwrite(str(folder / name), np.clip(np.rint(rgb), 0, 255)[:, :, ::-1].astype(np.uint8))


# --------------------------------------------------------------------------------------------
# distillation_targets.py: cache keys name the image, the teacher and the transforms
# --------------------------------------------------------------------------------------------

class FakeTeacher:
    """Stands in for the OpenVINO teacher: its output at every hole is the input plus the
    number written in its "checkpoint" file (so two teachers give different outputs)."""

    calls = 0

    def __init__(self, checkpoint, holes, size, work, precision="f32", threads=2) -> None:
        self.holes = holes
        self.offset = float(Path(checkpoint).read_text())
        self.tag = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:12]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        FakeTeacher.calls += 1
        return np.stack([rgb + self.offset + h for h in self.holes]).astype(np.float32)


@pytest.fixture
def targets_run(tmp_path, monkeypatch, make_checkpoint):
    """Run distillation_targets.py (fake teacher, tiny student) -> its JSON scores, stdout."""
    module = script_module("distillation_targets", monkeypatch)
    monkeypatch.setattr(module, "OpenVINOTeacher", FakeTeacher)
    student = make_checkpoint("student_a")
    teachers = {}
    for name, offset in (("a", "3"), ("b", "9")):
        teachers[name] = tmp_path / f"teacher_{name}.pt"
        teachers[name].write_text(offset)

    def run(data: Path, cache: Path, teacher: str = "a", transforms: int = 1) -> tuple[dict, str]:
        report = tmp_path / "scores.json"
        FakeTeacher.calls = 0
        run_main(module, ["--data", data, "--cache", cache, "--teacher", teachers[teacher],
                          "--student", student, "--transforms", transforms, "--r3-passes", 1,
                          "--threads", 1, "--json", report], monkeypatch)
        return json.loads(report.read_text())["scores"], FakeTeacher.calls

    return run


def test_distillation_targets_cache_is_per_image_size_and_data(tmp_path, targets_run, capsys):
    """A second run with the same --cache on other data whose files have the same names (and
    another size) died with 'psnr: shapes differ': the cache keys ignored the image."""
    small, large = tmp_path / "small", tmp_path / "large"
    write_pair(small, "01_noisy.png", "01_clean.png", 32, seed=0)
    write_pair(large, "01_noisy.png", "01_clean.png", 48, seed=1)
    cache = tmp_path / "cache"
    targets_run(small, cache)
    shared, _ = targets_run(large, cache)
    fresh, _ = targets_run(large, tmp_path / "fresh")
    assert shared["teacher hole 3"] == fresh["teacher hole 3"]


def test_distillation_targets_cache_is_per_teacher(tmp_path, targets_run):
    """Another --teacher with the same --cache silently re-used the first teacher's outputs."""
    data = tmp_path / "pairs"
    write_pair(data, "01_noisy.png", "01_clean.png", 32, seed=0)
    cache = tmp_path / "cache"
    targets_run(data, cache, teacher="a")
    _, calls_again = targets_run(data, cache, teacher="a")
    shared, calls = targets_run(data, cache, teacher="b")
    fresh, _ = targets_run(data, tmp_path / "fresh", teacher="b")
    assert calls_again == 0            # the same teacher on the same image: all from the cache
    assert calls > 0
    for name in ("teacher hole 0", "R3 on student C, hole 3"):
        assert shared[name] == fresh[name]


def test_distillation_targets_r3_label_and_cache_follow_transforms(tmp_path, targets_run,
                                                                   capsys):
    """The R3 row said 'median 3-9 x8' (and its cache ignored --transforms) at --transforms 1."""
    data = tmp_path / "pairs"
    write_pair(data, "01_noisy.png", "01_clean.png", 32, seed=0)
    cache = tmp_path / "cache"
    one, _ = targets_run(data, cache, transforms=1)
    out = capsys.readouterr().out
    assert "R3 on median 3-9 x1, hole 3" in one and "x8" not in out.replace("student C x8", "")
    two, _ = targets_run(data, cache, transforms=2)
    fresh, _ = targets_run(data, tmp_path / "fresh", transforms=2)
    assert two["R3 on median 3-9 x2, hole 3"] == fresh["R3 on median 3-9 x2, hole 3"]


# --------------------------------------------------------------------------------------------
# adapt_polyu.py, adapt_supervised_bound.py: cameras and scenes checked from the file names
# --------------------------------------------------------------------------------------------

@pytest.fixture
def polyu(tmp_path) -> Path:
    """A PolyU-like folder: Canon600D with 3 scenes, NikonD800 with 4 (one 32x32 pair each)."""
    folder = tmp_path / "polyu"
    scenes = {"Canon600D": ("book", "toy", "waterhouse"),
              "NikonD800": ("bike", "classroom", "door", "flower")}
    for seed, (camera, names) in enumerate(scenes.items()):
        for i, scene in enumerate(names):
            stem = f"{camera}_4-5_125_1600_{scene}_{i + 1}"
            write_pair(folder, f"{stem}_real.JPG", f"{stem}_mean.JPG", 32, seed=seed * 10 + i)
    return folder


def test_adapt_polyu_refuses_holding_out_every_scene(polyu):
    """--camera Canon600D (3 scenes) with the default --test-scenes 3 adapted on 0 images and
    ended with adapt's 'argument --data: expected at least one argument'."""
    result = run_script("adapt_polyu.py", "--polyu", polyu, "--camera", "Canon600D")
    assert_one_line_error(result, "--test-scenes 3", "Canon600D has 3 scenes", "1 to 2")


def test_adapt_polyu_names_the_cameras_found(polyu):
    result = run_script("adapt_polyu.py", "--polyu", polyu, "--camera", "Canon")
    assert_one_line_error(result, "--camera Canon", "Canon600D (3 scenes)", "NikonD800 (4 scenes)")


@pytest.mark.parametrize("flag", ["--camera", "--control"])
def test_adapt_supervised_bound_names_the_cameras_found(polyu, flag):
    """An unknown --camera or --control ended in a numpy ValueError traceback."""
    result = run_script("adapt_supervised_bound.py", "--polyu", polyu, "--test-scenes", 1,
                        flag, "Nikon")
    assert_one_line_error(result, f"{flag} Nikon", "Canon600D", "NikonD800")


# --------------------------------------------------------------------------------------------
# strength_blend.py: --select checked, column titles with the pairs found
# --------------------------------------------------------------------------------------------

@pytest.fixture
def real(tmp_path) -> Path:
    """A folder laid out like the real-noise data (nam_pairs/, polyu/): 2 Nam pairs and 1
    PolyU pair, 32x32, generated here."""
    folder = tmp_path / "real"
    for i in (1, 2):
        write_pair(folder / "nam_pairs", f"{i:02d}_noisy.png", f"{i:02d}_clean.png", 32, seed=i)
    stem = "Canon600D_4-5_125_1600_toy_1"
    write_pair(folder / "polyu", f"{stem}_real.JPG", f"{stem}_mean.JPG", 32, seed=5)
    return folder


def test_strength_blend_refuses_a_select_matching_no_pair(real):
    """--select 99 printed numpy's 'Mean of empty slice', chose strength 0 and exited 0."""
    result = run_script("strength_blend.py", "--real", real, "--select", "99")
    assert_one_line_error(result, "--select 99", "01, 02")


def test_strength_blend_columns_count_the_pairs_found(real, make_checkpoint):
    """The columns always said 'Nam (12)' and 'PolyU (44)', whatever pairs there were."""
    result = run_script("strength_blend.py", "--real", real, "--select", "02", "--threads", 1,
                        "--strengths", "1", "--checkpoint", make_checkpoint("student_a"))
    assert result.returncode == 0, result.stderr
    assert "Nam (2)" in result.stdout and "PolyU (1)" in result.stdout
    assert "(12)" not in result.stdout and "(44)" not in result.stdout
    assert "chosen on the 1 Nam pairs 02 |" in result.stdout


# --------------------------------------------------------------------------------------------
# quality_pictures.py: "mean of 500" only for a Nam pair
# --------------------------------------------------------------------------------------------

def test_quality_pictures_labels_mean_of_500_only_for_nam_pairs(tmp_path, monkeypatch,
                                                               make_checkpoint, capsys):
    module = script_module("quality_pictures", monkeypatch)
    labels = []

    def record(path, panels, crop=None, zoom=3):
        labels.append(panels[-1][0])
        return module.Crop(0, 0, 16, 16)

    monkeypatch.setattr(module, "write_comparison", record)
    stem = "Canon600D_4-5_125_1600_toy_1"
    write_pair(tmp_path / "polyu", f"{stem}_real.JPG", f"{stem}_mean.JPG", 32, seed=1)
    write_pair(tmp_path / "nam_pairs", "01_noisy.png", "01_clean.png", 32, seed=2)
    run_main(module, ["--noisy", tmp_path / "polyu" / f"{stem}_real.JPG",
                      tmp_path / "nam_pairs" / "01_noisy.png",
                      "--clean", tmp_path / "polyu" / f"{stem}_mean.JPG",
                      tmp_path / "nam_pairs" / "01_clean.png",
                      "--checkpoint", make_checkpoint("student_a"), "--out", tmp_path / "out"],
             monkeypatch)
    assert labels == ["clean", "clean (mean of 500)"]


# --------------------------------------------------------------------------------------------
# package_demo_model.py: an already packaged model keeps its metadata
# --------------------------------------------------------------------------------------------

def test_package_demo_model_keeps_a_packaged_models_metadata(tmp_path, monkeypatch,
                                                            make_checkpoint, capsys):
    from atbsn_edge.models.checkpoint import load_checkpoint

    module = script_module("package_demo_model", monkeypatch)
    history = [{"step": 100, "val_psnr": 30.5}, {"step": 200, "val_psnr": 31.25}]
    source = make_checkpoint("student_a", iterations=200, history=history,
                             trained_on="one NVIDIA H200", note="trained by the demo script")
    kept, renoted = tmp_path / "kept.pt", tmp_path / "renoted.pt"
    run_main(module, [source, kept], monkeypatch)
    metadata = load_checkpoint(kept).metadata
    assert metadata["history"] == history and metadata["iterations"] == 200
    assert metadata["trained_on"] == "one NVIDIA H200"
    assert metadata["note"] == "trained by the demo script"
    run_main(module, [source, renoted, "--note", "new note", "--trained-on", "a laptop"],
             monkeypatch)
    metadata = load_checkpoint(renoted).metadata
    assert metadata["note"] == "new note" and metadata["trained_on"] == "a laptop"
    assert metadata["history"] == history


# --------------------------------------------------------------------------------------------
# distill_teacher_cost.py, receptive_field.py: bad arguments are one line
# --------------------------------------------------------------------------------------------

def test_distill_teacher_cost_bad_holes_is_one_line():
    """--holes x was a ValueError traceback."""
    assert_one_line_error(run_script("distill_teacher_cost.py", "--holes", "x"), "--holes", "'x'")


def test_receptive_field_unknown_architecture_is_one_line():
    """--he-init student_z was a ValueError traceback (after building the test image)."""
    line = assert_one_line_error(run_script("receptive_field.py", "--he-init", "student_z"),
                                 "student_z")
    assert all(name in line for name in ("atbsn", "student_a", "student_b", "student_c"))


# --------------------------------------------------------------------------------------------
# coreml_int8_quality.py: the int8-ready student's learned program, scored as denoise writes it
# --------------------------------------------------------------------------------------------

@pytest.mark.slow  # about 45 s on 2 cores: PyTorch, coremltools, a conversion, the evaluator
def test_coreml_quality_scores_the_learned_program_at_the_models_strength(tmp_path):
    pytest.importorskip("coremltools", reason="the coreml extra (coremltools) is not installed")
    write_pair(tmp_path, "n.png", "c.png", 64, seed=3)
    result = run_script("coreml_int8_quality", "--variants", "int8-learned", "--strength", "model",
                        "--noisy", tmp_path / "n.png", "--clean", tmp_path / "c.png", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "PSNR of the output at strength auto" in result.stdout
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("| ")}
    base = float(rows["PyTorch fp32"][1].split()[0])
    # the float student's output blended at its own strength (auto), as denoise writes it
    import torch

    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.imageio import read_image
    from atbsn_edge.metrics import psnr
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.strength import blend_with_input, model_strength

    student = load_checkpoint(DEMO_STUDENT_C)
    noisy = read_image(tmp_path / "n.png").rgb
    with torch.no_grad():
        out = student.core(None)(torch.from_numpy(noisy.transpose(2, 0, 1)[None].copy()))
    blended = blend_with_input(noisy, out[0].numpy().transpose(1, 2, 0).copy(),
                               model_strength(student.metadata))
    assert model_strength(student.metadata) == "auto"
    assert base == pytest.approx(psnr(blended, read_image(tmp_path / "c.png").rgb), abs=2e-3)
    learned = rows["coreml-int8-learned"]
    assert learned[0].startswith("W8A8 symmetric, learned ranges of demo_student_c_int8.pt")
    mean, drop = float(learned[1].split()[0]), float(learned[2].split()[0])
    assert abs((base - mean) - drop) < 2e-3          # the drop is the printed means' difference
    assert abs(drop) < 1.0 and float(learned[4]) < 0.1   # int8 of a real network, not garbage


def test_coreml_quality_refuses_an_int8_ready_flag_it_would_not_use(tmp_path):
    write_pair(tmp_path, "n.png", "c.png", 64, seed=3)
    result = run_script("coreml_int8_quality", "--noisy", tmp_path / "n.png", "--clean",
                        tmp_path / "c.png", "--variants", "fp32", "--int8-ready", "x.pt")
    assert_one_line_error(result, "--int8-ready is for the int8-learned variant")


def test_coreml_quality_refuses_unpaired_references_in_one_line(tmp_path):
    write_pair(tmp_path, "n.png", "c.png", 64, seed=3)
    write_pair(tmp_path, "n2.png", "c2.png", 64, seed=4)
    result = run_script("coreml_int8_quality", "--noisy", tmp_path / "n.png",
                        "--clean", tmp_path / "c.png", tmp_path / "c2.png")
    assert_one_line_error(result, "1 --noisy images but 2 --clean ones")

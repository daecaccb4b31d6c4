"""The int8 and latency benchmark scripts: a user's mistake is one ``error:`` line and exit 2
before any output or heavy work, and the defects found by running each of them small stay
fixed (int8_quality's NNCF column, dec1_ir_rewrites on the QAT bundle, qat_point_ablation on
a float checkpoint, qat_float_output on pairs not at the tile, inference_precision's "auto
picks" note and its bundle checks, latency's unknown targets, output_phases' tile)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark_scripts import ROOT, assert_one_line_error, load_script, run_script
from conftest import textured_image

SCRIPTS = ("int8_quality", "dec1_ir_rewrites", "qat_point_ablation", "qat_float_output",
           "inference_precision", "latency", "output_phases")


def write_pairs(folder: Path, size: int, count: int = 2) -> tuple[list[Path], list[Path]]:
    """``count`` noisy / clean PNG pairs of ``size`` x ``size`` in ``folder``."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    noisy, clean = [], []
    for i in range(count):
        image = textured_image(size, size, seed=i)
        rough = np.clip(image + np.random.default_rng(i).normal(0, 10, image.shape), 0, 255)
        noisy.append(folder / f"{i}_noisy.png")
        clean.append(folder / f"{i}_clean.png")
        cv2.imwrite(str(noisy[-1]), rough.astype(np.uint8))
        cv2.imwrite(str(clean[-1]), image.astype(np.uint8))
    return noisy, clean


@pytest.fixture(scope="module")
def qat_bundle(tmp_path_factory) -> Path:
    """The default openvino-int8 export (the bundled int8-ready student, node names
    ``/quantized/unet/...``) at a 64 x 64 tile, once for this module."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("qat_bundle")
    out = root / "bundle"
    env = {**os.environ, "ATBSN_EDGE_CACHE": str(root / "cache"),
           "ATBSN_EDGE_OPENVINO_CACHE": "0"}
    result = subprocess.run([sys.executable, "-m", "atbsn_edge.export", "--target",
                             "openvino-int8", "--tile", "64", "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def test_docstring_commands_are_whole_lines():
    """A backslash ending a docstring line (not a raw string) joined the command's next line
    onto it ('...png         --clean ...') in the source and in --help: write it doubled."""
    for name in SCRIPTS:
        doc = load_script(name).__doc__
        for line in doc.splitlines():
            assert not re.search(r"\S {5,}--", line), (name, line)
    doc = load_script("dec1_ir_rewrites").__doc__
    assert "python benchmarks/dec1_ir_rewrites.py BUNDLE --threads 2" in doc
    assert "--checkpoint atbsn_edge/assets/demo_student_c.pt" in doc  # how to make the bundle


# --- int8_quality.py -----------------------------------------------------------------------

def test_int8_quality_refuses_unknown_quantizer(tmp_path):
    """``--quantizers foo`` was run as nncf; now refused before any work, naming the valid."""
    result = run_script("int8_quality", "--checkpoint", tmp_path / "absent.pt",
                        "--noisy", "a.png", "--clean", "b.png", "--quantizers", "qdq,foo")
    assert_one_line_error(result, "'foo'", "qdq", "nncf")


def test_int8_quality_nncf_column(tmp_path, make_checkpoint):
    """The NNCF IR the script writes carries the full metadata the runtime needs (it had
    only the precision, and the run ended in 'its atbsn-edge metadata lacks model, ...')."""
    pytest.importorskip("nncf")
    import cv2

    noisy, clean = write_pairs(tmp_path / "pairs", 64)
    calibration = tmp_path / "calibration.png"
    cv2.imwrite(str(calibration), textured_image(96, 96, seed=5).astype(np.uint8))
    result = run_script("int8_quality", "--checkpoint", make_checkpoint(), "--noisy", *noisy,
                        "--clean", *clean, "--calib-data", calibration, "--calib-crops", "2",
                        "--quantizers", "nncf")
    assert result.returncode == 0, result.stderr
    assert "| fp32 | - |" in result.stdout
    assert re.search(r"\| default \| nncf \| [-\d.]+ dB \|", result.stdout), result.stdout


# --- dec1_ir_rewrites.py -------------------------------------------------------------------

def test_dec1_rewrites_bundle_without_int8_ir(tmp_path):
    """A folder without model-int8.xml ended in a StopIteration traceback."""
    pytest.importorskip("openvino")
    result = run_script("dec1_ir_rewrites", tmp_path)
    assert_one_line_error(result, str(tmp_path), "model-int8.xml",
                          "--checkpoint atbsn_edge/assets/demo_student_c.pt")


def test_dec1_rewrites_refuses_the_qat_bundle(qat_bundle):
    """The default (QAT) openvino-int8 bundle died in KeyError '/unet/dec1/...': its dec1 is
    another graph; refused in one line saying which bundle to export."""
    result = run_script("dec1_ir_rewrites", qat_bundle, "--rounds", "1", "--calls", "1")
    assert_one_line_error(result, "int8-ready", "NNCF",
                          "--checkpoint atbsn_edge/assets/demo_student_c.pt")


# --- qat_point_ablation.py -----------------------------------------------------------------

def test_qat_point_ablation_refuses_float_checkpoint(tmp_path, make_checkpoint):
    """A float checkpoint printed the table's header, then 'checkpoint ... does not exist'
    (its empty qat_from joined to the folder)."""
    noisy, clean = write_pairs(tmp_path / "pairs", 64, count=1)
    checkpoint = make_checkpoint()
    result = run_script("qat_point_ablation", "--checkpoint", checkpoint, "--noisy", *noisy,
                        "--clean", *clean, "--calibration", *noisy)
    assert_one_line_error(result, str(checkpoint), "not an int8-ready",
                          "python -m atbsn_edge.qat", "--float")


def test_qat_point_ablation_refuses_calibration_off_the_stride(tmp_path):
    """Calibration images run through the bare network: an 80 x 48 one ended in a skip
    connection's RuntimeError traceback after the table; now one line before any output."""
    import cv2

    noisy, clean = write_pairs(tmp_path / "pairs", 64, count=1)
    odd = tmp_path / "calibration.png"
    cv2.imwrite(str(odd), textured_image(48, 80).astype(np.uint8))
    result = run_script("qat_point_ablation", "--checkpoint",
                        ROOT / "atbsn_edge/assets/demo_student_c_int8.pt", "--noisy", *noisy,
                        "--clean", *clean, "--calibration", odd)
    assert_one_line_error(result, str(odd), "80x48", "multiples of 32")


@pytest.mark.parametrize("script", ["int8_quality", "qat_point_ablation", "qat_float_output",
                                    "quality_pictures"])
def test_pair_counts_are_checked_before_any_image_is_read(script, tmp_path, request):
    """Two --noisy images and one --clean: one line naming both counts, checked on the paths
    before any image is read or any checkpoint loaded (the checkpoint here does not exist)."""
    noisy, clean = write_pairs(tmp_path / "pairs", 64, count=2)
    first = ["--checkpoint", tmp_path / "absent.pt"]
    if script == "qat_float_output":
        first = ["--bundle", request.getfixturevalue("qat_bundle")]
    elif script == "quality_pictures":
        first += ["--out", tmp_path / "out"]
    extra = ["--calibration", noisy[0]] if script == "qat_point_ablation" else []
    result = run_script(script, *first, "--noisy", *noisy, "--clean", clean[0], *extra)
    assert_one_line_error(result, "2 --noisy images but 1 --clean ones")


# --- qat_float_output.py -------------------------------------------------------------------

def test_qat_float_output_refuses_pairs_off_the_tile(tmp_path, qat_bundle):
    """Pairs not at the bundle's tile ended in OpenVINO's shape RuntimeError traceback."""
    noisy, clean = write_pairs(tmp_path / "pairs", 96)
    result = run_script("qat_float_output", "--bundle", qat_bundle, "--noisy", *noisy,
                        "--clean", *clean, "--rounds", "1", "--iters", "1")
    assert_one_line_error(result, str(noisy[0]), "96x96", "64x64")


def test_qat_float_output_at_the_bundles_tile(tmp_path, qat_bundle):
    """Pairs at the tile run, timed at the tile (it timed a 512 x 512 input on any bundle)."""
    noisy, clean = write_pairs(tmp_path / "pairs", 64)
    result = run_script("qat_float_output", "--bundle", qat_bundle, "--noisy", *noisy,
                        "--clean", *clean, "--rounds", "1", "--iters", "1")
    assert result.returncode == 0, result.stderr
    assert "64x64; 2 pairs" in result.stdout
    assert result.stdout.count("| output convolution float |") == 2


def test_qat_float_output_refuses_a_bundle_without_learned_int8(tmp_path):
    """A folder that is not a QAT bundle: one line, before any image is read."""
    result = run_script("qat_float_output", "--bundle", tmp_path, "--noisy", "a.png",
                        "--clean", "b.png")
    assert_one_line_error(result, str(tmp_path))


# --- inference_precision.py ----------------------------------------------------------------

def test_inference_precision_note_for_an_untimed_pick():
    """``--hints f32`` with auto picking bf16 said '(not the fastest)' of a hint not timed."""
    note = load_script("inference_precision").pick_note
    assert note("bf16", "f32", ["f32"]) == " (not timed)"
    assert note("bf16", "f32", ["f32", "bf16"]) == " (not the fastest)"
    assert note("f32", "f32", ["f32"]) == ""


def test_inference_precision_untimed_pick_in_the_table(qat_bundle):
    result = run_script("inference_precision", "--bundles", qat_bundle, "--hints", "f32",
                        "--rounds", "1", "--iters", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    row = lines[lines.index("|---|---|---|---|") + 1]  # the bundle's row, under the header
    assert "not the fastest" not in row
    if not row.rstrip(" |").endswith("| f32"):  # auto picked another hint than the one timed
        assert row.endswith("(not timed) |"), row


def test_inference_precision_refuses_onnx(qat_bundle):
    """An ONNX artifact was timed under OpenVINO's hints, which do nothing for it."""
    pytest.importorskip("openvino")
    result = run_script("inference_precision", "--bundles", qat_bundle / "model-fp32.onnx",
                        "--hints", "f32", "--rounds", "1", "--iters", "1")
    assert_one_line_error(result, "model-fp32.onnx", "give openvino-* bundles")


def test_inference_precision_bundle_error_before_the_table(tmp_path):
    """A bundle that cannot be opened: its line alone, not after the table's header."""
    pytest.importorskip("openvino")
    result = run_script("inference_precision", "--bundles", tmp_path / "absent", "--hints", "f32")
    assert_one_line_error(result, "absent")


# --- latency.py ----------------------------------------------------------------------------

def test_latency_refuses_unknown_target(make_checkpoint):
    """``--targets bogus`` printed its error, went on, printed a nan row and exited 0."""
    result = run_script("latency", "--checkpoint", make_checkpoint(), "--targets",
                        "onnx-fp32,bogus", "--tile", "64", "--tiled", "", "--warmup", "0",
                        "--repeats", "1")
    assert_one_line_error(result, "unknown target 'bogus'", "openvino-int8")


# --- output_phases.py ----------------------------------------------------------------------

def test_output_phases_refuses_tile_off_the_stride():
    """``--tile 50`` ended in a torch RuntimeError traceback after the export began."""
    result = run_script("output_phases", "--tile", "50")
    assert_one_line_error(result, "--tile", "multiple of 32")


# --- cpu_speed_bars.py ---------------------------------------------------------------------

def _figure(line: str, pattern: str) -> float:
    match = re.search(pattern, line)
    assert match, (pattern, line)
    return float(match.group(1))


def test_cpu_speed_bars_prints_both_floors_and_the_throughput_row(qat_bundle):
    """One small run: every row is there, and each printed ratio is the printed time over the
    printed floor (to the printed rounding), for single calls and for tiles under the
    throughput hint."""
    result = run_script("cpu_speed_bars", "--bundle", qat_bundle, "--rounds", "2", "--calls", "2",
                        "--tiles", "2", "--floor-seconds", "0.05", "--profiled-calls", "1",
                        "--no-eager", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]

    def row(title: str) -> str:  # the one table row whose first cell starts with title
        found = [line for line in lines if line[2:].startswith(title)]
        assert len(found) == 1, (title, lines)
        return found[0]

    call = _figure(row("bundle, median call"), r"\| ([\d.]+) ms \(")
    floor = _figure(row("int8 floor: fastest node"), r"\| ([\d.]+) ms \|")
    layer_floor = _figure(row("int8 floor by the network's fastest int8 layer"),
                          r"\| ([\d.]+) ms \|")
    streams = row("throughput hint")
    tile = _figure(streams, r"\| ([\d.]+) ms \(")
    for ratio, time_ms, floor_ms in [
            (_figure(row("bundle / floor, whole run"), r"\*\*([\d.]+)x\*\*"), call, floor),
            (_figure(row("bundle / that floor"), r"\*\*([\d.]+)x\*\*"), call, layer_floor),
            (_figure(streams, r"\*\*([\d.]+)x\*\* the floor model"), tile, floor),
            (_figure(streams, r"\*\*([\d.]+)x\*\* the fastest"), tile, layer_floor)]:
        # times and floors print to 0.01 ms (each off by up to 0.005), ratios to 0.001: the
        # ratio of the printed figures is good to a tenth of the bound checked, 0.05 / floor
        # + 0.05 * time / floor^2 (a 64 x 64 tile's floor: 1.1 ms on an AVX-512 EPYC, 0.15 ms
        # on an AMX Xeon, where printing to 0.1 ms once broke this first-order bound)
        assert ratio == pytest.approx(time_ms / floor_ms,
                                      abs=0.002 + 0.05 / floor_ms + 0.05 * time_ms / floor_ms ** 2)
    assert 0 < floor < call * 10 and 0 < tile


def test_cpu_speed_bars_refuses_a_folder_that_is_no_bundle(tmp_path):
    result = run_script("cpu_speed_bars", "--bundle", tmp_path, "--no-eager")
    assert_one_line_error(result, str(tmp_path), "no manifest.json")

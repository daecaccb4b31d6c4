"""``python -m atbsn_edge.parity``: numbers, thresholds, exit codes, and no PyTorch needed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from atbsn_edge.export.__main__ import main as export  # noqa: E402
from atbsn_edge.parity import main as parity  # noqa: E402
from conftest import textured_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bundle(make_checkpoint, tmp_path):
    out = tmp_path / "bundle"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--reference-crops", "3", "--out", str(out)]) == 0
    return out


def test_fp32_bundle_passes_with_float_rounding_errors(bundle, tmp_path, capsys):
    assert parity([str(bundle), "--json", str(tmp_path / "p.json"),
                   "--heatmaps", str(tmp_path / "hm")]) == 0
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["passed"] and report["precision"] == "fp32" and len(report["results"]) == 3
    assert max(r["rel_l2"] for r in report["results"]) < 1e-5
    assert len(list((tmp_path / "hm").glob("*.png"))) == 3
    assert "| pass |" in capsys.readouterr().out


def rewrite_reference(bundle: Path, **arrays) -> None:
    """Replace reference arrays and re-hash them in the manifest, as an exporter that wrote
    them wrong would have (a hash mismatch is refused before any comparison)."""
    from atbsn_edge.hashing import file_sha256

    data = {**dict(np.load(bundle / "reference.npz")), **arrays}
    np.savez_compressed(bundle / "reference.npz", **data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["reference"]["sha256"] = file_sha256(bundle / "reference.npz")
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_wrong_reference_outputs_fail(bundle, capsys):
    outputs = np.load(bundle / "reference.npz")["outputs"]
    rewrite_reference(bundle, outputs=outputs + 1.0)  # what a wrong graph would look like
    assert parity([str(bundle)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_damaged_reference_is_refused_in_one_line(bundle, capsys):
    data = (bundle / "reference.npz").read_bytes()
    (bundle / "reference.npz").write_bytes(data[: len(data) // 2])
    assert parity([str(bundle)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reference.npz" in err[0] and "SHA-256" in err[0]
    (bundle / "reference.npz").unlink()
    assert parity([str(bundle)]) == 2
    assert "has no reference.npz" in capsys.readouterr().err


def test_artifact_not_matching_manifest_is_refused(bundle, capsys):
    artifact = bundle / "model-fp32.onnx"
    artifact.write_bytes(artifact.read_bytes()[:-10])
    assert parity([str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "does not match the manifest" in err and len(err.strip().splitlines()) == 1


def test_given_images_with_clean_references(bundle, tmp_path):
    clean = textured_image(90, 130, seed=3)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 10, clean.shape), 0, 255)
    cv2.imwrite(str(tmp_path / "n.png"), noisy.astype(np.uint8)[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "c.png"), clean.astype(np.uint8)[:, :, ::-1])
    assert parity([str(bundle), "--images", str(tmp_path / "n.png"), "--clean",
                   str(tmp_path / "c.png"), "--json", str(tmp_path / "p.json")]) == 0
    result = json.loads((tmp_path / "p.json").read_text())["results"][0]
    assert abs(result["psnr_drop"]) < 1e-3  # fp32 costs no quality


def test_pytorch_outputs_are_kept_across_targets(bundle, make_checkpoint, tmp_path, monkeypatch):
    """benchmark's memo: a second target of the same checkpoint and tiling reuses PyTorch's
    outputs (PyTorch is not opened again), and what it reuses is PyTorch's output, not an
    artifact's; a bundle of another tile shape computes its own."""
    from atbsn_edge import pipeline
    from atbsn_edge.parity import check_parity

    assert export(["--target", "onnx-fp16", "--from-bundle", str(bundle)]) == 0
    noisy = np.clip(textured_image(90, 130, seed=4)
                    + np.random.default_rng(1).normal(0, 10, (90, 130, 3)), 0, 255)
    cv2.imwrite(str(tmp_path / "n.png"), noisy.astype(np.uint8)[:, :, ::-1])
    images = [str(tmp_path / "n.png")]
    memo: dict = {}
    fp32 = check_parity(bundle, target="onnx-fp32", images=images, torch_outputs=memo)
    assert len(memo) == 1
    opened = []
    real_open_tiled = pipeline.open_tiled
    monkeypatch.setattr(pipeline, "open_tiled",
                        lambda *a, **k: opened.append(k) or real_open_tiled(*a, **k))
    fp16 = check_parity(bundle, target="onnx-fp16", images=images, torch_outputs=memo)
    assert not opened and len(memo) == 1
    fresh = check_parity(bundle, target="onnx-fp16", images=images)  # no memo: PyTorch again
    assert len(opened) == 1
    _, fp16_out, fp16_ref, _ = fp16.pairs[0]
    assert np.array_equal(fp16_ref, fresh.pairs[0][2])   # the reused reference is PyTorch's
    assert np.array_equal(fp32.pairs[0][2], fp16_ref)
    assert not np.array_equal(fp16_ref, fp16_out) and not np.array_equal(fp16_ref, fp32.pairs[0][1])
    assert fp16.results[0].rel_l2 == fresh.results[0].rel_l2 > 0

    other = tmp_path / "tile96"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "96", "--reference-crops", "1", "--out", str(other)]) == 0
    tile96 = check_parity(other, images=images, torch_outputs=memo)
    assert len(opened) == 2 and len(memo) == 2
    assert tile96.results[0].rel_l2 < 1e-5


def test_parity_runs_without_pytorch(bundle):
    blocker = ("import importlib.abc, sys\n"
               "class B(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'torch': raise ImportError('no torch here')\n"
               "sys.meta_path.insert(0, B())\n"
               "from atbsn_edge.parity import main\n"
               f"sys.exit(main([{str(bundle)!r}]))\n")
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| pass |" in result.stdout


def test_int8_quality_budget_is_judged_on_the_mean_drop():
    from atbsn_edge.verification import THRESHOLDS, Comparison, mean_psnr_drop, set_failures

    def result(name, drop):
        return Comparison(name, 1.0, 0.1, 1e-3, 50.0, psnr_clean_torch=38.0,
                          psnr_clean_artifact=38.0 - drop)

    limits = THRESHOLDS["int8"]
    within = [result("a", 0.05), result("b", 0.2)]      # one image over, the mean within
    assert mean_psnr_drop(within) == pytest.approx(0.125) and set_failures(within, limits) == []
    assert all(not r.failures(limits) for r in within)
    over = [result("a", 0.1), result("b", 0.3)]
    assert "0.200 dB > 0.15 dB" in set_failures(over, limits)[0]
    assert mean_psnr_drop([Comparison("x", 0, 0, 0, 99.0)]) is None


def test_bad_parity_arguments_are_one_line_before_the_work(bundle, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    small = tmp_path / "s.png"
    big = tmp_path / "b.png"
    cv2.imwrite(str(small), textured_image(70, 90).astype(np.uint8))
    cv2.imwrite(str(big), textured_image(90, 130).astype(np.uint8))
    cases = [
        (["--heatmaps", str(afile / "sub")], "is a file, not a folder"),
        (["--json", str(afile / "p.json")], "is a file, not a folder"),
        (["--images", str(small), str(big), "--clean", str(small)],
         "2 noisy image(s) (--images) but 1 clean reference(s) (--clean)"),
        (["--images", str(small), "--clean", str(big)], "its clean reference"),
        (["--clean", str(small)], "--clean needs --images"),
    ]
    for extra, message in cases:
        assert parity([str(bundle), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert afile.read_text() == "mine"


def test_a_float_artifact_is_held_to_the_precision_it_ran_in():
    from atbsn_edge.verification import THRESHOLDS, thresholds_key

    assert thresholds_key("fp16", "bf16") == "bf16"   # OpenVINO's openvino-fp16 on AVX512-BF16/AMX
    assert thresholds_key("fp32", "bf16") == "bf16"   # --inference-precision bf16
    assert thresholds_key("fp32", "f16") == "fp16"
    assert thresholds_key("fp16", "f16") == "fp16"
    assert thresholds_key("fp16", "f32") == "fp16"    # computed finer than stored: its own bar
    assert thresholds_key("fp32", None) == "fp32"     # a backend that does not say
    assert thresholds_key("int8", "bf16") == "int8"   # int8's bar already covers bf16 float layers
    # bf16 rounds 8x coarser than fp16 (8 significant bits against 11), within int8's bar
    assert THRESHOLDS["fp16"].rel_l2 < THRESHOLDS["bf16"].rel_l2 < THRESHOLDS["int8"].rel_l2


def test_openvino_parity_reports_the_thresholds_of_what_ran(make_checkpoint, tmp_path, capsys):
    ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")
    native_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    out = tmp_path / "ov"
    assert export(["--target", "openvino-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--reference-crops", "2", "--out", str(out)]) == 0
    for hint, held_to in (("f32", "fp32"), ("bf16", "bf16")):
        report_file = tmp_path / f"{hint}.json"
        assert parity([str(out), "--inference-precision", hint, "--json", str(report_file)]) == 0
        report = json.loads(report_file.read_text())
        assert (report["precision"], report["inference_precision"]) == ("fp32", hint)
        assert report["thresholds_of"] == held_to
        if hint == "bf16":
            assert report["thresholds"]["rel_l2"] == 2e-2
            if native_bf16:   # really computed in bf16: not float32's numbers
                assert max(r["rel_l2"] for r in report["results"]) > 1e-5
        assert f"precision fp32{', computed in bf16' if hint == 'bf16' else ''}: thresholds" \
            in capsys.readouterr().out


def _write_images(*paths: Path) -> dict[Path, bytes]:
    """Tiny noisy PNGs at ``paths`` (their folders created); their bytes, to check after."""
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        image = textured_image(64, 64, seed=10 + i)
        noisy = np.clip(image + np.random.default_rng(i).normal(0, 10, image.shape), 0, 255)
        cv2.imwrite(str(path), noisy.astype(np.uint8)[:, :, ::-1])
    return {p: p.read_bytes() for p in paths}


def test_a_heatmap_never_replaces_an_input_or_a_foreign_file(bundle, tmp_path, capsys):
    hm = tmp_path / "hm"
    # the heatmap of x.png is x.png.png: here the second input
    before = _write_images(hm / "x.png", hm / "x.png.png")
    (tmp_path / "hm5").mkdir()
    (tmp_path / "hm5" / "x.png.png").write_text("notes")      # not a heatmap of an earlier run
    (tmp_path / "hm4" / "x.png.png").mkdir(parents=True)      # a folder where a heatmap goes
    before[tmp_path / "hm5" / "x.png.png"] = b"notes"
    image = str(hm / "x.png")
    cases = [
        ([image, str(hm / "x.png.png"), "--heatmaps", str(hm)],
         "would replace an input of this run"),
        ([image, "--clean", str(hm / "x.png.png"), "--heatmaps", str(hm)],
         "would replace an input of this run"),
        ([image, "--heatmaps", str(tmp_path / "hm5")], "exists and is not a PNG"),
        ([image, "--heatmaps", str(tmp_path / "hm4")], "is a folder"),
        ([image, "--heatmaps", str(tmp_path / "hm6"),
          "--json", str(tmp_path / "hm6" / "x.png.png")],
         "would be the --json report"),
    ]
    for extra, message in cases:
        assert parity([str(bundle), "--images", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], (extra, err)
        assert "--heatmaps " + extra[extra.index("--heatmaps") + 1] in err[0]  # as given
        assert ".tmp" not in err[0]                                          # no temporary
    assert all(p.read_bytes() == data for p, data in before.items())
    assert sorted(p.name for p in hm.iterdir()) == ["x.png", "x.png.png"]
    assert not (tmp_path / "hm6").exists() and list((tmp_path / "hm4").iterdir()) == [
        tmp_path / "hm4" / "x.png.png"]


def test_same_named_images_get_their_own_rows_and_heatmaps(bundle, tmp_path, capsys):
    before = _write_images(tmp_path / "p1" / "a.png", tmp_path / "p2" / "a.png")
    report = tmp_path / "r.json"
    assert parity([str(bundle), "--images", str(tmp_path / "p1" / "a.png"),
                   str(tmp_path / "p2" / "a.png"), "--heatmaps", str(tmp_path / "hm2"),
                   "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| p1/a.png |" in out and "| p2/a.png |" in out
    names = [r["name"] for r in json.loads(report.read_text())["results"]]
    assert names == ["p1/a.png", "p2/a.png"]
    heatmaps = sorted((tmp_path / "hm2").iterdir())
    assert [p.name for p in heatmaps] == ["p1_a.png.png", "p2_a.png.png"]
    assert heatmaps[0].read_bytes() != heatmaps[1].read_bytes()   # one per input, none replaced
    assert all(p.read_bytes() == data for p, data in before.items())


def test_input_and_heatmap_names_are_unique():
    from atbsn_edge.parity import heatmap_paths, input_names

    assert input_names(["a.png", "b.png"]) == ["a.png", "b.png"]
    assert input_names(["/x/p1/a.png", "/x/p2/a.png", "/y/p1/a.png", "/x/b.png"]) == \
        ["x/p1/a.png", "p2/a.png", "y/p1/a.png", "b.png"]
    assert input_names(["/x/a.png", "/x/../x/a.png"]) == ["a.png", "a.png#2"]  # one file twice
    names = [p.name for p in heatmap_paths(Path("hm"), ["p1/a.png", "p1_a.png", "P1_A.png"])]
    assert names == ["p1_a.png.png", "p1_a.png-2.png", "P1_A.png-3.png"]


def test_the_report_and_the_heatmap_folder_must_differ(bundle, tmp_path, capsys):
    cases = [(tmp_path / "b2.json", tmp_path / "b2.json", "are the same path"),
             (tmp_path / "b3.json", tmp_path / "b3.json" / "hm",
              "the heatmap folder would be inside")]
    present = sorted(tmp_path.iterdir())
    for report, heatmaps, message in cases:
        assert parity([str(bundle), "--json", str(report), "--heatmaps", str(heatmaps)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and str(report) in err[0], err
        assert "Traceback" not in err[0] and ".tmp" not in err[0]
    assert sorted(tmp_path.iterdir()) == present   # nothing created


# ------------------------------------------- non-finite reference data, gray against colour

@pytest.mark.parametrize("array,value", [("outputs", np.nan), ("outputs", np.inf),
                                         ("inputs", np.nan)])
def test_non_finite_reference_data_is_refused_not_passed(bundle, tmp_path, capsys, array, value):
    """PyTorch outputs (or inputs) of NaN, re-hashed as an exporter that wrote them wrong
    would: every metric would be NaN, which once printed "| nan | ... | pass |" and exit 0."""
    data = np.load(bundle / "reference.npz")[array].copy()
    data.flat[::7] = value
    rewrite_reference(bundle, **{array: data})
    report = tmp_path / "p.json"
    assert parity([str(bundle), "--json", str(report)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    what = "PyTorch outputs" if array == "outputs" else "inputs"
    assert f"reference.npz: its {what} hold" in lines[0] and "NaN or infinite" in lines[0]
    assert "re-export the bundle" in lines[0] and "| pass |" not in out
    data = json.loads(report.read_text())
    assert data["passed"] is False and "NaN or infinite" in data["error"]


def test_a_nan_metric_never_passes():
    """compare() on a PyTorch output holding NaN or infinity (as --images gives from a
    damaged checkpoint): a failure that says so, never a pass by NaN comparing False."""
    from atbsn_edge.verification import THRESHOLDS, Comparison, compare, set_failures

    for field in ("rel_l2", "max_abs"):                              # however a metric got NaN
        numbers = {"max_abs": 0.0, "mean_abs": 0.0, "rel_l2": 0.0, "psnr_vs_torch": 99.0,
                   field: float("nan")}
        assert Comparison("y", **numbers).failures(THRESHOLDS["fp32"]), field
    assert Comparison("z", 0.0, 0.0, 0.0, 99.0).failures(THRESHOLDS["fp32"]) == []
    artifact = np.full((3, 8, 8), 100.0, np.float32)
    clean = np.full((3, 8, 8), 101.0, np.float32)
    for bad in (np.nan, np.inf):
        torch_out = artifact.copy()
        torch_out[0, 0, 0] = bad
        result = compare("x", artifact, torch_out, clean)
        for limits in THRESHOLDS.values():
            failures = result.failures(limits)
            assert failures and "PyTorch reference output" in failures[0], failures
        assert result.reference_non_finite == 1 and result.non_finite == 0
        assert set_failures([result], THRESHOLDS["int8"])            # the mean drop is NaN
        assert result.as_dict()["psnr_vs_torch"] is None             # still JSON


def _gray_and_colour(tmp_path: Path) -> tuple[Path, Path]:
    colour = textured_image(64, 64, seed=5)
    cv2.imwrite(str(tmp_path / "rgb.png"), colour.astype(np.uint8)[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "gray.png"), colour.mean(axis=2).astype(np.uint8))
    return tmp_path / "rgb.png", tmp_path / "gray.png"


def test_gray_clean_reference_of_a_colour_image_is_refused(bundle, tmp_path, capsys,
                                                           monkeypatch):
    """As evaluate refuses it: PSNR of a colour output against a gray reference (once scored
    23.6 dB and exit 0) means nothing; both ways round, from the header and from the pixels."""
    from atbsn_edge import evaluate

    rgb, gray = _gray_and_colour(tmp_path)
    report = tmp_path / "p.json"
    for noisy, clean in ((rgb, gray), (gray, rgb)):
        assert parity([str(bundle), "--images", str(noisy), "--clean", str(clean),
                       "--json", str(report)]) == 2
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"{noisy} is " in lines[0] and f"its clean reference {clean} is" in lines[0]
        assert "grayscale" in lines[0] and "colour" in lines[0] and "dB" not in out
        assert json.loads(report.read_text())["passed"] is False
    # where the header does not tell, the decoded images are checked (the same function)
    monkeypatch.setattr(evaluate, "check_pair_headers", lambda *a, **k: None)
    assert parity([str(bundle), "--images", str(rgb), "--clean", str(gray)]) == 2
    assert "PSNR of gray against colour is meaningless" in capsys.readouterr().err


def test_benchmark_refuses_gray_against_colour_before_any_export(tmp_path, capsys):
    from atbsn_edge.benchmark import main as benchmark

    rgb, gray = _gray_and_colour(tmp_path)
    bundles = tmp_path / "bundles"
    assert benchmark(["--targets", "onnx-fp32", "--tile", "64", "--bundles", str(bundles),
                      "--images", str(rgb), "--clean", str(gray)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert f"{rgb} is colour (RGB) but its clean reference {gray} is grayscale" in err[0]
    assert not bundles.exists()                                  # refused before the work
    assert benchmark(["--targets", "onnx-fp32", "--tile", "64", "--bundles", str(bundles),
                      "--images", str(rgb), str(gray), "--clean", str(rgb)]) == 2
    assert "2 noisy image(s) (--images) but 1 clean reference(s) (--clean)" in capsys.readouterr().err
    assert not bundles.exists()


def test_the_heatmap_of_outputs_that_agree_exactly_is_black():
    """0 / 0 made the heatmap NaN, cast to uint8 (a numpy warning and an arbitrary picture)."""
    import warnings

    from atbsn_edge.verification import error_heatmap

    out = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = error_heatmap(out, out.copy())
    import cv2

    black = cv2.applyColorMap(np.zeros((8, 8), np.uint8), cv2.COLORMAP_INFERNO)
    np.testing.assert_array_equal(same, black)
    worse = out.copy()
    worse[:, 2, 3] += 1.0
    hot = error_heatmap(worse, out)
    assert (hot[2, 3] != black[0, 0]).any() and (hot[0, 0] == black[0, 0]).all()

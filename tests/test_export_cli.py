"""``python -m atbsn_edge.export`` writes a bundle; ``denoise --artifact`` runs it with no other flag."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from atbsn_edge.bundle import Bundle  # noqa: E402
from atbsn_edge.denoise import main as denoise  # noqa: E402
from atbsn_edge.export.__main__ import main as export  # noqa: E402
from conftest import textured_image  # noqa: E402


@pytest.fixture
def bundle(make_checkpoint, tmp_path):
    out = tmp_path / "bundle"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--batch", "2", "--out", str(out)]) == 0
    return out


def test_bundle_contents(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == 2 and manifest["default_target"] == "onnx-fp32"
    entry = manifest["artifacts"]["onnx-fp32"]
    assert (bundle / entry["entry"]).is_file() and set(entry["files"]) == {"model-fp32.onnx"}
    assert entry["metadata"]["tile"] == "64x64" and entry["metadata"]["batch"] == "2"
    assert manifest["reference"]["sha256"] and len(manifest["reference"]["crops"]) == 2
    assert not list(bundle.parent.glob(".bundle*"))  # no temporary left behind


def test_existing_bundle_needs_overwrite(bundle, make_checkpoint, capsys):
    before = (bundle / "manifest.json").read_bytes()
    args = ["--target", "onnx-fp32", "--checkpoint", str(make_checkpoint("student_a")),
            "--tile", "64", "--out", str(bundle)]
    assert export(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (bundle / "manifest.json").read_bytes() == before
    assert export(args + ["--overwrite"]) == 0
    metadata = Bundle.open(bundle).artifact().metadata
    assert metadata["batch"] == "1" and metadata["upsampling"] == "fused"
    assert export(args + ["--overwrite", "--no-fuse-upsampling"]) == 0
    assert Bundle.open(bundle).artifact().metadata["upsampling"] == "explicit"


@pytest.mark.parametrize("argv,message", [
    (["--target", "onnx-fp23"], "did you mean 'onnx-fp32'"),
    (["--target", "onnx-fp32", "--tile", "100"], "multiple of 32"),
    ([], "--list-targets"),
    (["--target", "onnx-fp32", "--dla-core", "0"], "--dla-core is for the TensorRT engine"),
    (["--target", "openvino-int8", "--workspace-mb", "10", "--timing-cache", "c"],
     "--workspace-mb, --timing-cache are for the TensorRT engine"),
    (["--target", "onnx-fp16", "--calib-method", "entropy"], "--calib-method is for int8"),
    (["--target", "coreml-int8", "--int8-quantizer", "qdq"],
     "--int8-quantizer is for OpenVINO's int8; --target coreml-int8 would ignore it"),
    (["--target", "openvino-fp32", "--int8-keep-float", "x"], "--target openvino-fp32 would "
     "ignore it"),
])
def test_bad_export_arguments(make_checkpoint, tmp_path, capsys, argv, message):
    try:
        code = export(argv + ["--checkpoint", str(make_checkpoint("student_a")),
                              "--out", str(tmp_path / "b")])
    except SystemExit as exc:  # refused by argparse (a number's type)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_denoise_with_artifact_matches_checkpoint(bundle, make_checkpoint, tmp_path):
    image = tmp_path / "in" / "photo.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), textured_image(100, 150).astype(np.uint8))
    # a 64-pixel tile leaves room for a 32-pixel overlap only (the default for A is 64)
    assert denoise([str(image), "-o", str(tmp_path / "a"), "--artifact", str(bundle),
                    "--overlap", "32"]) == 0
    assert denoise([str(image), "-o", str(tmp_path / "c"), "--tile", "64", "--batch", "2",
                    "--overlap", "32", "--checkpoint", str(make_checkpoint("student_a"))]) == 0
    a = cv2.imread(str(tmp_path / "a" / "photo.png")).astype(int)
    c = cv2.imread(str(tmp_path / "c" / "photo.png")).astype(int)
    assert np.abs(a - c).max() <= 1  # fp32 graph vs eager, then 8-bit rounding


def test_a_model_strength_travels_into_the_bundle(tmp_path):
    from atbsn_edge.pipeline import open_artifact_tiled
    from conftest import write_checkpoint

    checkpoint = write_checkpoint(tmp_path, "student_a", strength=0.5)
    out = tmp_path / "bundle"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(checkpoint), "--tile", "64",
                   "--out", str(out)]) == 0
    assert Bundle.open(out).artifact().metadata["strength"] == "0.5"
    with open_artifact_tiled(out, overlap=32) as tiled:
        assert tiled.strength == 0.5
    with open_artifact_tiled(out, overlap=32, strength=1.0) as tiled:
        assert tiled.strength == 1.0


def test_artifact_rejects_checkpoint_flags(bundle, tmp_path, capsys):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), textured_image(40, 40).astype(np.uint8))
    assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(bundle),
                    "--hole", "3"]) == 2
    assert "fixed at export" in capsys.readouterr().err


def test_not_a_bundle(tmp_path, capsys):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), textured_image(40, 40).astype(np.uint8))
    (tmp_path / "empty").mkdir()
    assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(tmp_path / "empty")]) == 2
    assert "is not a bundle" in capsys.readouterr().err


def test_target_whose_library_is_missing_names_the_extra(make_checkpoint, tmp_path, capsys,
                                                         monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real(name, *a))
    code = export(["--target", "openvino-fp16", "--checkpoint", str(make_checkpoint("student_a")),
                   "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "cannot be built here: needs openvino: pip install 'atbsn-edge[openvino]'" in err[0]
    assert not (tmp_path / "b").exists()

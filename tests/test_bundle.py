"""The bundle format: hashes over every file, strict metadata, runtimes chosen by the manifest,
targets added from a bundle without PyTorch, and TensorRT bundles finished on the device."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from atbsn_edge.bundle import (PENDING, READY, ArtifactEntry, ArtifactMetadata, Bundle,  # noqa: E402
                               artifact_files, content_hashes)
from atbsn_edge.bundle.metadata import read_sidecar, sidecar_path, write_sidecar  # noqa: E402
from atbsn_edge.denoise import main as denoise  # noqa: E402
from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.export.__main__ import EXIT_ENGINE_PENDING  # noqa: E402
from atbsn_edge.export.__main__ import main as export  # noqa: E402
from atbsn_edge.parity import main as parity  # noqa: E402
from conftest import textured_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from atbsn_edge.models.checkpoint import save_checkpoint
    from atbsn_edge.models.registry import get_architecture
    from atbsn_edge.training import init_weights

    torch.manual_seed(0)
    network = get_architecture("student_a").build()
    init_weights(network)
    path = tmp_path_factory.mktemp("ckpt") / "student_a.pt"
    save_checkpoint(path, network, {})
    return path


def make_bundle(checkpoint: Path, out: Path, target: str, *extra: str) -> Path:
    assert export(["--target", target, "--checkpoint", str(checkpoint), "--tile", "64",
                   "--out", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def onnx_bundle(checkpoint, tmp_path_factory):
    return make_bundle(checkpoint, tmp_path_factory.mktemp("b") / "onnx", "onnx-fp32")


@pytest.fixture(scope="module")
def openvino_bundle(checkpoint, tmp_path_factory):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    return make_bundle(checkpoint, tmp_path_factory.mktemp("b") / "ov", "openvino-fp32")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), textured_image(80, 100).astype(np.uint8))
    return path


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / bundle.name))


def flip_bytes(path: Path, offset_from_end: int = 64) -> None:
    """Change bytes in place, size unchanged: what a damaged copy looks like."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) - offset_from_end, len(data) - offset_from_end + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def strict_json(path: Path) -> dict:
    """Parse JSON the way other languages do: NaN and Infinity are not JSON."""
    def refuse(token):
        raise ValueError(f"{token} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("bundle_name,damaged", [("onnx_bundle", "model-fp32.onnx"),
                                                 ("openvino_bundle", "model-fp32.bin")])
def test_damaged_weights_are_refused_everywhere(request, bundle_name, damaged, tmp_path, image,
                                                capsys):
    bundle = copy_of(request.getfixturevalue(bundle_name), tmp_path)
    flip_bytes(bundle / damaged)
    assert denoise([str(image), "-o", str(tmp_path / "out"), "--artifact", str(bundle)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and damaged in err[0] and "SHA-256" in err[0]
    assert not (tmp_path / "out").exists()
    report = tmp_path / "p.json"
    assert parity([str(bundle), "--json", str(report)]) != 0
    data = strict_json(report)
    assert data["passed"] is False and damaged in data["error"]


def test_nan_output_fails_parity_with_valid_json(onnx_bundle, tmp_path, capsys):
    """An artifact that computes NaN (weights NaN, manifest re-hashed as a buggy exporter would)
    fails: NaN metrics never pass, and the report stays JSON."""
    import onnx
    from onnx import numpy_helper

    bundle = copy_of(onnx_bundle, tmp_path)
    model = onnx.load(str(bundle / "model-fp32.onnx"))
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(weight).copy()
    values.flat[0] = np.nan
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    onnx.save(model, str(bundle / "model-fp32.onnx"))
    manifest = Bundle.open(bundle)
    manifest.add_artifact(manifest.artifact("onnx-fp32"))
    manifest.save()
    assert parity([str(bundle), "--json", str(tmp_path / "p.json")]) == 1
    data = strict_json(tmp_path / "p.json")
    assert data["passed"] is False
    assert all(r["non_finite"] > 0 and r["rel_l2"] is None for r in data["results"])
    assert "NaN or infinite" in capsys.readouterr().out


def test_foreign_onnx_without_metadata_is_refused(onnx_bundle, tmp_path, image, capsys):
    import onnx

    model = onnx.load(str(onnx_bundle / "model-fp32.onnx"))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(foreign)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no atbsn-edge metadata" in err[0]


def test_metadata_missing_one_key_names_it():
    raw = {"model": "student_c", "hole_size": "", "stride": "32", "default_overlap": "128",
           "precision": "fp16", "tile": "512x512", "batch": "1", "value_range": "0,255"}
    meta = ArtifactMetadata.parse(raw, "x.onnx")
    assert meta.tile == (512, 512) and meta.hole_size is None and meta.batch == 1
    assert ArtifactMetadata.parse({**raw, "tile": "dynamic", "batch": "dynamic"}, "x").tile is None
    with pytest.raises(AtbsnError, match="lacks stride"):
        ArtifactMetadata.parse({k: v for k, v in raw.items() if k != "stride"}, "x.onnx")
    with pytest.raises(AtbsnError, match="malformed"):
        ArtifactMetadata.parse({**raw, "tile": "big"}, "x.onnx")


def test_tile_and_batch_flags_with_a_static_artifact_are_refused(onnx_bundle, tmp_path, image,
                                                                 capsys):
    for flags, message in ((["--tile", "128"], "tile is fixed at 64x64"),
                           (["--batch", "4"], "batch is fixed at 1")):
        assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(onnx_bundle),
                        *flags]) == 2
        assert message in capsys.readouterr().err
    # the artifact's own values are accepted when repeated
    assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(onnx_bundle),
                    "--tile", "64", "--batch", "1", "--overlap", "32"]) == 0


def test_tile_and_batch_flags_apply_to_a_dynamic_artifact(checkpoint, tmp_path, image):
    from atbsn_edge.pipeline import open_artifact_tiled

    bundle = make_bundle(checkpoint, tmp_path / "dyn", "onnx-fp32", "--dynamic")
    with open_artifact_tiled(bundle, tile=96, batch=3, overlap=32) as tiled:
        assert (tiled.spec.tile_h, tiled.spec.batch) == (96, 3)
    assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(bundle),
                    "--tile", "96", "--batch", "3"]) == 0


_BLOCKER = """
import importlib.abc, json, sys
blocked = json.loads(sys.argv[1])
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + '.') for b in blocked):
            raise ImportError(f'{name} is blocked for this test')
sys.meta_path.insert(0, Block())
import importlib
main = importlib.import_module(sys.argv[2]).main
sys.exit(main(json.loads(sys.argv[3])))
"""


def run_blocked(blocked: list[str], module: str, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", _BLOCKER, json.dumps(blocked), module,
                           json.dumps(argv)], capture_output=True, text=True, env=env, timeout=300)


def test_device_side_runs_without_torch_or_exporters(openvino_bundle, tmp_path, image):
    """What a Jetson without PyTorch runs: denoise --artifact and parity, with torch and every
    exporter module made unimportable."""
    blocked = ["torch", "atbsn_edge.export", "atbsn_edge.models"]
    result = run_blocked(blocked, "atbsn_edge.parity", [str(openvino_bundle)])
    assert result.returncode == 0, result.stderr
    assert "| pass |" in result.stdout
    result = run_blocked(blocked, "atbsn_edge.denoise",
                         [str(image), "-o", str(tmp_path / "o"), "--artifact",
                          str(openvino_bundle), "--overlap", "32"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "photo.png").is_file()


def test_onnx_bundle_runs_with_onnxruntime_alone(onnx_bundle, tmp_path, image):
    """A device with ONNX Runtime and nothing else: no torch, no ``onnx`` package (the
    metadata is read through ONNX Runtime), no OpenVINO (profile reports no floor, says why)."""
    blocked = ["torch", "onnx", "openvino", "atbsn_edge.export", "atbsn_edge.models"]
    result = run_blocked(blocked, "atbsn_edge.parity", [str(onnx_bundle)])
    assert result.returncode == 0, result.stderr
    assert "| pass |" in result.stdout
    result = run_blocked(blocked, "atbsn_edge.denoise",
                         [str(image), "-o", str(tmp_path / "o"), "--artifact", str(onnx_bundle),
                          "--overlap", "32"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "photo.png").is_file()
    profile_args = [str(onnx_bundle), "--iters", "3", "--warmup", "0", "--no-frames", "--no-power"]
    result = run_blocked(blocked, "atbsn_edge.profile", profile_args)
    assert result.returncode == 0, result.stderr
    assert "OpenVINO, which is not installed" in result.stdout + result.stderr
    result = run_blocked(blocked, "atbsn_edge.profile", [*profile_args, "--floor-device", "cpu"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --floor-device cpu: the CPU floor is measured with OpenVINO, which is not "
        "installed (pip install 'atbsn-edge[openvino]'); or give --floor-device none"]


def test_target_added_from_a_bundle_without_torch(onnx_bundle, tmp_path):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    bundle = copy_of(onnx_bundle, tmp_path)
    result = run_blocked(["torch", "atbsn_edge.models"], "atbsn_edge.export.__main__",
                         ["--target", "openvino-fp32", "--from-bundle", str(bundle)])
    assert result.returncode == 0, result.stderr
    opened = Bundle.open(bundle)
    assert set(opened.artifacts) == {"onnx-fp32", "openvino-fp32"}
    assert opened.default_target == "openvino-fp32"
    assert parity([str(bundle)]) == 0                       # the new default
    assert parity([str(bundle), "--target", "onnx-fp32"]) == 0


def test_from_bundle_refuses_network_flags(onnx_bundle, capsys):
    assert export(["--target", "onnx-fp16", "--from-bundle", str(onnx_bundle), "--tile", "128"]) == 2
    assert "--tile describe the network" in capsys.readouterr().err


def one_error_line(capsys) -> str:
    """The one line a refused command printed (no traceback, nothing else)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def edit_manifest(bundle: Path, dotted: str, value) -> None:
    """Set one field of ``bundle``'s manifest (dotted path) to ``value``, as a hand edit would."""
    document = json.loads((bundle / "manifest.json").read_text())
    *parents, last = dotted.split(".")
    node = document
    for key in parents:
        node = node[key]
    node[last] = value
    (bundle / "manifest.json").write_text(json.dumps(document, indent=2))


@pytest.mark.parametrize("dotted,value,said", [
    ("reference", None, "field 'reference' is null, expected an object"),
    ("source", None, "field 'source' is null, expected an object"),
    ("default_target", ["onnx-fp32"],
     """field 'default_target' is the list ["onnx-fp32"], expected a target name or null"""),
    ("network", None, "field 'network' is null, expected an object"),
    ("network", "x", "field 'network' is the string 'x', expected an object"),
    ("int8_keep_float_default", None, "field 'int8_keep_float_default' is null"),
    ("int8_keep_float_default", ["(unclosed"], "field 'int8_keep_float_default' is the list "
                                               '["(unclosed"], expected a list of regular'),
    ("reference.sha256", 5, "field 'reference.sha256' is the number 5, expected a string"),
    ("source.part", 3, "field 'source.part' is the number 3"),
    ("artifacts", [], "field 'artifacts' is the list [], expected an object"),
    ("artifacts.onnx-fp32.status", None, "field 'artifacts.onnx-fp32.status' is null"),
    ("artifacts.onnx-fp32.files", None, "field 'artifacts.onnx-fp32.files' is null"),
    ("artifacts.onnx-fp32.details", {"device_command": 5},
     "field 'artifacts.onnx-fp32.details.device_command' is the number 5"),
])
def test_malformed_manifest_fields_are_one_line_everywhere(onnx_bundle, tmp_path, image, capsys,
                                                           dotted, value, said):
    """A manifest that parses as JSON but has a field of the wrong type: every command that
    opens the bundle refuses it in one line naming the field, and writes nothing."""
    bundle = copy_of(onnx_bundle, tmp_path)
    edit_manifest(bundle, dotted, value)
    before = sorted((p.name, p.read_bytes()) for p in bundle.iterdir())
    expected = f"error: {bundle}: manifest.json is malformed ({said}"
    runs = [(parity, [str(bundle)]),
            (parity, [str(bundle), "--images", str(image)]),
            (denoise, [str(image), "-o", str(tmp_path / "o"), "--artifact", str(bundle)]),
            (export, ["--from-bundle", str(bundle), "--target", "onnx-fp16",
                      "--out", str(tmp_path / "x")]),
            (export, ["--from-bundle", str(bundle), "--target", "onnx-fp16"])]
    for main, argv in runs:
        assert main(argv) == 2, argv
        line = one_error_line(capsys)
        assert line.startswith(expected) and line.endswith("; re-export the bundle"), line
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()
    assert sorted((p.name, p.read_bytes()) for p in bundle.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([bundle.name, image.name])


@pytest.mark.parametrize("damage,said", [
    (lambda b: (b / "reference.npz").unlink(),
     "reference.npz (the reference data) is missing; re-export the bundle or copy it again"),
    (lambda b: flip_bytes(b / "reference.npz"), "reference.npz does not match the manifest's"),
    (lambda b: (b / "model-fp32.onnx").unlink(),
     "model-fp32.onnx of the onnx-fp32 artifact is missing; re-export the bundle or copy it"),
    (lambda b: flip_bytes(b / "model-fp32.onnx"), "model-fp32.onnx does not match the manifest"),
])
@pytest.mark.parametrize("out", ["--out", "in place"])
def test_from_bundle_verifies_every_file_before_any_work(onnx_bundle, tmp_path, capsys, damage,
                                                         said, out):
    """export --from-bundle checks every file the manifest lists (as parity does) and refuses a
    damaged bundle naming it (never the staged copy), writing nothing from it."""
    bundle = copy_of(onnx_bundle, tmp_path)
    damage(bundle)
    before = sorted((p.name, p.read_bytes()) for p in bundle.iterdir())
    extra = ["--out", str(tmp_path / "be")] if out == "--out" else []
    assert export(["--from-bundle", str(bundle), "--target", "onnx-fp16", *extra]) == 2
    line = one_error_line(capsys)
    assert str(bundle) in line and said in line and ".tmp" not in line, line
    assert not (tmp_path / "be").exists()
    assert sorted((p.name, p.read_bytes()) for p in bundle.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == [bundle.name]  # no temporary left


def test_from_bundle_errors_name_the_bundle_not_its_staged_copy(onnx_bundle, tmp_path, capsys,
                                                                monkeypatch):
    """A converter's error about a file of the staged copy names the user's bundle."""
    from atbsn_edge.export.job import ConversionJob

    def convert(job, target):
        raise AtbsnError(f"{job.folder / 'model-fp32.onnx'}: cannot be converted to {target}")

    monkeypatch.setattr(ConversionJob, "convert", convert)
    bundle = copy_of(onnx_bundle, tmp_path)
    assert export(["--from-bundle", str(bundle), "--target", "onnx-fp16",
                   "--out", str(tmp_path / "x")]) == 2
    assert one_error_line(capsys) == (f"error: {bundle / 'model-fp32.onnx'}: cannot be converted "
                                      "to onnx-fp16")
    assert sorted(p.name for p in tmp_path.iterdir()) == [bundle.name]


def test_read_only_bundle_added_to_in_place_is_named_as_given(onnx_bundle, tmp_path, capsys,
                                                              monkeypatch):
    """No --out: the message says the bundle given is added to in place, never "--out"."""
    bundle = copy_of(onnx_bundle, tmp_path)
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k:
                        False if Path(path).resolve() == bundle.resolve() and mode & os.W_OK
                        else real(path, mode, *a, **k))
    before = sorted((p.name, p.read_bytes()) for p in bundle.iterdir())
    assert export(["--from-bundle", str(bundle), "--target", "onnx-fp16"]) == 2
    line = one_error_line(capsys)
    assert line == (f"error: --from-bundle {bundle} (added to in place, as no --out was given): "
                    f"no permission to write in {bundle}; make it writable, or give --out "
                    "NEW_FOLDER to write the bundle with the new target there")
    assert sorted((p.name, p.read_bytes()) for p in bundle.iterdir()) == before
    # with --out, the copy goes there: the read-only source is fine
    assert export(["--from-bundle", str(bundle), "--target", "onnx-fp16",
                   "--out", str(tmp_path / "copy")]) == 0
    assert set(Bundle.open(tmp_path / "copy").artifacts) == {"onnx-fp32", "onnx-fp16"}


def test_trt_export_without_tensorrt_writes_a_pending_bundle(checkpoint, tmp_path, image, capsys,
                                                             monkeypatch):
    import importlib.util

    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # no trtexec
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the engine would really be built")
    out = tmp_path / "trt"
    code = export(["--target", "trt-fp16", "--checkpoint", str(checkpoint), "--tile", "64",
                   "--out", str(out)])
    captured = capsys.readouterr()
    assert code == EXIT_ENGINE_PENDING
    assert f"--target trt-fp16 --from-bundle {out}" in captured.out
    bundle = Bundle.open(out)
    assert bundle.artifacts["trt-fp16"].status == PENDING
    assert bundle.artifacts["onnx-fp16"].status == READY
    assert bundle.artifacts["trt-fp16"].details["source_onnx"] == "model-fp16.onnx"
    assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not built yet" in err and "--from-bundle" in err and "onnx-fp16" in err
    assert parity([str(out), "--target", "onnx-fp16"]) == 0   # the graph the engine comes from


def test_export_never_replaces_a_folder_it_did_not_write(checkpoint, tmp_path, capsys,
                                                         monkeypatch):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    args = ["--target", "onnx-fp32", "--checkpoint", str(checkpoint), "--tile", "64"]
    assert export(args + ["--out", str(mine), "--overwrite"]) == 2
    assert "is not an atbsn-edge bundle" in capsys.readouterr().err
    assert (mine / "holiday.jpg").read_bytes() == b"precious"
    monkeypatch.chdir(mine)
    assert export(args + ["--out", ".", "--overwrite"]) == 2
    assert "current folder" in capsys.readouterr().err
    assert export(args + ["--out", "..", "--overwrite"]) == 2
    assert (mine / "holiday.jpg").read_bytes() == b"precious"


def test_export_refuses_an_out_that_holds_its_inputs(checkpoint, tmp_path, capsys):
    bundle = make_bundle(checkpoint, tmp_path / "b", "onnx-fp32")
    inside = bundle / "ckpt.pt"
    shutil.copy(checkpoint, inside)
    Bundle.open(bundle)  # still a bundle
    assert export(["--target", "onnx-fp32", "--checkpoint", str(inside), "--tile", "64",
                   "--out", str(bundle), "--overwrite"]) == 2
    assert "inside --out" in capsys.readouterr().err and inside.is_file()


def test_old_and_foreign_manifests_are_refused(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"target": "onnx-fp32", "artifact": "m.onnx"}))
    with pytest.raises(AtbsnError, match="atbsn-edge 0.1"):
        Bundle.open(old)
    (old / "manifest.json").write_text(json.dumps({"schema": "atbsn-edge-bundle",
                                                   "schema_version": 99}))
    with pytest.raises(AtbsnError, match="schema version 99"):
        Bundle.open(old)
    (old / "manifest.json").write_text("{not json")
    with pytest.raises(AtbsnError, match="cannot read manifest.json"):
        Bundle.open(old)


def test_folder_artifacts_and_engines_hash_every_file(tmp_path):
    """An .mlpackage is a folder and an engine has a sidecar: the hash covers all of it."""
    package = tmp_path / "model-fp16.mlpackage"
    (package / "Data" / "weights").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    (package / "Data" / "weights" / "weight.bin").write_bytes(b"\0" * 64)
    engine = tmp_path / "model-fp16.engine"
    engine.write_bytes(b"engine")
    write_sidecar(engine, {"model": "student_c"}, {"tensorrt_version": "10.3.0"})
    assert [p.name for p in artifact_files(engine)] == ["model-fp16.engine",
                                                         "model-fp16.engine.json"]
    assert read_sidecar(engine) == ({"model": "student_c"}, {"tensorrt_version": "10.3.0"})
    assert set(content_hashes(package, tmp_path)) == {
        "model-fp16.mlpackage/Manifest.json", "model-fp16.mlpackage/Data/weights/weight.bin"}
    bundle = Bundle.new(tmp_path, network={}, checkpoint="", checkpoint_sha256="")
    bundle.add_artifact(ArtifactEntry("coreml-fp16", package.name, "coreml", "fp16"))
    bundle.add_artifact(ArtifactEntry("trt-fp16", engine.name, "tensorrt", "fp16"))
    bundle.save()
    reopened = Bundle.open(tmp_path)
    reopened.entry_path("coreml-fp16")
    reopened.entry_path("trt-fp16")
    flip_bytes(package / "Data" / "weights" / "weight.bin", 32)
    with pytest.raises(AtbsnError, match="weight.bin does not match"):
        reopened.entry_path("coreml-fp16")
    (package / "Data" / "extra.bin").write_bytes(b"x")
    with pytest.raises(AtbsnError, match="extra.bin is not in the manifest"):
        reopened.entry_path("coreml-fp16")
    sidecar_path(engine).unlink()
    with pytest.raises(AtbsnError, match="engine.json of the trt-fp16 artifact is missing"):
        reopened.entry_path("trt-fp16")


def test_target_table_agrees_with_the_runtime_registry():
    from atbsn_edge.bundle.files import SUFFIXES
    from atbsn_edge.export.targets import TARGETS, _checked, Target
    from atbsn_edge.runtimes.registry import BACKENDS

    for target in TARGETS.values():
        assert BACKENDS[target.runtime].suffix == SUFFIXES[target.backend]
        assert target.artifact.endswith(SUFFIXES[target.backend])
    with pytest.raises(RuntimeError, match="not registered"):
        _checked([Target("onnx", "fp32", "openvino", (), "onnx", None)])


def test_small_reference_images_are_padded_once_and_said_so(tmp_path, caplog):
    from atbsn_edge.export.reference import reference_crops

    small = tmp_path / "small.png"
    cv2.imwrite(str(small), textured_image(40, 50).astype(np.uint8))
    with caplog.at_level("WARNING"):
        crops, names = reference_crops([small], 64, 64, 3)
    assert crops.shape == (1, 3, 64, 64) and names == ["small.png@0,0"]  # one distinct crop
    assert "reflect-padded" in caplog.text and "only 1 distinct" in caplog.text


def test_review_guards(checkpoint, onnx_bundle, tmp_path, capsys, make_checkpoint):
    """Found in review: each is one line and a non-zero exit, before the work."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert export(["--target", "onnx-fp32", "--checkpoint", str(checkpoint), "--tile", "64",
                   "--out", str(afile / "sub")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    from atbsn_edge.profile import main as profile

    assert profile([str(onnx_bundle), "--json", str(afile / "p.json"), "--iters", "1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), textured_image(64, 64).astype(np.uint8))
    other = make_checkpoint("student_a", description="another one")
    assert parity([str(onnx_bundle), "--images", str(image), "--checkpoint", str(other)]) == 2
    assert "is not the checkpoint" in capsys.readouterr().err
    from atbsn_edge.distill import main as distill

    teacher = make_checkpoint("atbsn")
    before = teacher.read_bytes()
    assert distill(["--teacher", str(teacher), "--student", "c", "--data", str(image),
                    "--out", str(teacher), "--overwrite"]) == 2
    assert "is an input of this run" in capsys.readouterr().err and teacher.read_bytes() == before
    assert afile.read_text() == "mine"


def test_manifest_paths_outside_the_bundle_are_refused(onnx_bundle, tmp_path):
    bundle = copy_of(onnx_bundle, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["artifacts"]["onnx-fp32"]["entry"] = "../../etc/passwd"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AtbsnError, match="outside the bundle"):
        Bundle.open(bundle).entry_path()


def test_interrupted_folder_swap_keeps_the_old_folder(tmp_path, monkeypatch):
    import atbsn_edge.atomic as atomic

    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the second rename of the swap: new folder onto the target
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert (target / "old.txt").read_text() == "old"
    assert not list(tmp_path.glob(".bundle*"))


# ------------------------------------------------ flags that the chosen artifact would ignore

def _one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: ")
    return err


@pytest.mark.parametrize("cli,argv,says", [
    ("denoise", ["--performance-hint", "throughput"], "--performance-hint is for OpenVINO"),
    ("denoise", ["--inference-precision", "bf16", "--requests", "2"],
     "--requests and --inference-precision are for OpenVINO"),
    ("denoise", ["--compare-zoom", "4"], "--compare-zoom shapes the comparison pictures"),
    ("denoise", ["--compare-crop", "0,0,16,16", "--compare-zoom", "4"],
     "--compare-crop and --compare-zoom shape"),
    ("parity", ["--inference-precision", "f32"], "--inference-precision is for OpenVINO"),
    ("parity", ["--checkpoint", "x.pt"], "--checkpoint is the reference for --images"),
    ("profile", ["--performance-hint", "latency"], "--performance-hint is for OpenVINO"),
    ("profile", ["--no-frames", "--frame-iters", "3"], "--no-frames times none"),
], ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_flags_the_artifact_would_ignore_are_refused(onnx_bundle, image, tmp_path, capsys,
                                                     cli, argv, says):
    from atbsn_edge.profile import main as profile

    out = tmp_path / "out"
    run = {"denoise": lambda: denoise([str(image), "-o", str(out), "--artifact",
                                       str(onnx_bundle), *argv]),
           "parity": lambda: parity([str(onnx_bundle), *argv]),
           "profile": lambda: profile([str(onnx_bundle), "--duration", "0.1", *argv])}[cli]
    assert run() == 2
    assert says in _one_error_line(capsys)
    assert not out.exists()


def test_openvino_flags_still_reach_an_openvino_artifact(openvino_bundle, image, tmp_path,
                                                         capsys):
    out = tmp_path / "out.png"
    assert denoise([str(image), "-o", str(out), "--artifact", str(openvino_bundle),
                    "--inference-precision", "f32", "--performance-hint", "latency"]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert parity([str(openvino_bundle), "--inference-precision", "f32"]) == 0
    assert "computing in f32" in capsys.readouterr().out  # what ran, as the runtime reports it


# ------------------------------- manifests edited by hand: reference hash, precision, hostile

@pytest.mark.parametrize("edit", ["empty hash", "no hash", "no reference"])
def test_reference_data_the_manifest_does_not_hash_is_refused(onnx_bundle, tmp_path, capsys,
                                                              edit):
    """reference.npz beside a manifest that records no SHA-256 for it: the manifest was edited
    (the exporter hashes every reference.npz it writes), so NaN outputs put there once passed
    parity unchecked. Refused in one line by parity and by export --from-bundle."""
    bundle = copy_of(onnx_bundle, tmp_path)
    with np.load(bundle / "reference.npz") as data:
        arrays = dict(data)
    arrays["outputs"][:] = np.nan
    np.savez_compressed(bundle / "reference.npz", **arrays)
    document = json.loads((bundle / "manifest.json").read_text())
    if edit == "empty hash":
        document["reference"]["sha256"] = ""
    elif edit == "no hash":
        del document["reference"]["sha256"]
    else:
        del document["reference"]
    (bundle / "manifest.json").write_text(json.dumps(document))
    report = tmp_path / "p.json"
    said = (f"error: {bundle}: manifest.json records no SHA-256 for reference.npz, which is "
            "there (the manifest was edited or damaged")
    assert parity([str(bundle), "--json", str(report)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(said) and line.endswith("re-export the bundle or copy it again"), line
    assert strict_json(report)["passed"] is False
    assert parity([str(bundle), "--heatmaps", str(tmp_path / "hm")]) == 2
    assert one_error_line(capsys).startswith(said)
    assert export(["--from-bundle", str(bundle), "--target", "onnx-fp16",
                   "--out", str(tmp_path / "x")]) == 2
    assert one_error_line(capsys).startswith(said)
    assert not (tmp_path / "x").exists() and not (tmp_path / "hm").exists()


def test_a_bundle_without_reference_data_is_still_a_bundle(onnx_bundle, tmp_path, capsys):
    """No hash and no file (what Bundle.new starts from) is no edit: the bundle opens and
    verifies; parity on its reference crops says there are none, as before."""
    bundle = copy_of(onnx_bundle, tmp_path)
    (bundle / "reference.npz").unlink()
    edit_manifest(bundle, "reference", {})
    Bundle.open(bundle).verify_all()
    assert parity([str(bundle)]) == 2
    assert "the bundle has no reference.npz" in one_error_line(capsys)


def test_precision_edited_in_the_manifest_is_refused(onnx_bundle, tmp_path, capsys):
    """An fp32 artifact whose manifest entry was edited to int8 was held to int8's 3000x
    looser bar; the artifact's own metadata says fp32, so parity refuses the mismatch."""
    bundle = copy_of(onnx_bundle, tmp_path)
    edit_manifest(bundle, "artifacts.onnx-fp32.precision", "int8")
    report = tmp_path / "p.json"
    assert parity([str(bundle), "--json", str(report)]) == 2
    line = one_error_line(capsys)
    assert line == (f"error: {bundle}: the manifest says the onnx-fp32 artifact is int8, but "
                    "the artifact's own metadata says fp32 (the manifest was edited or files "
                    "of different exports were mixed); re-export the bundle")
    assert strict_json(report)["passed"] is False
    edit_manifest(bundle, "artifacts.onnx-fp32.precision", "fp32")     # as exported: fine
    assert parity([str(bundle)]) == 0


def test_hostile_manifests_are_one_line(tmp_path, capsys):
    """JSON nested 100000 deep (a RecursionError traceback once) and a manifest larger than
    any the exporter writes are refused in one line; is_bundle and bundle_files say no."""
    from atbsn_edge.bundle.manifest import bundle_files, is_bundle

    limit = 16 * 2**20   # the bound on a manifest's size: exported ones are a few kB
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "manifest.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(AtbsnError, match=r"manifest.json is malformed or damaged \(its JSON "
                                         r"nests too deep"):
        Bundle.open(deep)
    assert parity([str(deep)]) == 2
    assert "nests too deep" in one_error_line(capsys)
    assert not is_bundle(deep) and bundle_files(deep) == set()

    huge = tmp_path / "huge"
    huge.mkdir()
    with open(huge / "manifest.json", "wb") as fh:   # sparse: no disk used
        fh.truncate(limit + 1)
    assert parity([str(huge)]) == 2
    line = one_error_line(capsys)
    assert f"it is {limit + 1} bytes, more than the 16 MB" in line, line
    assert not is_bundle(huge) and bundle_files(huge) == set()

    folder = tmp_path / "folder"
    (folder / "manifest.json").mkdir(parents=True)
    assert parity([str(folder)]) == 2
    assert "it is a folder, not a regular file" in one_error_line(capsys)


@pytest.mark.skipif(not os.path.exists("/dev/zero") or sys.platform == "win32",
                    reason="needs /dev/zero")
def test_a_manifest_linked_to_dev_zero_is_refused_before_reading(tmp_path):
    """A link to /dev/zero was read until the process was killed; run in a child with its
    memory capped, so that a regression fails (MemoryError) instead of eating the machine."""
    bundle = tmp_path / "zero"
    bundle.mkdir()
    (bundle / "manifest.json").symlink_to("/dev/zero")

    def cap_memory():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    result = subprocess.run([sys.executable, "-m", "atbsn_edge.parity", str(bundle)],
                            capture_output=True, text=True, timeout=120, preexec_fn=cap_memory,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, result.stderr[-2000:]
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in result.stderr, err
    assert err[0] == (f"error: {bundle}: manifest.json is malformed or damaged (it is a device, "
                      "through a link, not a regular file; a manifest is a small JSON file); "
                      "re-export the bundle")


def test_a_missing_bundle_and_a_file_say_so(tmp_path):
    with pytest.raises(AtbsnError, match=r"bundle .*nothing does not exist \(a bundle is the"):
        Bundle.open(tmp_path / "nothing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(AtbsnError, match=r"bundle .*f is a file, not a bundle folder"):
        Bundle.open(tmp_path / "f")


def test_a_pending_artifact_without_its_command_still_says_what_to_run(onnx_bundle, tmp_path):
    """A manifest whose pending entry lost its device command ended its error in "run: "."""
    bundle = copy_of(onnx_bundle, tmp_path)
    edit_manifest(bundle, "artifacts.onnx-fp32.status", PENDING)
    with pytest.raises(AtbsnError) as info:
        Bundle.open(bundle).entry_path("onnx-fp32")
    assert str(info.value).endswith(f"on the device run: python -m atbsn_edge.export --target "
                                    f"onnx-fp32 --from-bundle {bundle}")


def test_tile_0_for_a_fixed_tile_artifact_points_to_a_dynamic_export(onnx_bundle, image, tmp_path,
                                                                     capsys):
    """The hint was "re-export with --tile 0", which export refuses."""
    assert denoise([str(image), "-o", str(tmp_path / "o"), "--artifact", str(onnx_bundle),
                    "--tile", "0"]) == 2
    assert one_error_line(capsys).endswith(
        "--tile 0 cannot apply: drop --tile, or re-export with --dynamic (an artifact that "
        "takes each whole image)")


def test_a_copy_made_with_from_bundle_out_names_itself_in_its_device_commands(checkpoint,
                                                                              tmp_path):
    """The copy's pending engine said to build from the source bundle."""
    source = tmp_path / "m 1"
    assert export(["--target", "trt-fp16", "--checkpoint", str(checkpoint), "--tile", "64",
                   "--out", str(source)]) == EXIT_ENGINE_PENDING
    copy = tmp_path / "m3"
    assert export(["--target", "onnx-fp32", "--from-bundle", str(source), "--out",
                   str(copy)]) == 0
    command = Bundle.open(copy).artifacts["trt-fp16"].details["device_command"]
    assert command.endswith(f"--target trt-fp16 --from-bundle {copy}") or \
        f"--from-bundle {copy} " in command
    assert str(source) not in command
    assert f"'{source}'" in Bundle.open(source).artifacts["trt-fp16"].details["device_command"]

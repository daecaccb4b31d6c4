"""Torch -> ONNX: the exported graph computes what PyTorch computes, keeps the blind spot and
carries the toolkit's metadata; the target table validates names."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

import onnx  # noqa: E402

from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.export import TARGETS, get_target, targets_table  # noqa: E402
from atbsn_edge.export.checkpoint_to_bundle import export_fp32_onnx as build  # noqa: E402
from atbsn_edge.models import load_checkpoint  # noqa: E402
from atbsn_edge.runtimes.registry import open_artifact  # noqa: E402
from conftest import textured_image  # noqa: E402

FP32_REL_L2 = 1e-5  # float32 graph vs float32 eager: rounding only


def torch_output(model, batch, hole=None):
    with torch.inference_mode():
        return model.core(hole)(torch.from_numpy(batch)).numpy()


@pytest.mark.parametrize("name", ["student_a", "student_c"])
def test_static_export_matches_torch(make_checkpoint, tmp_path, name):
    model = load_checkpoint(make_checkpoint(name))
    path = tmp_path / "model.onnx"
    build(model, path, tile=64, batch=2)
    batch = np.stack([textured_image(64, 64, s).transpose(2, 0, 1) for s in (1, 2)])
    with open_artifact(path) as runtime:
        assert (runtime.input_spec.batch, runtime.input_spec.height) == (2, 64)
        got = runtime.infer(batch)
    want = torch_output(model, batch)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < FP32_REL_L2


def test_metadata_is_recorded_and_read_back(make_checkpoint, tmp_path):
    model = load_checkpoint(make_checkpoint("atbsn", infer_hole=5))
    path = tmp_path / "atbsn.onnx"
    build(model, path, tile=64)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["atbsn.model"] == "atbsn" and props["atbsn.hole_size"] == "5"
    assert props["atbsn.opset"] == "17" and props["atbsn.tile"] == "64x64"
    assert props["atbsn.checkpoint_sha256"] == model.metadata["checkpoint_sha256"]
    with open_artifact(path) as runtime:
        assert runtime.info.model == "atbsn" and runtime.info.hole_size == 5


def test_dynamic_export_runs_at_other_sizes(make_checkpoint, tmp_path):
    model = load_checkpoint(make_checkpoint("student_a"))
    path = tmp_path / "dyn.onnx"
    build(model, path, tile=64, dynamic=True)  # checks two sizes against torch itself
    batch = textured_image(96, 160)[None].transpose(0, 3, 1, 2).copy()
    with open_artifact(path) as runtime:
        assert runtime.input_spec.height is None
        got = runtime.infer(batch)
    want = torch_output(model, batch)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < FP32_REL_L2


@pytest.mark.parametrize("hole", [1, 3])
def test_blind_spot_survives_export(make_checkpoint, tmp_path, hole):
    model = load_checkpoint(make_checkpoint("atbsn"))
    path = tmp_path / "atbsn.onnx"
    build(model, path, tile=64, hole_size=hole)
    image = textured_image(64, 64).transpose(2, 0, 1)[None].copy()
    k, y, x = (hole + 1) // 2, 30, 33
    with open_artifact(path) as runtime:
        before = runtime.infer(image)[0, :, y, x]
        inside = image.copy()
        inside[0, :, y - k + 1:y + k, x - k + 1:x + k] += 80
        assert np.abs(runtime.infer(inside)[0, :, y, x] - before).max() < 1e-3
        outside = image.copy()
        outside[0, :, y + k, x] += 80
        assert np.abs(runtime.infer(outside)[0, :, y, x] - before).max() > 1e-2


def test_wrong_shape_for_a_static_artifact_is_a_clear_error(make_checkpoint, tmp_path):
    model = load_checkpoint(make_checkpoint("student_a"))
    path = tmp_path / "a.onnx"
    build(model, path, tile=64)
    with open_artifact(path) as runtime, pytest.raises(AtbsnError, match="fixed height 64"):
        runtime.infer(np.zeros((1, 3, 32, 64), np.float32))
    with open_artifact(path) as runtime, pytest.raises(AtbsnError, match="3 channels"):
        runtime.infer(np.zeros((1, 4, 64, 64), np.float32))


def test_truncated_onnx_is_a_clear_error(make_checkpoint, tmp_path):
    model = load_checkpoint(make_checkpoint("student_a"))
    path = tmp_path / "a.onnx"
    build(model, path, tile=64)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(AtbsnError, match="cannot load ONNX artifact"):
        open_artifact(path)


def test_target_table_names_and_suggestions():
    assert {"onnx-fp32", "openvino-int8", "trt-fp16", "coreml-fp16"} <= set(TARGETS)
    assert get_target("onnx-fp32").availability() == (True, "")
    with pytest.raises(AtbsnError, match="did you mean 'trt-fp16'"):
        get_target("trt-fp61")
    assert "| onnx-fp32 | model-fp32.onnx | onnxruntime | yes |" in targets_table()
    assert "| openvino-fp16 | model-fp16.xml | openvino | yes |" in targets_table()


@pytest.mark.parametrize("fuse", [True, False])
def test_upsampling_fusion_is_recorded_and_equal(make_checkpoint, tmp_path, fuse):
    model = load_checkpoint(make_checkpoint("student_b"))  # replicate padding: the hardest fold
    path = tmp_path / "model.onnx"
    build(model, path, tile=64, fuse_upsampling=fuse)
    graph = onnx.load(str(path))
    ops = {node.op_type for node in graph.graph.node}
    assert ("ConvTranspose" in ops) is fuse and ("Resize" in ops) is not fuse
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["atbsn.upsampling"] == ("fused" if fuse else "explicit")
    batch = textured_image(64, 64, 3).transpose(2, 0, 1)[None].copy()
    with open_artifact(path) as runtime:
        got = runtime.infer(batch)
    want = torch_output(model, batch)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < FP32_REL_L2

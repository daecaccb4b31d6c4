"""ONNX (fp32, fp16 graph) and OpenVINO IR artifacts against PyTorch: fp32 computes in f32 (not
OpenVINO's bf16 default), fp16 stays close, metadata survives, the blind spot survives."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openvino", reason="the openvino extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

from atbsn_edge.bundle import Bundle  # noqa: E402
from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.export.__main__ import main as export  # noqa: E402
from atbsn_edge.models import load_checkpoint  # noqa: E402
from atbsn_edge.pipeline import open_artifact_tiled  # noqa: E402
from atbsn_edge.runtimes.openvino_runtime import choose_inference_precision as inference_precision  # noqa: E402,E501
from atbsn_edge.runtimes.registry import open_artifact  # noqa: E402
from atbsn_edge.verification import THRESHOLDS, thresholds_key  # noqa: E402
from conftest import textured_image  # noqa: E402

def large_weight_types(artifact: Path) -> set[str]:
    """The element types of the artifact's float constants of more than 64 values (the
    convolutions' weights): ``{"f16"}`` for an fp16 artifact whose weights are stored in half
    precision, as an OpenVINO IR names them and ONNX's ``FLOAT16``."""
    if artifact.suffix == ".xml":
        types = set()
        for layer in ET.parse(artifact).iter("layer"):
            data = layer.find("data")
            if layer.get("type") == "Const" and data is not None:
                size = int(np.prod([int(v) for v in data.get("shape", "").split(",") if v.strip()]))
                if size > 64 and data.get("element_type", "").startswith(("f", "bf")):
                    types.add(data.get("element_type"))
        return types
    import onnx

    names = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.FLOAT16: "f16"}
    return {names.get(t.data_type, str(t.data_type))
            for t in onnx.load(str(artifact)).graph.initializer
            if np.prod(t.dims) > 64 and t.data_type in names}


def export_bundle(checkpoint, out, target, *extra):
    assert export(["--target", target, "--checkpoint", str(checkpoint), "--tile", "64",
                   "--out", str(out), *extra]) == 0
    return Bundle(out, json.loads((out / "manifest.json").read_text())).entry_path()


@pytest.mark.parametrize("backend", ["openvino", "onnx"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_artifact_matches_torch(make_checkpoint, tmp_path, backend, precision):
    checkpoint = make_checkpoint("student_c")
    artifact = export_bundle(checkpoint, tmp_path / "b", f"{backend}-{precision}")
    assert (tmp_path / "b" / "model-fp32.onnx").is_file()
    batch = textured_image(64, 64)[None].transpose(0, 3, 1, 2).copy()
    with torch.inference_mode():
        want = load_checkpoint(checkpoint).core()(torch.from_numpy(batch)).numpy()
    with open_artifact(artifact) as runtime:
        got = runtime.infer(batch)
        assert runtime.info.precision == precision and runtime.info.model == "student_c"
        if backend == "openvino" and precision == "fp32":
            assert runtime.info.metadata["inference_precision"] == "f32"
        # what parity holds it to: its precision, or the coarser one it ran in (openvino-fp16
        # in bf16 on a CPU with bf16 units: 2e-2; onnx-fp16 and fp32: 5e-3 and 1e-5)
        limit = THRESHOLDS[thresholds_key(precision, runtime.info.inference_precision)].rel_l2
    # the weights are stored in the artifact's precision (an fp32 IR named fp16 passed before)
    assert large_weight_types(artifact) == {"f16" if precision == "fp16" else "f32"}
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < limit


def test_fp32_hint_is_explicit_even_on_bf16_cpus():
    # the device's own default reduced type, never guessed from capability flags
    assert inference_precision("fp32", "bf16") == "f32"
    assert inference_precision("fp16", "bf16") == "bf16"      # AMX or AVX512-BF16
    assert inference_precision("int8", "bf16") == "bf16"
    assert inference_precision("int8", "f32") == "f32"        # no reduced float type
    assert inference_precision("fp16", "f16") == "f16"        # a device whose default is f16
    assert inference_precision("fp32", "bf16", "bf16") == "bf16"  # --inference-precision
    with pytest.raises(AtbsnError, match="valid are auto"):
        inference_precision("fp16", "bf16", "fp8")


def test_blind_spot_survives_openvino(make_checkpoint, tmp_path):
    artifact = export_bundle(make_checkpoint("atbsn"), tmp_path / "b", "openvino-fp32", "--hole", "3")
    image = textured_image(64, 64).transpose(2, 0, 1)[None].copy()
    y, x, k = 30, 33, 2
    with open_artifact(artifact) as runtime:
        assert runtime.info.hole_size == 3
        before = runtime.infer(image)[0, :, y, x]
        inside = image.copy()
        inside[0, :, y - 1:y + 2, x - 1:x + 2] += 80
        assert np.abs(runtime.infer(inside)[0, :, y, x] - before).max() < 1e-3
        outside = image.copy()
        outside[0, :, y - k, x] += 80
        assert np.abs(runtime.infer(outside)[0, :, y, x] - before).max() > 1e-2


def test_truncated_ir_is_a_clear_error(make_checkpoint, tmp_path):
    from atbsn_edge.errors import AtbsnError

    artifact = export_bundle(make_checkpoint("student_a"), tmp_path / "b", "openvino-fp32")
    artifact.write_text(artifact.read_text()[:500])
    with pytest.raises(AtbsnError, match="cannot load OpenVINO artifact"):
        open_artifact(artifact)


def test_performance_hint_reaches_openvino_and_is_dropped_elsewhere(make_checkpoint, tmp_path,
                                                                    caplog):
    import logging

    checkpoint = make_checkpoint("student_a")
    ir = export_bundle(checkpoint, tmp_path / "ov", "openvino-fp32")
    with open_artifact(ir, performance_hint="THROUGHPUT") as runtime:
        assert "THROUGHPUT" in str(runtime.compiled.get_property("PERFORMANCE_HINT"))
    onnx_file = export_bundle(checkpoint, tmp_path / "ort", "onnx-fp32")
    with caplog.at_level(logging.DEBUG, logger="atbsn_edge.runtimes.registry"):
        with open_artifact(onnx_file, performance_hint="THROUGHPUT", threads=1) as runtime:
            assert runtime.infer(textured_image(64, 64)[None].transpose(0, 3, 1, 2).copy()).shape \
                == (1, 3, 64, 64)
    # set by the caller and not used by this backend: said, as a warning
    records = [r for r in caplog.records if "takes no performance_hint option" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.WARNING], caplog.text
    assert "performance_hint='THROUGHPUT' is not used" in records[0].getMessage()
    # left at a default (None, 0, "auto", as the CLIs pass to every backend): a debug line
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="atbsn_edge.runtimes.registry"):
        open_artifact(onnx_file, performance_hint=None, threads=0, infer_requests=0).close()
        # OpenVINO's own defaults, as a caller passing the same options to any bundle would
        open_artifact(onnx_file, device="CPU", compile_cache=True).close()
        with open_artifact_tiled(onnx_file, performance_hint="auto", threads=1):
            pass
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and r.name == "atbsn_edge.runtimes.registry"], caplog.text
    # "auto" with requests in flight: the hint is OpenVINO's choice, not the caller's, so only
    # the requests (which ONNX Runtime does not keep) are said to be unused
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="atbsn_edge.runtimes.registry"):
        open_artifact_tiled(onnx_file, performance_hint="auto", infer_requests=2).close()
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
              and r.name == "atbsn_edge.runtimes.registry"]
    assert len(warned) == 1 and "infer_requests=2 is not used" in warned[0], warned

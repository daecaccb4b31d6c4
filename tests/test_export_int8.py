"""int8: calibrated Q/DQ ONNX in TensorRT's explicit-quantization form, its OpenVINO IR,
calibration data handling and the calibration cache."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from atbsn_edge.bundle import Bundle  # noqa: E402
from atbsn_edge.calibration import collect_crops  # noqa: E402
from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.export.__main__ import main as export  # noqa: E402
from atbsn_edge.parity import main as parity  # noqa: E402
from conftest import textured_image  # noqa: E402


@pytest.fixture
def calib_folder(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(3):
        image = textured_image(96, 128, seed=10 + i)
        noisy = np.clip(image + np.random.default_rng(i).normal(0, 8, image.shape), 0, 255)
        cv2.imwrite(str(folder / f"c{i}.png"), noisy.astype(np.uint8))
    return folder


def export_int8(checkpoint, out, calib, target="onnx-int8", *extra):
    return export(["--target", target, "--checkpoint", str(checkpoint), "--tile", "64",
                   "--out", str(out), "--calib-data", str(calib), "--calib-crops", "8",
                   "--reference-images", str(calib), *extra])


def test_qdq_form_is_symmetric_per_channel_weights_per_tensor_activations(make_checkpoint,
                                                                          calib_folder, tmp_path):
    assert export_int8(make_checkpoint("student_a"), tmp_path / "b", calib_folder) == 0
    model = onnx.load(str(tmp_path / "b" / "model-int8.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q and dq
    for node in dq + q:
        if len(node.input) > 2:
            assert not np.any(inits[node.input[2]]), f"{node.name}: zero point is not 0"
    weights = [n for n in dq if n.input[0] in inits and inits[n.input[0]].ndim == 4]
    assert weights and all(inits[n.input[1]].size > 1 for n in weights)  # per channel
    activations = [n for n in q if n.input[0] not in inits]
    assert activations and all(inits[n.input[1]].size == 1 for n in activations)  # per tensor
    assert {p.key: p.value for p in model.metadata_props}["atbsn.precision"] == "int8"


@pytest.mark.parametrize("target", ["onnx-int8", "openvino-int8"])
def test_int8_parity_passes_and_is_recorded(calib_folder, tmp_path, target):
    """On the bundled trained student C: int8 error is a property of trained activations
    (random weights give outputs and ranges unlike any denoiser's)."""
    from atbsn_edge.assets import DEMO_STUDENT_C

    if target.startswith("openvino"):
        pytest.importorskip("openvino", reason="the openvino extra is not installed")
    assert export_int8(DEMO_STUDENT_C, tmp_path / "b", calib_folder, target) == 0
    calibration = Bundle.open(tmp_path / "b").artifact().details["calibration"]
    assert calibration["crops"] == 8 and calibration["method"] == "max"
    assert len(calibration["sources"]) == 3
    assert parity([str(tmp_path / "b"), "--json", str(tmp_path / "p.json")]) == 0
    results = json.loads((tmp_path / "p.json").read_text())["results"]
    assert max(r["rel_l2"] for r in results) < 3e-2


@pytest.mark.parametrize("target", ["onnx-int8", "openvino-int8"])
def test_second_export_uses_the_calibration_cache(make_checkpoint, calib_folder, tmp_path, target):
    if target.startswith("openvino"):
        pytest.importorskip("nncf", reason="NNCF (openvino extra) is not installed")
    checkpoint = make_checkpoint("student_a")
    assert export_int8(checkpoint, tmp_path / "one", calib_folder, target) == 0
    assert export_int8(checkpoint, tmp_path / "two", calib_folder, target) == 0
    bundles = [tmp_path / b for b in ("one", "two")]
    cached = [Bundle.open(b).artifact().metadata["calibration_cached"] for b in bundles]
    assert cached == ["false", "true"]
    if target.startswith("openvino"):  # the cached quantized model is the same model
        from atbsn_edge.runtimes.registry import open_artifact

        x = textured_image(64, 64)[None].transpose(0, 3, 1, 2).copy()
        outputs = []
        for bundle in bundles:
            with open_artifact(bundle / "model-int8.xml") as runtime:
                outputs.append(runtime.infer(x))
        assert np.array_equal(outputs[0], outputs[1])
    assert export_int8(checkpoint, tmp_path / "three", calib_folder, target,
                       "--calib-method", "percentile") == 0
    meta = Bundle.open(tmp_path / "three").artifact().metadata
    assert meta["calibration_cached"] == "false"  # another method is another calibration


def activation_scales(onnx_path) -> dict[str, float]:
    """Each activation's int8 step in a QDQ model: the scale of the ``QuantizeLinear`` that
    reads it, by the activation's name."""
    model = onnx.load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def test_each_calibration_method_sets_its_own_ranges(make_checkpoint, calib_folder, tmp_path):
    """--calib-method was checked only through the manifest (a percentile export that ran
    max calibration passed, and entropy's scales were max's to the bit, because ONNX
    Runtime's quantize_static calibrates entropy over 128 bins for 128 quantized ones):
    percentile and entropy clip the largest activations, so no step is wider than max's and
    some are narrower."""
    checkpoint = make_checkpoint("student_a")
    scales = {}
    for method in ("max", "percentile", "entropy"):
        assert export_int8(checkpoint, tmp_path / method, calib_folder, "onnx-int8",
                           "--calib-method", method) == 0
        scales[method] = activation_scales(tmp_path / method / "model-int8.onnx")
    assert scales["max"] and scales["max"].keys() == scales["percentile"].keys()
    wide = scales["max"]
    # percentile (99.999%) and entropy clip a little on this untrained student and 8 crops
    for method, narrower, by in (("percentile", 1, 0.99), ("entropy", 2, 0.97)):
        clipped = scales[method]
        assert all(clipped[name] <= wide[name] * (1 + 1e-6) for name in wide), method
        assert sum(clipped[name] < wide[name] * by for name in wide) >= narrower, \
            (method, {name: (clipped[name], wide[name]) for name in wide})


def test_entropy_in_chunks_equals_one_pass_even_after_a_dark_first_chunk(make_checkpoint,
                                                                        tmp_path, monkeypatch):
    """Entropy calibrated 4 batches at a time kept the first chunk's bin width: a dark first
    chunk grew a histogram to 10x the bins and its thresholds 40x slower. Seeded with each
    tensor's whole range, the chunked histograms and ranges are those of one pass over every
    batch, bin for bin."""
    import onnxruntime.quantization as quantization
    from onnxruntime.quantization.calibrate import load_tensors_data

    from atbsn_edge.export import onnx_fp32_to_int8 as module

    bundle = tmp_path / "b"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--reference-crops", "1", "--out", str(bundle)]) == 0
    rng = np.random.default_rng(0)
    batches = [(rng.random((1, 3, 64, 64)) * (0.05 if i < 4 else 1.0)).astype(np.float32)
               for i in range(8)]  # the first chunk dark, the second bright
    ranges = {}
    for chunk in (4, 8):
        monkeypatch.setattr(module, "HISTOGRAM_CHUNK", chunk)
        cache = tmp_path / f"chunk{chunk}.json"
        module.histogram_ranges_into(cache, quantization, bundle / "model-fp32.onnx", "entropy",
                                     batches)
        ranges[chunk] = {name: (float(d.range_value[0]), float(d.range_value[1]))
                         for name, d in load_tensors_data(cache).data.items()}
    assert ranges[4] and ranges[4] == ranges[8]


def test_nncf_int8_from_a_bundle_logs_the_bundle_file_not_the_cache_file(make_checkpoint,
                                                                          calib_folder, tmp_path):
    """``export --target openvino-int8 --from-bundle B`` logged ``wrote 12f237ef...xml``, the
    calibration cache's copy of the quantized IR; it names the bundle's model-int8.xml."""
    import logging
    import re

    pytest.importorskip("nncf", reason="NNCF (openvino extra) is not installed")
    bundle = tmp_path / "b"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--reference-crops", "1", "--out", str(bundle)]) == 0

    class Lines(logging.Handler):
        """The toolkit's log lines. Not caplog: nncf.set_log_level raises the level of every
        handler on NNCF's logger, where pytest's capture handlers are found too, caplog's
        among them, for the rest of the test."""

        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    lines = Lines()
    logging.getLogger("atbsn_edge").addHandler(lines)
    try:
        assert export(["--target", "openvino-int8", "--from-bundle", str(bundle), "--calib-data",
                       str(calib_folder), "--calib-crops", "8"]) == 0
    finally:
        logging.getLogger("atbsn_edge").removeHandler(lines)
    wrote = [line for line in lines.lines if line.startswith("wrote")]
    assert "wrote model-int8.xml (weights fp32)" in wrote, wrote
    assert not [line for line in wrote if re.search(r"[0-9a-f]{32}", line)], wrote
    assert Bundle.open(bundle).artifact("openvino-int8").metadata["int8_quantizer"] == "nncf"


def test_calibration_data_errors(make_checkpoint, tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    cv2.imwrite(str(small / "s.png"), textured_image(32, 32).astype(np.uint8))
    checkpoint = make_checkpoint("student_a")
    assert export_int8(checkpoint, tmp_path / "b", small) == 2
    assert "at least 64x64" in capsys.readouterr().err
    assert export_int8(checkpoint, tmp_path / "b", tmp_path / "missing") == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    # every file unreadable: it said "no calibration image is at least 64x64"
    (tmp_path / "t.png").write_bytes(b"\x89PNG\r\n\x1a\n trunc")
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(AtbsnError, match="none of the calibration data could be read"):
        collect_crops([tmp_path / "t.png", tmp_path / "x.png"], 64, 64)


def test_crops_are_seeded_and_fingerprinted(calib_folder):
    a = collect_crops([calib_folder], 64, 64, crops=5, seed=1)
    b = collect_crops([calib_folder], 64, 64, crops=5, seed=1)
    c = collect_crops([calib_folder], 64, 64, crops=5, seed=2)
    assert np.array_equal(a.crops, b.crops) and a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint and a.crops.shape == (5, 3, 64, 64)
    grid = collect_crops([calib_folder], 64, 64, crops=3, mode="grid")
    assert grid.crops.shape == (3, 3, 64, 64)
    with pytest.raises(AtbsnError, match="mode"):
        collect_crops([calib_folder], 64, 64, mode="diagonal")


def _quantized_convs(model) -> dict[str, bool]:
    """(Transposed) convolution node name -> whether its weight comes through a DequantizeLinear."""
    dq_outputs = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name: n.input[1] in dq_outputs for n in model.graph.node
            if n.op_type in ("Conv", "ConvTranspose")}


def test_keep_float_leaves_matching_layers_unquantized(make_checkpoint, calib_folder, tmp_path):
    assert export_int8(make_checkpoint("student_a"), tmp_path / "b", calib_folder, "onnx-int8",
                       "--int8-keep-float", "/dec1/") == 0
    convs = _quantized_convs(onnx.load(str(tmp_path / "b" / "model-int8.onnx")))
    kept = {name for name, quantized in convs.items() if not quantized}
    assert kept and all("/dec1/" in name for name in kept)
    assert all(quantized for name, quantized in convs.items() if "/dec1/" not in name)
    assert Bundle.open(tmp_path / "b").artifact().metadata["int8_keep_float"] == "/dec1/"
    # An explicit empty list quantizes every layer.
    assert export_int8(make_checkpoint("student_a"), tmp_path / "all", calib_folder, "onnx-int8",
                       "--int8-keep-float") == 0
    every = _quantized_convs(onnx.load(str(tmp_path / "all" / "model-int8.onnx")))
    assert any("ConvTranspose" in name for name in every) and all(every.values())


@pytest.mark.parametrize("target", ["onnx-int8", "openvino-int8"])
def test_keep_float_pattern_that_matches_nothing_is_an_error(make_checkpoint, calib_folder,
                                                             tmp_path, capsys, target):
    if target.startswith("openvino"):
        pytest.importorskip("nncf", reason="NNCF (openvino extra) is not installed")
    assert export_int8(make_checkpoint("student_a"), tmp_path / "b", calib_folder, target,
                       "--int8-keep-float", "/no_such_layer/") == 2
    assert "matches --int8-keep-float" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("quantizer", ["nncf", "qdq"])
def test_openvino_int8_quantizers_are_recorded_and_pass_parity(calib_folder, tmp_path, quantizer):
    from atbsn_edge.assets import DEMO_STUDENT_C

    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    if quantizer == "nncf":
        pytest.importorskip("nncf", reason="NNCF (openvino extra) is not installed")
    out = tmp_path / quantizer
    assert export_int8(DEMO_STUDENT_C, out, calib_folder, "openvino-int8",
                       "--int8-quantizer", quantizer) == 0
    metadata = Bundle.open(out).artifact().metadata
    assert metadata["int8_quantizer"] == quantizer and metadata["calibration_crops"] == "8"
    assert parity([str(out), "--json", str(tmp_path / "p.json")]) == 0
    results = json.loads((tmp_path / "p.json").read_text())["results"]
    assert max(r["rel_l2"] for r in results) < 3e-2


def test_keep_float_patterns_are_regular_expressions():
    from atbsn_edge.export.keep_float import float_node_names

    names = ["/unet/dec1/conv1/low/ConvTranspose", "/unet/dec1/conv1/skip/conv/Conv",
             "/unet/dec1/conv1/Add", "/unet/dec1/conv2/conv/Conv", "/unet/dec2/conv2/conv/Conv"]
    assert float_node_names(names, [r"/dec1/(?!conv1/low/)"], "g") == names[1:4]
    assert float_node_names(names, ["/dec2/"], "g") == names[4:]  # a plain name: a substring
    assert float_node_names(names, [], "g") == []
    with pytest.raises(AtbsnError, match="not a regular expression"):
        float_node_names(names, ["/dec1/("], "g")
    with pytest.raises(AtbsnError, match="matches --int8-keep-float"):
        float_node_names(names, ["/dec9/"], "g")

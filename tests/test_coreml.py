"""Core ML targets: conversion of every network, the saved program's structure, and the numpy
evaluator of the saved ML program (Apple's runtime needs macOS) against PyTorch, including a
planted conversion bug that parity must catch."""
from __future__ import annotations

import json
import platform
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coremltools", reason="the coreml extra (coremltools) is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed (bundles hold the fp32 ONNX)")

from atbsn_edge.bundle import Bundle  # noqa: E402
from atbsn_edge.coreml_mil.evaluator import ProgramEvaluator  # noqa: E402
from atbsn_edge.coreml_mil.package import read_package  # noqa: E402
from atbsn_edge.coreml_mil.runtime import DEVICE, CoreMlProgramRuntime  # noqa: E402
from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.export.__main__ import main as export  # noqa: E402
from atbsn_edge.export.job import ConversionJob, Int8Request  # noqa: E402
from atbsn_edge.models import load_checkpoint  # noqa: E402
from atbsn_edge.runtimes.coreml_runtime import (CoreMlRuntime, coreml_runtime_name,  # noqa: E402
                                                package_metadata)
from atbsn_edge.verification import THRESHOLDS, compare  # noqa: E402
from conftest import textured_image  # noqa: E402

TILE = 64
# what each network's fp32 program may contain (the ops the evaluator covers)
BASE_OPS = {"const", "conv", "leaky_relu", "max_pool"}
FUSED_OPS = BASE_OPS | {"conv_transpose", "add"}
ATBSN_OPS = {"pad", "slice_by_index", "reverse", "transpose", "split", "concat"}


def _bundle(make_checkpoint, tmp_path, name="student_c", target="coreml-fp32", *extra):
    checkpoint = make_checkpoint(name)
    out = tmp_path / f"bundle-{name}"
    assert export(["--target", target, "--checkpoint", str(checkpoint), "--tile", str(TILE),
                   "--out", str(out), *extra]) == 0
    return checkpoint, Bundle.open(out)


def _add(bundle: Bundle, checkpoint, target: str, **int8):
    """Add a Core ML target to a bundle in-process (faster than another CLI export)."""
    from atbsn_edge.assets import CALIBRATION_IMAGES

    request = Int8Request(sources=[CALIBRATION_IMAGES], crops=int8.get("crops", 4)) \
        if target.endswith("int8") else None
    job = ConversionJob(bundle, int8=request, denoiser=load_checkpoint(checkpoint))
    entry = job.convert(target)
    bundle.add_artifact(entry, default=False)
    return entry


def _reference_parity(bundle: Bundle, target: str, package=None):
    inputs, outputs, names = bundle.reference()
    runtime = CoreMlProgramRuntime(package or bundle.entry_path(target))
    got = runtime.run(inputs)
    return [compare(n, g, o) for n, g, o in zip(names, got, outputs)], runtime


def _program_ops(path) -> set[str]:
    return set(ProgramEvaluator(path).op_counts)


def _const_dtypes(path) -> dict[str, set[str]]:
    """dtype names of the weight consts, by the op type that takes them as ``weight``."""
    evaluator = ProgramEvaluator(path)
    found: dict[str, set[str]] = {}
    for op in evaluator.function.operations:
        weight = op.inputs.get("weight")
        if weight is not None:
            source = weight.op
            dtype = (str(source.quantized_data.val.dtype) if source.op_type.startswith("constexpr")
                     else str(np.asarray(weight.val).dtype))
            found.setdefault(op.op_type, set()).add(dtype)
    return found


@pytest.fixture(scope="module")
def student_c_bundle(tmp_path_factory):
    """Student C (He init) exported as coreml-fp32 through the CLI, then fp16 and int8 added."""
    from conftest import write_checkpoint

    tmp = tmp_path_factory.mktemp("coreml")
    checkpoint = write_checkpoint(tmp, "student_c")
    _, bundle = _bundle(lambda name: checkpoint, tmp)
    for target in ("coreml-fp16", "coreml-int8"):
        _add(bundle, checkpoint, target)
    bundle.save()
    return checkpoint, Bundle.open(bundle.path)


def test_fp32_student_c_bundle_structure_and_parity(student_c_bundle):
    _, bundle = student_c_bundle
    entry = bundle.artifact("coreml-fp32")
    assert entry.runtime == "coreml" and entry.entry == "model-fp32.mlpackage"
    assert {"model-fp32.mlpackage/Manifest.json",
            "model-fp32.mlpackage/Data/com.apple.CoreML/model.mlmodel",
            "model-fp32.mlpackage/Data/com.apple.CoreML/weights/weight.bin"} <= set(entry.files)
    path = bundle.entry_path("coreml-fp32")
    package = read_package(path)
    assert [(i.name, i.shape, i.dtype) for i in package.inputs] == \
        [("input", (1, 3, TILE, TILE), "FLOAT32")]
    assert [(o.name, o.shape, o.dtype) for o in package.outputs] == \
        [("output", (1, 3, TILE, TILE), "FLOAT32")]
    assert _program_ops(path) == FUSED_OPS          # upsampling folded (the bundle's default)
    assert _const_dtypes(path) == {"conv": {"float32"}, "conv_transpose": {"float32"}}
    metadata, spec = package_metadata(path)
    assert (metadata.model, metadata.precision, metadata.tile) == ("student_c", "fp32", (TILE, TILE))
    assert metadata.raw["coreml_minimum_deployment_target"] == "iOS16"
    assert metadata.raw["coreml_compute_precision"] == "FLOAT32"
    assert entry.details["minimum_deployment_target"] == "iOS16"
    assert spec.batch == 1 and spec.name == "input"
    results, runtime = _reference_parity(bundle, "coreml-fp32")
    assert runtime.info.device == DEVICE and runtime.info.backend == "coreml-mil-numpy"
    for result in results:
        assert not result.failures(THRESHOLDS["fp32"]), result
        assert result.rel_l2 <= 1e-5


def test_fp16_program_holds_fp16_weights_and_fp32_io(student_c_bundle):
    _, bundle = student_c_bundle
    path = bundle.entry_path("coreml-fp16")
    package = read_package(path)
    assert [i.dtype for i in package.inputs] == ["FLOAT32"]
    assert [o.dtype for o in package.outputs] == ["FLOAT32"]
    assert _program_ops(path) == FUSED_OPS | {"cast"}   # fp32 in, fp16 inside, fp32 out
    assert _const_dtypes(path) == {"conv": {"float16"}, "conv_transpose": {"float16"}}
    results, runtime = _reference_parity(bundle, "coreml-fp16")
    assert runtime.info.precision == "fp16"
    for result in results:
        assert not result.failures(THRESHOLDS["fp16"]), result
        assert result.rel_l2 > 1e-6    # computed in fp16, not float32


def test_int8_program_is_w8a8_with_kept_float_layers(student_c_bundle):
    _, bundle = student_c_bundle
    entry = bundle.artifact("coreml-int8")
    path = bundle.entry_path("coreml-int8")
    assert entry.details["int8_scheme"] == "w8a8"
    assert entry.details["minimum_deployment_target"] == "iOS17"
    assert entry.metadata["int8_scheme"] == "w8a8"
    # student C's default: all of dec1 float except the transposed convolution
    assert entry.details["layers_kept_float"] == ["unet.dec1.conv1.skip.conv", "unet.dec1.conv2.conv"]
    ops = _program_ops(path)
    assert {"quantize", "dequantize", "constexpr_affine_dequantize"} <= ops
    assert ops <= FUSED_OPS | {"cast", "quantize", "dequantize", "constexpr_affine_dequantize"}
    weights = _const_dtypes(path)
    assert "int8" in weights["conv"] and "float16" in weights["conv"]   # kept layers fp16
    results, _ = _reference_parity(bundle, "coreml-int8")
    for result in results:   # a random-init network on 4 calibration crops: loose, but int8-like
        assert 1e-4 < result.rel_l2 < 0.1, result


@pytest.mark.parametrize("name,extra", [
    pytest.param("atbsn", ("--hole", "3"), marks=pytest.mark.slow),      # ~30 s on 2 cores
    ("student_a", ()), ("student_b", ()),
    pytest.param("student_c", ("--no-fuse-upsampling",), marks=pytest.mark.slow)])
def test_every_network_converts_and_matches_torch(make_checkpoint, tmp_path, name, extra):
    _, bundle = _bundle(make_checkpoint, tmp_path, name, "coreml-fp32", *extra)
    path = bundle.entry_path("coreml-fp32")
    ops = _program_ops(path)
    fused = "--no-fuse-upsampling" not in extra
    allowed = (FUSED_OPS if fused else BASE_OPS) | {"upsample_nearest_neighbor", "concat", "pad"} | (
        ATBSN_OPS if name == "atbsn" else set())
    assert BASE_OPS <= ops <= allowed, ops
    if name == "atbsn":
        assert ATBSN_OPS <= ops
    if not fused:
        assert {"upsample_nearest_neighbor", "concat"} <= ops and "conv_transpose" not in ops
    meta, _ = package_metadata(path)
    assert meta.model == name and meta.hole_size == (3 if name == "atbsn" else None)
    results, _ = _reference_parity(bundle, "coreml-fp32")
    assert all(r.rel_l2 <= 1e-5 for r in results), results


def _plant_pad_bug(package_path):
    """Edit the SAVED program: the first convolution's custom padding [1,1,1,1] becomes
    [2,0,1,1] (same output size, content shifted by a row), as a converter bug would."""
    from coremltools.proto import Model_pb2

    model_file = package_path / "Data/com.apple.CoreML/model.mlmodel"
    spec = Model_pb2.Model.FromString(model_file.read_bytes())
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    conv = next(op for op in block.operations if op.type == "conv")
    pad_name = conv.inputs["pad"].arguments[0].name
    const = next(op for op in block.operations if op.type == "const"
                 and op.outputs[0].name == pad_name)
    values = const.attributes["val"].immediateValue.tensor.ints.values
    assert list(values) == [1, 1, 1, 1]
    values[:] = [2, 0, 1, 1]
    model_file.write_bytes(spec.SerializeToString())


def test_planted_pad_bug_fails_parity(student_c_bundle, tmp_path):
    _, bundle = student_c_bundle
    planted = tmp_path / "planted.mlpackage"
    shutil.copytree(bundle.entry_path("coreml-fp32"), planted)
    _plant_pad_bug(planted)
    results, _ = _reference_parity(bundle, "coreml-fp32", package=planted)
    assert all(result.failures(THRESHOLDS["fp32"]) for result in results)
    assert all(result.failures(THRESHOLDS["fp16"]) for result in results)  # not rounding-sized
    # and the bundle itself refuses the edited files by their hashes
    target = bundle.path / bundle.artifact("coreml-fp32").entry / "Data/com.apple.CoreML/model.mlmodel"
    original = target.read_bytes()
    try:
        target.write_bytes((planted / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
        with pytest.raises(AtbsnError, match="does not match the manifest"):
            bundle.entry_path("coreml-fp32")
    finally:
        target.write_bytes(original)


@pytest.fixture(scope="module")
def learned_int8_bundle(tmp_path_factory):
    """The bundled int8-ready student C (learned ranges, an offset on its output point,
    quantized low sums, 7- and 8-bit weights, the output convolution in phase form) exported as
    coreml-int8 through the CLI with no --checkpoint, at a 64-pixel tile."""
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("coreml-learned") / "bundle"
    assert export(["--target", "coreml-int8", "--tile", str(TILE), "--out", str(out)]) == 0
    return Bundle.open(out)


def test_int8_of_an_int8_ready_checkpoint_is_its_learned_qdq_graph(learned_int8_bundle):
    """Every convolution's weight int8 and every activation point an int8 quantize with zero
    point 0 at the learned step: the same quantization points as the bundle's learned ONNX."""
    import onnx

    from atbsn_edge.assets import DEMO_STUDENT_C_INT8

    bundle = learned_int8_bundle
    entry = bundle.artifact("coreml-int8")
    assert bundle.checkpoint.endswith(DEMO_STUDENT_C_INT8.name)
    assert entry.details["int8_ranges"] == "learned" and entry.details["layers_kept_float"] == []
    assert entry.metadata["int8_activation_scheme"] == "symmetric-learned"
    assert entry.metadata["coreml_minimum_deployment_target"] == "iOS17"
    path = bundle.entry_path("coreml-int8")
    evaluator = ProgramEvaluator(path)
    ops = evaluator.function.operations
    convs = [op for op in ops if op.op_type in ("conv", "conv_transpose")]
    # the float border term of the output point's offset is the one float convolution
    int8_convs = [op for op in convs if op.inputs["weight"].op.op_type.startswith("constexpr")]
    assert len(convs) - len(int8_convs) == 1
    assert {str(op.inputs["weight"].op.quantized_data.val.dtype) for op in int8_convs} == {"int8"}
    quantizes = [op for op in ops if op.op_type == "quantize"]
    assert all("zero_point" not in op.inputs or not np.any(op.zero_point.val) for op in quantizes)
    assert {str(op.output_dtype.val) for op in quantizes} == {"int8"}
    graph = onnx.load(str(bundle.path / bundle.artifact("onnx-int8").entry)).graph
    constants = {i.name for i in graph.initializer}
    # the copy of its readers' pair the export puts before each max pool is not a point of
    # its own (export/onnx_pool_quantization.py); the program quantizes after the pool
    pooled = {n.input[0] for n in graph.node if n.op_type == "MaxPool"}
    before_pools = {n.input[0] for n in graph.node
                    if n.op_type == "DequantizeLinear" and n.output[0] in pooled}
    activation_points = [n for n in graph.node if n.op_type == "QuantizeLinear"
                         and n.input[0] not in constants and n.output[0] not in before_pools]
    assert len(before_pools) == 5
    assert len(quantizes) == len(activation_points)
    steps = sorted(float(np.asarray(op.scale.val)) for op in quantizes)
    onnx_steps = sorted(float(onnx.numpy_helper.to_array(
        next(i for i in graph.initializer if i.name == n.input[1]))) for n in activation_points)
    np.testing.assert_allclose(steps, onnx_steps, rtol=1e-3)  # fp16 steps in the program
    onnx_convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == len(onnx_convs)
    assert len(convs) - len(int8_convs) == sum(n.input[1] in constants for n in onnx_convs)


def test_learned_int8_program_computes_the_onnx_int8_graph(learned_int8_bundle):
    """The saved program against the bundle's learned Q/DQ ONNX in ONNX Runtime (the same
    integers; fp16 between the quantization points), and against the PyTorch int8 simulation
    (parity's reference), on the bundle's reference crops."""
    import onnxruntime as ort

    from atbsn_edge.assets import DEMO_STUDENT_C_INT8
    from atbsn_edge.models.checkpoint import float_network

    bundle = learned_int8_bundle
    inputs, outputs, names = bundle.reference()
    session = ort.InferenceSession(str(bundle.path / bundle.artifact("onnx-int8").entry),
                                   providers=["CPUExecutionProvider"])
    float_student = float_network(load_checkpoint(DEMO_STUDENT_C_INT8).network).eval()
    results, runtime = _reference_parity(bundle, "coreml-int8")
    assert runtime.info.precision == "int8"
    got = runtime.run(inputs)
    for result, x, out, want in zip(results, inputs, got, outputs):
        assert not result.failures(THRESHOLDS["int8"]), result
        onnx_out = session.run(None, {"input": x[None]})[0][0]
        with torch.no_grad():
            float_out = float_student(torch.from_numpy(x[None]))[0].numpy()
        # levels 0..255: measured max 1.6-2.0 and mean 0.22-0.23 (a rounding flipped by fp16
        # between the points); with the activations' quantization dropped, 2.9-4.4 and 0.34-0.36
        assert np.abs(out - onnx_out).max() < 3.0
        assert np.abs(out - onnx_out).mean() < 0.3
        # nearer the int8 graph than the float network its weights come from
        assert np.abs(out - onnx_out).mean() < 0.5 * np.abs(out - float_out).mean()
        assert np.linalg.norm(out - want) / np.linalg.norm(want) < 1e-2


def _calibrated_int8_ready(name: str, folder) -> str:
    """A checkpoint of ``name`` (He init) made int8-ready by calibration alone (no training),
    with the portable weight widths, as ``python -m atbsn_edge.qat`` starts one."""
    from atbsn_edge.models.checkpoint import save_checkpoint
    from atbsn_edge.models.registry import get_architecture
    from atbsn_edge.quantization.qat_network import portable_weight_bits, quantization_aware
    from atbsn_edge.training import init_weights

    network = get_architecture(name).build()
    init_weights(network)
    wrapped = quantization_aware(network.eval())
    wrapped.set_weight_bits(portable_weight_bits(wrapped))
    wrapped.observe(True)
    with torch.no_grad():
        wrapped(torch.from_numpy(textured_image(128, 128).transpose(2, 0, 1)[None].copy()))
    for quantizer in wrapped.quantizers().values():
        quantizer.start_from_observations()
    path = folder / f"{name}_int8.pt"
    save_checkpoint(path, wrapped.eval(), {"qat_from": "test", "iterations": 0})
    return str(path)


@pytest.mark.parametrize("name", ["demo", "student_a"])
def test_learned_int8_program_in_float32_is_the_onnx_graph(name, tmp_path, monkeypatch):
    """Computed in float32 between its quantization points (Core ML computes int8 programs in
    fp16; here the precision is the test's), the program equals ONNX Runtime's output of the
    learned Q/DQ graph but for a rare rounding flipped by the order of a float sum: the
    conversion itself is exact, for the trained student C (offset, phase form, quantized sums)
    and for student A (replicate padding, no bias)."""
    ort = pytest.importorskip("onnxruntime")
    from atbsn_edge.export import torch_to_coreml

    monkeypatch.setitem(torch_to_coreml.COMPUTE_PRECISION, "int8", "FLOAT32")
    checkpoint = [] if name == "demo" else ["--checkpoint", _calibrated_int8_ready(name, tmp_path)]
    out = tmp_path / "bundle"
    assert export(["--target", "coreml-int8", "--tile", str(TILE), "--out", str(out),
                   *checkpoint]) == 0
    bundle = Bundle.open(out)
    inputs, _, _ = bundle.reference()
    session = ort.InferenceSession(str(out / bundle.artifact("onnx-int8").entry),
                                   providers=["CPUExecutionProvider"])
    got = CoreMlProgramRuntime(bundle.entry_path("coreml-int8")).run(inputs)
    for x, out_image in zip(inputs, got):
        diff = np.abs(out_image - session.run(None, {"input": x[None]})[0][0])
        # measured: the demo within 0.04 everywhere; the He-init student A equal at most
        # values, with one patch of 22 x 22 pixels (11%) behind a rounding flipped deep in the
        # network. Weights rounded down instead of to nearest: 99% of values differ
        assert np.median(diff) < 1e-3 and np.mean(diff > 1e-2) < 0.25, (diff.mean(), diff.max())
        if name == "demo":   # trained: no rounding flipped deep enough to spread
            assert diff.max() < 0.1, diff.max()


def test_calibration_flags_for_an_int8_ready_checkpoint_are_one_line(tmp_path, capsys):
    """coreml-int8 of an int8-ready checkpoint uses its learned ranges: calibration flags are
    refused as for every int8 target, in one line, nothing written."""
    from atbsn_edge.assets import DEMO_STUDENT_C_INT8

    out = tmp_path / "b"
    assert export(["--target", "coreml-int8", "--checkpoint", str(DEMO_STUDENT_C_INT8),
                   "--tile", str(TILE), "--calib-crops", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: this model's int8 ranges were learned by "
                              "quantization-aware training"), err
    assert "Traceback" not in "\n".join(err) and not out.exists()


def test_int8_weights_round_as_quantize_linear():
    from atbsn_edge.export.torch_qat_to_int8_onnx import quantize_linear

    weight = np.array([[0.5, 1.5, 2.5, -0.5], [-1.5, 300.0, -300.0, 0.26]], np.float32)
    got = quantize_linear(weight, np.array([1.0, 0.5], np.float32), np.zeros(2, np.int8), axis=0)
    assert got.dtype == np.int8
    assert got.tolist() == [[0, 2, 2, 0], [-3, 127, -128, 1]]


class _Mixed(torch.nn.Module):
    """Ops and parameters the networks use in other combinations: strided, dilated and grouped
    convolutions, replicate padding, transposed convolutions with asymmetric crops, ceil-mode
    pooling, nearest upsampling, pixel shuffle, and a subtraction and a product."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 3, dilation=2, padding=2, groups=2)
        self.c = torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=(0, 1))
        self.d = torch.nn.Conv2d(4, 3, 3, padding=1, padding_mode="replicate")

    def forward(self, x):
        y = torch.nn.functional.leaky_relu(self.a(x), 0.1)
        y = self.b(y)
        y = torch.nn.functional.max_pool2d(y, 3, stride=2, ceil_mode=True)
        y = torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest")
        y = self.c(y)[:, :, :-2]
        y = self.d(y)
        shuffled = torch.nn.functional.pixel_shuffle(torch.cat([y, y * 0.5, y - 3.0, -y], 1), 2)
        return shuffled[:, :, ::2, ::2] - 0.25 * shuffled[:, :, 1::2, 1::2]


def _convert(module, shape, tmp_path, precision="fp32"):
    from atbsn_edge.export.torch_to_coreml import convert_module, save_package

    mlmodel = convert_module(module.eval(), batch=shape[0], height=shape[2], width=shape[3],
                             precision=precision)
    path = tmp_path / f"m-{precision}.mlpackage"
    save_package(mlmodel, path)
    return path


def test_evaluator_ops_against_torch(tmp_path):
    torch.manual_seed(0)
    module = _Mixed()
    x = torch.from_numpy(textured_image(40, 48).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        want = module(x).numpy()
    path = _convert(module, (1, 3, 40, 48), tmp_path)
    got = ProgramEvaluator(path).evaluate({"input": x.numpy()})["output"]
    assert got.shape == want.shape
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-6


def test_unknown_op_is_one_line_error_naming_it(tmp_path):
    class Sigmoid(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x) * 255

    path = _convert(Sigmoid(), (1, 3, 32, 32), tmp_path)
    with pytest.raises(AtbsnError, match="does not implement op 'sigmoid'") as info:
        ProgramEvaluator(path)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(platform.system() == "Darwin", reason="Apple's Core ML runtime is here")
def test_apple_runtime_refuses_off_macos_in_one_line(student_c_bundle):
    _, bundle = student_c_bundle
    with pytest.raises(AtbsnError) as info:
        CoreMlRuntime(bundle.entry_path("coreml-fp32"), compute_units="CPU_AND_NE")
    message = str(info.value)
    assert message.startswith("Core ML runs only on macOS/iOS (this is ")
    assert "atbsn_edge.coreml_mil" in message and "\n" not in message
    assert coreml_runtime_name() == "coreml-mil-numpy"


@pytest.mark.skipif(platform.system() != "Darwin", reason="Apple's Core ML runtime needs macOS")
@pytest.mark.parametrize("units", ["ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY"])
def test_apple_runtime_matches_evaluator(student_c_bundle, units):
    _, bundle = student_c_bundle
    inputs, outputs, _ = bundle.reference()
    with CoreMlRuntime(bundle.entry_path("coreml-fp16"), compute_units=units) as runtime:
        got = runtime.run(inputs)
    assert all(not compare("x", g, o).failures(THRESHOLDS["fp16"]) for g, o in zip(got, outputs))


def test_manifest_records_coreml_facts(student_c_bundle):
    _, bundle = student_c_bundle
    document = json.loads((bundle.path / "manifest.json").read_text())
    for precision in ("fp32", "fp16", "int8"):
        entry = document["artifacts"][f"coreml-{precision}"]
        assert entry["metadata"]["precision"] == precision
        assert entry["details"]["compute_precision"] == ("FLOAT32" if precision == "fp32"
                                                         else "FLOAT16")
        assert entry["details"]["op_counts"]["conv"] == 17


def test_export_prints_none_of_coremltools_start_up_notices(make_checkpoint, tmp_path):
    """A fresh process whose first import of coremltools is the export's: none of its import
    notices (missing macOS bindings, untested torch or scikit-learn versions; about ten
    WARNING lines on Linux) reach the user, whose own output is kept."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "atbsn_edge.export", "--target", "coreml-fp32",
                             "--checkpoint", str(make_checkpoint("student_a")), "--tile", "64",
                             "--reference-crops", "1", "--out", str(tmp_path / "b")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote bundle" in result.stderr
    for notice in ("Failed to load", "has not been tested with coremltools",
                   "scikit-learn version", "WARNING coremltools"):
        assert notice not in result.stderr, result.stderr

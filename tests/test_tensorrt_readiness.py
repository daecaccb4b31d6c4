"""TensorRT-readiness of exported ONNX: the graphs the exporter writes pass (all four networks,
fp32 / fp16 / int8 Q/DQ), deliberately broken graphs fail with the node and the reason."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from atbsn_edge.errors import AtbsnError  # noqa: E402
from atbsn_edge.export.onnx_tensorrt_readiness import (  # noqa: E402
    Problem, assert_tensorrt_ready, check_tensorrt_readiness)

NETWORKS = ("atbsn", "student_a", "student_b", "student_c")
# Networks whose convolutions have biases: ONNX Runtime's quantize_static turns those into
# int32 DequantizeLinear nodes, which TensorRT's parser refuses (see the module docstring).


# ---------------------------------------------------------------- graphs the exporter writes

@pytest.fixture(scope="module")
def fp32_graphs(tmp_path_factory):
    """name -> (fp32 ONNX path, denoiser) at tile 64, He-initialised (one export per network)."""
    pytest.importorskip("torch")
    import torch

    from atbsn_edge.export.checkpoint_to_bundle import export_fp32_onnx
    from atbsn_edge.models.checkpoint import load_checkpoint, save_checkpoint
    from atbsn_edge.models.registry import get_architecture
    from atbsn_edge.training import init_weights

    folder = tmp_path_factory.mktemp("trt_ready")
    graphs = {}
    for name in NETWORKS:
        torch.manual_seed(0)
        network = get_architecture(name).build()
        init_weights(network)
        save_checkpoint(folder / f"{name}.pt", network, {})
        denoiser = load_checkpoint(folder / f"{name}.pt")
        path = folder / f"{name}-fp32.onnx"
        export_fp32_onnx(denoiser, path, tile=64)
        graphs[name] = (path, denoiser)
    return graphs


def _calibration():
    from atbsn_edge.calibration.data import CalibrationSet

    rng = np.random.default_rng(0)
    return CalibrationSet(crops=rng.uniform(0, 255, (2, 3, 64, 64)).astype(np.float32),
                          sources=["random"], fingerprint="trt-readiness-test")


def _int8(fp32_graphs, name, tmp_path):
    """The exporter's int8 Q/DQ graph (its converter, the architecture's keep-float layers)."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from atbsn_edge.export.onnx_fp32_to_int8 import onnx_fp32_to_int8

    path, denoiser = fp32_graphs[name]
    out = tmp_path / f"{name}-int8.onnx"
    onnx_fp32_to_int8(path, out, _calibration(), "max",
                      keep_float=denoiser.architecture.int8_keep_float)
    return out


def _describe(problems: list[Problem]) -> str:
    return "\n".join(map(str, problems))


@pytest.mark.parametrize("name", NETWORKS)
def test_exported_fp32_and_fp16_graphs_pass(fp32_graphs, tmp_path, name):
    from atbsn_edge.export.onnx_fp32_to_fp16 import onnx_fp32_to_fp16

    path, _ = fp32_graphs[name]
    assert_tensorrt_ready(path, str(path))
    fp16 = onnx_fp32_to_fp16(onnx.load(str(path)))
    assert any(i.data_type == TensorProto.FLOAT16 for i in fp16.graph.initializer)
    problems = check_tensorrt_readiness(fp16)
    assert not problems, _describe(problems)


@pytest.mark.parametrize("name", NETWORKS)
def test_exported_int8_graph_passes(fp32_graphs, tmp_path, name):
    """The Q/DQ graph the exporter writes (biases left float, zero points 0) is one TensorRT's
    parser takes, for every network."""
    path = _int8(fp32_graphs, name, tmp_path)
    model = onnx.load(str(path))
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 0
    problems = check_tensorrt_readiness(model)
    assert not problems, _describe(problems)


def test_quantized_biases_are_refused(fp32_graphs, tmp_path, monkeypatch):
    """ONNX Runtime's default (int32 bias DequantizeLinear) is what the check catches."""
    quantization = pytest.importorskip("onnxruntime.quantization")
    original = quantization.quantize_static

    def int32_biases(*args, extra_options=None, **kwargs):
        return original(*args, extra_options={**(extra_options or {}), "QuantizeBias": True},
                        **kwargs)

    monkeypatch.setattr(quantization, "quantize_static", int32_biases)
    problems = check_tensorrt_readiness(_int8(fp32_graphs, "student_c", tmp_path))
    assert problems
    assert all(p.op_type == "DequantizeLinear" and "int32" in p.problem
               and "QuantizeBias" in p.fix for p in problems), _describe(problems)


def test_explicit_upsampling_graph_passes(fp32_graphs, tmp_path):
    """Without upsampling fusion the decoders carry Resize nodes: TensorRT takes their modes."""
    from atbsn_edge.export.checkpoint_to_bundle import export_fp32_onnx

    _, denoiser = fp32_graphs["student_a"]
    path = tmp_path / "explicit.onnx"
    export_fp32_onnx(denoiser, path, tile=64, fuse_upsampling=False)
    model = onnx.load(str(path))
    assert any(n.op_type == "Resize" for n in model.graph.node)
    problems = check_tensorrt_readiness(model)
    assert not problems, _describe(problems)


def test_dynamic_atbsn_graph_passes(fp32_graphs, tmp_path):
    """A dynamic export computes slice bounds from Shape in int64: shape data, accepted; its
    dynamic dimensions are named."""
    from atbsn_edge.export.checkpoint_to_bundle import export_fp32_onnx

    _, denoiser = fp32_graphs["atbsn"]
    path = tmp_path / "dynamic.onnx"
    export_fp32_onnx(denoiser, path, tile=64, dynamic=True)
    model = onnx.load(str(path))
    assert any(n.op_type == "Shape" for n in model.graph.node)
    problems = check_tensorrt_readiness(model)
    assert not problems, _describe(problems)


# ---------------------------------------------------------------- deliberately broken graphs

def _model(nodes, initializers=(), inputs=None, outputs=None, opset=17, domains=()):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "broken", inputs, outputs, list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets)


def _tensor(name, values, dtype=None):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _only(problems, node):
    found = [p for p in problems if p.node == node]
    assert found, f"no problem names {node}:\n{_describe(problems)}"
    return found


def test_custom_domain_operator_is_refused():
    model = _model([helper.make_node("FancyDenoise", ["x"], ["y"], name="custom_op",
                                     domain="com.example")], domains=["com.example"])
    (problem,) = _only(check_tensorrt_readiness(model), "custom_op")
    assert problem.op_type == "FancyDenoise" and "com.example" in problem.problem


def test_operator_marked_unsupported_is_refused():
    model = _model([helper.make_node("Unique", ["x"], ["y"], name="uniq")])
    (problem,) = _only(check_tensorrt_readiness(model), "uniq")
    assert "not supported" in problem.problem and "operators.md" in problem.problem


def test_operator_missing_from_the_list_is_refused():
    model = _model([helper.make_node("StringNormalizer", ["x"], ["y"], name="strings")])
    problems = _only(check_tensorrt_readiness(model), "strings")
    assert any("not supported" in p.problem or "not in" in p.problem for p in problems)


def test_opset_outside_the_tensorrt_10_range_is_refused():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], opset=22)
    problems = check_tensorrt_readiness(model)
    assert any(p.node == "<graph>" and "opset 22" in p.problem for p in problems)


def _qdq(zero_point, zero_type=np.int8, scale=0.1):
    return _model(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant"),
         helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dequant")],
        [_tensor("s", scale, np.float32), _tensor("zp", zero_point, zero_type)])


def test_clean_qdq_pair_passes():
    assert check_tensorrt_readiness(_qdq(0)) == []


def test_non_zero_zero_point_is_refused():
    problems = check_tensorrt_readiness(_qdq(3))
    (problem,) = _only(problems, "quant")
    assert "zero point 'zp' is not 0" in problem.problem and "symmetric" in problem.problem
    assert _only(problems, "dequant")


def test_uint8_qdq_is_refused():
    problems = check_tensorrt_readiness(_qdq(0, np.uint8))
    assert any("uint8" in p.problem and "int8" in p.fix for p in _only(problems, "quant"))
    assert any("uint8" in p.problem for p in _only(problems, "dequant"))


def test_bad_scale_is_refused():
    problems = check_tensorrt_readiness(_qdq(0, scale=-0.5))
    assert any("positive" in p.problem for p in _only(problems, "quant"))
    problems = check_tensorrt_readiness(_qdq(0, scale=np.inf))
    assert any("finite" in p.problem for p in _only(problems, "quant"))


def test_int32_bias_dequantize_is_refused():
    model = _model(
        [helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], name="bias_dq"),
         helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", kernel_shape=[1, 1])],
        [_tensor("bq", [5, -3, 7], np.int32), _tensor("bs", [0.1, 0.1, 0.1], np.float32),
         _tensor("bz", [0, 0, 0], np.int32), _tensor("w", np.ones((3, 3, 1, 1)), np.float32)])
    (problem,) = _only(check_tensorrt_readiness(model), "bias_dq")
    assert "int32" in problem.problem and "QuantizeBias" in problem.fix


def _conv_weight_dq(consumer: str, axis: int):
    weight = np.ones((4, 3, 3, 3) if consumer == "Conv" else (3, 4, 3, 3), np.int8)
    channels = weight.shape[axis]
    return _model(
        [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="weight_dq",
                          axis=axis),
         helper.make_node(consumer, ["x", "w"], ["y"], name="layer", kernel_shape=[3, 3])],
        [numpy_helper.from_array(weight, "wq"),
         _tensor("ws", np.full(channels, 0.01), np.float32),
         _tensor("wz", np.zeros(channels), np.int8)])


def test_per_channel_weight_axes():
    assert check_tensorrt_readiness(_conv_weight_dq("Conv", 0)) == []
    assert check_tensorrt_readiness(_conv_weight_dq("ConvTranspose", 1)) == []
    (problem,) = _only(check_tensorrt_readiness(_conv_weight_dq("Conv", 1)), "weight_dq")
    assert "axis 1" in problem.problem and "axis 0" in problem.fix


def test_per_channel_activation_is_refused():
    model = _model(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="act_q", axis=1),
         helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="act_dq", axis=1)],
        [_tensor("s", [0.1, 0.2, 0.3], np.float32), _tensor("zp", [0, 0, 0], np.int8)])
    problems = check_tensorrt_readiness(model)
    assert any("per tensor" in p.fix for p in _only(problems, "act_q"))


def test_int64_data_tensor_into_add_is_refused():
    model = _model(
        [helper.make_node("Cast", ["x"], ["xi"], name="to_int", to=TensorProto.INT64),
         helper.make_node("Add", ["xi", "one"], ["yi"], name="int_add"),
         helper.make_node("Cast", ["yi"], ["y"], name="to_float", to=TensorProto.FLOAT)],
        [_tensor("one", [1], np.int64)])
    problems = check_tensorrt_readiness(model)
    assert any("'xi' is an int64 data tensor" in p.problem for p in _only(problems, "int_add"))
    assert not [p for p in problems if p.node == "to_int"]


def test_int64_shape_inputs_are_accepted():
    model = _model(
        [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
         helper.make_node("Gather", ["shape", "zero"], ["n"], name="batch", axis=0),
         helper.make_node("Concat", ["n", "rest"], ["new_shape"], name="cat", axis=0),
         helper.make_node("Reshape", ["x", "new_shape"], ["flat"], name="reshape"),
         helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["y"], name="slice")],
        [_tensor("zero", [0], np.int64), _tensor("rest", [-1], np.int64),
         _tensor("starts", [0], np.int64), _tensor("ends", [10], np.int64),
         _tensor("axes", [1], np.int64)])
    problems = check_tensorrt_readiness(model)
    assert problems == [], _describe(problems)


@pytest.mark.parametrize("attrs, reason", [
    ({"mode": "cubic"}, "Resize mode 'cubic'"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
     "coordinate_transformation_mode 'tf_crop_and_resize'"),
    ({"mode": "nearest", "nearest_mode": "round_half_even"}, "nearest_mode 'round_half_even'"),
])
def test_resize_mode_tensorrt_lacks_is_refused(attrs, reason):
    model = _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="upsample",
                                     **attrs)],
                   [_tensor("scales", [1, 1, 2, 2], np.float32)])
    problems = _only(check_tensorrt_readiness(model), "upsample")
    assert any(reason in p.problem for p in problems), _describe(problems)


def test_supported_resize_passes():
    model = _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="upsample",
                                     mode="nearest", coordinate_transformation_mode="asymmetric",
                                     nearest_mode="floor")],
                   [_tensor("scales", [1, 1, 2, 2], np.float32)])
    assert check_tensorrt_readiness(model) == []


def test_pad_and_pool_attributes():
    model = _model(
        [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="wrap"),
         helper.make_node("MaxPool", ["p"], ["y"], name="pool", kernel_shape=[2, 2],
                          dilations=[2, 2])],
        [_tensor("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)])
    problems = check_tensorrt_readiness(model)
    assert any("Pad mode 'wrap'" in p.problem for p in _only(problems, "pad"))
    assert any("dilations" in p.problem for p in _only(problems, "pool"))


def test_interface_must_be_float32_with_named_dims():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3, None, "w"])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 3, None, "w"])])
    problems = check_tensorrt_readiness(model)
    assert any("not float32" in p.problem for p in _only(problems, "x"))
    assert any("dimension 2" in p.problem for p in _only(problems, "x"))
    assert any("not float32" in p.problem for p in _only(problems, "y"))


def test_assert_lists_every_problem_one_per_line(tmp_path):
    model = _model(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant"),
         helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["r"], name="dequant"),
         helper.make_node("Unique", ["r"], ["y"], name="uniq")],
        [_tensor("s", 0.1, np.float32), _tensor("zp", 3, np.int8)])
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    problems = check_tensorrt_readiness(path)
    with pytest.raises(AtbsnError) as raised:
        assert_tensorrt_ready(path, "bundle/model-int8.onnx")
    lines = str(raised.value).splitlines()
    assert lines[0].startswith(f"bundle/model-int8.onnx: {len(problems)} problems")
    assert len(lines) == len(problems) + 1
    assert any("quant" in line and "zero point" in line for line in lines[1:])
    assert any("uniq" in line and "Unique" in line for line in lines[1:])

"""Shared int8 steps: the points that read one tensor share a quantizer, the export quantizes
an encoder's map before its max pool, and OpenVINO runs the encoder and the pool in int8."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from atbsn_edge.export.onnx_pool_quantization import quantize_before_max_pools  # noqa: E402
from atbsn_edge.quantization.qat_network import (  # noqa: E402
    quantization_aware, shared_input_points)
from conftest import textured_image  # noqa: E402

STUDENT_C_SHARED = {f"unet.dec{k}.conv1.skip": f"unet.enc{k}.conv1.input" for k in (2, 3, 4, 5)}


def _network(name: str = "student_c"):
    from atbsn_edge.models.registry import get_architecture
    from atbsn_edge.training import init_weights

    network = get_architecture(name).build()
    init_weights(network)
    return network.eval()


def _image(size: int = 128) -> torch.Tensor:
    return torch.from_numpy(textured_image(size, size, seed=0).transpose(2, 0, 1).copy())[None]


def _calibrated(network, x, share: bool):
    wrapped = quantization_aware(network, sums="low")
    if share:
        wrapped.share_steps(shared_input_points(wrapped))
    wrapped.observe(True)
    with torch.no_grad():
        wrapped(x)
    for quantizer in wrapped.quantizers().values():
        quantizer.start_from_observations()
    return wrapped.eval()


def test_student_c_shares_each_pooled_map_between_its_encoder_and_skip():
    wrapped = quantization_aware(_network(), sums="low")
    assert shared_input_points(wrapped) == STUDENT_C_SHARED
    points = len(wrapped.quantizers())
    wrapped.share_steps(STUDENT_C_SHARED)
    assert len(wrapped.quantizers()) == points - 4
    for point, owner in STUDENT_C_SHARED.items():
        parent, _, attr = point.rpartition(".")
        assert getattr(wrapped.quantized.get_submodule(parent), attr) is \
            wrapped.quantizers()[owner]
    # students A and B read each map at one point only: nothing to share
    for name in ("student_a", "student_b"):
        assert shared_input_points(quantization_aware(_network(name), sums="low")) == {}


def test_shared_ranges_round_trip_and_ranges_without_them_load_as_before():
    x = _image()
    shared = _calibrated(_network(), x, share=True)
    ranges = shared.ranges()
    assert ranges["shared"] == STUDENT_C_SHARED
    assert not set(STUDENT_C_SHARED) & set(ranges["steps"])
    again = quantization_aware(copy.deepcopy(shared.network), ranges)
    assert again.ranges() == ranges
    with torch.no_grad():
        assert torch.equal(again(x), shared(x))
    separate = _calibrated(_network(), x, share=False).ranges()
    assert "shared" not in separate and set(STUDENT_C_SHARED) <= set(separate["steps"])
    assert not quantization_aware(_network(), separate).shared
    # ranges that share a point the network does not have are refused in one line
    with pytest.raises(ValueError, match="does not have as two points"):
        quantization_aware(_network(), {**ranges, "shared": {"unet.nowhere": "unet.enc2.conv1.input"}})


def _pool_graph(scales: tuple[float, float]) -> "onnx.ModelProto":
    """x -> LeakyRelu -> MaxPool -> two Q/DQ pairs (``scales``) -> two outputs."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("LeakyRelu", ["x"], ["a"], alpha=0.1),
             helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                              name="pool")]
    inits = []
    for i, scale in enumerate(scales):
        inits += [numpy_helper.from_array(np.array(scale, np.float32), f"s{i}"),
                  numpy_helper.from_array(np.array(0, np.int8), f"z{i}")]
        nodes += [helper.make_node("QuantizeLinear", ["p", f"s{i}", f"z{i}"], [f"q{i}"]),
                  helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}", f"z{i}"], [f"y{i}"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 4, 4, 4]) for i in (0, 1)],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_a_pool_whose_readers_quantize_alike_is_quantized_before_with_the_same_outputs():
    x = (np.random.default_rng(0).standard_normal((1, 4, 8, 8)) * 40).astype(np.float32)
    model = _pool_graph((0.37, 0.37))
    want = _run(model, x)
    assert quantize_before_max_pools(model) == 1
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops[:4] == ["LeakyRelu", "QuantizeLinear", "DequantizeLinear", "MaxPool"]
    got = _run(model, x)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)  # exact: max commutes with the quantization
    # readers of two different steps: the pool is left as it is
    other = _pool_graph((0.37, 0.38))
    assert quantize_before_max_pools(other) == 0
    assert [n.op_type for n in other.graph.node][1] == "MaxPool"


def test_shared_steps_export_quantizes_before_each_pool_and_openvino_pools_int8(tmp_path):
    """The int8 export of a shared-step student C: a Q/DQ pair before each of its five pools
    (ONNX Runtime equals the simulation: the export's own check), and OpenVINO runs every
    pool on int8."""
    pytest.importorskip("onnxruntime")
    ov = pytest.importorskip("openvino")
    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.export.__main__ import main as export_main
    from atbsn_edge.models.checkpoint import load_checkpoint, save_checkpoint

    network = load_checkpoint(DEMO_STUDENT_C).network
    wrapped = _calibrated(network, _image(), share=True)
    checkpoint = tmp_path / "shared.pt"
    save_checkpoint(checkpoint, wrapped, {"qat_from": "test", "iterations": 0})
    out = tmp_path / "bundle"
    assert export_main(["--checkpoint", str(checkpoint), "--target", "openvino-int8",
                        "--tile", "128", "--out", str(out)]) == 0
    graph = onnx.load(str(out / "model-int8.onnx")).graph
    producers = {o: n for n in graph.node for o in n.output}
    pools = [n for n in graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 5 and all(producers[p.input[0]].op_type == "DequantizeLinear"
                                   for p in pools)
    compiled = ov.Core().compile_model(str(out / "model-int8.xml"), "CPU",
                                       {"INFERENCE_NUM_THREADS": 1, "SNIPPETS_MODE": "DISABLE"})
    pooling = [op.get_rt_info()["runtimePrecision"].astype(str)
               for op in compiled.get_runtime_model().get_ops()
               if op.get_rt_info()["layerType"].astype(str) == "Pooling"]
    assert len(pooling) == 5 and set(pooling) <= {"u8", "i8"}, pooling
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"]["onnx-int8"]["details"]["int8_ranges"] == "learned"


def test_qat_shares_a_continued_checkpoints_steps_with_iterations_0(tmp_path, noisy_folder,
                                                                   capsys):
    """``--continue-from X --iterations 0 --shared-steps yes``: X's weights, its owners' steps
    kept, the skips' steps shared; no cannot undo it, and a shared, centred X has nothing left
    to do with --iterations 0. A new run shares by default."""
    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.models.checkpoint import load_checkpoint, save_checkpoint
    from atbsn_edge.qat import main as qat_main

    start = tmp_path / "separate.pt"
    save_checkpoint(start, _calibrated(load_checkpoint(DEMO_STUDENT_C).network, _image(),
                                       share=False), {"qat_from": "test", "iterations": 0})

    def run(out, *extra):
        return qat_main(["--checkpoint", str(DEMO_STUDENT_C), "--data", str(noisy_folder),
                         "--out", str(out), "--calibration-batches", "1", "--batch", "1",
                         "--crop", "128", "--threads", "1", *extra])

    out = tmp_path / "shared.pt"
    assert run(out, "--iterations", "0", "--continue-from", str(start),
               "--shared-steps", "yes") == 0
    before, after = (torch.load(p, weights_only=True) for p in (start, out))
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
    ranges, old = after["metadata"]["int8_ranges"], before["metadata"]["int8_ranges"]
    assert ranges["shared"] == STUDENT_C_SHARED
    assert all(ranges["steps"][owner] == old["steps"][owner]
               for owner in STUDENT_C_SHARED.values())
    assert after["metadata"]["qat_continued"]["steps_shared"] == sorted(STUDENT_C_SHARED)
    for extra, message in ((("--shared-steps", "no"), "cannot undo"),
                           ((), "its steps are shared already")):
        assert run(tmp_path / "x.pt", "--iterations", "0", "--continue-from", str(out),
                   *extra) != 0
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
    fresh = tmp_path / "fresh.pt"
    assert run(fresh, "--iterations", "1", "--lr", "1e-12", "--output-offset", "none") == 0
    metadata = torch.load(fresh, weights_only=True)["metadata"]
    assert metadata["qat_shared_steps"] == "yes"
    assert metadata["int8_ranges"]["shared"] == STUDENT_C_SHARED


def _snippet_nodes(compiled) -> int:
    return sum(op.get_rt_info()["layerType"].astype(str) == "Subgraph"
               for op in compiled.get_runtime_model().get_ops())


def test_the_runtime_compiles_an_int8_ir_without_snippets_and_caches_it_apart(tmp_path,
                                                                               monkeypatch):
    """An int8 IR runs its requantizations fused into the convolutions (no snippets
    ``Subgraph`` node), also when OpenVINO's model cache holds a blob of the same IR compiled
    with snippets, which OpenVINO's cache key does not tell apart (it imported that blob)."""
    ov = pytest.importorskip("openvino")
    from atbsn_edge.export.__main__ import main as export_main
    from atbsn_edge.runtimes.openvino_cache import DISABLE_VARIABLE
    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime

    out = tmp_path / "bundle"
    assert export_main(["--target", "openvino-int8", "--tile", "128", "--out", str(out)]) == 0
    xml = out / "model-int8.xml"
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DISABLE_VARIABLE, raising=False)
    (tmp_path / "cache" / "openvino").mkdir(parents=True)
    with_snippets = ov.Core().compile_model(str(xml), "CPU", {
        "INFERENCE_NUM_THREADS": 1, "CACHE_DIR": str(tmp_path / "cache" / "openvino")})
    assert _snippet_nodes(with_snippets) > 0  # what the runtime avoids
    for imported in (False, True):
        with OpenVinoRuntime(xml, threads=1) as runtime:
            assert runtime.loaded_from_cache is imported
            assert _snippet_nodes(runtime.compiled) == 0


def test_an_openvino_that_refuses_the_snippets_property_compiles_without_it(tmp_path, caplog,
                                                                            monkeypatch):
    """SNIPPETS_MODE is one of the CPU plugin's internal properties: where an OpenVINO refuses
    it, the int8 IR is compiled without it, with a warning (the refusal is simulated: this
    OpenVINO takes it)."""
    import logging

    pytest.importorskip("openvino")
    from atbsn_edge.export.__main__ import main as export_main
    from atbsn_edge.runtimes import openvino_runtime
    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime

    out = tmp_path / "bundle"
    assert export_main(["--target", "openvino-int8", "--tile", "64", "--out", str(out)]) == 0
    core = openvino_runtime.openvino_core()
    compile_model = core.compile_model
    seen = []

    def refusing(model, device, config):
        seen.append(dict(config))
        if "SNIPPETS_MODE" in config:
            raise RuntimeError("Exception from src/plugins/intel_cpu/src/config.cpp:\n"
                               "Unsupported property SNIPPETS_MODE by CPU plugin.")
        return compile_model(model, device, config)

    class Refusing:
        def __getattr__(self, name):
            return refusing if name == "compile_model" else getattr(core, name)

    monkeypatch.setattr(openvino_runtime, "openvino_core", lambda: Refusing())
    with caplog.at_level(logging.WARNING, logger="atbsn_edge.runtimes.openvino_runtime"):
        with OpenVinoRuntime(out / "model-int8.xml", threads=1, compile_cache=False) as runtime:
            y = runtime.infer(np.full((1, 3, 64, 64), 128.0, np.float32))
    assert y.shape == (1, 3, 64, 64) and np.isfinite(y).all()
    assert [("SNIPPETS_MODE" in c) for c in seen] == [True, False]
    assert "does not take SNIPPETS_MODE" in caplog.text

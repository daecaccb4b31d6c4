"""Quantization-aware training: the fake quantization, the export with learned ranges, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from atbsn_edge.quantization.fake_quant import (  # noqa: E402
    ActivationQuantizer, best_step, fake_quantize_weight)
from atbsn_edge.quantization.qat_network import quantization_aware  # noqa: E402
from conftest import textured_image  # noqa: E402

TINY = ["--batch", "1", "--crop", "128", "--threads", "1"]


def _network(name: str = "student_c"):
    from atbsn_edge.models.registry import get_architecture
    from atbsn_edge.training import init_weights

    network = get_architecture(name).build()
    init_weights(network)
    return network.eval()


def _image_batch(size: int = 128, count: int = 1) -> torch.Tensor:
    images = [textured_image(size, size, seed=i).transpose(2, 0, 1) for i in range(count)]
    return torch.from_numpy(np.stack(images).copy())


def _calibrated(network, x):
    wrapped = quantization_aware(network)
    wrapped.observe(True)
    with torch.no_grad():
        wrapped(x)
    for quantizer in wrapped.quantizers().values():
        quantizer.start_from_observations()
    return wrapped.eval()


def test_weight_quantization_is_per_channel_symmetric_int8():
    w = torch.randn(4, 3, 3, 3)
    got = fake_quantize_weight(w, 0).numpy()
    steps = np.abs(w.numpy()).reshape(4, -1).max(1) / 127
    want = np.clip(np.round(w.numpy() / steps[:, None, None, None]), -128, 127) \
        * steps[:, None, None, None]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # axis 1 (a ConvTranspose's output channels)
    wt = torch.randn(5, 4, 4, 4)
    assert len(np.unique(np.round(fake_quantize_weight(wt, 1)[:, 2].numpy() /
                                  (wt[:, 2].abs().max().item() / 127), 4))) <= 256


def test_activation_quantizer_rounds_clips_and_learns_its_step():
    quantizer = ActivationQuantizer(step=0.5)
    x = torch.tensor([0.1, 0.26, -0.74, 10.0, 100.0, -100.0], requires_grad=True)
    y = quantizer(x)
    np.testing.assert_allclose(y.detach().numpy(), [0.0, 0.5, -0.5, 10.0, 63.5, -64.0], atol=1e-6)
    y.sum().backward()
    assert quantizer.log_step.grad is not None and quantizer.log_step.grad.item() != 0
    # straight-through inside the range, zero gradient where clipped
    np.testing.assert_allclose(x.grad.numpy(), [1, 1, 1, 1, 0, 0])


def test_best_step_beats_the_max_abs_step_with_an_outlier():
    x = torch.cat([torch.randn(10000), torch.tensor([80.0])])
    step = best_step(x)
    assert step < 80 / 127
    mse = lambda s: float(((torch.clamp(torch.round(x / s), -128, 127) * s - x) ** 2).mean())  # noqa
    assert mse(step) < mse(80 / 127)


@pytest.mark.parametrize("name", ["student_c", "student_a"])
def test_quantization_aware_network_tracks_the_float_one(name):
    network = _network(name)
    x = _image_batch(128)
    wrapped = _calibrated(network, x)
    with torch.no_grad():
        want, got = network(x), wrapped(x)
    rel = float((got - want).norm() / want.norm())
    assert 0 < rel < 0.1  # quantized (not equal), but close
    # it shares, not copies, the float weights
    assert {id(p) for p in network.parameters()} <= {id(p) for p in wrapped.parameters()}


def _demo_student():
    from atbsn_edge.assets import DEMO_STUDENT_C
    from atbsn_edge.models.checkpoint import load_checkpoint

    return load_checkpoint(DEMO_STUDENT_C).network


# ONNX Runtime and PyTorch differ by an ulp in a dequantized value now and then; a trained
# network damps such flips (demo student C: 1e-4), an untrained one amplifies them layer after
# layer (student A He-initialised: ~1e-2), hence the two tolerances.
@pytest.mark.parametrize("name, network, tolerance", [("student_c", _demo_student, 1e-3),
                                                      ("student_a", _network, 5e-2)])
def test_onnx_export_has_qdq_on_every_conv_input_and_weight(name, network, tolerance, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from atbsn_edge.export.torch_to_onnx import export_onnx

    x = _image_batch(128)
    wrapped = _calibrated(network() if network is _demo_student else network(name), x)
    path = tmp_path / "int8.onnx"
    export_onnx(wrapped, path, height=128, width=128, metadata={})
    from atbsn_edge.export.torch_qat_to_int8_onnx import unquantized_convolution_inputs

    graph = onnx.load(str(path)).graph
    convs = unquantized_convolution_inputs(graph)
    assert convs["count"] == (22 if name == "student_c" else 7) and not convs["unquantized"]
    for node in graph.node:  # zero points 0 (int8), as TensorRT takes them
        if node.op_type == "QuantizeLinear" and len(node.input) > 2:
            zero = next(i for i in graph.initializer if i.name == node.input[2]) \
                if any(i.name == node.input[2] for i in graph.initializer) else None
            if zero is not None:
                assert not onnx.numpy_helper.to_array(zero).any()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = wrapped(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < tolerance


def test_ranges_round_trip_and_mismatch_is_refused():
    x = _image_batch(128)
    wrapped = _calibrated(_network(), x)
    ranges = wrapped.ranges()
    again = quantization_aware(_network(), ranges)
    assert again.ranges() == ranges
    with pytest.raises(ValueError, match="do not fit"):
        quantization_aware(_network("student_a"), ranges)


def test_qat_fine_tuning_brings_int8_closer_to_float(noisy_folder, tmp_path):
    from atbsn_edge.models.checkpoint import load_checkpoint
    from atbsn_edge.qat import main as qat_main

    from atbsn_edge.assets import DEMO_STUDENT_C

    source = DEMO_STUDENT_C
    out = tmp_path / "int8.pt"
    assert qat_main(["--checkpoint", str(source), "--data", str(noisy_folder), "--out", str(out),
                     "--iterations", "1", "--lr", "1e-9", "--calibration-batches", "2",
                     *TINY]) == 0
    start = load_checkpoint(out)
    assert qat_main(["--checkpoint", str(source), "--data", str(noisy_folder), "--out", str(out),
                     "--iterations", "30", "--lr", "1e-4", "--calibration-batches", "2",
                     "--overwrite", *TINY]) == 0
    tuned = load_checkpoint(out)
    assert tuned.architecture.name == "student_c" and tuned.metadata["iterations"] == 30
    assert tuned.metadata["int8_ranges"]["steps"]

    x = _image_batch(128, 2)
    float_net = load_checkpoint(source).network
    errors = []
    for checkpoint in (start, tuned):  # an int8-ready checkpoint loads as its int8 simulation
        with torch.no_grad():
            errors.append(float((checkpoint(x) - float_net(x)).abs().mean()))
    assert errors[1] < 0.8 * errors[0], errors


def test_qat_resume_continues_the_run(noisy_folder, tmp_path, make_checkpoint):
    from atbsn_edge.qat import main as qat_main

    out = tmp_path / "int8.pt"
    args = ["--checkpoint", str(make_checkpoint("student_a")), "--data", str(noisy_folder),
            "--out", str(out), "--calibration-batches", "1", *TINY]
    assert qat_main([*args, "--iterations", "2"]) == 0
    assert qat_main([*args, "--iterations", "3", "--resume", str(out)]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["training"]["step"] == 3 and payload["architecture"] == "student_a"


def test_qat_refuses_atbsn(noisy_folder, tmp_path, make_checkpoint, capsys):
    from atbsn_edge.qat import main as qat_main

    code = qat_main(["--checkpoint", str(make_checkpoint("atbsn")), "--data", str(noisy_folder),
                     "--out", str(tmp_path / "x.pt"), *TINY])
    assert code != 0 and "takes a student" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


@pytest.fixture
def qat_checkpoint(tmp_path):
    """A student C checkpoint with calibrated (not fine-tuned) int8 ranges."""
    from atbsn_edge.models.checkpoint import save_checkpoint

    network = _demo_student()
    wrapped = _calibrated(network, _image_batch(128))
    path = tmp_path / "student_c_int8.pt"
    save_checkpoint(path, wrapped, {"qat_from": "test", "iterations": 0})
    return path


def test_export_uses_the_learned_ranges_for_every_int8_target(qat_checkpoint, tmp_path):
    pytest.importorskip("openvino")
    from atbsn_edge.export.__main__ import main as export_main
    from atbsn_edge.models.checkpoint import load_checkpoint

    out = tmp_path / "bundle"
    assert export_main(["--checkpoint", str(qat_checkpoint), "--target", "openvino-int8",
                        "--tile", "128", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    artifacts = manifest["artifacts"]
    assert artifacts["onnx-int8"]["details"]["int8_ranges"] == "learned"
    assert artifacts["openvino-int8"]["metadata"]["int8_quantizer"] == "qdq"
    assert manifest["int8_keep_float_default"] == []
    import onnx

    graph = onnx.load(str(out / "model-int8.onnx")).graph
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8
                    and len(i.dims) == 4]
    assert len(int8_weights) == 22  # every weight folded into an int8 initializer
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in {i.name for i in
                   graph.initializer} for n in graph.node)
    # the IR computes the fake-quantized network (not a recalibrated one)
    from atbsn_edge.pipeline import open_artifact_tiled

    from atbsn_edge.models.checkpoint import float_network

    denoiser = load_checkpoint(qat_checkpoint)
    x = _image_batch(128)
    with torch.no_grad():
        want = denoiser(x)[0].numpy().transpose(1, 2, 0)  # the int8 simulation
        float_out = float_network(denoiser.network)(x)[0].numpy().transpose(1, 2, 0)
    with open_artifact_tiled(out, inference_precision="f32") as runtime:
        got = runtime.denoise(x[0].numpy().transpose(1, 2, 0))
    err_qat = np.linalg.norm(got - want) / np.linalg.norm(want)
    err_float = np.linalg.norm(got - float_out) / np.linalg.norm(float_out)
    assert err_qat < 0.5 * err_float and err_qat < 1e-2, (err_qat, err_float)


def test_calibration_flags_on_a_learned_checkpoint_are_refused(qat_checkpoint, tmp_path, capsys):
    from atbsn_edge.export.__main__ import main as export_main

    code = export_main(["--checkpoint", str(qat_checkpoint), "--target", "onnx-int8", "--tile",
                        "128", "--calib-crops", "8", "--out", str(tmp_path / "b")])
    assert code != 0 and "quantization-aware" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_the_input_image_is_quantized_without_loss(tmp_path):
    """An 8-bit image passes the int8 graph's first quantization unchanged: the convolutions
    that read it (intro, and dec1's skip) see ``x - 128`` at step 1, padded with -128."""
    ort = pytest.importorskip("onnxruntime")
    from atbsn_edge.export.torch_to_onnx import export_onnx
    from atbsn_edge.quantization.qat_network import QuantizedConv

    x = torch.round(_image_batch(128))
    wrapped = _calibrated(_demo_student(), x)
    intro = wrapped.quantized.unet.intro
    assert isinstance(intro, QuantizedConv)
    conv = intro.float_conv.conv
    with torch.no_grad():
        want = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(
            x, fake_quantize_weight(conv.weight, 0), conv.bias, padding=1), 0.1)
        # through the wrapper, so that the intro convolution knows x is the network's input
        captured = {}
        hook = intro.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
        wrapped(x)
        hook.remove()
    np.testing.assert_allclose(captured["out"].numpy(), want.numpy(), rtol=0, atol=1e-3)
    path = tmp_path / "int8.onnx"
    export_onnx(wrapped.eval(), path, height=128, width=128, metadata={})
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()})[0]
    with torch.no_grad():
        reference = wrapped(x).numpy()
    assert np.linalg.norm(out - reference) / np.linalg.norm(reference) < 1e-3


def test_the_bundled_int8_ready_student_exports_every_layer_int8(tmp_path):
    """The bundled int8-ready demo student: learned ranges, every convolution int8."""
    pytest.importorskip("onnxruntime")
    from atbsn_edge.assets import DEMO_STUDENT_C_INT8
    from atbsn_edge.export.__main__ import main as export_main

    out = tmp_path / "bundle"
    assert export_main(["--checkpoint", str(DEMO_STUDENT_C_INT8), "--target", "onnx-int8",
                        "--tile", "128", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"]["onnx-int8"]["details"]["int8_ranges"] == "learned"
    assert manifest["artifacts"]["onnx-int8"]["metadata"]["int8_keep_float"] == ""


def test_an_int8_ready_checkpoint_refuses_float_targets_and_a_second_qat(qat_checkpoint, tmp_path,
                                                                         noisy_folder, capsys):
    from atbsn_edge.export.__main__ import main as export_main
    from atbsn_edge.qat import main as qat_main

    code = export_main(["--checkpoint", str(qat_checkpoint), "--target", "openvino-fp16",
                        "--tile", "128", "--out", str(tmp_path / "b")])
    assert code != 0 and "int8-ready" in capsys.readouterr().err
    code = qat_main(["--checkpoint", str(qat_checkpoint), "--data", str(noisy_folder),
                     "--out", str(tmp_path / "again.pt"), *TINY])
    assert code != 0 and "already int8-ready" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "again.pt").exists()

"""The thin output convolution written as one over its four output phases (an exact rewrite
of the int8 export, ``quantization/output_phases.py``)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from atbsn_edge.quantization.fake_quant import pairs_may_saturate  # noqa: E402
from atbsn_edge.quantization.output_phases import (  # noqa: E402
    MAX_OUT_CHANNELS, STRIDE, phase_steps, phase_weights, shuffle_phases, takes_phases)
from atbsn_edge.quantization.qat_network import exported_weights  # noqa: E402


def _phase_conv(x, weights, bias, padding):
    """The phase convolution as the export writes it: one stride-2 convolution per part."""
    out = F.conv2d(x, weights[0], bias, stride=STRIDE, padding=padding)
    for weight in weights[1:]:
        out = out + F.conv2d(x, weight, None, stride=STRIDE, padding=padding)
    return out


@pytest.mark.parametrize("out_ch, kernel, padding, size, pre_pad", [
    (3, 3, 1, (16, 24), None),              # student C's output convolution
    (1, 3, 1, (8, 8), None),
    (4, 5, 2, (12, 10), None),
    (3, 3, (0, 1), (16, 16), (0, 0, 2, 0)),  # a blind convolution: two rows on top first
    (2, 3, 0, (14, 12), "replicate"),       # students A/B: a replicate pad first
    (3, (3, 5), (1, 2), (10, 12), None),
])
def test_the_phase_form_equals_the_convolution(out_ch, kernel, padding, size, pre_pad):
    """Every output pixel, in float64: the same products, summed in another order."""
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    if pre_pad == "replicate":
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    elif pre_pad is not None:
        x = F.pad(x, pre_pad)
    conv = nn.Conv2d(6, out_ch, kernel, padding=padding).double()
    want = conv(x)
    assert want.shape[-2:] == size
    assert takes_phases(conv, tuple(want.shape[-2:]))
    phases = _phase_conv(x, [phase_weights(conv.weight.detach())],
                         phase_steps(conv.bias.detach()), padding)
    assert phases.shape == (2, 4 * out_ch, want.shape[2] // 2, want.shape[3] // 2)
    got = shuffle_phases(phases)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-12), float((got - want).abs().max())


def test_weights_split_in_parts_add_up_in_phase_form():
    """Two weight parts (the export's split for CPUs without VNNI) summed as two phase
    convolutions give the convolution of their sum."""
    x = torch.randn(1, 5, 8, 8, dtype=torch.float64)
    a, b = torch.randn(2, 3, 5, 3, 3, dtype=torch.float64)
    got = shuffle_phases(_phase_conv(x, [phase_weights(a), phase_weights(b)], None, 1))
    assert torch.allclose(got, F.conv2d(x, a + b, padding=1), atol=1e-12)


@pytest.mark.parametrize("conv, size, expected", [
    (nn.Conv2d(96, 3, 3, padding=1), (512, 512), True),
    (nn.Conv2d(96, MAX_OUT_CHANNELS, 3, padding=1), (64, 32), True),
    (nn.Conv2d(96, MAX_OUT_CHANNELS + 1, 3, padding=1), (64, 64), False),  # 20 > 16 lanes
    (nn.Conv2d(96, 3, 1), (64, 64), False),              # 1x1: nothing to gain
    (nn.Conv2d(96, 3, 3, padding=1, stride=2), (32, 32), False),
    (nn.Conv2d(96, 3, 3, padding=2, dilation=2), (64, 64), False),
    (nn.Conv2d(96, 3, 3, padding=1), (63, 64), False),   # an odd output has no 2x2 phases
    (nn.Conv2d(6, 3, 3, padding=1, groups=3), (64, 64), False),
])
def test_which_convolutions_take_the_phase_form(conv, size, expected):
    assert takes_phases(conv, size) is expected


def test_exported_phase_weights_hold_the_same_integers_and_steps():
    """The phase form of the export's fake-quantized weight is the fake-quantized phase form:
    each integer where it was, zeros elsewhere, each channel's step repeated per phase."""
    weight = torch.randn(3, 8, 3, 3)
    plain, = exported_weights(weight, 0, 63)
    phased, = exported_weights(weight, 0, 63, phases=True)
    assert torch.equal(phased, phase_weights(plain))
    steps = plain.abs().amax(dim=(1, 2, 3)) / 63
    assert torch.allclose(phased.abs().amax(dim=(1, 2, 3)) / 63, phase_steps(steps))
    with pytest.raises(ValueError, match="axis 0"):
        exported_weights(weight.transpose(0, 1), 1, 63, phases=True)


def test_an_8_bit_weight_split_in_two_takes_the_phase_form_part_by_part():
    """An 8-bit weight whose pairs could saturate a CPU without VNNI is exported as two parts;
    in phase form each part is the phase form of the plain part, and they add up to the
    phase form of the whole weight."""
    weight = torch.full((3, 8, 3, 3), 0.5)
    weight[:, 1::2] = 0.49  # adjacent input channels of one sign near the 127-level maximum
    steps = weight.abs().amax(dim=(1, 2, 3)) / 127
    assert pairs_may_saturate(torch.round(weight / steps.reshape(-1, 1, 1, 1)), 1)
    plain = exported_weights(weight, 0, 127)
    phased = exported_weights(weight, 0, 127, phases=True)
    assert len(plain) == len(phased) == 2
    for plain_part, phased_part in zip(plain, phased):
        assert torch.equal(phased_part, phase_weights(plain_part))
    assert torch.allclose(sum(phased), phase_weights(sum(plain)))


@pytest.mark.parametrize("offset", [True, False])
def test_the_exported_output_convolution_is_in_phase_form(tmp_path, offset):
    """Student C's int8 export writes its 96 -> 3 output convolution as a stride-2 4x4
    convolution 96 -> 12 and one DepthToSpace (with the output offset, its border term too);
    ONNX Runtime still computes the simulation."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from test_qat import OUTPUT, _calibrated, _demo_student, _image_batch, _qdq_model

    x = torch.round(_image_batch(128))
    wrapped = _calibrated(_demo_student(), x, "portable", sums="low",
                          centred=[OUTPUT] if offset else [])
    assert bool(wrapped.quantizers()[OUTPUT].offset) is offset
    model = _qdq_model(wrapped, tmp_path / "phases.onnx", 128)
    d2s = [n for n in model.graph.node if n.op_type == "DepthToSpace"]
    assert len(d2s) == 1
    assert {a.name: onnx.helper.get_attribute_value(a) for a in d2s[0].attribute} == {
        "blocksize": 2, "mode": b"CRD"}
    strided = [n for n in model.graph.node if n.op_type == "Conv" and "dec1/conv2" in n.name]
    attributes = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                  for n in strided]
    assert len(strided) == (2 if offset else 1)  # the int8 convolution, the border term
    assert all(a["strides"] == [2, 2] and a["kernel_shape"] == [4, 4] for a in attributes)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = wrapped(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-3


def test_plain_thin_convolutions_turns_the_rewrite_off():
    from atbsn_edge.quantization.output_phases import plain_thin_convolutions

    conv = nn.Conv2d(96, 3, 3, padding=1)
    with plain_thin_convolutions():
        assert not takes_phases(conv, (64, 64))
    assert takes_phases(conv, (64, 64))

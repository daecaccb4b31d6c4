"""Per-layer rates from OpenVINO's counters (atbsn_edge.profiling.openvino_layers): the
multiply-adds of each convolution kind, the median over calls, the fastest int8 layer."""
from __future__ import annotations

import numpy as np
import pytest

from atbsn_edge.profiling.openvino_layers import Layer, fastest_int8_layer, layer_macs, layers_of


def test_layer_macs_of_a_convolution_and_a_transposed_convolution():
    ov = pytest.importorskip("openvino", reason="openvino is not installed")
    ops = pytest.importorskip("openvino.opset13", reason="this openvino has no opset13")
    x = ops.parameter([1, 3, 16, 20], np.float32, name="x")
    conv = ops.convolution(x, ops.constant(np.zeros((8, 3, 3, 3), np.float32)), [1, 1],
                           [1, 1], [1, 1], [1, 1], name="conv")
    up = ops.convolution_backprop_data(conv, ops.constant(np.zeros((8, 4, 4, 4), np.float32)),
                                       [2, 2], [1, 1], [1, 1], [1, 1], name="up")
    model = ov.Model([up], [x])
    macs = layer_macs(model)
    # 3x3, 3 -> 8, output 8 x 16 x 20: every output element takes 3 * 9 multiply-adds
    assert macs["conv"] == 8 * 16 * 20 * 3 * 9
    # 4x4 stride-2 transposed, 8 -> 4: every input element is spread over 4 * 16 outputs
    assert macs["up"] == 8 * 16 * 20 * 4 * 16
    assert set(macs) == {"conv", "up"}


def test_median_time_per_layer_and_the_fastest_int8_layer():
    profiles = [{"a": (0.010, "brgconv_avx512_I8", "Convolution"),
                 "b": (0.004, "brgconv_avx512_bf16", "Convolution"),
                 "pool": (0.001, "jit_avx512_bf16", "MaxPool")},
                {"a": (0.030, "brgconv_avx512_I8", "Convolution"),
                 "b": (0.004, "brgconv_avx512_bf16", "Convolution"),
                 "pool": (0.003, "jit_avx512_bf16", "MaxPool")},
                {"a": (0.012, "brgconv_avx512_I8", "Convolution"),
                 "b": (0.004, "brgconv_avx512_bf16", "Convolution"),
                 "pool": (0.002, "jit_avx512_bf16", "MaxPool")}]
    layers = layers_of(profiles, {"a": 4.8e9, "b": 4.0e9})
    assert [layer.name for layer in layers] == ["a", "b", "pool"]  # slowest first
    assert layers[0].seconds == pytest.approx(0.012)  # the median, not the first call
    assert layers[0].rate == pytest.approx(400e9)
    assert layers[2].rate is None
    # b is faster (1000 GMAC/s) but not int8: the int8 floor takes a
    assert fastest_int8_layer(layers).name == "a"
    assert fastest_int8_layer([Layer("b", "Convolution", "brgconv_avx512_bf16", 1.0, 1.0)]) is None
    with pytest.raises(ValueError, match="no call"):
        layers_of([], {})

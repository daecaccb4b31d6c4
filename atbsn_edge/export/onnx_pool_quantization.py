"""Int8 Q/DQ ONNX: quantize a map before its max pool where every reader quantizes it alike.

An encoder of student C writes a full-resolution map, max-pools it and hands the pooled map to
the next encoder and to a decoder's skip. When both readers quantize it with one step (the
points share a step, ``quantization/qat_network.py: shared_input_points``), the same
``QuantizeLinear``/``DequantizeLinear`` pair can also go *before* the pool: max pooling
commutes with a per-tensor quantization (rounding and saturation never reorder two values),
and quantizing a value that is on the grid already gives it back, so the readers' own pairs
compute the same numbers and stay where they are (each convolution keeps a DequantizeLinear
as its input, the pattern TensorRT fuses). OpenVINO then fuses the quantization into the
encoder's convolution, which writes int8, and pools int8: on a 2-core Xeon with AMX the
default bundle's ``enc1`` went from 7.4 ms (a ``jit`` AMX kernel, bf16 output) to 4.5-4.9 ms
(``brgconv``), and its pool, reorder and requantization from 2.4 to 0.8-0.9 ms (docs/export.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import require
from .onnx_constants import constant_values


def quantize_before_max_pools(model: Any) -> int:
    """Insert a copy of the readers' Q/DQ pair before every ``MaxPool`` of ``model`` (in
    place) whose readers are all ``QuantizeLinear`` nodes of one per-tensor scale and zero
    point; returns how many pools were given one. The outputs do not change."""
    helper = require("onnx.helper", "onnx")
    graph = model.graph
    values = constant_values(graph)
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {output.name for output in graph.output}
    done = 0
    for pool in [node for node in graph.node if node.op_type == "MaxPool"]:
        if len(pool.output) != 1 or pool.output[0] in outputs:
            continue
        quantizers = readers.get(pool.output[0], [])
        if not quantizers or not all(_per_tensor_quantizer(node, values) for node in quantizers):
            continue
        first = quantizers[0]
        if any(not _same_quantization(first, node, values) for node in quantizers[1:]):
            continue
        quantized, dequantized = f"{pool.name}/quantized", f"{pool.name}/dequantized"
        new = [helper.make_node("QuantizeLinear", [pool.input[0], *first.input[1:]], [quantized],
                                name=f"{pool.name}/QuantizeLinear"),
               helper.make_node("DequantizeLinear", [quantized, *first.input[1:]], [dequantized],
                                name=f"{pool.name}/DequantizeLinear")]
        pool.input[0] = dequantized
        # the pool moves to just before its first reader, after the constants that reads
        graph.node.remove(pool)
        nodes = list(graph.node)
        at = min(nodes.index(node) for node in quantizers)
        for offset, node in enumerate([*new, pool]):
            graph.node.insert(at + offset, node)
        done += 1
    return done


def _per_tensor_quantizer(node: Any, values: dict[str, np.ndarray]) -> bool:
    """Whether ``node`` is a ``QuantizeLinear`` with one constant scale and an int8 or uint8
    constant zero point (or none)."""
    if node.op_type != "QuantizeLinear" or node.input[1] not in values:
        return False
    if values[node.input[1]].size != 1:
        return False
    return len(node.input) < 3 or not node.input[2] or (
        node.input[2] in values and values[node.input[2]].size == 1
        and values[node.input[2]].dtype in (np.int8, np.uint8))


def _same_quantization(a: Any, b: Any, values: dict[str, np.ndarray]) -> bool:
    """Whether two per-tensor ``QuantizeLinear`` nodes compute the same integers."""
    def zero(node: Any) -> tuple[str, float]:
        if len(node.input) < 3 or not node.input[2]:
            return ("uint8", 0.0)
        z = values[node.input[2]]
        return (str(z.dtype), float(z.reshape(-1)[0]))

    scale = lambda node: values[node.input[1]].reshape(-1)[0]  # noqa: E731
    return bool(scale(a) == scale(b)) and values[a.input[1]].dtype == values[b.input[1]].dtype \
        and zero(a) == zero(b)

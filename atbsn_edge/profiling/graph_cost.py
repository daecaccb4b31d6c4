"""Multiply-adds and the minimum bytes of an artifact, read from its fp32 ONNX graph.

Torch-free (``onnx`` only): shapes come from :func:`onnx.shape_inference.infer_shapes` on
the graph with its input made static (the tile shape). A convolution costs (output elements)
x (input channels per group) x (kernel taps); a transposed convolution (input elements) x
(output channels per group) x (kernel taps) -- the same rule as
:func:`atbsn_edge.models.complexity.count_macs`, which counts the PyTorch module. Gemm/MatMul
are counted too (M x N x K), although the AT-BSN family has none.

The minimum bytes of one call are what has to cross the memory interface at least once:
the input, the output and the weights, each at the precision's element size (1 byte for
int8, 2 for fp16, 4 for fp32). Activations between layers are not counted (a perfect
fusion keeps them on chip), so this is a lower bound.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import require

ELEMENT_BYTES = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}


@dataclass(frozen=True)
class GraphCost:
    """Per network call (one batch of ``batch`` tiles)."""

    macs: int
    conv_macs: int
    conv_transpose_macs: int
    other_macs: int
    weights: int                 # weight elements (float initializers feeding Conv/ConvTranspose/Gemm/MatMul, plus biases)
    input_elements: int
    output_elements: int
    batch: int
    input_shape: tuple[int, ...]
    layers: list[dict[str, Any]] = field(default_factory=list)

    def per_tile(self) -> "GraphCost":
        """The cost of one tile (the batch divided out)."""
        b = max(1, self.batch)
        return GraphCost(self.macs // b, self.conv_macs // b, self.conv_transpose_macs // b,
                         self.other_macs // b, self.weights, self.input_elements // b,
                         self.output_elements // b, 1, (1,) + tuple(self.input_shape[1:]),
                         self.layers)

    def min_bytes(self, precision: str) -> int:
        """Input + output + weights at ``precision``'s element size (see the module doc)."""
        size = ELEMENT_BYTES[precision]
        return (self.input_elements + self.output_elements + self.weights) * size


def _dims(value_info) -> list[int | None]:
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
    return dims


def graph_cost(path: str | os.PathLike, input_shape: tuple[int, int, int, int] | None = None) -> GraphCost:
    """The cost of one call of the ONNX graph at ``path``; ``input_shape`` (N, C, H, W) fixes
    dynamic input dimensions (needed for a ``--dynamic`` export)."""
    onnx = require("onnx", "onnx")
    from onnx import shape_inference

    model = onnx.load(str(Path(path)), load_external_data=True)
    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1:
        raise ValueError(f"{path}: expected one graph input, found {len(inputs)}")
    dims = _dims(inputs[0])
    if input_shape is not None:
        for d, v in zip(inputs[0].type.tensor_type.shape.dim, input_shape):
            d.Clear()
            d.dim_value = int(v)
        dims = list(input_shape)
    if None in dims:
        raise ValueError(f"{path}: input shape {dims} is dynamic; pass input_shape")
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int | None]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = _dims(vi)
    inits = {i.name: i for i in graph.initializer}
    init_shapes = {name: list(init.dims) for name, init in inits.items()}
    # Constant nodes carrying weights (some exporters emit them instead of initializers)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    init_shapes[node.output[0]] = list(attr.t.dims)

    def shape_of(name: str) -> list[int | None] | None:
        return init_shapes.get(name) or shapes.get(name)

    conv = convt = other = 0
    weight_names: set[str] = set()
    layers = []
    for node in graph.node:
        kind = node.op_type
        if kind not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        w = shape_of(node.input[1])
        if w is None or None in w:
            raise ValueError(f"{path}: cannot read the weight shape of {kind} {node.name!r}")
        for name in node.input[1:]:
            if name in init_shapes:
                weight_names.add(name)
        if kind == "Conv":
            out = shape_of(node.output[0])
            if out is None or None in out:
                raise ValueError(f"{path}: no inferred output shape for Conv {node.name!r}")
            macs = int(np.prod(out)) * int(np.prod(w[1:]))
            conv += macs
        elif kind == "ConvTranspose":
            inp = shape_of(node.input[0])
            if inp is None or None in inp:
                raise ValueError(f"{path}: no inferred input shape for ConvTranspose {node.name!r}")
            macs = int(np.prod(inp)) * int(np.prod(w[1:]))
            convt += macs
        else:
            out = shape_of(node.output[0])
            a = shape_of(node.input[0])
            if out is None or a is None or None in out or None in a:
                raise ValueError(f"{path}: no inferred shape for {kind} {node.name!r}")
            k = a[-1]
            if kind == "Gemm":
                trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
                k = a[0] if trans_a else a[-1]
            macs = int(np.prod(out)) * int(k)
            other += macs
        layers.append({"name": node.name, "op": kind, "macs": macs})
    weights = int(sum(int(np.prod(init_shapes[n])) for n in weight_names))
    outputs = [shapes.get(o.name) or _dims(o) for o in graph.output]
    out_elems = int(sum(int(np.prod(s)) for s in outputs if s and None not in s))
    return GraphCost(macs=conv + convt + other, conv_macs=conv, conv_transpose_macs=convt,
                     other_macs=other, weights=weights, input_elements=int(np.prod(dims)),
                     output_elements=out_elems, batch=int(dims[0]), input_shape=tuple(dims),
                     layers=layers)


def fp32_onnx_for(artifact: str | os.PathLike) -> Path | None:
    """The fp32 ONNX an artifact came from: ``model-fp32.onnx`` of its bundle folder (the
    folder itself, or the artifact file's folder); an ``.onnx`` artifact without one is its
    own graph. ``None`` when there is none."""
    from ..bundle import FP32_ONNX

    path = Path(artifact)
    folder = path if path.is_dir() and path.suffix != ".mlpackage" else path.parent
    candidate = folder / FP32_ONNX
    if candidate.is_file():
        return candidate
    if path.is_file() and path.suffix == ".onnx":
        return path
    return None

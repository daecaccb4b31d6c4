"""Quantization-aware checkpoint -> int8 Q/DQ ONNX with its learned ranges (needs PyTorch).

A checkpoint written by ``python -m atbsn_edge.qat`` carries the steps of every activation
quantizer (``metadata["int8_ranges"]``). The network is exported through the same
fake-quantizing modules it was trained with (``quantization/qat_network.py``), which the ONNX
exporter writes as ``QuantizeLinear``/``DequantizeLinear`` pairs: symmetric int8, zero points 0,
per-channel weights (axis 0 of a Conv, 1 of a ConvTranspose), per-tensor activations, biases
float, every layer in int8: the graph ONNX Runtime runs, OpenVINO reads as FakeQuantize and
TensorRT's explicit quantization takes. No calibration: the ranges are the learned ones.
Weights have the widths the checkpoint records (7 or 8 bits per weight); an 8-bit weight whose
pairs could saturate a CPU without VNNI is written as two convolutions of the same input whose
weights add up to it (``quantization/qat_network.py: exported_weights``). A convolution with at
most 4 outputs (the output layer) is written as a stride-2 convolution over its four output
phases and one ``DepthToSpace`` (``quantization/output_phases.py``): the same integers. Where
the points that read an encoder's pooled map share one step, that map is quantized before its
pool too (``onnx_pool_quantization.py``): the same numbers, the encoder in int8.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic import atomic_path
from ..errors import AtbsnError, require
from ..metrics import relative_l2
from .onnx_constants import constant_values
from .onnx_pool_quantization import quantize_before_max_pools

log = logging.getLogger(__name__)

#: what a bundle records for an int8 graph whose ranges were learned
LEARNED = "learned"


def learned_ranges(denoiser: Any) -> Mapping | None:
    """The checkpoint's learned int8 ranges, or None for a float checkpoint."""
    return denoiser.metadata.get("int8_ranges") or None


def learned_network(denoiser: Any) -> Any:
    """The quantization-aware network of an int8-ready checkpoint with its learned ranges, in
    eval mode (what the int8 exports trace); a one-line error for a float checkpoint."""
    from ..quantization.qat_network import QuantizationAware, quantization_aware

    ranges = learned_ranges(denoiser)
    if ranges is None:
        raise AtbsnError("this checkpoint carries no learned int8 ranges; "
                         "fine-tune it with python -m atbsn_edge.qat first")
    wrapped = denoiser.core(None)  # the int8 simulation load_checkpoint built
    if not isinstance(wrapped, QuantizationAware):
        wrapped = quantization_aware(wrapped, ranges)
    return wrapped.eval()


def torch_qat_to_int8_onnx(denoiser: Any, path: str | Path, *, tile: int, batch: int = 1,
                           dynamic: bool = False, metadata: Mapping[str, Any]) -> dict[str, str]:
    """Write the int8 Q/DQ graph of ``denoiser`` (with learned ranges) to ``path``; returns
    its metadata. Checked: every convolution's input and weight pass through a Q/DQ pair, and
    ONNX Runtime's output equals the fake-quantized PyTorch network's."""
    torch = require("torch", "torch")
    onnx = require("onnx", "onnx")
    from .torch_to_onnx import export_onnx

    wrapped = learned_network(denoiser)
    meta = export_onnx(wrapped, path, height=tile, width=tile, batch=batch, dynamic=dynamic,
                       metadata={**metadata, "precision": "int8", "int8_ranges": LEARNED,
                                 "int8_keep_float": "", "upsampling": "fused"})
    model = onnx.load(str(path))
    folded = fold_weight_quantization(model)
    pools = quantize_before_max_pools(model)
    with atomic_path(Path(path)) as tmp:
        onnx.save(model, str(tmp))
    log.debug("%d weight QuantizeLinear nodes folded into int8 initializers; %d max pools "
              "quantized before", folded, pools)
    convs = unquantized_convolution_inputs(model.graph)
    borders = wrapped.border_terms()
    if convs["unquantized"] or convs["offset_terms"] != borders:
        raise AtbsnError(f"the exported int8 graph feeds {', '.join(convs['unquantized'][:3])} "
                         f"without a DequantizeLinear, or has {convs['offset_terms']} border "
                         f"terms where {borders} were written: the exporter folded a "
                         "quantization or a constant; report it")
    _check_against_torch(wrapped, path, torch, batch, tile)
    bits = list(wrapped.weight_bits().values())
    log.info("int8 graph with learned ranges: %d convolutions, every one int8 (weights: %d at 7 "
             "bits, %d at 8; an 8-bit weight that could saturate a CPU without VNNI is written "
             "as two convolutions)%s", convs["count"], bits.count(7), bits.count(8),
             f"; {convs['offset_terms']} offset point(s), their constant added back by a float "
             "1-channel convolution on the border" if convs["offset_terms"] else "")
    return meta


def quantize_linear(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                    axis: int) -> np.ndarray:
    """``values`` in int8 as ``QuantizeLinear`` computes them: divided by ``scale`` (one value,
    or one per slice along ``axis``), rounded half to even, plus ``zero_point`` (shaped as
    ``scale``), saturated to -128..127."""
    scale, zero_point = np.asarray(scale), np.asarray(zero_point)
    shape = [1] * values.ndim
    if scale.ndim:
        shape[axis] = -1
    q = np.rint(values / scale.reshape(shape)) + zero_point.reshape(shape)
    return np.clip(q, -128, 127).astype(np.int8)


def fold_weight_quantization(model: Any) -> int:
    """Replace each ``QuantizeLinear`` of a constant (a weight) by its int8 initializer, in
    place, each weight's ``DequantizeLinear`` with a zero point of its own: the form ONNX
    Runtime's own quantizer writes, which its QDQ fusion, OpenVINO and TensorRT read as int8
    weights. Rounding as ``QuantizeLinear`` rounds (half to even, saturated). Returns how many
    were folded."""
    numpy_helper = require("onnx.numpy_helper", "onnx")
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    folded = 0
    for node in list(graph.node):
        if node.op_type != "QuantizeLinear" or not all(n in initializers for n in node.input):
            continue
        weight, scale = (numpy_helper.to_array(initializers[n]) for n in node.input[:2])
        zero = numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 \
            else np.zeros_like(scale, dtype=np.int8)
        if zero.dtype != np.int8:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        q = quantize_linear(weight, scale, zero, axis)
        graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
        graph.node.remove(node)
        for name in node.input:
            uses[name] -= 1
            if uses[name] == 0 and name in initializers:
                graph.initializer.remove(initializers.pop(name))
        folded += 1
    _own_weight_zero_points(graph)
    return folded


def _own_weight_zero_points(graph: Any) -> None:
    """Give every weight's ``DequantizeLinear`` its own zero-point initializer, in place.

    The PyTorch exporter writes one shared constant for all the zero points of a shape (a
    ``Constant`` node or one initializer that several nodes read). OpenVINO (2026.4) then keeps
    a ``Subtract`` of that zero point in the weight's dequantization, and its low-precision
    transformations refuse such a weight: 15 of student C's 24 convolutions ran in bf16 instead
    of int8 (165 against 117 ms per 512x512 tile on an AMD EPYC). One zero point per node, the
    form ONNX Runtime's quantizer writes, is folded away and every convolution runs in int8."""
    numpy_helper = require("onnx.numpy_helper", "onnx")
    initializers = {init.name: init for init in graph.initializer}
    constants = {node.output[0]: node for node in graph.node if node.op_type == "Constant"}
    for node in graph.node:
        if (node.op_type != "DequantizeLinear" or len(node.input) < 3
                or node.input[0] not in initializers):
            continue
        source = node.input[2]
        if source in initializers:
            zero = numpy_helper.to_array(initializers[source])
        elif source in constants:
            zero = numpy_helper.to_array(next(a.t for a in constants[source].attribute
                                              if a.name == "value"))
        else:
            continue
        own = numpy_helper.from_array(zero.copy(), f"{node.name or node.output[0]}/zero_point")
        graph.initializer.append(own)
        initializers[own.name] = own
        node.input[2] = own.name
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for name in [n for n in constants if n not in used]:
        graph.node.remove(constants[name])
    for name in [n for n in list(initializers) if n not in used]:
        graph.initializer.remove(initializers.pop(name))


def unquantized_convolution_inputs(graph: Any) -> dict[str, Any]:
    """The convolutions of ``graph`` (``count``) and those of their data or weight inputs that
    no ``DequantizeLinear`` produces (``unquantized``; identical Q/DQ pairs may be shared after
    simplification). The float convolutions that add an offset point's constant back on the
    border (their data a ``Pad`` of a map of zeros, ``qat_network._offset_conv``: one input
    channel, one output channel per colour, or four in the form of output phases) are counted
    apart, as ``offset_terms``."""
    producers = {out: node for node in graph.node for out in node.output}

    def made_by(name: str) -> str:
        node = producers.get(name)
        return node.op_type if node is not None else ""

    value = constant_values(graph).get  # a constant's array, or None

    def offset_term(node) -> bool:  # Conv(Pad(Mul(x, 0), value 1), one-channel constant)
        pad = producers.get(node.input[0])
        if node.op_type != "Conv" or pad is None or pad.op_type != "Pad" or len(pad.input) < 3:
            return False
        mul, weight = producers.get(pad.input[0]), value(node.input[1])
        fill = value(pad.input[2])
        return (mul is not None and mul.op_type == "Mul" and fill is not None
                and float(fill) == 1.0 and weight is not None and weight.shape[1] == 1
                and any(v is not None and not v.any() for v in map(value, mul.input)))

    convs = [node for node in graph.node if node.op_type in ("Conv", "ConvTranspose")]
    offset_terms = [node for node in convs if offset_term(node)]
    quantized = [node for node in convs if node not in offset_terms]
    missing = [f"{node.name or node.op_type} input {i}" for node in quantized for i in (0, 1)
               if made_by(node.input[i]) != "DequantizeLinear"]
    return {"count": len(quantized), "unquantized": missing, "offset_terms": len(offset_terms)}


def _check_against_torch(wrapped: Any, path: Path, torch: Any, batch: int, tile: int) -> None:
    """ONNX Runtime against the fake-quantized network on one input. The two differ by an ulp
    in a dequantized value now and then, which flips a later rounding: a trained network damps
    that (demo student C: relative L2 1e-4), an untrained one amplifies it (1e-2); a wrong
    graph is off by order 1."""
    ort = require("onnxruntime", "onnx")
    x = (np.random.default_rng(0).random((batch, 3, tile, tile)) * 255).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    with torch.inference_mode():
        want = wrapped(torch.from_numpy(x)).numpy()
    rel = relative_l2(got, want)
    if rel > 5e-2:
        raise AtbsnError(f"the exported int8 graph disagrees with the quantization-aware "
                         f"network: relative L2 {rel:.2e} (want <= 5e-2)")

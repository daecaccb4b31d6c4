"""Will TensorRT's ONNX parser take this graph? A check that runs without TensorRT.

What is checked, and against what:

1. **Operators.** Every node of the default domain (``""`` / ``ai.onnx``) must be an operator
   that the TensorRT ONNX parser lists as supported, defined at the graph's opset, and take an
   input type the list gives for it; nodes of any other domain (custom ops, ``com.microsoft``)
   are refused. The list is ``SUPPORTED_OPS`` / ``UNSUPPORTED_OPS`` of
   :mod:`.tensorrt_onnx_support`, transcribed from onnx-tensorrt ``docs/operators.md`` as
   published for **TensorRT 10.15** (repository onnx/onnx-tensorrt; "TensorRT 10.15 supports
   operators in the inclusive range of opset 9 to opset 24"). The accepted opset range is the
   narrower one the TensorRT 10.0 edition of that document gives (opset 9 to 20; seen in a search
   excerpt of that edition, whose full text we did not read), so that a graph that passes also
   parses on older 10.x releases such as JetPack's. Operators added to the list after 10.0 (e.g.
   Attention, RMSNormalization) are listed as 10.15 lists them; they need opsets above 20 and are
   therefore refused by the opset bound anyway.
2. **Attributes** that the list (and the parser source, onnx/onnx-tensorrt
   ``onnxOpImporters.cpp``) restricts, for the operators these networks use: Resize modes,
   coordinate transformation modes, nearest modes, ``antialias``, ``keep_aspect_ratio_policy``;
   Pad modes; pooling rank, ``dilations`` and the Indices output; ``auto_pad`` values.
3. **Q/DQ (explicit quantization).** From the support list ("``x_zero_point``/``y_zero_point``
   must be zero"; DequantizeLinear takes INT8, FP8, FP4, INT4), the parser's
   ``QuantDequantLinearHelper`` (scales must all be positive; a non-zero zero point is refused;
   a UINT8 zero point is only taken with the DLA-only
   ``kENABLE_UINT8_AND_ASYMMETRIC_QUANTIZATION_DLA`` flag, otherwise UINT8 DQ input is refused;
   per-channel scales must be 1-D with one value per channel of the quantization axis) and
   NVIDIA's "Working with Quantized Types" / "Explicit Quantization" pages of the TensorRT
   documentation (symmetric quantization; per-tensor activations, per-channel or per-tensor
   weights). This check also requires scales to be finite constants (so that it can verify
   them), a zero point to be present (without one, ONNX means uint8 and TensorRT int8), and
   per-channel weights to be quantized along the output-channel axis of the consumer: axis 0 of
   a Conv weight (K, C, R, S), axis 1 of a ConvTranspose weight (C, K, R, S).
   Known consequence: ONNX Runtime's ``quantize_static`` quantizes Conv biases to **int32**
   DequantizeLinear nodes by default. TensorRT's DequantizeLinear has no INT32 input in the
   10.15 list, and users report the parser refusing exactly those nodes ("only activation types
   allowed as input to this layer": onnx/onnx-tensorrt#850 and microsoft/onnxruntime#14229,
   TensorRT 8.x; microsoft/onnxruntime#17738). Not verified on a TensorRT 10 build here. The
   fix is ``extra_options={"QuantizeBias": False}`` (the bias stays float, as in NVIDIA's own
   Q/DQ exports, and TensorRT fuses it into the int8 convolution).
4. **No int64 data tensors.** TensorRT 10 does have INT64 for many operators, but these
   networks' data are float; an int64 tensor is accepted only where it is, directly or through
   shape arithmetic, a shape input (Reshape shape, Resize sizes, Slice starts/ends/axes/steps,
   Pad pads/axes, Split split, Expand shape, ConstantOfShape input, Tile repeats, Squeeze /
   Unsqueeze / Reduce* axes, TopK K, Gather/OneHot indices ...). Types come from
   ``onnx.shape_inference``.
5. **Interface.** Graph inputs and outputs are float32 (fp16 and int8 graphs keep an fp32
   interface), with a known rank and every dimension either fixed or named.

Not checked (TensorRT can still refuse what passes): layer-specific shape limits, the
"linear resize on the outermost 3 dimensions only" rule, anything that depends on values only
known at build time, and everything about plugins. Sources, for the record:
https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md,
https://github.com/onnx/onnx-tensorrt/blob/main/onnxOpImporters.cpp,
https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-quantized-types.html,
https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import AtbsnError, require
from .tensorrt_onnx_support import (
    AUTO_PAD, OPSET_MAX, OPSET_MIN, PAD_MODES, QUANTIZED_TYPES, RESIZE_COORDINATE_MODES,
    RESIZE_MODES, RESIZE_NEAREST_MODES, SHAPE_ARITHMETIC, SHAPE_INPUTS, SUPPORT_LIST_SOURCE,
    SUPPORTED_OPS, TRT_VERSION, TYPE_NAMES, UNSUPPORTED_OPS)


@dataclass(frozen=True)
class Problem:
    """One reason TensorRT would refuse (or misread) the graph."""

    node: str      # node name, or tensor name for graph inputs/outputs
    op_type: str   # operator, or "graph input" / "graph output" / "graph"
    problem: str   # what is wrong
    fix: str       # how to fix it

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}): {self.problem} -- fix: {self.fix}"


def _load(model_or_path: Any):
    onnx = require("onnx", "onnx")
    if isinstance(model_or_path, (str, Path)):
        return onnx.load(str(model_or_path))
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    raise TypeError(f"expected an onnx.ModelProto or a path, got {type(model_or_path).__name__}")


def _name(node) -> str:
    return node.name or (f"<unnamed {node.op_type} -> {node.output[0]}>" if node.output
                         else f"<unnamed {node.op_type}>")


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    values = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        values[attr.name] = value.decode() if isinstance(value, bytes) else value
    return values


def _all_graphs(graph) -> Iterable:
    """The graph and every subgraph (If/Loop/Scan bodies)."""
    from onnx import AttributeProto

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _all_graphs(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _all_graphs(sub)


class _Graph:
    """Types, constants, producers and consumers of one (shape-inferred) model's tensors."""

    def __init__(self, model) -> None:
        from onnx import numpy_helper

        self.types: dict[str, int] = {}
        self.ranks: dict[str, int] = {}
        self.constants: dict[str, Any] = {}
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[tuple[Any, int]]] = {}
        self.graph_outputs: set[str] = set()
        for graph in _all_graphs(model.graph):
            for value in list(graph.input) + list(graph.output) + list(graph.value_info):
                tensor_type = value.type.tensor_type
                if tensor_type.elem_type:
                    self.types[value.name] = tensor_type.elem_type
                if tensor_type.HasField("shape"):
                    self.ranks[value.name] = len(tensor_type.shape.dim)
            for init in graph.initializer:
                self.types[init.name] = init.data_type
                self.ranks[init.name] = len(init.dims)
                self.constants[init.name] = numpy_helper.to_array(init)
            for node in graph.node:
                for output in node.output:
                    self.producer[output] = node
                for index, name in enumerate(node.input):
                    if name:
                        self.consumers.setdefault(name, []).append((node, index))
                if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                    for attr in node.attribute:
                        if attr.name == "value":
                            array = numpy_helper.to_array(attr.t)
                            self.constants[node.output[0]] = array
                            self.types.setdefault(node.output[0], attr.t.data_type)
                            self.ranks.setdefault(node.output[0], array.ndim)
        self.graph_outputs = {o.name for o in model.graph.output}

    def type_name(self, tensor: str) -> str | None:
        code = self.types.get(tensor)
        return None if code is None else TYPE_NAMES.get(code, f"type {code}")


def _check_operator(node, opset: int, problems: list[Problem]) -> bool:
    """Domain, support list and opset; True when the node's own checks should go on."""
    onnx = require("onnx", "onnx")
    name = _name(node)
    if node.domain not in ("", "ai.onnx"):
        problems.append(Problem(
            name, node.op_type, f"operator of domain '{node.domain}': TensorRT's ONNX parser "
            "takes only the default ONNX domain without plugins",
            "export with standard ONNX operators (or write a TensorRT plugin)"))
        return False
    if node.op_type in UNSUPPORTED_OPS:
        problems.append(Problem(
            name, node.op_type, f"not supported by the TensorRT {TRT_VERSION} ONNX parser "
            f"(marked N in {SUPPORT_LIST_SOURCE})", "replace it with supported operators"))
        return False
    if node.op_type not in SUPPORTED_OPS:
        problems.append(Problem(
            name, node.op_type, f"not in the TensorRT {TRT_VERSION} ONNX parser's support list "
            f"({SUPPORT_LIST_SOURCE})", "replace it with supported operators"))
        return False
    try:
        onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        problems.append(Problem(
            name, node.op_type, f"not defined at the graph's opset {opset}",
            "export at an opset that defines it"))
        return False
    return True


def _check_types(node, graph: _Graph, problems: list[Problem]) -> None:
    if not node.input or not node.input[0]:
        return
    types, _ = SUPPORTED_OPS[node.op_type]
    found = graph.type_name(node.input[0])
    if found is None or found in types:
        return
    if node.op_type == "DequantizeLinear" and found == "INT32":
        problems.append(Problem(
            _name(node), node.op_type, "dequantizes an int32 tensor (an int32-quantized bias): "
            "TensorRT's DequantizeLinear takes INT8, FP8, FP4 or INT4 only",
            "keep biases float (ONNX Runtime quantize_static: extra_options "
            "{'QuantizeBias': False}); TensorRT fuses a float bias into the int8 convolution"))
    elif node.op_type == "DequantizeLinear" and found == "UINT8":
        problems.append(Problem(
            _name(node), node.op_type, "dequantizes a uint8 tensor: TensorRT's explicit "
            "quantization takes int8 (uint8 only on DLA, behind a parser flag)",
            "quantize to int8 with zero point 0 (QuantType.QInt8, symmetric)"))
    else:
        problems.append(Problem(
            _name(node), node.op_type, f"input '{node.input[0]}' is {found}; the support list "
            f"gives {node.op_type} {', '.join(types)}",
            f"feed it one of {', '.join(types)}"))


def _check_attributes(node, graph: _Graph, problems: list[Problem]) -> None:
    op, attrs, name = node.op_type, _attrs(node), _name(node)

    def refuse(what: str, fix: str) -> None:
        problems.append(Problem(name, op, what, fix))

    if op == "Resize":
        mode = attrs.get("mode", "nearest")
        if mode not in RESIZE_MODES:
            refuse(f"Resize mode '{mode}' is not one TensorRT takes ({', '.join(RESIZE_MODES)})",
                   "use mode 'nearest' or 'linear' (or a ConvTranspose / fused upsampling)")
        coordinate = attrs.get("coordinate_transformation_mode", "half_pixel")
        if coordinate not in RESIZE_COORDINATE_MODES:
            refuse(f"coordinate_transformation_mode '{coordinate}' is not one TensorRT takes "
                   f"({', '.join(RESIZE_COORDINATE_MODES)})", "use one of those modes")
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        if mode == "nearest" and nearest not in RESIZE_NEAREST_MODES:
            refuse(f"nearest_mode '{nearest}' is not one TensorRT takes "
                   f"({', '.join(RESIZE_NEAREST_MODES)})", "use one of those modes")
        if attrs.get("antialias", 0):
            refuse("antialias is set: TensorRT does not support antialiased Resize",
                   "export without antialiasing")
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            refuse(f"keep_aspect_ratio_policy '{policy}': TensorRT takes only 'stretch'",
                   "pass explicit sizes or scales")
        axes = attrs.get("axes")
        scales = node.input[2] if len(node.input) > 2 else ""
        rank = graph.ranks.get(node.input[0])
        if axes is not None and scales and scales not in graph.constants and (
                rank is None or list(axes) != list(range(rank))):
            refuse("axes is not 0..rank-1 while scales is a runtime tensor: TensorRT does not "
                   "take that combination", "drop axes or make scales a constant")
    elif op == "Pad":
        mode = attrs.get("mode", "constant")
        if mode not in PAD_MODES:
            refuse(f"Pad mode '{mode}' is not one this check accepts for TensorRT 10.x "
                   f"({', '.join(PAD_MODES)})", "use constant, reflect or edge padding")
    elif op in ("MaxPool", "AveragePool", "LpPool"):
        kernel = attrs.get("kernel_shape", [])
        if op != "LpPool" and len(kernel) not in (2, 3):
            refuse(f"{len(kernel)}-D pooling: TensorRT pools in 2-D or 3-D only",
                   "pool over 2 or 3 spatial dimensions")
        dilations = attrs.get("dilations", [])
        if any(d != 1 for d in dilations):
            refuse(f"dilations {list(dilations)}: TensorRT takes empty or all-ones dilations "
                   "for pooling", "pool without dilation")
        if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
            refuse("the Indices output is used: TensorRT's MaxPool has no Indices output",
                   "drop the Indices output")
        if attrs.get("auto_pad", "NOTSET") not in AUTO_PAD:
            refuse(f"auto_pad '{attrs['auto_pad']}' is not an ONNX value", "use explicit pads")
    elif op in ("Conv", "ConvTranspose"):
        # The 10.15 list has no restriction for Conv / ConvTranspose (earlier editions said
        # "2D or 3D only; weights must be an initializer"); only the ONNX values are checked.
        if attrs.get("auto_pad", "NOTSET") not in AUTO_PAD:
            refuse(f"auto_pad '{attrs['auto_pad']}' is not an ONNX value", "use explicit pads")


def _constant(graph: _Graph, tensor: str):
    return graph.constants.get(tensor) if tensor else None


def _weight_consumers(node, graph: _Graph) -> list[tuple[Any, int]]:
    """Where the (de)quantized value of ``node`` ends up: through DQ for a QuantizeLinear."""
    found = []
    for consumer, index in graph.consumers.get(node.output[0], []):
        if node.op_type == "QuantizeLinear" and consumer.op_type == "DequantizeLinear":
            found.extend(graph.consumers.get(consumer.output[0], []))
        else:
            found.append((consumer, index))
    return found


def _check_qdq(node, graph: _Graph, problems: list[Problem]) -> None:
    import numpy as np
    op, name, attrs = node.op_type, _name(node), _attrs(node)

    def refuse(what: str, fix: str) -> None:
        problems.append(Problem(name, op, what, fix))

    if len(node.input) < 2 or not node.input[1]:
        refuse("no scale input", "give every QuantizeLinear/DequantizeLinear a scale")
        return
    if op == "DequantizeLinear" and graph.type_name(node.input[0]) in ("INT32", "UINT8"):
        return  # refused by _check_types already; its scale and axis are beside the point
    if attrs.get("block_size", 0):
        refuse("block quantization (block_size): not the int8 form this toolkit exports for "
               "TensorRT", "quantize per tensor or per channel")
    scale = _constant(graph, node.input[1])
    if scale is None:
        refuse(f"scale '{node.input[1]}' is not a graph constant, so it cannot be checked",
               "fold the scale into an initializer")
    else:
        if scale.dtype.kind != "f":
            refuse(f"scale '{node.input[1]}' is {scale.dtype}, not a float type",
                   "store scales as float32")
        elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            refuse(f"scale '{node.input[1]}' has values that are not positive and finite "
                   f"(min {float(np.nanmin(scale)) if scale.size else 'n/a'}): TensorRT requires "
                   "every scale coefficient to be positive", "recalibrate; clamp scales above 0")
    zero_point_name = node.input[2] if len(node.input) > 2 else ""
    zero_point_type = graph.type_name(zero_point_name) if zero_point_name else None
    if not zero_point_name:
        output_type = attrs.get("output_dtype")
        if op == "QuantizeLinear" and output_type is None:
            refuse("no zero point: ONNX then quantizes to uint8, TensorRT to int8, so the graph "
                   "means different things to ONNX Runtime and TensorRT",
                   "add an int8 zero point of 0")
    else:
        zero_point = _constant(graph, zero_point_name)
        if zero_point_type == "UINT8":
            refuse(f"zero point '{zero_point_name}' is uint8: TensorRT's explicit quantization "
                   "takes int8 (uint8 only on DLA, behind the "
                   "kENABLE_UINT8_AND_ASYMMETRIC_QUANTIZATION_DLA parser flag)",
                   "quantize to int8 (QuantType.QInt8) with zero point 0")
        elif op == "QuantizeLinear" and zero_point_type not in QUANTIZED_TYPES:
            refuse(f"zero point '{zero_point_name}' is {zero_point_type}: TensorRT quantizes "
                   "to INT8 here (FP8/INT4/FP4 are not what this toolkit exports)",
                   "use an int8 zero point of 0")
        if zero_point is None:
            refuse(f"zero point '{zero_point_name}' is not a graph constant, so it cannot be "
                   "checked to be 0", "fold the zero point into an initializer")
        elif np.any(zero_point != 0):
            bad = zero_point[zero_point != 0]
            refuse(f"zero point '{zero_point_name}' is not 0 (found {bad.ravel()[:4].tolist()}): "
                   "TensorRT takes only symmetric quantization (all zero points 0)",
                   "quantize symmetrically (ActivationSymmetric / WeightSymmetric)")
        if (scale is not None and zero_point is not None
                and zero_point.size != scale.size):
            refuse(f"zero point has {zero_point.size} values, scale {scale.size}: TensorRT "
                   "requires the same count", "give the zero point the scale's shape")
    if scale is None or scale.size == 1:
        return
    # Per-channel.
    data = node.input[0]
    rank = graph.ranks.get(data)
    axis = int(attrs.get("axis", 1))
    if rank is not None and axis < 0:
        axis += rank
    if scale.ndim != 1:
        refuse(f"per-channel scale of rank {scale.ndim}: TensorRT takes 1-D per-channel scales",
               "use a 1-D scale")
        return
    weight = _constant(graph, data)
    if weight is None and not (op == "DequantizeLinear" and graph.producer.get(data) is not None
                               and graph.producer[data].op_type == "QuantizeLinear"
                               and _constant(graph, graph.producer[data].input[0]) is not None):
        refuse(f"per-channel scale on activation '{data}': TensorRT quantizes activations per "
               "tensor", "quantize activations per tensor")
        return
    if weight is not None and axis < weight.ndim and weight.shape[axis] != scale.size:
        refuse(f"{scale.size} scales for {weight.shape[axis]} channels on axis {axis}",
               "one scale per channel of the quantization axis")
    wanted = {"Conv": 0, "ConvTranspose": 1}
    for consumer, index in _weight_consumers(node, graph):
        if consumer.op_type not in wanted or index != 1:
            refuse(f"per-channel weights feed {consumer.op_type} '{_name(consumer)}' input "
                   f"{index}: this check accepts per-channel weights only for Conv (axis 0) and "
                   "ConvTranspose (axis 1) weights", "quantize that weight per tensor")
        elif axis != wanted[consumer.op_type]:
            refuse(f"per-channel axis {axis} for the weight of {consumer.op_type} "
                   f"'{_name(consumer)}': TensorRT quantizes its output channels, axis "
                   f"{wanted[consumer.op_type]}", f"quantize along axis {wanted[consumer.op_type]}")


def _int64_problems(graph: _Graph, nodes: list, problems: list[Problem]) -> None:
    """int64 tensors that do not end, directly or through shape arithmetic, as shape inputs."""
    shape_types = (7, 9)  # int64 and bool (Equal/Where on shapes)
    memo: dict[str, bool] = {}

    def feeds_shapes(node) -> bool:
        outputs = [o for o in node.output if o]
        return (node.op_type in SHAPE_ARITHMETIC and bool(outputs)
                and all(graph.types.get(o) in shape_types and is_shape(o) for o in outputs))

    def is_shape(tensor: str) -> bool:
        if tensor not in memo:
            memo[tensor] = False  # a cycle (impossible in ONNX) counts as data
            uses = graph.consumers.get(tensor, [])
            memo[tensor] = (tensor not in graph.graph_outputs and bool(uses) and all(
                index in SHAPE_INPUTS.get(consumer.op_type, ()) or feeds_shapes(consumer)
                for consumer, index in uses))
        return memo[tensor]

    for node in nodes:
        for index, tensor in enumerate(node.input):
            if (graph.types.get(tensor) != 7 or index in SHAPE_INPUTS.get(node.op_type, ())
                    or feeds_shapes(node)):
                continue
            problems.append(Problem(
                _name(node), node.op_type, f"input '{tensor}' is an int64 data tensor (int64 is "
                "accepted only as shape input: Reshape shape, Slice starts/ends/axes/steps, Pad "
                "pads, Resize sizes, ...)", "compute in float32; cast int64 only for shapes"))


def _check_interface(model, problems: list[Problem]) -> None:
    initializers = {i.name for i in model.graph.initializer}
    for kind, values in (("graph input", model.graph.input), ("graph output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue  # an old-style initializer listed as input
            tensor_type = value.type.tensor_type
            found = TYPE_NAMES.get(tensor_type.elem_type, f"type {tensor_type.elem_type}")
            if tensor_type.elem_type != 1:
                problems.append(Problem(
                    value.name, kind, f"is {found}, not float32: bundles keep an fp32 interface "
                    "at every precision", "add a Cast to/from float32 at the interface"))
            if not tensor_type.HasField("shape"):
                problems.append(Problem(value.name, kind, "has no shape (unknown rank)",
                                        "export with a static or named-dynamic shape"))
                continue
            for axis, dim in enumerate(tensor_type.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    continue
                if dim.HasField("dim_param") and dim.dim_param:
                    continue
                problems.append(Problem(
                    value.name, kind, f"dimension {axis} is neither fixed nor named",
                    "give every dynamic dimension a name (dynamic_axes) so that an optimization "
                    "profile can address it"))


def check_tensorrt_readiness(model_or_path: Any) -> list["Problem"]:
    """Every reason found why TensorRT 10.x's ONNX parser would refuse this graph (empty list:
    none found). Takes an ``onnx.ModelProto`` or a path to an ``.onnx`` file."""
    onnx = require("onnx", "onnx")
    model = _load(model_or_path)
    problems: list[Problem] = []
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    opset = opsets.get("ai.onnx")
    if opset is None:
        problems.append(Problem("<graph>", "graph", "imports no default-domain opset",
                                "export with a standard ONNX opset"))
        opset = OPSET_MAX
    elif not OPSET_MIN <= opset <= OPSET_MAX:
        problems.append(Problem(
            "<graph>", "graph", f"opset {opset} is outside the range every TensorRT "
            f"{TRT_VERSION} parser takes ({OPSET_MIN} to {OPSET_MAX})",
            f"export at an opset between {OPSET_MIN} and {OPSET_MAX} (this toolkit uses 17)"))
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - fall back to the types the file declares
        inferred = model
    graph = _Graph(inferred)
    nodes = [node for g in _all_graphs(inferred.graph) for node in g.node]
    for node in nodes:
        if not _check_operator(node, opset, problems):
            continue
        _check_types(node, graph, problems)
        _check_attributes(node, graph, problems)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            _check_qdq(node, graph, problems)
    _int64_problems(graph, nodes, problems)
    _check_interface(inferred, problems)
    return problems


def assert_tensorrt_ready(model_or_path: Any, source: str) -> None:
    """Raise ``AtbsnError`` listing every problem ``check_tensorrt_readiness`` finds.

    ``source`` names the graph in the message (e.g. the artifact's path)."""
    problems = check_tensorrt_readiness(model_or_path)
    if not problems:
        return
    lines = [f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''} would stop "
             f"TensorRT {TRT_VERSION}'s ONNX parser (checked against {SUPPORT_LIST_SOURCE}):"]
    lines += [f"  - {problem}" for problem in problems]
    raise AtbsnError("\n".join(lines))

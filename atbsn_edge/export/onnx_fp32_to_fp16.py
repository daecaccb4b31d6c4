"""fp32 ONNX -> fp16 ONNX with fp32 inputs and outputs (precision carried by the graph).

TensorRT 10.12+ deprecates the FP16 builder flag and 11 removes it (strongly typed networks),
so fp16 must be in the graph itself. Weights and every intermediate tensor become fp16; a Cast
after the input and one before the output keep the interface fp32. Resize's ``roi``/``scales``
stay fp32 as the operator requires (onnxconverter-common's converter mishandles exactly this
in these graphs, hence this small dedicated pass).
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..errors import require

_FP32_ONLY_INPUTS = {"Resize": (1, 2)}  # op -> input indices that must stay float32


def onnx_fp32_to_fp16(model: Any) -> Any:
    """Return an fp16 copy of an fp32 ModelProto with a single fp32 input and output."""
    onnx = require("onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    keep = {node.input[i] for node in graph.node for i in _FP32_ONLY_INPUTS.get(node.op_type, ())
            if i < len(node.input) and node.input[i]}
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                                  init.name))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in keep:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
    (graph_in,), (graph_out,) = graph.input, graph.output
    inner_in, inner_out = graph_in.name + "_fp16", graph_out.name + "_fp16"
    for node in graph.node:
        node.input[:] = [inner_in if name == graph_in.name else name for name in node.input]
        node.output[:] = [inner_out if name == graph_out.name else name for name in node.output]
    graph.node.insert(0, helper.make_node("Cast", [graph_in.name], [inner_in],
                                          to=TensorProto.FLOAT16, name="input_to_fp16"))
    graph.node.append(helper.make_node("Cast", [inner_out], [graph_out.name],
                                       to=TensorProto.FLOAT, name="output_to_fp32"))
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)

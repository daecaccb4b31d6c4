"""The constant tensors of an ONNX graph by name: its initializers and its ``Constant`` nodes'
values (the PyTorch exporter writes some constants as nodes), as numpy arrays."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import require


def constant_values(graph: Any) -> dict[str, np.ndarray]:
    """Every initializer of ``graph`` and every ``Constant`` node's ``value``, by the name a
    node reads it under."""
    numpy_helper = require("onnx.numpy_helper", "onnx")
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    values.update({node.output[0]: numpy_helper.to_array(attribute.t)
                   for node in graph.node if node.op_type == "Constant"
                   for attribute in node.attribute if attribute.name == "value"})
    return values

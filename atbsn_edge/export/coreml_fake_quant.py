"""coremltools converters for PyTorch's fake-quantize operators: a learned Q/DQ graph in Core ML.

An int8-ready checkpoint (``python -m atbsn_edge.qat``) traced in its export form
(``quantization.fake_quant.export_form``) holds the same two operators its ONNX export turns
into ``QuantizeLinear``/``DequantizeLinear``. coremltools' PyTorch frontend converts
``quantize_per_tensor``/``dequantize`` but not these, so they are registered here:

- ``fake_quantize_per_tensor_affine`` of an activation: MIL ``quantize`` (int8, zero point 0,
  the learned step) and ``dequantize``, the iOS 17 activation ops;
- ``fake_quantize_per_channel_affine`` of a constant (a weight): its int8 values, rounded as
  ``QuantizeLinear`` rounds (``torch_qat_to_int8_onnx.quantize_linear``, which folds the ONNX
  export's weights too), in a ``constexpr_affine_dequantize``
  (per output channel, zero point 0), the op coremltools writes for its own int8 weights.

Only the symmetric int8 form the toolkit writes is taken (zero point 0, range -128..127);
anything else is refused by name, never converted approximately.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..coreml_mil.package import quiet_coremltools
from ..errors import AtbsnError
from .torch_qat_to_int8_onnx import quantize_linear

QMIN, QMAX = -128, 127
_registered = False


def _symmetric_int8(node: Any, zero_point: Any, qmin: Any, qmax: Any) -> None:
    zeros = np.asarray(zero_point.val)
    if zeros.size == 0 or np.any(zeros != 0) or int(qmin.val) != QMIN or int(qmax.val) != QMAX:
        raise AtbsnError(f"{node.kind} {node.name}: only symmetric int8 (zero point 0, range "
                         f"{QMIN}..{QMAX}) converts to Core ML here; got zero point "
                         f"{zeros.ravel()[:3].tolist()}, range {qmin.val}..{qmax.val}")


def register_fake_quantize_converters() -> None:
    """Register the two converters with coremltools' PyTorch frontend (once per process)."""
    global _registered
    if _registered:
        return
    ct = quiet_coremltools()
    try:  # coremltools' frontend internals, as its own quantization ops use them (9.x)
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.frontend import _utils
        from coremltools.converters.mil.frontend.torch.ops import _get_inputs
        from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op
        constexpr_dequantize = _utils._construct_constexpr_dequant_op
    except (ImportError, AttributeError) as exc:
        raise AtbsnError(f"coremltools {ct.__version__} lacks what the int8-ready Core ML export "
                         f"uses ({exc}); it was written against coremltools 9: pip install "
                         "'coremltools>=9,<10'") from None

    @register_torch_op(override=True)
    def fake_quantize_per_tensor_affine(context: Any, node: Any) -> None:
        x, scale, zero_point, qmin, qmax = _get_inputs(context, node, expected=5)
        _symmetric_int8(node, zero_point, qmin, qmax)
        step = np.float32(scale.val)
        q = mb.quantize(input=x, scale=step, output_dtype="int8", name=f"{node.name}_int8")
        context.add(mb.dequantize(input=q, scale=step, name=node.name))

    @register_torch_op(override=True)
    def fake_quantize_per_channel_affine(context: Any, node: Any) -> None:
        weight, scale, zero_point, axis, qmin, qmax = _get_inputs(context, node, expected=6)
        _symmetric_int8(node, zero_point, qmin, qmax)
        if weight.val is None:
            raise AtbsnError(f"{node.kind} {node.name}: per-channel fake quantization of a "
                             "computed tensor; only constant weights convert to Core ML here")
        steps = np.asarray(scale.val, np.float32)
        zeros = np.zeros(steps.shape, np.int8)
        q = quantize_linear(np.asarray(weight.val, np.float32), steps, zeros, int(axis.val))
        context.add(constexpr_dequantize(q, zeros, steps, axis=int(axis.val), name=node.name),
                    node.name)

    _registered = True

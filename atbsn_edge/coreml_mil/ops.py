"""The ML program ops the exported networks use, computed with numpy.

Two kinds:

- **coremltools' own definitions, reused**: ``pad``, ``slice_by_index``, ``reverse``,
  ``transpose``, ``split``, ``concat``, ``leaky_relu``, ``add``, ``sub``, ``mul``, ``cast`` and
  ``quantize``
  have a ``value_inference`` method in coremltools' op definitions (the numpy code its
  converter folds constants with). The evaluator binds the runtime values to the op's input
  variables for the duration of the call (:func:`bound_values`) and calls that method, so their
  semantics (pad modes, slice masks, split sizes, quantize rounding) are coremltools', not a
  re-reading of the spec.
- **written here**, where coremltools has no value inference: ``conv``, ``conv_transpose``,
  ``max_pool``, ``upsample_nearest_neighbor``, ``pixel_shuffle``, ``dequantize`` and
  ``constexpr_affine_dequantize``. Convolutions accumulate one kernel tap at a time as a
  matrix product (``(C_out x C_in) @ (C_in x H*W)``, BLAS through ``np.tensordot``), which keeps
  memory at one shifted copy of the input.

Every op computes in float32 (or exactly, for data movement) and the evaluator rounds each
output to the op's declared dtype (``evaluator.py`` says why). Any other op type is refused
by name: the evaluator covers what the exported networks use and nothing else.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import AtbsnError


class _Value:
    """Stands in for coremltools' builtin value object (``var._sym_val``): only ``.val``."""

    __slots__ = ("val",)

    def __init__(self, val: Any) -> None:
        self.val = val


def input_vars(op: Any) -> Iterator[Any]:
    """Every input variable of ``op`` (tuple inputs such as concat's ``values`` flattened)."""
    for value in op.inputs.values():
        if isinstance(value, (list, tuple)):
            yield from value
        else:
            yield value


@contextlib.contextmanager
def bound_values(op: Any, env: dict[str, np.ndarray]) -> Iterator[None]:
    """Give ``op``'s non-constant input variables the values computed so far, so that
    coremltools' ``value_inference`` of the op computes on them; unbound afterwards."""
    bound = []
    try:
        for var in input_vars(op):
            if var.name in env and var._sym_val is None:
                var._sym_val = _Value(env[var.name])
                bound.append(var)
        yield
    finally:
        for var in bound:
            var._sym_val = None


def _param(op: Any, env: dict[str, np.ndarray], name: str, default: Any = None) -> Any:
    var = op.inputs.get(name)
    if var is None:
        return default
    if var.val is not None:
        return var.val
    return env[var.name]


def _string(op: Any, name: str, default: str) -> str:
    var = op.inputs.get(name)
    return default if var is None else str(var.val)


def _f32(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


# --- written here ---------------------------------------------------------------------------

def _conv_padding(pad_type: str, pad: Any, size: tuple[int, ...], kernel: tuple[int, ...],
                  strides: tuple[int, ...], dilations: tuple[int, ...]) -> list[tuple[int, int]]:
    if pad_type == "valid":
        return [(0, 0)] * len(size)
    if pad_type == "custom":
        pad = [int(p) for p in pad]
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(len(size))]
    if pad_type in ("same", "same_lower"):
        out = []
        for n, k, s, d in zip(size, kernel, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small = total // 2
            out.append((small, total - small) if pad_type == "same" else (total - small, small))
        return out
    raise AtbsnError(f"conv pad_type {pad_type!r} is not supported by the numpy evaluator")


def _conv_inputs(op: Any, env: dict[str, np.ndarray]) -> tuple:
    """(x, weight, bias, strides, dilations, groups) of a conv or conv_transpose op."""
    x = _f32(_param(op, env, "x"))
    weight = _f32(_param(op, env, "weight"))
    bias = _param(op, env, "bias")
    strides = tuple(int(s) for s in _param(op, env, "strides", (1, 1)))
    dilations = tuple(int(d) for d in _param(op, env, "dilations", (1, 1)))
    return x, weight, bias, strides, dilations, int(_param(op, env, "groups", 1))


def conv(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """2-D convolution, weight ``[C_out, C_in/groups, kH, kW]``, float32 accumulation."""
    x, weight, bias, strides, dilations, groups = _conv_inputs(op, env)
    if x.ndim != 4:
        raise AtbsnError(f"conv {op.name}: only 2-D convolutions are supported (input {x.shape})")
    kh, kw = weight.shape[2:]
    padding = _conv_padding(_string(op, "pad_type", "valid"), _param(op, env, "pad", (0,) * 4),
                            x.shape[2:], (kh, kw), strides, dilations)
    x = np.pad(x, [(0, 0), (0, 0)] + padding)
    n, c_in, h, w = x.shape
    (sh, sw), (dh, dw) = strides, dilations
    ho = (h - (kh - 1) * dh - 1) // sh + 1
    wo = (w - (kw - 1) * dw - 1) // sw + 1
    c_out = weight.shape[0]
    gi, go = c_in // groups, c_out // groups
    out = np.zeros((c_out, n, ho, wo), dtype=np.float32)
    for g in range(groups):
        xg = x[:, g * gi:(g + 1) * gi]
        wg = weight[g * go:(g + 1) * go]
        for ky in range(kh):
            for kx in range(kw):
                tap = xg[:, :, ky * dh:ky * dh + (ho - 1) * sh + 1:sh,
                         kx * dw:kx * dw + (wo - 1) * sw + 1:sw]
                out[g * go:(g + 1) * go] += np.tensordot(wg[:, :, ky, kx], tap, axes=([1], [1]))
    if bias is not None:
        out += _f32(bias)[:, None, None, None]
    return [out.transpose(1, 0, 2, 3)]


def conv_transpose(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """2-D transposed convolution, weight ``[C_in, C_out/groups, kH, kW]`` (MIL's layout)."""
    x, weight, bias, strides, dilations, groups = _conv_inputs(op, env)
    pad_type = _string(op, "pad_type", "valid")
    if x.ndim != 4:
        raise AtbsnError(f"conv_transpose {op.name}: only 2-D is supported (input {x.shape})")
    n, c_in, h, w = x.shape
    kh, kw = weight.shape[2:]
    (sh, sw), (dh, dw) = strides, dilations
    full_h, full_w = (h - 1) * sh + (kh - 1) * dh + 1, (w - 1) * sw + (kw - 1) * dw + 1
    gi, go = c_in // groups, weight.shape[1]
    y = np.zeros((go * groups, n, full_h, full_w), dtype=np.float32)
    for g in range(groups):
        xg = x[:, g * gi:(g + 1) * gi]
        wg = weight[g * gi:(g + 1) * gi]
        for ky in range(kh):
            for kx in range(kw):
                y[g * go:(g + 1) * go, :, ky * dh:ky * dh + (h - 1) * sh + 1:sh,
                  kx * dw:kx * dw + (w - 1) * sw + 1:sw] += np.tensordot(
                    wg[:, :, ky, kx], xg, axes=([0], [1]))
    if pad_type == "custom":
        pad = [int(p) for p in _param(op, env, "pad", (0,) * 4)]
    elif pad_type == "valid":
        pad = [0, 0, 0, 0]
    else:
        raise AtbsnError(f"conv_transpose {op.name}: pad_type {pad_type!r} is not supported "
                         "by the numpy evaluator")
    y = y[:, :, pad[0]:full_h - pad[1], pad[2]:full_w - pad[3]]
    shape = _param(op, env, "output_shape")
    if shape is not None and tuple(int(s) for s in shape[2:]) != y.shape[2:]:
        raise AtbsnError(f"conv_transpose {op.name}: output_shape {tuple(shape)} differs from "
                         f"the padded result {y.shape[2:]}; not supported")
    if bias is not None:
        y = y + _f32(bias)[:, None, None, None]
    return [y.transpose(1, 0, 2, 3)]


def max_pool(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """2-D max pooling (``-inf`` padding; ``ceil_mode`` extends the last window)."""
    x = np.asarray(_param(op, env, "x"))
    kernel = tuple(int(k) for k in _param(op, env, "kernel_sizes"))
    strides = tuple(int(s) for s in _param(op, env, "strides", kernel))
    ceil = bool(_param(op, env, "ceil_mode", False))
    if x.ndim != 4:
        raise AtbsnError(f"max_pool {op.name}: only 2-D pooling is supported (input {x.shape})")
    padding = _conv_padding(_string(op, "pad_type", "valid"), _param(op, env, "pad", (0,) * 4),
                            x.shape[2:], kernel, strides, (1, 1))
    if ceil:
        padding = [(lo, hi + (-(n + lo + hi - k) % s)) for (lo, hi), n, k, s
                   in zip(padding, x.shape[2:], kernel, strides)]
    if any(p for pair in padding for p in pair):
        x = np.pad(x, [(0, 0), (0, 0)] + padding, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))
    windows = windows[:, :, ::strides[0], ::strides[1]]
    return [windows.max(axis=(-2, -1))]


def upsample_nearest_neighbor(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Nearest-neighbour upsampling by integer factors."""
    x = np.asarray(_param(op, env, "x"))
    factors = []
    for name in ("scale_factor_height", "scale_factor_width"):
        factor = float(_param(op, env, name, 1))
        if factor != int(factor) or factor < 1:
            raise AtbsnError(f"upsample_nearest_neighbor {op.name}: non-integer scale {factor} "
                             "is not supported by the numpy evaluator")
        factors.append(int(factor))
    return [np.repeat(np.repeat(x, factors[0], axis=2), factors[1], axis=3)]


def pixel_shuffle(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Depth to space as PyTorch's ``pixel_shuffle``: channel ``c * f^2 + i * f + j`` goes to
    channel ``c``, row offset ``i``, column offset ``j``."""
    x = np.asarray(_param(op, env, "x"))
    f = int(_param(op, env, "upscale_factor"))
    n, c, h, w = x.shape
    if c % (f * f):
        raise AtbsnError(f"pixel_shuffle {op.name}: {c} channels do not split by {f * f}")
    x = x.reshape(n, c // (f * f), f, f, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [x.reshape(n, c // (f * f), h * f, w * f)]


def _per_axis(array: Any, axis: Any, ndim: int) -> np.ndarray:
    """A scale or zero point, scalar or one value per slice along ``axis``, broadcastable."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 0 or array.size == 1:
        return array.reshape(())
    axis = int(axis) % ndim
    shape = [1] * ndim
    shape[axis] = array.size
    return array.reshape(shape)


def _affine(data: Any, scale: Any, zero_point: Any, axis: Any) -> np.ndarray:
    data = np.asarray(data)
    zero = 0.0 if zero_point is None else _per_axis(zero_point, axis, data.ndim)
    return (data.astype(np.float32) - zero) * _per_axis(scale, axis, data.ndim)


def constexpr_affine_dequantize(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Weights stored as int8/uint8: ``(quantized_data - zero_point) * scale`` along ``axis``."""
    return [_affine(_param(op, env, "quantized_data"), _param(op, env, "scale"),
                    _param(op, env, "zero_point"), _param(op, env, "axis", 0))]


def dequantize(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Activations: ``(input - zero_point) * scale`` (iOS 17 ``dequantize``)."""
    return [_affine(_param(op, env, "input"), _param(op, env, "scale"),
                    _param(op, env, "zero_point"), _param(op, env, "axis", 0))]


# --- coremltools' value inference, reused ----------------------------------------------------

def reuse_value_inference(op: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The op's own ``value_inference`` (coremltools' definition) on the bound values."""
    with bound_values(op, env):
        result = op.value_inference()
    if result is None:
        raise AtbsnError(f"{op.op_type} {op.name}: coremltools' value inference gave no value")
    return list(result) if isinstance(result, (tuple, list)) else [result]


OpFunction = Callable[[Any, dict], list]

SUPPORTED_OPS: dict[str, OpFunction] = {
    "conv": conv,
    "conv_transpose": conv_transpose,
    "max_pool": max_pool,
    "upsample_nearest_neighbor": upsample_nearest_neighbor,
    "pixel_shuffle": pixel_shuffle,
    "constexpr_affine_dequantize": constexpr_affine_dequantize,
    "dequantize": dequantize,
    **{name: reuse_value_inference for name in (
        "pad", "slice_by_index", "reverse", "transpose", "split", "concat", "leaky_relu",
        "add", "sub", "mul", "cast", "quantize")},
}
"""Op type -> implementation; ``const`` is read, not computed (its value is in the program)."""


def op_function(op: Any) -> OpFunction:
    """The implementation of ``op``, or a one-line error naming the unknown op."""
    function = SUPPORTED_OPS.get(op.op_type)
    if function is None:
        raise AtbsnError(f"the Core ML numpy evaluator does not implement op '{op.op_type}' "
                         f"({op.name}); it covers {', '.join(sorted(SUPPORTED_OPS))} and const")
    return function

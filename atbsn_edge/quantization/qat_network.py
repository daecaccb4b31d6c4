"""A network's int8 export form with fake quantization: the graph the Q/DQ export writes.

:func:`quantization_aware` wraps a float network (students A/B/C, AT-BSN) without copying its
weights: every :class:`~atbsn_edge.models.layers.Conv` becomes a :class:`QuantizedConv`
(input activation per tensor, weights per output channel) and every decoder stage becomes a
:class:`QuantizedDecoder` computing the export's folded upsampling
(``models/upsample_fusion.py``: a stride-2 transposed convolution of the low-resolution map,
plus a convolution of the skip) from the stage's own 3x3 weights, each of the two inputs and
two weights quantized on its own, their sum in float (or the transposed convolution's output
quantized first, ``sums.SUMS``). Max pooling commutes with a
per-tensor quantization and is left as it is. Points that read the very same tensor (an
encoder's pooled output, read by the next encoder and by a decoder's skip) may share one
quantizer (:func:`shared_input_points`, :meth:`QuantizationAware.share_steps`): the export then
quantizes that map once, before its pool (``export/onnx_pool_quantization.py``), so that the
encoder's convolution writes int8 and the pool runs on it. The input image is quantized exactly (an 8-bit
image's 256 levels, :func:`_image_conv`), wherever a convolution reads it. The export writes a
thin convolution (at most 4 outputs, the output layer) in the form of its four output phases
(``output_phases.py``: the same integers). Every quantized point is named by its module
path (``unet.dec1.conv1.skip``); :meth:`QuantizationAware.ranges` lists the learned steps,
which a checkpoint carries (``metadata["int8_ranges"]``) and :func:`quantization_aware` takes
back.
"""
from __future__ import annotations

import contextvars
import copy
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..models.layers import NEGATIVE_SLOPE, Conv, UpsamplingDecoder
from ..models.upsample_fusion import fold_taps
from .fake_quant import (QMAX, QMIN, ActivationQuantizer, exporting, fake_quantize_weight,
                         pairs_may_saturate, round_ste, split_weight_levels, weight_levels,
                         weight_steps)
from .output_phases import STRIDE, phase_steps, phase_weights, shuffle_phases, takes_phases
from .sums import check_sums, sums_of

RANGES_FORMAT = "int8-symmetric-per-tensor-activations-v2"
#: formats :meth:`QuantizationAware.load_ranges` reads (v1: no offsets)
READABLE_RANGES_FORMATS = ("int8-symmetric-per-tensor-activations-v1", RANGES_FORMAT)


_NETWORK_INPUT: contextvars.ContextVar = contextvars.ContextVar("network_input", default=None)


def _constant(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s values as a new tensor: a constant of a traced graph, not ops on weights."""
    return torch.from_numpy(tensor.detach().cpu().numpy().copy())


def exported_weights(weight: torch.Tensor, axis: int, levels: int, *,
                     phases: bool = False) -> list[torch.Tensor]:
    """What the export writes for ``weight`` (output channels along ``axis``): its per-channel
    fake quantization to ``levels``, as one tensor, or as two whose integers add up to it
    when 8-bit pairs could saturate a CPU without VNNI (:func:`pairs_may_saturate`): two
    convolutions of the same input then compute the same integers on every CPU. With
    ``phases`` (a convolution, ``axis`` 0), each in the stride-2 form of its four output
    phases (``output_phases.py``): the same integers, four times the channels."""
    steps = weight_steps(weight, axis, levels)
    shape = [1] * weight.dim()
    shape[axis] = -1
    q = torch.clamp(torch.round(weight.detach() / steps.reshape(shape)), -levels, levels)
    parts = split_weight_levels(q) if pairs_may_saturate(q, 1 - axis) else (q,)
    if phases:
        if axis != 0:
            raise ValueError("only a convolution's weight (output channels on axis 0) takes "
                             f"the phase form; got axis {axis}")
        parts = tuple(phase_weights(part) for part in parts)
        steps = phase_steps(steps)
    zeros = torch.zeros_like(steps, dtype=torch.int32)
    return [torch.fake_quantize_per_channel_affine(_constant(part * steps.reshape(shape)),
                                                   _constant(steps), zeros, axis, QMIN, QMAX)
            for part in parts]


def _sum_of_convs(conv_fn, x: torch.Tensor, weights: list[torch.Tensor],
                  bias: torch.Tensor | None, **kwargs) -> torch.Tensor:
    """``conv_fn(x, w0, bias) + conv_fn(x, w1) + ...``: one convolution per weight part."""
    out = conv_fn(x, weights[0], bias, **kwargs)
    for weight in weights[1:]:
        out = out + conv_fn(x, weight, None, **kwargs)
    return out


def _image_conv(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor,
                levels: int) -> torch.Tensor:
    """``conv`` of the network's input image (0..255) with ``weight`` quantized per channel to
    ``levels``, the image without loss of an 8-bit image: the graph quantizes ``x - 128`` with
    step 1 (int8 holds -128..127 exactly) and adds ``128 * sum(weight)`` to the bias; zero
    padding becomes padding with -128 before the quantization. A symmetric step on 0..255
    itself would leave 7 bits to the image."""
    if exporting():
        shifted = x - 128.0
        pad = conv._reversed_padding_repeated_twice
        shifted = F.pad(shifted, pad, value=-128.0) if conv.padding_mode == "zeros" \
            else F.pad(shifted, pad, mode=conv.padding_mode)
        shifted = torch.fake_quantize_per_tensor_affine(shifted, 1.0, 0, QMIN, QMAX)
        weights = exported_weights(weight, 0, levels)
        bias = 128.0 * sum(w.detach() for w in weights).sum(dim=(1, 2, 3))
        if conv.bias is not None:
            bias = bias + conv.bias.detach()
        return _sum_of_convs(F.conv2d, shifted, weights, _constant(bias))
    weight = fake_quantize_weight(weight, 0, levels)
    x = round_ste(torch.clamp(x.float(), 0.0, 255.0))
    if conv.padding_mode == "zeros":
        return F.conv2d(x, weight, conv.bias, padding=conv.padding)
    x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
    return F.conv2d(x, weight, conv.bias)


def _conv(conv: nn.Conv2d, quantize: ActivationQuantizer, x: torch.Tensor,
          weight: torch.Tensor, levels: int) -> torch.Tensor:
    """``conv`` on ``quantize(x)`` with another float ``weight``, quantized per output channel
    to ``levels`` (padding mode and bias kept). A replicate pad comes before the quantization,
    so that a DequantizeLinear feeds the Conv directly (the pattern TensorRT fuses); the pad
    commutes with a per-tensor quantization. The network's input image takes
    :func:`_image_conv` instead (``quantize`` unused)."""
    if x is _NETWORK_INPUT.get():
        return _image_conv(conv, x, weight, levels)
    padding = conv.padding
    if conv.padding_mode != "zeros":
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = 0
    if quantize.offset:
        return _offset_conv(conv, quantize, x, weight, levels, padding)
    if exporting():
        if _takes_phases(conv, x, padding):
            weights = exported_weights(weight, 0, levels, phases=True)
            bias = None if conv.bias is None else _constant(phase_steps(conv.bias.detach()))
            return shuffle_phases(_sum_of_convs(F.conv2d, quantize(x), weights, bias,
                                                stride=STRIDE, padding=padding))
        return _sum_of_convs(F.conv2d, quantize(x), exported_weights(weight, 0, levels),
                             conv.bias, padding=padding)
    return F.conv2d(quantize(x), fake_quantize_weight(weight, 0, levels), conv.bias,
                    padding=padding)


def _offset_conv(conv: nn.Conv2d, quantize: ActivationQuantizer, x: torch.Tensor,
                 weight: torch.Tensor, levels: int, padding: int | tuple[int, int]
                 ) -> torch.Tensor:
    """``conv(x)`` where ``quantize`` quantizes ``x - c`` (``c`` its offset): the simulation
    convolves ``q(x - c) + c``; the export convolves ``q(x - c)`` (a DequantizeLinear feeding
    the Conv, as TensorRT fuses it) and adds ``c * conv(1)`` back exactly: ``c x`` the sum of
    each filter in the bias, less, on the border, the taps that fall on the zero padding
    (``c x`` the filters summed over input channels, convolved with a map that is 1 in the
    padding and 0 inside: exactly 0 inside whatever the float type). That map is built from
    the network's input, of the same size (the output convolution is at full resolution).
    A thin convolution (:func:`_takes_phases`) and its border term are both written in the
    form of their output phases, the sum of the two shuffled once."""
    offset = quantize.offset
    if not exporting():
        return F.conv2d(quantize(x) + offset, fake_quantize_weight(weight, 0, levels), conv.bias,
                        padding=padding)
    phases = _takes_phases(conv, x, padding)
    weights = exported_weights(weight, 0, levels)
    total = sum(w.detach() for w in weights)
    bias = offset * total.sum(dim=(1, 2, 3))
    if conv.bias is not None:
        bias = bias + conv.bias.detach()
    border_weight = offset * total.sum(dim=1, keepdim=True)
    stride = 1
    if phases:
        weights = exported_weights(weight, 0, levels, phases=True)
        bias, border_weight, stride = phase_steps(bias), phase_weights(border_weight), STRIDE
    out = _sum_of_convs(F.conv2d, quantize(x), weights, _constant(bias), stride=stride,
                        padding=padding)
    pad = _pair(padding)
    if any(pad):
        image = _NETWORK_INPUT.get()
        if image is None or image.shape[-2:] != x.shape[-2:]:
            raise ValueError("an offset point must read a map of the network input's size; "
                             f"got {tuple(x.shape[-2:])} against "
                             f"{None if image is None else tuple(image.shape[-2:])}")
        outside = F.pad(image[:, :1] * 0.0, (pad[1], pad[1], pad[0], pad[0]), value=1.0)
        out = out - F.conv2d(outside, _constant(border_weight), stride=stride)
    return shuffle_phases(out) if phases else out


def _pair(padding: int | tuple[int, int]) -> tuple[int, int]:
    return (padding, padding) if isinstance(padding, int) else tuple(padding)


def _takes_phases(conv: nn.Conv2d, x: torch.Tensor, padding: int | tuple[int, int]) -> bool:
    """Whether the export writes ``conv`` of ``x`` (zero ``padding``) in the form of its
    output phases (``output_phases.py``)."""
    pad = _pair(padding)
    size = tuple(int(x.shape[-2 + i]) + 2 * pad[i] - conv.kernel_size[i] + 1 for i in range(2))
    return takes_phases(conv, size)


class QuantizedConv(nn.Module):
    """A :class:`Conv` (shared, not copied) with its input and weights fake-quantized; its
    weight has ``weight_levels["input"]`` levels (the point named by its input quantizer)."""

    def __init__(self, conv: Conv) -> None:
        super().__init__()
        self.float_conv = conv
        self.input = ActivationQuantizer()
        self.weight_levels = {"input": 127}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.float_conv
        if conv.blind:
            x = F.pad(x, (0, 0, 2, 0))
        x = _conv(conv.conv, self.input, x, conv.conv.weight, self.weight_levels["input"])
        return F.leaky_relu(x, NEGATIVE_SLOPE) if conv.activation else x


class QuantizedUpsampledConcat(nn.Module):
    """``conv(cat(upsample2x(low), skip))`` as the export computes it, fake-quantized:
    ``ConvTranspose(q(low), q(W_folded)) + conv(q(skip), q(W_skip))``, then activated; the
    two weights have ``weight_levels["low"]`` and ``weight_levels["skip"]`` levels. ``sums``
    (``sums.SUMS``): with ``low`` the transposed convolution's output is quantized too (point
    ``low_out``) before the float skip term is added, with ``both`` the skip term as well
    (``skip_out``)."""

    def __init__(self, conv: Conv, low_channels: int, sums: str = "float") -> None:
        super().__init__()
        self.sums = check_sums(sums)
        self.float_conv = conv
        self.low_channels = low_channels
        self.low = ActivationQuantizer()
        self.skip = ActivationQuantizer()
        if sums in ("low", "both"):
            self.low_out = ActivationQuantizer()
        if sums == "both":
            self.skip_out = ActivationQuantizer()
        self.weight_levels = {"low": 127, "skip": 127}

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        conv = self.float_conv
        weight = conv.conv.weight
        lc = self.low_channels
        folded = fold_taps(fold_taps(weight[:, :lc], 2), 3).transpose(0, 1)
        replicate = conv.conv.padding_mode == "replicate"
        padding = (0, 1) if conv.blind else (3, 3) if replicate else (1, 1)
        if replicate:
            low = F.pad(low, (1, 1, 1, 1), mode="replicate")
        levels = self.weight_levels
        if exporting():
            up = _sum_of_convs(F.conv_transpose2d, self.low(low),
                               exported_weights(folded, 1, levels["low"]), None, stride=2,
                               padding=padding)
        else:
            up = F.conv_transpose2d(self.low(low), fake_quantize_weight(folded, 1, levels["low"]),
                                    stride=2, padding=padding)
        if conv.blind:
            up = up[:, :, :-2, :]
            skip = F.pad(skip, (0, 0, 2, 0))
        out = _conv(conv.conv, self.skip, skip, weight[:, lc:], levels["skip"])
        if self.sums in ("low", "both"):
            up = self.low_out(up)
        if self.sums == "both":
            out = self.skip_out(out)
        return F.leaky_relu(up + out, NEGATIVE_SLOPE)


class QuantizedDecoder(nn.Module):
    """A decoder stage in its export form, every convolution fake-quantized."""

    def __init__(self, stage: UpsamplingDecoder, sums: str = "float") -> None:
        super().__init__()
        convs = stage.convs()
        self.conv_names = tuple(name for name, _ in convs)
        self.add_module(self.conv_names[0], QuantizedUpsampledConcat(
            convs[0][1], stage.low_channels, sums))
        for name, conv in convs[1:]:
            self.add_module(name, QuantizedConv(conv))

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = getattr(self, self.conv_names[0])(low, skip)
        for name in self.conv_names[1:]:
            x = getattr(self, name)(x)
        return x


class QuantizationAware(nn.Module):
    """``network`` (kept as ``self.network``, its weights trained in place) with fake int8
    quantization at every point of the Q/DQ export; ``self.quantized`` runs it. Weights have
    ``weight_bits`` bits (8, or 7: no saturation on CPUs without VNNI, see ``fake_quant``),
    one width for all or one per point. ``sums``: how each decoder adds its two terms
    (``sums.SUMS``, :class:`QuantizedUpsampledConcat`)."""

    def __init__(self, network: nn.Module, weight_bits: int | Mapping[str, int] = 8,
                 sums: str = "float") -> None:
        super().__init__()
        self.network = network
        self.sums = check_sums(sums)
        self.shared: dict[str, str] = {}  # point -> the point whose quantizer it uses
        self.quantized = _replace(copy.copy(network), network, sums)
        self.set_weight_bits(weight_bits)

    def _weight_points(self) -> dict[str, tuple[nn.Module, str]]:
        """Every weight by the point of the activation it multiplies (``unet.enc1.conv1.input``,
        ``unet.dec1.conv1.skip``): the module holding its levels and the key there."""
        return {f"{name}.{key}": (module, key) for name, module in self.quantized.named_modules()
                if isinstance(module, (QuantizedConv, QuantizedUpsampledConcat))
                for key in module.weight_levels}

    def weight_bits(self) -> dict[str, int]:
        """The width of every weight (7 or 8 bits), by point."""
        return {point: 8 if module.weight_levels[key] == weight_levels(8) else 7
                for point, (module, key) in sorted(self._weight_points().items())}

    def set_weight_bits(self, bits: int | Mapping[str, int]) -> None:
        """Quantize every weight to ``bits`` (7 or 8), or each to ``bits[point]`` (a mapping
        naming every point of :meth:`weight_bits`)."""
        points = self._weight_points()
        if not isinstance(bits, Mapping):
            bits = {point: bits for point in points}
        missing = sorted(set(points) - set(bits))
        extra = sorted(set(bits) - set(points))
        if missing or extra:
            raise ValueError(f"weight bits do not fit this network: missing {missing[:3]}, "
                             f"unknown {extra[:3]}")
        for point, (module, key) in points.items():
            module.weight_levels[key] = weight_levels(int(bits[point]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        token = _NETWORK_INPUT.set(x)  # the convolutions of the image quantize it exactly
        try:
            return self.quantized(x)
        finally:
            _NETWORK_INPUT.reset(token)

    def offset_points(self) -> set[str]:
        """The points that may have an offset: the output convolution's input
        (:func:`output_point`), where it is worth most and where the export's border term,
        built from the network input, has the map's size."""
        point = output_point(self)
        return {point} if point else set()

    def border_terms(self) -> int:
        """How many float border terms the export writes: one per offset point whose
        convolution zero-pads (a replicate pad comes before the quantization instead)."""
        convs = {f"{name}.input": module.float_conv.conv
                 for name, module in self.quantized.named_modules()
                 if isinstance(module, QuantizedConv)}
        return sum(1 for name, q in self.quantizers().items() if q.offset
                   and convs[name].padding_mode == "zeros" and any(convs[name].padding))

    def quantizers(self) -> dict[str, ActivationQuantizer]:
        """Every activation quantizer by the module path of the point it quantizes (a shared
        one once, by the point that owns it)."""
        return {name: module for name, module
                in self.quantized.named_modules(remove_duplicate=False)
                if isinstance(module, ActivationQuantizer) and name not in self.shared}

    def share_steps(self, shared: Mapping[str, str]) -> None:
        """Let each point of ``shared`` use the quantizer (step and offset) of the point it
        maps to (:func:`shared_input_points`); the owner's step stands."""
        own = self.quantizers()
        for point, owner in sorted(shared.items()):
            if self.shared.get(point) == owner:
                continue
            if point not in own or owner not in own or point == owner:
                raise ValueError(f"int8 ranges share the step of {point!r} with {owner!r}, "
                                 "which this network does not have as two points")
            parent, _, attr = point.rpartition(".")
            setattr(self.quantized.get_submodule(parent), attr, own[owner])
            self.shared[point] = owner
            del own[point]

    def ranges(self) -> dict:
        """The learned steps, as a checkpoint's ``metadata["int8_ranges"]`` carries them."""
        quantizers = sorted(self.quantizers().items())
        shared = {"shared": dict(sorted(self.shared.items()))} if self.shared else {}
        return {"format": RANGES_FORMAT, "weight_bits": self.weight_bits(),
                "sums": self.sums,
                "steps": {name: q.step for name, q in quantizers},
                "offsets": {name: q.offset for name, q in quantizers if q.offset}, **shared}

    def load_ranges(self, ranges: Mapping) -> None:
        """Set the steps from a checkpoint's ``int8_ranges`` (every point must be named) and
        the weight widths (``weight_bits``; ranges written before they existed mean 8) and
        the offsets (``offsets``, by point; none in the first format) and the points that
        share a step (``shared``, :meth:`share_steps`; none in ranges written before)."""
        if ranges.get("format") not in READABLE_RANGES_FORMATS:
            raise ValueError(f"int8 ranges of format {ranges.get('format')!r}; this version "
                             f"reads {', '.join(READABLE_RANGES_FORMATS)}")
        self.set_weight_bits(ranges.get("weight_bits", 8))
        self.share_steps(ranges.get("shared") or {})
        steps = ranges.get("steps", {})
        quantizers = self.quantizers()
        missing = sorted(set(quantizers) - set(steps))
        extra = sorted(set(steps) - set(quantizers))
        if missing or extra:
            raise ValueError(f"int8 ranges do not fit this network: missing {missing[:3]}, "
                             f"unknown {extra[:3]}")
        offsets = ranges.get("offsets") or {}
        unknown = sorted(set(offsets) - self.offset_points()) if offsets else []
        if unknown:
            raise ValueError(f"int8 ranges have offsets for points that take none {unknown[:3]} "
                             "(only the output convolution's input does)")
        for name, quantizer in quantizers.items():
            quantizer.set_step(float(steps[name]))
            quantizer.offset = float(offsets.get(name, 0.0))

    def observe(self, on: bool = True) -> None:
        """Switch every quantizer to observing (pass-through, keeping samples) or back."""
        for quantizer in self.quantizers().values():
            quantizer.observing = on

    # the training loop's checkpoint hooks (training.optimise, models.checkpoint)
    def checkpoint_view(self) -> tuple[nn.Module, dict]:
        """What a checkpoint holds: the float network, and the ranges as metadata."""
        return self.network, {"int8_ranges": self.ranges()}

    def restore_checkpoint(self, payload: Mapping) -> None:
        """Resume: the float weights and the ranges of a checkpoint written by this class."""
        self.network.load_state_dict(payload["state_dict"])
        self.load_ranges((payload.get("metadata") or {})["int8_ranges"])


def _replace(shell: nn.Module, source: nn.Module, sums: str) -> nn.Module:
    """``shell`` (a shallow copy of ``source``) with its children swapped for quantized ones."""
    shell._modules = dict(shell._modules)
    shell._parameters = dict(shell._parameters)
    for name, child in source.named_children():
        if isinstance(child, UpsamplingDecoder):
            shell._modules[name] = QuantizedDecoder(child, sums)
        elif isinstance(child, Conv):
            shell._modules[name] = QuantizedConv(child)
        elif isinstance(child, nn.Conv2d):
            raise ValueError(f"{type(source).__name__}.{name} is a bare Conv2d; quantization-"
                             "aware training knows the project's Conv and decoder stages only")
        else:
            shell._modules[name] = _replace(copy.copy(child), child, sums) \
                if list(child.children()) \
                else child
    return shell


def _point_order(wrapped: QuantizationAware, stride: int) -> tuple[list[str], set[str]]:
    """The weight points in the order the network runs them, and those that multiply the
    network's input image; found by running ``wrapped`` once on a ``stride`` square."""
    points = {id(module): name for name, module in wrapped.quantized.named_modules()
              if isinstance(module, (QuantizedConv, QuantizedUpsampledConcat))}
    image_points: set[str] = set()
    order: list[str] = []
    x = _probe(wrapped, stride)

    def record(module: nn.Module, inputs: tuple) -> None:
        name = points[id(module)]
        order.append(f"{name}.input" if isinstance(module, QuantizedConv) else f"{name}.low")
        if isinstance(module, QuantizedConv) and inputs[0] is x:
            image_points.add(f"{name}.input")
        if isinstance(module, QuantizedUpsampledConcat) and inputs[1] is x:
            image_points.add(f"{name}.skip")

    _run_once(wrapped, x, [m for m in wrapped.quantized.modules() if id(m) in points], record)
    return order, image_points


def _probe(wrapped: QuantizationAware, stride: int) -> torch.Tensor:
    """A black ``stride`` square on ``wrapped``'s device: the input of a network's dry run."""
    return torch.zeros(1, 3, stride, stride, device=next(wrapped.parameters()).device)


def _run_once(wrapped: QuantizationAware, x: torch.Tensor, modules: list[nn.Module],
              record) -> None:
    """Run ``wrapped`` once on ``x`` (no gradient) with ``record(module, inputs)`` called
    before each of ``modules`` runs."""
    hooks = [m.register_forward_pre_hook(record) for m in modules]
    try:
        with torch.no_grad():
            wrapped(x)
    finally:
        for hook in hooks:
            hook.remove()


def shared_input_points(wrapped: QuantizationAware, stride: int = 32) -> dict[str, str]:
    """The points whose quantizers read the very same tensor as an earlier one, each mapped to
    the first (in the order the network runs): student C's ``unet.dec2.conv1.skip`` ->
    ``unet.enc2.conv1.input`` and so on, the pooled output of each encoder but the last. One
    quantizer for both costs nothing in the graph (the map is quantized once) and lets the
    export quantize before the pool. Found by running ``wrapped`` once on a ``stride`` square."""
    names = {id(q): name for name, q in wrapped.quantizers().items()}
    seen: list[tuple[torch.Tensor, str]] = []  # kept alive, so that identity means the tensor
    shared: dict[str, str] = {}

    def record(module: nn.Module, inputs: tuple) -> None:
        name = names[id(module)]
        owner = next((first for tensor, first in seen if tensor is inputs[0]), None)
        if owner is None:
            seen.append((inputs[0], name))
        elif owner != name:
            shared[name] = owner

    _run_once(wrapped, _probe(wrapped, stride),
              [q for q in wrapped.quantized.modules() if id(q) in names], record)
    return shared


def output_point(wrapped: QuantizationAware, stride: int = 32) -> str | None:
    """The input point of the network's output convolution (run last), the one an offset is
    worth most at: student C's 96 -> 3 convolution reads the image at full resolution, and its
    per-tensor int8 cost 0.59 of the 0.70 dB the int8-ready student lost at strength 1
    (docs/export.md). None when the last convolution is a decoder's upsampling (student A),
    which takes no offset."""
    order, image_points = _point_order(wrapped, stride)
    plain = {f"{name}.input" for name, module in wrapped.quantized.named_modules()
             if isinstance(module, QuantizedConv)}
    return order[-1] if order[-1] in plain and order[-1] not in image_points else None


def portable_weight_bits(wrapped: QuantizationAware, stride: int = 32) -> dict[str, int]:
    """The weight widths that run alike on every CPU at the least cost in quality: 8 bits for
    the weights that multiply the network's input image (the export splits them exactly, see
    :func:`exported_weights`) and for its output convolution (the last one run: one weight
    per colour, where a level is worth most), 7 bits for every other weight (never saturate,
    so no split and no extra cost). With quantized sums (the fast form) only the output
    convolution keeps 8 bits, so that no weight is split: a split image convolution costs an
    extra convolution and a float addition at full resolution (5 ms of student C's 99 on an
    AVX-512 EPYC), and a split skip term of ``both`` would add in float before its
    quantization. Found by running ``wrapped`` once on a ``stride`` square."""
    order, image_points = _point_order(wrapped, stride)
    eight = {order[-1]} if wrapped.sums != "float" else image_points | {order[-1]}
    return {point: 8 if point in eight else 7 for point in wrapped.weight_bits()}


def quantization_aware(network: nn.Module, ranges: Mapping | None = None,
                       weight_bits: int | Mapping[str, int] = 8,
                       sums: str = "float") -> QuantizationAware:
    """``network`` wrapped for quantization-aware training with ``weight_bits``-bit weights,
    or for export with ``ranges`` (which carry their own weight width, say how the
    decoders' sums are quantized, :func:`sums_of`, and which points share a step)."""
    if ranges is not None:
        sums = sums_of(ranges)
    wrapped = QuantizationAware(network, weight_bits, sums)
    if ranges is not None:
        wrapped.load_ranges(ranges)
    return wrapped

"""A network's int8 export form with fake quantization: the graph the Q/DQ export writes.

:func:`quantization_aware` wraps a float network (students A/B/C, AT-BSN) without copying its
weights: every :class:`~atbsn_edge.models.layers.Conv` becomes a :class:`QuantizedConv`
(input activation per tensor, weights per output channel) and every decoder stage becomes a
:class:`QuantizedDecoder` computing the export's folded upsampling
(``models/upsample_fusion.py``: a stride-2 transposed convolution of the low-resolution map,
plus a convolution of the skip) from the stage's own 3x3 weights, each of the two inputs and
two weights quantized on its own, their sum left in float. Max pooling commutes with a
per-tensor quantization and is left as it is. The input image is quantized exactly (an 8-bit
image's 256 levels, :func:`_image_conv`), wherever a convolution reads it. Every quantized point is named by its module
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
from .fake_quant import QMAX, QMIN, ActivationQuantizer, exporting, fake_quantize_weight, round_ste

RANGES_FORMAT = "int8-symmetric-per-tensor-activations-v1"


_NETWORK_INPUT: contextvars.ContextVar = contextvars.ContextVar("network_input", default=None)


def _constant(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s values as a new tensor: a constant of a traced graph, not ops on weights."""
    return torch.from_numpy(tensor.detach().cpu().numpy().copy())


def _image_conv(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``conv`` of the network's input image (0..255), quantized without loss of an 8-bit
    image: the graph quantizes ``x - 128`` with step 1 (int8 holds -128..127 exactly) and
    adds ``128 * sum(weight)`` to the bias; zero padding becomes padding with -128 before the
    quantization. A symmetric step on 0..255 itself would leave 7 bits to the image."""
    if exporting():
        shifted = x - 128.0
        pad = conv._reversed_padding_repeated_twice
        shifted = F.pad(shifted, pad, value=-128.0) if conv.padding_mode == "zeros" \
            else F.pad(shifted, pad, mode=conv.padding_mode)
        shifted = torch.fake_quantize_per_tensor_affine(shifted, 1.0, 0, QMIN, QMAX)
        bias = 128.0 * weight.detach().sum(dim=(1, 2, 3))
        if conv.bias is not None:
            bias = bias + conv.bias.detach()
        return F.conv2d(shifted, weight, _constant(bias))
    x = round_ste(torch.clamp(x.float(), 0.0, 255.0))
    if conv.padding_mode == "zeros":
        return F.conv2d(x, weight, conv.bias, padding=conv.padding)
    x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
    return F.conv2d(x, weight, conv.bias)


def _conv(conv: nn.Conv2d, quantize: ActivationQuantizer, x: torch.Tensor,
          weight: torch.Tensor) -> torch.Tensor:
    """``conv`` on ``quantize(x)`` with another weight (padding mode and bias kept). A
    replicate pad comes before the quantization, so that a DequantizeLinear feeds the Conv
    directly (the pattern TensorRT fuses); the pad commutes with a per-tensor quantization.
    The network's input image takes :func:`_image_conv` instead (``quantize`` unused)."""
    if x is _NETWORK_INPUT.get():
        return _image_conv(conv, x, weight)
    if conv.padding_mode == "zeros":
        return F.conv2d(quantize(x), weight, conv.bias, padding=conv.padding)
    x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
    return F.conv2d(quantize(x), weight, conv.bias)


class QuantizedConv(nn.Module):
    """A :class:`Conv` (shared, not copied) with its input and weights fake-quantized."""

    def __init__(self, conv: Conv) -> None:
        super().__init__()
        self.float_conv = conv
        self.input = ActivationQuantizer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.float_conv
        if conv.blind:
            x = F.pad(x, (0, 0, 2, 0))
        x = _conv(conv.conv, self.input, x, fake_quantize_weight(conv.conv.weight, 0))
        return F.leaky_relu(x, NEGATIVE_SLOPE) if conv.activation else x


class QuantizedUpsampledConcat(nn.Module):
    """``conv(cat(upsample2x(low), skip))`` as the export computes it, fake-quantized:
    ``ConvTranspose(q(low), q(W_folded)) + conv(q(skip), q(W_skip))``, then activated."""

    def __init__(self, conv: Conv, low_channels: int) -> None:
        super().__init__()
        self.float_conv = conv
        self.low_channels = low_channels
        self.low = ActivationQuantizer()
        self.skip = ActivationQuantizer()

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        conv = self.float_conv
        weight = conv.conv.weight
        lc = self.low_channels
        folded = fold_taps(fold_taps(weight[:, :lc], 2), 3).transpose(0, 1)
        replicate = conv.conv.padding_mode == "replicate"
        padding = (0, 1) if conv.blind else (3, 3) if replicate else (1, 1)
        if replicate:
            low = F.pad(low, (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(self.low(low), fake_quantize_weight(folded, 1), stride=2,
                                padding=padding)
        if conv.blind:
            up = up[:, :, :-2, :]
            skip = F.pad(skip, (0, 0, 2, 0))
        out = _conv(conv.conv, self.skip, skip, fake_quantize_weight(weight[:, lc:], 0))
        return F.leaky_relu(up + out, NEGATIVE_SLOPE)


class QuantizedDecoder(nn.Module):
    """A decoder stage in its export form, every convolution fake-quantized."""

    def __init__(self, stage: UpsamplingDecoder) -> None:
        super().__init__()
        convs = stage.convs()
        self.conv_names = tuple(name for name, _ in convs)
        self.add_module(self.conv_names[0], QuantizedUpsampledConcat(convs[0][1], stage.low_channels))
        for name, conv in convs[1:]:
            self.add_module(name, QuantizedConv(conv))

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = getattr(self, self.conv_names[0])(low, skip)
        for name in self.conv_names[1:]:
            x = getattr(self, name)(x)
        return x


class QuantizationAware(nn.Module):
    """``network`` (kept as ``self.network``, its weights trained in place) with fake int8
    quantization at every point of the Q/DQ export; ``self.quantized`` runs it."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.quantized = _replace(copy.copy(network), network)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        token = _NETWORK_INPUT.set(x)  # the convolutions of the image quantize it exactly
        try:
            return self.quantized(x)
        finally:
            _NETWORK_INPUT.reset(token)

    def quantizers(self) -> dict[str, ActivationQuantizer]:
        """Every activation quantizer by the module path of the point it quantizes."""
        return {name: module for name, module in self.quantized.named_modules()
                if isinstance(module, ActivationQuantizer)}

    def ranges(self) -> dict:
        """The learned steps, as a checkpoint's ``metadata["int8_ranges"]`` carries them."""
        return {"format": RANGES_FORMAT,
                "steps": {name: q.step for name, q in sorted(self.quantizers().items())}}

    def load_ranges(self, ranges: Mapping) -> None:
        """Set the steps from a checkpoint's ``int8_ranges`` (every point must be named)."""
        if ranges.get("format") != RANGES_FORMAT:
            raise ValueError(f"int8 ranges of format {ranges.get('format')!r}; this version "
                             f"reads {RANGES_FORMAT!r}")
        steps = ranges.get("steps", {})
        quantizers = self.quantizers()
        missing = sorted(set(quantizers) - set(steps))
        extra = sorted(set(steps) - set(quantizers))
        if missing or extra:
            raise ValueError(f"int8 ranges do not fit this network: missing {missing[:3]}, "
                             f"unknown {extra[:3]}")
        for name, quantizer in quantizers.items():
            quantizer.set_step(float(steps[name]))

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


def _replace(shell: nn.Module, source: nn.Module) -> nn.Module:
    """``shell`` (a shallow copy of ``source``) with its children swapped for quantized ones."""
    shell._modules = dict(shell._modules)
    shell._parameters = dict(shell._parameters)
    for name, child in source.named_children():
        if isinstance(child, UpsamplingDecoder):
            shell._modules[name] = QuantizedDecoder(child)
        elif isinstance(child, Conv):
            shell._modules[name] = QuantizedConv(child)
        elif isinstance(child, nn.Conv2d):
            raise ValueError(f"{type(source).__name__}.{name} is a bare Conv2d; quantization-"
                             "aware training knows the project's Conv and decoder stages only")
        else:
            shell._modules[name] = _replace(copy.copy(child), child) if list(child.children()) \
                else child
    return shell


def quantization_aware(network: nn.Module, ranges: Mapping | None = None) -> QuantizationAware:
    """``network`` wrapped for quantization-aware training (or export with ``ranges``)."""
    wrapped = QuantizationAware(network)
    if ranges is not None:
        wrapped.load_ranges(ranges)
    return wrapped

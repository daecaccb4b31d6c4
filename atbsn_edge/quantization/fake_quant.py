"""Symmetric int8 fake quantization as the exported Q/DQ graph computes it.

``QuantizeLinear``/``DequantizeLinear`` with zero point 0 and the int8 range [-128, 127] (the
form TensorRT's explicit quantization, ONNX Runtime and OpenVINO all take): activations per
tensor with a learned step (LSQ, Esser et al., ICLR 2020, its step parametrised in the log
domain so that Adam moves it by relative amounts), weights per output channel with the step
``max|w| / 127`` that ONNX Runtime's and NNCF's symmetric weight quantization use, or with 7-bit
weights ``max|w| / 63`` (still int8 in the graph, values within [-63, 63]): CPUs without VNNI
add pairs of u8 x s8 products in 16-bit registers, which saturate with full 8-bit weights
(OpenVINO's documented saturation issue; NNCF's ``overflow_fix`` is the same remedy). Rounding is
to nearest even, as ``QuantizeLinear`` rounds, with a straight-through gradient.

Under ``torch.onnx.export`` the same numbers are written with PyTorch's fake-quantize
operators, which the exporter turns into ``QuantizeLinear``/``DequantizeLinear`` pairs
(activations here, weights in ``qat_network.exported_weights``). :func:`export_form` writes
the same operators for another tracer (the Core ML export's ``torch.jit.trace``, whose
converter turns them into ``quantize``/``dequantize``, ``export/coreml_fake_quant.py``).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator

import torch
from torch import nn

QMIN, QMAX = -128, 127
MIN_STEP = 1e-8
#: weight widths a checkpoint may ask for: 8 (levels -127..127) or 7 (-63..63, no saturation
#: on CPUs without VNNI)
WEIGHT_BITS = (7, 8)


def weight_levels(bits: int) -> int:
    """The largest weight magnitude in steps for ``bits``-bit symmetric weights (127 or 63)."""
    if bits not in WEIGHT_BITS:
        raise ValueError(f"weight bits {bits!r}: valid are {', '.join(map(str, WEIGHT_BITS))}")
    return 2 ** (bits - 1) - 1


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest even, gradient passed straight through."""
    return (torch.round(x) - x).detach() + x


_EXPORT_FORM: contextvars.ContextVar = contextvars.ContextVar("export_form", default=False)


def exporting() -> bool:
    """Whether the network is being traced for export (``torch.onnx.export``, or inside
    :func:`export_form`): the quantizers then write PyTorch's fake-quantize operators."""
    return torch.onnx.is_in_onnx_export() or _EXPORT_FORM.get()


@contextlib.contextmanager
def export_form() -> Iterator[None]:
    """Run (trace) the quantization-aware network as the export writes it, outside
    ``torch.onnx.export``: the graph of fake-quantize operators that Core ML's converter reads."""
    token = _EXPORT_FORM.set(True)
    try:
        yield
    finally:
        _EXPORT_FORM.reset(token)


def weight_steps(weight: torch.Tensor, axis: int, levels: int = 127) -> torch.Tensor:
    """Per-channel steps ``max|w| / levels`` along ``axis`` (no gradient flows into them)."""
    dims = [d for d in range(weight.dim()) if d != axis]
    return (weight.detach().abs().amax(dim=dims) / float(levels)).clamp_min(MIN_STEP)


def fake_quantize_weight(weight: torch.Tensor, axis: int = 0, levels: int = 127) -> torch.Tensor:
    """``weight`` through per-channel symmetric int8 along ``axis`` (the output channels),
    ``levels`` steps either side of 0 (127: 8 bits, 63: 7 bits), for training and simulation.
    The export writes the same integers as int8 Q/DQ (``qat_network.exported_weights``); they
    never pass ``levels``, so its clamp at -128/127 is inert."""
    steps = weight_steps(weight, axis, levels)
    shape = [1] * weight.dim()
    shape[axis] = -1
    steps = steps.reshape(shape)
    return round_ste(torch.clamp(weight / steps, -levels, levels)) * steps


def pairs_may_saturate(q: torch.Tensor, in_axis: int) -> bool:
    """Whether integer weights ``q`` can saturate a CPU without VNNI: it multiplies u8
    activations (0..255) by s8 weights and adds adjacent input channels in pairs in int16
    (``vpmaddubsw``), which overflows when two same-sign weights of a pair add up to more than
    128 steps (255 x 129 > 32767). 7-bit weights (at most 63) never do."""
    q = q.movedim(in_axis, 0)
    if q.shape[0] % 2:
        q = torch.cat([q, torch.zeros_like(q[:1])])
    a, b = q[0::2], q[1::2]
    same_sign = (a * b) > 0
    return bool(((a + b).abs() > 128)[same_sign].any())


def split_weight_levels(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights ``q`` (|q| <= 127) as two halves ``a + b == q``, |a|, |b| <= 64: two
    convolutions of one input whose pair sums (at most 255 x 128) fit in int16."""
    b = torch.div(q, 2, rounding_mode="floor")
    return q - b, b


def best_step(samples: torch.Tensor, candidates: int = 100) -> float:
    """The per-tensor step with the least squared quantization error on ``samples``: the
    learned step's starting point (the max-abs step wastes levels on rare outliers)."""
    x = samples.detach().float().flatten()
    peak = float(x.abs().max())
    if peak == 0.0:
        return 1.0
    best, best_error = peak / 127.0, math.inf
    for fraction in torch.linspace(0.02, 1.0, candidates).tolist():
        step = peak * fraction / 127.0
        error = float(((torch.clamp(torch.round(x / step), QMIN, QMAX) * step - x) ** 2).mean())
        if error < best_error:
            best, best_error = step, error
    return best


class ActivationQuantizer(nn.Module):
    """Per-tensor symmetric int8 fake quantization of an activation, with a learned step.

    While ``observing`` it passes its input through unchanged and keeps a sample of it (for
    :func:`best_step`); :meth:`start_from_observations` then sets the step.

    ``offset`` (0 unless set) is a constant subtracted from the input before the quantization;
    the point's convolution adds it back exactly (``qat_network._conv``): a map that is
    nearly one-signed (a LeakyReLU output: 11% of student C's output input is negative, none
    below -9, up to 252 above 0) then uses all 256 levels of the symmetric int8 instead of
    half of them, with the zero point still 0.
    """

    def __init__(self, step: float = 1.0) -> None:
        super().__init__()
        self.log_step = nn.Parameter(torch.tensor(math.log(step)))
        self.offset = 0.0
        self.observing = False
        self._observed: list[torch.Tensor] = []

    @property
    def step(self) -> float:
        """The quantization step: ``exp(log_step)``."""
        return float(self.log_step.detach().exp())

    def set_step(self, step: float) -> None:
        """Set the step to ``step`` (at least :data:`MIN_STEP`)."""
        with torch.no_grad():
            self.log_step.fill_(math.log(max(step, MIN_STEP)))

    def start_from_observations(self, centred: bool = False) -> float:
        """Set the step from what was observed (least squared error) and stop observing;
        a quantizer that saw nothing (the input image's, quantized exactly) keeps its step.
        ``centred``: first set :attr:`offset` to the middle of the observed range, and the
        step for what is left after subtracting it."""
        if self._observed:
            samples = torch.cat(self._observed)
            if centred:
                self.offset = float(samples.max() + samples.min()) / 2.0
            self.set_step(best_step(samples - self.offset))
        self._observed.clear()
        self.observing = False
        return self.step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x - offset`` fake-quantized (what the convolution reads); while observing,
        ``x - offset`` unquantized (and ``x`` is what is kept)."""
        if self.observing:
            flat = x.detach().float().flatten()
            keep = flat[torch.randint(0, flat.numel(), (min(flat.numel(), 200_000),))]
            self._observed.append(keep.cpu())
            return x - self.offset if self.offset else x
        if self.offset:
            x = x - self.offset
        if exporting():
            return torch.fake_quantize_per_tensor_affine(x, self.step, 0, QMIN, QMAX)
        # LSQ gradient scale: 1 / sqrt(elements per sample x QMAX)
        grad_scale = 1.0 / math.sqrt(max(x[0].numel(), 1) * QMAX)
        log_step = self.log_step * grad_scale + (self.log_step * (1 - grad_scale)).detach()
        step = log_step.exp().clamp_min(MIN_STEP)
        x32 = x.float()
        return (round_ste(torch.clamp(x32 / step, QMIN, QMAX)) * step).to(x.dtype)

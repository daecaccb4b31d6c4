"""A thin convolution (few output channels) as one over its four output phases: an exact
export rewrite.

A CPU's int8 convolution kernels compute output channels in blocks of 16 (AVX-512 VNNI and
AMX lanes), so a 3x3 convolution 96 -> 3 at full resolution (student C's output layer) fills
3 of 16 lanes: in OpenVINO it ran at 61 GMAC/s against about 400 for the wide layers
(docs/profiling.md). Its output pixel ``(2i + a, 2j + b)`` reads input rows ``2i + a - p`` to
``2i + a - p + k - 1``, so the same numbers come from one convolution of stride 2 with a
``(k + 1) x (k + 1)`` kernel (taps ``a..a+k-1``, ``b..b+k-1`` set, the others zero) and
``4 x`` the output channels, one per phase, then ``pixel_shuffle(., 2)`` (ONNX
``DepthToSpace``, mode CRD: channel ``c * 4 + a * 2 + b``). The integers multiplied and summed
are the same, so int8 results are identical; 12 of 16 lanes are filled.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

#: the most output channels a convolution may have to be rewritten: four phases of each
#: still fit one block of 16
MAX_OUT_CHANNELS = 4
PHASES = 4  # a 2 x 2 pixel shuffle
STRIDE = 2  # of the phase convolution
_PLAIN: contextvars.ContextVar[bool] = contextvars.ContextVar("plain_thin_convs", default=False)


@contextlib.contextmanager
def plain_thin_convolutions() -> Iterator[None]:
    """Within it, exports write thin convolutions as they are (``benchmarks/output_phases.py``
    times the two forms)."""
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def takes_phases(conv: nn.Conv2d, output_size: tuple[int, int]) -> bool:
    """Whether ``conv`` (giving ``output_size``) is rewritten: at most ``MAX_OUT_CHANNELS``
    outputs, stride and dilation 1, one group, a kernel wider than one pixel, and an even
    output (the network's stride makes every tile's output even); never inside
    :func:`plain_thin_convolutions`."""
    height, width = output_size
    return (not _PLAIN.get() and conv.out_channels <= MAX_OUT_CHANNELS and conv.groups == 1
            and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
            and max(conv.kernel_size) > 1 and height % 2 == 0 and width % 2 == 0)


def phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (out, in, kh, kw) as the stride-2 weight (4 x out, in, kh + 1, kw + 1) of
    the four output phases, in ``pixel_shuffle``'s channel order ``c * 4 + a * 2 + b``."""
    out_ch, in_ch, kh, kw = weight.shape
    phases = weight.new_zeros(out_ch, 2, 2, in_ch, kh + 1, kw + 1)
    for a in range(2):
        for b in range(2):
            phases[:, a, b, :, a:a + kh, b:b + kw] = weight
    return phases.reshape(out_ch * PHASES, in_ch, kh + 1, kw + 1)


def phase_steps(steps: torch.Tensor) -> torch.Tensor:
    """Per-output-channel values (steps, biases) of the phase weight: each repeated 4 times."""
    return steps.repeat_interleave(PHASES)


def shuffle_phases(phases: torch.Tensor) -> torch.Tensor:
    """The full-resolution map of the phase convolution's output (a convolution of stride
    ``STRIDE`` with :func:`phase_weights`, the original's padding and :func:`phase_steps` of
    its bias)."""
    return F.pixel_shuffle(phases, 2)

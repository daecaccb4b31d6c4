"""Export-friendly building blocks of the AT-BSN family.

Every shift is written with a static ``F.pad`` and a negative-index slice, never with
shape arithmetic, so that ONNX, coremltools and TensorRT see clean graphs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NEGATIVE_SLOPE = 0.1


class Conv(nn.Module):
    """3x3 convolution + LeakyReLU(0.1) (unless ``activation`` is False); ``blind`` restricts
    it to rows <= the output row.

    The authors' blind convolution adds a zero row at the top, convolves with zero padding 1
    and drops the last row. Padding two rows on top and none below, then convolving without
    vertical padding, computes exactly the same numbers with one pad and no slice.
    """

    def __init__(self, in_ch: int, out_ch: int, *, bias: bool = True, blind: bool = False,
                 padding_mode: str = "zeros", activation: bool = True) -> None:
        super().__init__()
        if blind and padding_mode != "zeros":
            raise ValueError("a blind convolution pads with zeros")
        self.blind = blind
        self.activation = activation
        padding = (0, 1) if blind else 1
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=padding, bias=bias,
                              padding_mode=padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blind:
            x = F.pad(x, (0, 0, 2, 0))
        x = self.conv(x)
        return F.leaky_relu(x, NEGATIVE_SLOPE) if self.activation else x


class Pool(nn.Module):
    """2x2 max pooling; ``blind`` shifts the map down one row first (zero row on top)."""

    def __init__(self, blind: bool = False) -> None:
        super().__init__()
        self.blind = blind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blind:
            x = shift_down(x, 1)
        return F.max_pool2d(x, 2)


def shift_down(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Move the map ``rows`` rows down: zeros enter at the top, the last rows are dropped."""
    if rows == 0:
        return x
    return F.pad(x, (0, 0, rows, 0))[:, :, :-rows, :]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class UpsamplingDecoder(nn.Module):
    """A decoder stage: ``convs`` applied in order to ``cat(upsample2x(low), skip)``.

    Subclasses register their convolutions under the authors' names and list them in
    ``conv_names``; ``low_channels`` is the number of channels of the map that is upsampled.
    ``atbsn_edge.models.upsample_fusion`` rewrites such a stage for export.
    """

    conv_names: tuple[str, ...]
    low_channels: int

    def convs(self) -> list[tuple[str, Conv]]:
        """(name, convolution) pairs in the order they run."""
        return [(name, getattr(self, name)) for name in self.conv_names]

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((upsample2x(low), skip), dim=1)
        for _, conv in self.convs():
            x = conv(x)
        return x

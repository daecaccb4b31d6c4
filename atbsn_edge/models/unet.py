"""The five-pooling UNet shared by AT-BSN (blind, 96 outputs) and student C (3 outputs)."""
from __future__ import annotations

import torch
from torch import nn

from .layers import Conv, Pool, UpsamplingDecoder


class EncoderStage(nn.Module):
    """One convolution (``conv1``), optionally followed by a max pool."""

    def __init__(self, in_ch: int, out_ch: int, *, blind: bool, pool: bool) -> None:
        super().__init__()
        self.conv1 = Conv(in_ch, out_ch, blind=blind)
        self.pool = Pool(blind) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv1(x))


class DecoderStage(UpsamplingDecoder):
    """Two convolutions (``conv1``, ``conv2``) on the upsampled decoder map and the skip map."""

    conv_names = ("conv1", "conv2")

    def __init__(self, low_ch: int, skip_ch: int, mid_ch: int, out_ch: int, *,
                 blind: bool) -> None:
        super().__init__()
        self.low_channels = low_ch
        self.conv1 = Conv(low_ch + skip_ch, mid_ch, blind=blind)
        self.conv2 = Conv(mid_ch, out_ch, blind=blind)


class UNet(nn.Module):
    """The AT-BSN UNet: 48 encoder channels, 96 decoder channels, five poolings.

    With ``blind=True`` every convolution and pool sees only rows at or above its output row,
    so the output at row r depends on input rows <= r. Input H and W: multiples of 32.
    """

    stride = 32

    def __init__(self, in_ch: int = 3, out_ch: int = 3, *, blind: bool = False,
                 width: int = 48) -> None:
        super().__init__()
        w, w2 = width, 2 * width
        self.intro = Conv(in_ch, w, blind=blind)
        self.enc1 = EncoderStage(w, w, blind=blind, pool=True)
        self.enc2 = EncoderStage(w, w, blind=blind, pool=True)
        self.enc3 = EncoderStage(w, w, blind=blind, pool=True)
        self.enc4 = EncoderStage(w, w, blind=blind, pool=True)
        self.enc5 = EncoderStage(w, w, blind=blind, pool=True)
        self.enc6 = EncoderStage(w, w, blind=blind, pool=False)
        self.dec5 = DecoderStage(w, w, w2, w2, blind=blind)
        self.dec4 = DecoderStage(w2, w, w2, w2, blind=blind)
        self.dec3 = DecoderStage(w2, w, w2, w2, blind=blind)
        self.dec2 = DecoderStage(w2, w, w2, w2, blind=blind)
        self.dec1 = DecoderStage(w2, in_ch, w2, out_ch, blind=blind)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x1 = self.enc1(self.intro(image))
        x2 = self.enc2(x1)
        x3 = self.enc3(x2)
        x4 = self.enc4(x3)
        x = self.enc6(self.enc5(x4))
        x = self.dec5(x, x4)
        x = self.dec4(x, x3)
        x = self.dec3(x, x2)
        x = self.dec2(x, x1)
        return self.dec1(x, image)

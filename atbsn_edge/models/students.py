"""Non-blind students distilled from AT-BSN: A and B (two poolings, replicate padding), C."""
from __future__ import annotations

import torch
from torch import nn

from .layers import Conv, Pool, UpsamplingDecoder
from .unet import UNet


class StudentC(nn.Module):
    """Student C: the AT-BSN unet without blind spots, 3 outputs (about 1.00 M parameters)."""

    stride = 32

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.unet = UNet(3, 3, blind=False, width=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)


def _add_convs(stage: nn.Module, channels: list[int]) -> tuple[str, ...]:
    """Register bias-free, replicate-padded convolutions named ``conv`` or ``conv1..convN``."""
    pairs = list(zip(channels[:-1], channels[1:]))
    names = ("conv",) if len(pairs) == 1 else tuple(f"conv{i + 1}" for i in range(len(pairs)))
    for name, (cin, cout) in zip(names, pairs):
        stage.add_module(name, Conv(cin, cout, bias=False, padding_mode="replicate"))
    return names


class _Stage(nn.Module):
    """An encoder stage of students A and B: its convolutions, then optionally a max pool."""

    def __init__(self, channels: list[int], *, pool: bool) -> None:
        super().__init__()
        self._names = _add_convs(self, channels)
        self.pool = Pool() if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._names:
            x = getattr(self, name)(x)
        return self.pool(x)


class _DecoderStage(UpsamplingDecoder):
    """A decoder stage of students A and B on ``cat(upsample2x(low), skip)``."""

    def __init__(self, low_channels: int, channels: list[int]) -> None:
        super().__init__()
        self.low_channels = low_channels
        self.conv_names = _add_convs(self, channels)


class _TwoPoolUNet(nn.Module):
    """Wiring shared by students A and B: enc1 (pool), enc2 (pool), enc3, dec2, dec1.

    The authors zero-pad the upsampled map to the skip's size before concatenation; that is a
    no-op for inputs whose sides are multiples of 4, which is all this module accepts.
    """

    stride = 4

    def __init__(self, enc1: list[int], enc2: list[int], enc3: list[int], dec2: list[int],
                 dec1: list[int]) -> None:
        super().__init__()
        self.enc1 = _Stage(enc1, pool=True)
        self.enc2 = _Stage(enc2, pool=True)
        self.enc3 = _Stage(enc3, pool=False)
        self.dec2 = _DecoderStage(enc3[-1], dec2)
        self.dec1 = _DecoderStage(dec2[-1], dec1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x1 = self.enc1(image)
        x = self.enc3(self.enc2(x1))
        return self.dec1(self.dec2(x, x1), image)


class StudentA(_TwoPoolUNet):
    """Student A: one convolution per stage (about 0.13 M parameters)."""

    def __init__(self) -> None:
        super().__init__([3, 48], [48, 48], [48, 48], [96, 96], [99, 3])


class StudentB(_TwoPoolUNet):
    """Student B: three convolutions per encoder stage, four per decoder stage (about 0.86 M)."""

    def __init__(self) -> None:
        super().__init__([3, 48, 48, 48], [48, 48, 48, 48], [48, 96, 96, 48],
                         [96, 96, 96, 96, 96], [99, 96, 96, 96, 3])

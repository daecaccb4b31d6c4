"""Non-blind students distilled from AT-BSN: A and B (two poolings, replicate padding), C."""
from __future__ import annotations

import torch
from torch import nn

from .layers import Conv, Pool, upsample2x
from .unet import UNet


class StudentC(nn.Module):
    """Student C: the AT-BSN unet without blind spots, 3 outputs (about 1.00 M parameters)."""

    stride = 32

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.unet = UNet(3, 3, blind=False, width=width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)


class _Stage(nn.Module):
    """A chain of bias-free, replicate-padded convolutions named ``conv`` or ``conv1..convN``."""

    def __init__(self, channels: list[int], *, pool: bool) -> None:
        super().__init__()
        pairs = list(zip(channels[:-1], channels[1:]))
        names = ["conv"] if len(pairs) == 1 else [f"conv{i + 1}" for i in range(len(pairs))]
        for name, (cin, cout) in zip(names, pairs):
            self.add_module(name, Conv(cin, cout, bias=False, padding_mode="replicate"))
        self._names = names
        self.pool = Pool() if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._names:
            x = getattr(self, name)(x)
        return self.pool(x)


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
        self.dec2 = _Stage(dec2, pool=False)
        self.dec1 = _Stage(dec1, pool=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x1 = self.enc1(image)
        x = self.enc3(self.enc2(x1))
        x = self.dec2(torch.cat((upsample2x(x), x1), dim=1))
        return self.dec1(torch.cat((upsample2x(x), image), dim=1))


class StudentA(_TwoPoolUNet):
    """Student A: one convolution per stage (about 0.13 M parameters)."""

    def __init__(self) -> None:
        super().__init__([3, 48], [48, 48], [48, 48], [96, 96], [99, 3])


class StudentB(_TwoPoolUNet):
    """Student B: three convolutions per encoder stage, four per decoder stage (about 0.86 M)."""

    def __init__(self) -> None:
        super().__init__([3, 48, 48, 48], [48, 48, 48, 48], [48, 96, 96, 48],
                         [96, 96, 96, 96, 96], [99, 96, 96, 96, 3])

"""AT-BSN: the asymmetric, tunable blind-spot meta-teacher."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..holes import check_hole
from .layers import NEGATIVE_SLOPE, shift_down
from .unet import UNet

DEFAULT_INFER_HOLE = 3
DEFAULT_TRAIN_HOLE = 9


def hole_to_shift(hole_size: int) -> int:
    """Rows of shift ``k = (b + 1) // 2`` for hole size ``b``; the blind square is 2k - 1 wide.
    Hole sizes are 0 to ``holes.MAX_HOLE`` (``ValueError`` otherwise)."""
    return (check_hole(hole_size) + 1) // 2


def _rot90(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(2, 3).flip(3)


def _rot270(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(2, 3).flip(2)


def _rot180(x: torch.Tensor) -> torch.Tensor:
    return x.flip(2).flip(3)


class ATBSN(nn.Module):
    """Blind unet over four orientations, a per-call shift of ``(b + 1) // 2`` rows, a 1x1 head.

    ``forward(x, hole_size=b)`` picks the blind-spot size per call (default: ``hole_size``
    given at construction). Non-square inputs are handled by running the 0/180 and 90/270
    orientation pairs separately, which equals the authors' four-in-one batch for squares.
    """

    stride = 32

    def __init__(self, hole_size: int = DEFAULT_INFER_HOLE, width: int = 48) -> None:
        super().__init__()
        hole_to_shift(hole_size)
        self.hole_size = hole_size
        self.unet = UNet(3, 2 * width, blind=True, width=width)
        channels = 8 * width
        self.nin_A = nn.Conv2d(channels, channels, 1)
        self.nin_B = nn.Conv2d(channels, 2 * width, 1)
        self.nin_C = nn.Conv2d(2 * width, 3, 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Blind unet outputs in the four rotated frames (0, 90, 180, 270 degrees).

        They do not depend on the hole size: multi-teacher distillation computes them once.
        """
        upright = self.unet(torch.cat((x, _rot180(x)), dim=0))
        sideways = self.unet(torch.cat((_rot90(x), _rot270(x)), dim=0))
        f0, f180 = upright.chunk(2, dim=0)
        f90, f270 = sideways.chunk(2, dim=0)
        return f0, f90, f180, f270

    def head(self, features: tuple[torch.Tensor, ...], hole_size: int) -> torch.Tensor:
        """Shift each rotated feature map by the hole size, rotate back, apply the 1x1 head."""
        k = hole_to_shift(hole_size)
        f0, f90, f180, f270 = (shift_down(f, k) for f in features)
        x = torch.cat((f0, _rot270(f90), _rot180(f180), _rot90(f270)), dim=1)
        return self.mix(x)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 head on the stacked, shifted branches: nin_A, nin_B (LeakyReLU), nin_C."""
        return self._after_nin_a(F.leaky_relu(self.nin_A(x), NEGATIVE_SLOPE))

    def _after_nin_a(self, x: torch.Tensor) -> torch.Tensor:
        """The head past its first layer: nin_B (LeakyReLU), nin_C."""
        return self.nin_C(F.leaky_relu(self.nin_B(x), NEGATIVE_SLOPE))

    def upright(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The four rotated feature maps rotated back and stacked: B x 4C x H x W.

        Shifting a rotated map down equals shifting the rotated-back map right (90), up (180)
        or left (270), so the rotations can be paid once for all hole sizes.
        """
        f0, f90, f180, f270 = features
        return torch.cat((f0, _rot270(f90), _rot180(f180), _rot90(f270)), dim=1)

    def project(self, upright: torch.Tensor) -> torch.Tensor:
        """``nin_A``'s weights applied to each branch of :meth:`upright`'s stack separately
        (no bias): B x 4C' x H x W, one C'-channel block per branch.

        A 1x1 convolution commutes with shifting (zeros map to zeros), so
        ``nin_A(shifted stack) = bias + sum of the shifted projections``: the head's largest
        layer, hole-independent this way, runs once for every hole size.
        """
        groups = 4
        per_branch = self.nin_A.weight.shape[1] // groups
        blocks = self.nin_A.weight.split(per_branch, dim=1)  # each C' x C/4 x 1 x 1
        return F.conv2d(upright, torch.cat(blocks, dim=0), groups=groups)

    def head_from_projection(self, projection: torch.Tensor, hole_size: int) -> torch.Tensor:
        """The output at ``hole_size`` from :meth:`project`'s blocks; equals :meth:`head`."""
        k = hole_to_shift(hole_size)
        p0, p90, p180, p270 = projection.chunk(4, dim=1)
        if k:  # in place: these maps are large and the adds memory-bound
            x = F.pad(p0[:, :, :-k, :], (0, 0, k, 0))   # 0: down
            x[:, :, :, k:] += p90[:, :, :, :-k]          # 90: right
            x[:, :, :-k, :] += p180[:, :, k:, :]         # 180: up
            x[:, :, :, :-k] += p270[:, :, :, k:]         # 270: left
        else:
            x = p0 + p90 + p180 + p270
        x += self.nin_A.bias.view(1, -1, 1, 1).to(x.dtype)
        return self._after_nin_a(F.leaky_relu(x, NEGATIVE_SLOPE, inplace=True))

    def forward(self, x: torch.Tensor, hole_size: int | None = None) -> torch.Tensor:
        return self.head(self.features(x), self.hole_size if hole_size is None else hole_size)


class FixedHole(nn.Module):
    """AT-BSN with its hole size frozen, so that ``forward(x)`` is a plain function to export."""

    def __init__(self, network: ATBSN, hole_size: int) -> None:
        super().__init__()
        hole_to_shift(hole_size)
        self.network = network
        self.hole_size = hole_size
        self.stride = network.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x, hole_size=self.hole_size)

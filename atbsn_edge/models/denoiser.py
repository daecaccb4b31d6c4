"""The network as users call it: any input size, reflect-padded to the stride, cropped after."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .atbsn import FixedHole, hole_to_shift
from .registry import Architecture


def pad_reflect_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of an NCHW tensor by reflection up to multiples of ``multiple``.

    Reflection is repeated when the pad is larger than the image (tiny inputs); a side of one
    pixel is replicated.
    """
    for dim in (2, 3):
        need = -x.shape[dim] % multiple
        while need > 0:
            size = x.shape[dim]
            step = min(need, size - 1) if size > 1 else need
            pad = (0, 0, 0, step) if dim == 2 else (0, step, 0, 0)
            x = F.pad(x, pad, mode="reflect" if size > 1 else "replicate")
            need -= step
    return x


class Denoiser(nn.Module):
    """A loaded network with its metadata; ``forward`` accepts any H x W (and batch > 1).

    Input and output are float32 NCHW RGB on the 0..255 scale. For AT-BSN ``hole_size``
    chooses the blind spot per call (default: the checkpoint's inference hole size).
    """

    def __init__(self, network: nn.Module, architecture: Architecture,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.network = network
        self.architecture = architecture
        self.metadata = dict(metadata or {})
        self.stride = architecture.stride

    @property
    def default_hole(self) -> int | None:
        """The hole size used when none is given (None for students)."""
        if not self.architecture.tunable_hole:
            return None
        return int(self.metadata.get("infer_hole", getattr(self.network, "hole_size", 3)))

    def resolve_hole(self, hole_size: int | None) -> int | None:
        """Validate a requested hole size against this network; None means the default."""
        if hole_size is None:
            return self.default_hole
        if not self.architecture.tunable_hole:
            raise ValueError(f"{self.architecture.name} has no tunable blind spot; "
                             f"drop the hole size (given {hole_size})")
        hole_to_shift(hole_size)
        return hole_size

    def core(self, hole_size: int | None = None) -> nn.Module:
        """The bare network as a one-argument module (hole fixed), for export and tiling.

        Its input sides must be multiples of ``stride``.
        """
        hole = self.resolve_hole(hole_size)
        return self.network if hole is None else FixedHole(self.network, hole)

    def forward(self, x: torch.Tensor, hole_size: int | None = None) -> torch.Tensor:
        """Denoise ``x``, an N x 3 x H x W float tensor of the network's own dtype (float32 unless
        converted) on 0..255; anything else is a ValueError saying how to convert it."""
        if not isinstance(x, torch.Tensor):
            hint = (" (a numpy H x W x 3 image: torch.from_numpy(image).permute(2, 0, 1)[None], "
                    "or atbsn_edge.pipeline.open_tiled for numpy images)"
                    if type(x).__module__ == "numpy" else "")
            raise ValueError(f"expected an N x 3 x H x W torch tensor (float32, 0..255), got a "
                             f"{type(x).__name__}{hint}")
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"expected an N x 3 x H x W tensor (H, W at least 1), got shape "
                             f"{tuple(x.shape)}")
        weight = next(self.network.parameters(), None)
        dtype = weight.dtype if weight is not None else torch.float32
        if x.dtype != dtype:
            scale = (" (uint8 values are on 0..255 already: no division by 255)"
                     if x.dtype == torch.uint8 else "")
            raise ValueError(f"expected a {str(dtype).replace('torch.', '')} tensor (RGB on "
                             f"0..255) like the network's weights, got {x.dtype}: convert it "
                             f"with x.to({dtype}){scale}")
        h, w = x.shape[-2:]
        out = self.core(hole_size)(pad_reflect_to_multiple(x, self.stride))
        return out[:, :, :h, :w]

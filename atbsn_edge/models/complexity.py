"""Multiply-accumulates of a network, counted with forward hooks on its (transposed)
convolutions (the AT-BSN family has no other multiplying layers worth counting)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_macs(model: nn.Module, x: torch.Tensor, **kwargs: Any) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ``x``.

    A convolution costs (output elements) x (input channels per group) x (kernel taps); a
    transposed convolution (input elements) x (output channels per group) x (kernel taps).
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        taps = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() * module.out_channels // module.groups * taps
        else:
            total += output.numel() * module.in_channels // module.groups * taps

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model(x, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return total

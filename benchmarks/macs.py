"""Parameters and multiply-accumulates of every registered network, counted with forward hooks
on the convolutions (the networks have no other multiplying layers worth counting).

    python benchmarks/macs.py --size 512
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

from atbsn_edge.models.registry import ARCHITECTURES


def count_macs(model: nn.Module, x: torch.Tensor, **kwargs) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ``x`` (convolutions)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    x = torch.zeros(1, 3, args.size, args.size)
    rows = []
    for arch in ARCHITECTURES.values():
        model = arch.build().eval()
        kwargs = {"hole_size": 3} if arch.tunable_hole else {}
        rows.append((arch.name, sum(p.numel() for p in model.parameters()), count_macs(model, x, **kwargs)))
    teacher = rows[0][2]
    print(f"MACs of one {args.size}x{args.size} RGB image (batch 1)")
    print("| network | parameters | GMACs | vs AT-BSN |")
    print("|---|---|---|---|")
    for name, params, macs in rows:
        print(f"| {name} | {params / 1e6:.2f} M | {macs / 1e9:.1f} | {macs / teacher:.3f} |")


if __name__ == "__main__":
    main()

"""Parameters and multiply-accumulates of every registered network, as trained (PyTorch) and
as exported (each decoder's upsampling folded into its first convolution,
``atbsn_edge.models.upsample_fusion``).

    python benchmarks/macs.py --size 512
"""
from __future__ import annotations


import torch

from atbsn_edge.models.atbsn import FixedHole
from atbsn_edge.cli import new_parser
from atbsn_edge.models.complexity import count_macs
from atbsn_edge.models.registry import ARCHITECTURES
from atbsn_edge.models.upsample_fusion import fuse_upsampling


def main() -> None:
    from atbsn_edge.arguments import positive_multiple_of_32

    parser = new_parser("macs.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--size", type=positive_multiple_of_32, default=512,
                        help="square input side, a multiple of 32 (the networks' stride)")
    args = parser.parse_args()
    x = torch.zeros(1, 3, args.size, args.size)
    rows = []
    for arch in ARCHITECTURES.values():
        network = arch.build().eval()
        model = FixedHole(network, 3) if arch.tunable_hole else network
        exported, _ = fuse_upsampling(model)
        rows.append((arch.name, sum(p.numel() for p in network.parameters()),
                     count_macs(model, x), count_macs(exported, x)))
    teacher = rows[0][2]
    print(f"MACs of one {args.size}x{args.size} RGB image (batch 1)")
    print("| network | parameters | GMACs | vs AT-BSN | GMACs exported (upsampling fused) |")
    print("|---|---|---|---|---|")
    for name, params, macs, fused in rows:
        print(f"| {name} | {params / 1e6:.2f} M | {macs / 1e9:.1f} | {macs / teacher:.3f} | "
              f"{fused / 1e9:.1f} |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

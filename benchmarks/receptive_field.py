"""Measure each network's effective receptive field and the tiled-vs-whole seam error.

For every network (a checkpoint, or He-initialised weights when none is given):
1. the gradient of one output pixel with respect to the input, on a real-content image; the
   effective receptive field is the square (side 2r + 1) holding 99% / 99.9% of its mass;
2. the maximum absolute difference between tiled and whole-image output on a 1000 x 700
   image at tile 512 and several overlaps (the number the tiler's default must keep <= 0.5).

    python benchmarks/receptive_field.py --checkpoint atbsn_edge/assets/demo_atbsn.pt
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from atbsn_edge.arguments import comma_list, non_negative_int
from atbsn_edge.cli import new_parser
from atbsn_edge.models import load_checkpoint
from atbsn_edge.models.denoiser import Denoiser
from atbsn_edge.models.registry import ARCHITECTURES, get_architecture
from atbsn_edge.profiling.machine import describe_cpu
from atbsn_edge.tiling import TileSpec, denoise_tiled
from atbsn_edge.training import init_weights


def test_image(height: int = 700, width: int = 1000) -> np.ndarray:
    """A real photograph (scikit-image's astronaut) resized, with mild Gaussian noise."""
    from skimage import data, transform

    image = transform.resize(data.astronaut(), (height, width), preserve_range=True)
    noisy = image + np.random.default_rng(0).normal(0, 8, image.shape)
    return np.clip(noisy, 0, 255).astype(np.float32)


def erf_radius(model: Denoiser, image: np.ndarray, hole: int | None) -> tuple[int, int]:
    """Chebyshev radii holding 99% and 99.9% of |d output(centre) / d input|."""
    size = 256
    crop = image[:size, :size].transpose(2, 0, 1).copy()
    x = torch.from_numpy(crop)[None].requires_grad_(True)
    model.core(hole)(x)[0, :, size // 2, size // 2].sum().backward()
    grad = x.grad[0].abs().sum(0).numpy()
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.maximum(np.abs(yy - size // 2), np.abs(xx - size // 2))
    mass = np.bincount(radius.ravel(), grad.ravel()).cumsum() / grad.sum()
    return int(np.searchsorted(mass, 0.99)), int(np.searchsorted(mass, 0.999))


def architecture_arg(text: str) -> str:
    """argparse type: a registered architecture's name."""
    try:
        return get_architecture(text).name
    except ValueError as exc:   # "unknown architecture 'x'; valid: atbsn, student_a, ..."
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("receptive_field.py", __doc__)
    parser.add_argument("--checkpoint", nargs="*", default=[], help="checkpoints to measure")
    parser.add_argument("--he-init", nargs="*", default=[], type=architecture_arg,
                        help="architectures to measure with He-initialised random weights: "
                             + ", ".join(ARCHITECTURES))
    parser.add_argument("--overlaps", default="64,128,192",
                        type=comma_list(non_negative_int, "non-negative integers (tile overlaps)",
                                        "64,128"))
    args = parser.parse_args(argv)
    models = [(str(p), load_checkpoint(p)) for p in args.checkpoint]
    image = test_image()
    for name in args.he_init:
        torch.manual_seed(0)
        network = get_architecture(name).build()
        init_weights(network)
        models.append((f"{name} (He init)", Denoiser(network.eval(), get_architecture(name))))
    print(f"CPU: {describe_cpu()}; {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    overlaps = args.overlaps
    print("| network | hole | ERF r99 (side) | ERF r99.9 (side) | "
          + " | ".join(f"seam max @ overlap {o}" for o in overlaps) + " |")
    print("|---|---|---|---|" + "---|" * len(overlaps))
    for label, model in models:
        hole = model.default_hole
        r99, r999 = erf_radius(model, image, hole)
        with torch.no_grad():
            whole = model(torch.from_numpy(image.transpose(2, 0, 1).copy())[None])[0]
            whole = whole.numpy().transpose(1, 2, 0)
            core = model.core(hole)
            errors = []
            for overlap in overlaps:
                started = time.perf_counter()
                tiled = denoise_tiled(image, lambda b: core(torch.from_numpy(b)).numpy(),
                                      TileSpec(512, 512, overlap, batch=2, stride=model.stride))
                errors.append(f"{np.abs(tiled - whole).max():.3f} ({time.perf_counter() - started:.0f} s)")
        print(f"| {label} | {hole} | {r99} ({2 * r99 + 1}) | {r999} ({2 * r999 + 1}) | "
              + " | ".join(errors) + " |", flush=True)


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

"""Zoomed crops of noisy | NL-means | student | clean for the README, PSNR in each label.

For each noisy/clean pair it denoises with a checkpoint (default: the bundled demo model) and
with OpenCV's ``fastNlMeansDenoisingColored`` at one strength (default h = 4, the best single
strength on the Nam pairs, ``benchmarks/classical_baseline.py``), and writes
``OUT/quality-NAME.png``: the same zoomed window of all four (the most detailed window of the
noisy image unless ``--crop X,Y,W,H``), each panel labelled with its PSNR against clean over
the whole image. The student runs at the strength ``denoise`` applies (``--strength``, default
the model's own), the blend ``noisy + s * (network - noisy)``.

    python benchmarks/quality_pictures.py --noisy pairs/10_noisy.png pairs/11_noisy.png \\
        --clean pairs/10_clean.png pairs/11_clean.png --out docs/images
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from atbsn_edge.compare import Crop, write_comparison
from atbsn_edge.imageio import read_image
from atbsn_edge.metrics import psnr
from atbsn_edge.strength import strength_arg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noisy", nargs="+", required=True)
    parser.add_argument("--clean", nargs="+", required=True)
    parser.add_argument("--checkpoint", help="default: the bundled demo model")
    parser.add_argument("--nlmeans-h", type=float, default=4.0)
    parser.add_argument("--crop", type=Crop.parse, help="X,Y,W,H (default: the most detailed 128x128)")
    parser.add_argument("--zoom", type=int, default=3)
    parser.add_argument("--strength", type=strength_arg,
                        help="the student's strength (default: the model's own, else 1)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the pictures")
    args = parser.parse_args()
    if len(args.noisy) != len(args.clean):
        parser.error("give one --clean per --noisy")

    from atbsn_edge.assets import default_checkpoint
    from atbsn_edge.models.checkpoint import load_checkpoint
    from atbsn_edge.strength import blend_with_input, describe_strength, model_strength

    model = load_checkpoint(args.checkpoint or default_checkpoint())
    strength = model_strength(model.metadata) if args.strength is None else args.strength
    args.out.mkdir(parents=True, exist_ok=True)
    for noisy_path, clean_path in zip(args.noisy, args.clean):
        noisy = read_image(noisy_path).rgb.astype(np.float32)
        clean = read_image(clean_path).rgb.astype(np.float32)
        bgr = np.ascontiguousarray(noisy[:, :, ::-1]).astype(np.uint8)
        nlmeans = cv2.fastNlMeansDenoisingColored(bgr, None, args.nlmeans_h, args.nlmeans_h,
                                                  7, 21)[:, :, ::-1].astype(np.float32)
        with torch.inference_mode():
            x = torch.from_numpy(noisy.transpose(2, 0, 1).copy())[None]
            student = model(x)[0].numpy().transpose(1, 2, 0)
        student = blend_with_input(noisy, student, strength)
        name = model.architecture.name + (f" s={describe_strength(strength)}" if strength != 1.0 else "")
        panels = [(f"noisy {psnr(noisy, clean):.2f} dB", noisy),
                  (f"NL-means h={args.nlmeans_h:g} {psnr(nlmeans, clean):.2f} dB", nlmeans),
                  (f"{name} {psnr(student, clean):.2f} dB", student),
                  ("clean (mean of 500)", clean)]
        target = args.out / f"quality-{Path(noisy_path).stem.replace('_noisy', '')}.png"
        crop = write_comparison(target, panels, args.crop, args.zoom)
        print(f"{target}: crop {crop.x},{crop.y},{crop.width}x{crop.height}; "
              + "; ".join(label for label, _ in panels[:3]))


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

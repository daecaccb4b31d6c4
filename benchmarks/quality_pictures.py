"""Zoomed crops of noisy | NL-means | student | clean for the README, PSNR in each label.

For each noisy/clean pair it denoises with a checkpoint (default: the bundled demo model) and
with OpenCV's ``fastNlMeansDenoisingColored`` at one strength (default h = 4, the best single
strength on the Nam pairs, ``benchmarks/classical_baseline.py``), and writes
``OUT/quality-NAME.png``: the same zoomed window of all four (the most detailed window of the
noisy image unless ``--crop X,Y,W,H``), each panel labelled with its PSNR against clean over
the whole image. The student runs at the strength ``denoise`` applies (``--strength``, default
the model's own), the blend ``noisy + s * (network - noisy)``. The clean panel is labelled
"clean (mean of 500)" for a Nam pair (``nam_pairs/NN_clean.png``: the data's README says its
clean image is the mean of 500 shots of the static scene), else "clean" (``--clean-label``
sets it).

    python benchmarks/quality_pictures.py --noisy ../shared/data/real/nam_pairs/10_noisy.png \\
        --clean ../shared/data/real/nam_pairs/10_clean.png --out docs/images
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import torch

from atbsn_edge.arguments import check_one_clean_each, positive_float, positive_int
from atbsn_edge.cli import new_parser
from atbsn_edge.compare import Crop, write_comparison
from atbsn_edge.errors import AtbsnError
from atbsn_edge.imageio import read_image
from atbsn_edge.metrics import psnr
from atbsn_edge.strength import strength_arg


#: a Nam pair's clean file (``../shared/data/real/nam_pairs/NN_clean.png``), whose README says
#: it is the mean of 500 shots of the static scene; any other reference is only "clean"
NAM_CLEAN = re.compile(r"\d+_clean\.png")


def clean_label(clean_path: str | Path) -> str:
    """The clean panel's label: "clean (mean of 500)" for a Nam pair, else "clean"."""
    path = Path(clean_path)
    if path.parent.name == "nam_pairs" and NAM_CLEAN.fullmatch(path.name):
        return "clean (mean of 500)"
    return "clean"


def main(argv: list[str] | None = None) -> None:
    parser = new_parser("quality_pictures.py", __doc__)
    parser.add_argument("--noisy", nargs="+", required=True)
    parser.add_argument("--clean", nargs="+", required=True)
    parser.add_argument("--checkpoint", help="default: the bundled demo model")
    parser.add_argument("--nlmeans-h", type=positive_float, default=4.0)
    parser.add_argument("--crop", type=Crop.parse, help="X,Y,W,H (default: the most detailed 128x128)")
    parser.add_argument("--zoom", type=positive_int, default=3)
    parser.add_argument("--strength", type=strength_arg,
                        help="the student's strength (default: the model's own, else 1)")
    parser.add_argument("--clean-label",
                        help='the clean panel\'s label (default: "clean (mean of 500)" for a Nam '
                             'pair, nam_pairs/NN_clean.png, else "clean")')
    parser.add_argument("--out", type=Path, required=True, help="folder for the pictures")
    args = parser.parse_args(argv)
    check_one_clean_each(args.noisy, args.clean)
    for path in (*args.noisy, *args.clean):
        if not Path(path).is_file():
            raise AtbsnError(f"{path}: no such file; give existing noisy and clean images")

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
                  (args.clean_label or clean_label(clean_path), clean)]
        target = args.out / f"quality-{Path(noisy_path).stem.replace('_noisy', '')}.png"
        crop = write_comparison(target, panels, args.crop, args.zoom)
        print(f"{target}: crop {crop.x},{crop.y},{crop.width}x{crop.height}; "
              + "; ".join(label for label, _ in panels[:3]))


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

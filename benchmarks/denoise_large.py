"""Time and peak memory of denoising one large image through the CLI, as a user runs it.

Writes a synthetic-noise photograph of the requested size (scikit-image's astronaut, resized,
with Gaussian noise), runs ``python -m atbsn_edge.denoise`` on it in a child process and
reports wall time, peak resident memory of that process, and the input/output array sizes.

    python benchmarks/denoise_large.py --checkpoint CKPT --width 6000 --height 4000
"""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from atbsn_edge.profiling.machine import describe_cpu
from atbsn_edge.cli import new_parser


def make_image(path: Path, width: int, height: int) -> None:
    import cv2
    from skimage import data, transform

    base = transform.resize(data.astronaut(), (height, width), order=1, preserve_range=True)
    noisy = base + np.random.default_rng(0).normal(0, 8, base.shape)
    cv2.imwrite(str(path), np.clip(noisy, 0, 255).astype(np.uint8)[:, :, ::-1])


def main() -> None:
    from atbsn_edge.arguments import positive_int, positive_multiple_of_32

    parser = new_parser("denoise_large.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", help="checkpoint (default: a He-initialised student C)")
    parser.add_argument("--width", type=positive_int, default=6000)
    parser.add_argument("--height", type=positive_int, default=4000)
    parser.add_argument("--tile", type=positive_multiple_of_32, default=512)
    parser.add_argument("--batch", type=positive_int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint
        if checkpoint is None:
            import torch

            from atbsn_edge.models import StudentC, save_checkpoint
            from atbsn_edge.training import init_weights

            torch.manual_seed(0)
            network = StudentC()
            init_weights(network)
            checkpoint = str(save_checkpoint(tmp / "student_c.pt", network))
        image = tmp / "large.png"
        make_image(image, args.width, args.height)
        command = [sys.executable, "-m", "atbsn_edge.denoise", str(image), "-o", str(tmp / "out"),
                   "--checkpoint", checkpoint, "--tile", str(args.tile), "--batch", str(args.batch)]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True,
                                env={**os.environ, "TQDM_DISABLE": "1"})
        elapsed = time.perf_counter() - started
        if result.returncode:
            sys.exit(f"denoise failed: {result.stderr[-2000:]}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    pixels = args.width * args.height
    print(f"CPU: {describe_cpu()}; python {platform.python_version()}")
    print("| image | megapixels | tile | batch | wall time | peak RSS | float32 input + output arrays |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.width}x{args.height} | {pixels / 1e6:.1f} | {args.tile} | {args.batch} | "
          f"{elapsed:.1f} s | {peak_mb:.0f} MB | {2 * pixels * 12 / 1e6:.0f} MB |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

"""OpenCV's fastNlMeansDenoisingColored (the classical denoiser edge users run today) on
noisy/clean pairs: PSNR per filter strength and time per image, to compare with our models.

    python benchmarks/classical_baseline.py --noisy pairs/*_noisy.png --clean pairs/*_clean.png
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from atbsn_edge.cli import new_parser, run_cli
from atbsn_edge.errors import AtbsnError
from atbsn_edge.imageio import read_image
from atbsn_edge.inputs import expand_inputs
from atbsn_edge.metrics import psnr
from atbsn_edge.profiling.machine import describe_cpu


def main() -> None:
    parser = new_parser("classical_baseline.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--noisy", nargs="+", required=True)
    parser.add_argument("--clean", nargs="+", required=True)
    parser.add_argument("--strengths", default="1,2,3,4,5,6")
    args = parser.parse_args()
    noisy_paths, clean_paths = expand_inputs(args.noisy), expand_inputs(args.clean)
    if len(noisy_paths) != len(clean_paths):
        raise AtbsnError(f"--noisy has {len(noisy_paths)} images, --clean {len(clean_paths)}; "
                         "give one clean reference per noisy image, in the same order")
    # read as the toolkit reads images (a bad file is one line); OpenCV's filter takes 8-bit BGR
    noisy = [np.ascontiguousarray(read_image(p).rgb[:, :, ::-1].round().astype(np.uint8))
             for p in noisy_paths]
    clean = [np.ascontiguousarray(read_image(p).rgb[:, :, ::-1]) for p in clean_paths]
    base = np.mean([psnr(n.astype(np.float32), c) for n, c in zip(noisy, clean)])
    print(f"CPU: {describe_cpu()}; OpenCV {cv2.__version__}, "
          f"{cv2.getNumThreads()} threads; {len(noisy)} pairs, noisy input {base:.3f} dB")
    print("| h (= hColor) | mean PSNR | gain over noisy | time per image |")
    print("|---|---|---|---|")
    for h in (float(v) for v in args.strengths.split(",")):
        scores, times = [], []
        for n, c in zip(noisy, clean):
            started = time.perf_counter()
            out = cv2.fastNlMeansDenoisingColored(n, None, h, h, 7, 21)
            times.append(time.perf_counter() - started)
            scores.append(psnr(out.astype(np.float32), c))
        print(f"| {h:g} | {np.mean(scores):.3f} dB | {np.mean(scores) - base:+.3f} dB | "
              f"{np.median(times) * 1000:.0f} ms |", flush=True)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))  # a bad --noisy/--clean: one line, exit 2

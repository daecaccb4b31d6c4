"""``python -m atbsn_edge.evaluate``: score a checkpoint on noisy images, tiled as denoise does.

With ``--clean`` references (paired with the noisy images in the order given): PSNR and
SSIM of each denoised image and of its noisy input, and their means. Without: a no-reference
report of what the network removed, the residual ``noisy - denoised`` (its standard
deviation per channel and its spatial autocorrelation at small lags; a clearly positive lag-1
autocorrelation means spatially correlated noise was removed, one near 0 that only white
noise was). Printed as a markdown table; ``--json`` also writes the numbers (atomically).
Nothing is written besides the JSON. Any unusable input stops the run with one line and
exit code 2: a mean over part of the images would be misleading.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import path_arg, thread_count
from .cli import add_verbose_argument, new_parser, run_cli
from .errors import AtbsnError, ImageError
from .imageio import ImageHeader, Picture, probe_image, read_image
from .inputs import expand_inputs, paired_in_order
from .jsonsafe import write_json
from .metrics import LAGS, lag_key, psnr, residual_stats, ssim, ssim_min_side
from .output_paths import check_report_path
from .pipeline import add_tiling_arguments

log = logging.getLogger(__name__)

REFERENCE_FIELDS = ("psnr", "ssim", "noisy_psnr", "noisy_ssim")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.evaluate``."""
    p = new_parser("python -m atbsn_edge.evaluate", __doc__)
    p.add_argument("--checkpoint", type=path_arg,
                   help="AT-BSN or student checkpoint (default: the bundled demo model, as "
                        "denoise)")
    p.add_argument("--part", choices=("student", "teacher"),
                   help="network of a distillation checkpoint (default: student)")
    p.add_argument("--noisy", required=True, nargs="+", metavar="INPUT",
                   help="noisy image files, folders or globs")
    p.add_argument("--clean", nargs="+", metavar="INPUT",
                   help="clean references, one per noisy image, paired in the order given "
                        "(folders and globs expanded in place, sorted); one may be named "
                        "again for another frame (default: none, a no-reference report)")
    add_tiling_arguments(p)
    p.add_argument("--threads", type=thread_count, default=0,
                   help="CPU threads of PyTorch (default 0: its default)")
    p.add_argument("--json", type=path_arg, metavar="OUT.json",
                   help="also write the results here (default: only the table on stdout)")
    add_verbose_argument(p)
    return p


def pair_inputs(noisy: list[str], clean: list[str] | None) -> list[tuple[Path, Path | None]]:
    """Noisy images (files, folders and globs, expanded in place in the order given) with
    their clean references, paired in that order as denoise and parity pair them
    (:func:`~atbsn_edge.inputs.paired_in_order`: a reference may serve several frames of one
    scene; unequal counts are refused); without ``clean``, each image with None."""
    if clean is None:
        return [(n, None) for n in expand_inputs(noisy)]
    return paired_in_order(noisy, clean, noisy_flag="--noisy", clean_flag="--clean")


def _pair_errors(noisy: str, clean: str, noisy_size: tuple[int, int],
                 clean_size: tuple[int, int], noisy_gray: bool | None,
                 clean_gray: bool | None) -> None:
    """Raise :class:`ImageError` naming both files when size (W, H) or grayscale-ness differ
    (an unknown value, 0 or None, is not compared)."""
    if all(noisy_size) and all(clean_size) and noisy_size != clean_size:
        raise ImageError(f"{noisy} is {noisy_size[0]}x{noisy_size[1]} but its clean reference "
                         f"{clean} is {clean_size[0]}x{clean_size[1]}")
    if None not in (noisy_gray, clean_gray) and noisy_gray != clean_gray:
        kinds = {True: "grayscale", False: "colour (RGB)"}
        raise ImageError(f"{noisy} is {kinds[noisy_gray]} but its clean reference {clean} is "
                         f"{kinds[clean_gray]}; give references of the same kind (PSNR of gray "
                         "against colour is meaningless)")


def check_pair(noisy: Picture, clean: Picture) -> None:
    """Refuse a clean reference that differs from its noisy image in shape or in being gray."""
    _pair_errors(noisy.source, clean.source, (noisy.width, noisy.height),
                 (clean.width, clean.height), noisy.grayscale, clean.grayscale)


def check_pair_headers(noisy_path: str | Path, clean_path: str | Path,
                       noisy: ImageHeader | None = None) -> None:
    """Refuse, from the files' headers (no pixels decoded), a clean reference whose size or
    grayscale-ness differs from its noisy image's, as far as the headers tell (the rule of
    :func:`check_pair`, which judges the decoded images); also refuses an unreadable header.
    ``noisy``: the noisy image's header where the caller has read it."""
    noisy = noisy if noisy is not None else probe_image(noisy_path)
    clean = probe_image(clean_path)
    # EXIF orientation may swap width and height: compare upright sizes
    _pair_errors(str(noisy_path), str(clean_path), noisy.upright_size, clean.upright_size,
                 noisy.grayscale, clean.grayscale)


def preflight(pairs: list[tuple[Path, Path | None]]) -> None:
    """Check every image's header (readable, size limit, one page) and each pair's size and
    grayscale-ness as far as the headers tell, before any network is loaded."""
    for noisy_path, clean_path in pairs:
        noisy = probe_image(noisy_path)
        _check_metric_size(str(noisy_path), noisy.width, noisy.height, clean_path is not None)
        if clean_path is not None:
            check_pair_headers(noisy_path, clean_path, noisy)


def _check_metric_size(path: str, width: int, height: int, with_reference: bool) -> None:
    """Refuse an image too small for its metrics: SSIM's window with a reference, the
    autocorrelation's largest lag without. An unknown size (0: a header neither Pillow nor
    the format sniffing reads, e.g. a file that is no image) is left to the decoder, which
    says what is wrong."""
    if width == 0 or height == 0:
        return
    if with_reference:
        side, what = ssim_min_side(), "SSIM (its Gaussian window)"
    else:
        side, what = max(max(lag) for lag in LAGS) + 1, "the residual's autocorrelation"
    if min(width, height) < side:
        raise ImageError(f"{path}: {width} x {height} is too small for {what}, which needs at "
                         f"least {side} x {side} pixels; give larger images")


def score_reference(noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of the denoised image and of the noisy input against ``clean``."""
    return {"psnr": psnr(denoised, clean), "ssim": ssim(denoised, clean),
            "noisy_psnr": psnr(noisy, clean), "noisy_ssim": ssim(noisy, clean)}


def mean_reference(rows: list[dict]) -> dict[str, float]:
    """Mean of each reference metric over the images."""
    return {k: float(np.mean([row[k] for row in rows])) for k in REFERENCE_FIELDS}


def mean_no_reference(rows: list[dict]) -> dict:
    """Mean residual std (per channel and overall) and mean autocorrelation per lag."""
    std = np.mean([row["residual_std"] for row in rows], axis=0)
    return {"residual_std": [float(s) for s in std], "residual_std_mean": float(std.mean()),
            "autocorr": {k: float(np.mean([row["autocorr"][k] for row in rows]))
                         for k in rows[0]["autocorr"]}}


def reference_table(rows: list[dict], mean: dict[str, float]) -> str:
    """Markdown table of the reference scores, with a mean row."""
    lines = ["| noisy | clean | PSNR (dB) | SSIM | noisy PSNR (dB) | noisy SSIM |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {Path(row['noisy']).name} | {Path(row['clean']).name} | "
                     f"{row['psnr']:.3f} | {row['ssim']:.4f} | {row['noisy_psnr']:.3f} | "
                     f"{row['noisy_ssim']:.4f} |")
    lines.append(f"| **mean** | | {mean['psnr']:.3f} | {mean['ssim']:.4f} | "
                 f"{mean['noisy_psnr']:.3f} | {mean['noisy_ssim']:.4f} |")
    return "\n".join(lines)


def no_reference_table(rows: list[dict], mean: dict) -> str:
    """Markdown table of residual std (R, G, B) and autocorrelation per lag, with a mean row."""
    keys = [lag_key(lag) for lag in LAGS]
    lines = ["| noisy | residual std (R, G, B) | " + " | ".join(f"ρ({k})" for k in keys) + " |",
             "|---|---|" + "---:|" * len(keys)]

    def cells(std: list[float], autocorr: dict[str, float]) -> str:
        return (", ".join(f"{s:.2f}" for s in std) + " | "
                + " | ".join(f"{autocorr[k]:.3f}" for k in keys))

    for row in rows:
        lines.append(f"| {Path(row['noisy']).name} | {cells(row['residual_std'], row['autocorr'])} |")
    lines.append(f"| **mean** | {cells(mean['residual_std'], mean['autocorr'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.evaluate`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def job() -> int:
        from .assets import default_checkpoint
        from .pipeline import open_tiled
        from .progress import progress_bar

        if args.checkpoint is None:
            args.checkpoint = default_checkpoint()
            if args.checkpoint is None:
                raise AtbsnError("no --checkpoint given and this install has no bundled demo "
                                 "model; give --checkpoint CKPT")
        if args.json is not None:
            check_report_path(args.json, "--json",
                              inputs=[args.checkpoint, *args.noisy, *(args.clean or ())])
        pairs = pair_inputs(args.noisy, args.clean)
        preflight(pairs)
        with_reference = args.clean is not None
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        tiled = open_tiled(args.checkpoint, part=args.part, hole_size=args.hole,
                           device=args.device, tile=args.tile, overlap=args.overlap,
                           batch=args.batch, strength=args.strength)
        rows: list[dict] = []
        with tiled, progress_bar(total=len(pairs), desc="images", unit="img") as bar:
            for noisy_path, clean_path in pairs:
                noisy = read_image(noisy_path)
                clean = read_image(clean_path) if clean_path is not None else None
                if clean is not None:
                    check_pair(noisy, clean)
                denoised = tiled.denoise(noisy.rgb)
                if not np.isfinite(denoised).all():
                    raise ImageError(f"{noisy_path}: the network produced NaN or infinite "
                                     "values; the checkpoint or artifact may be damaged "
                                     "(python -m atbsn_edge.parity checks a bundle)")
                row: dict[str, Any] = {"noisy": str(noisy_path)}
                if clean is not None:
                    row["clean"] = str(clean_path)
                    row.update(score_reference(noisy.rgb, denoised, clean.rgb))
                else:
                    row.update(residual_stats(noisy.rgb, denoised).to_dict())
                rows.append(row)
                log.debug("%s: %s", noisy_path, row)
                bar.update(1)
        if with_reference:
            mean = mean_reference(rows)
            table = reference_table(rows, mean)
        else:
            mean = mean_no_reference(rows)
            table = no_reference_table(rows, mean)
        print(table)
        sys.stdout.flush()
        if args.json is not None:
            info = tiled.runtime.info
            report = {
                "mode": "reference" if with_reference else "no-reference",
                "checkpoint": str(args.checkpoint), "model": info.model,
                "hole_size": info.hole_size, "device": args.device,
                "tile": "auto" if tiled.auto_tile_area else tiled.spec.tile_h, "overlap": tiled.spec.overlap,
                "strength": tiled.strength,
                "images": rows, "mean": mean,
            }
            write_json(args.json, report)
            log.info("wrote %s", args.json)
        return 0

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

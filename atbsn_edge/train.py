"""``python -m atbsn_edge.train``: self-supervised AT-BSN training on noisy images only."""
from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .arguments import (hole_size_arg, non_negative_float, non_negative_int, path_arg,
                        positive_float, positive_int, thread_count, torch_device)
from .cli import add_verbose_argument, new_parser, run_cli
from .errors import AtbsnError
from .imageio import READ_SUFFIXES
from .inputs import expand_inputs, paired_in_order
from .output_paths import check_output_path, same_file
from .sources import SOURCE_SUFFIXES

if TYPE_CHECKING:  # only for annotations: the CLI imports PyTorch when it runs
    from .training import TrainConfig

log = logging.getLogger(__name__)

_DEFAULTS = dict(iterations=6000, batch=4, crop=128, lr=3e-4, lr_min=1e-6, seed=0,
                 checkpoint_every=100, validate_every=500)


def add_optimisation_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``train`` and ``distill`` (defaults suit a CPU run)."""
    p.add_argument("--resume", type=path_arg,
                   help="checkpoint to resume from, optimizer and sampler too (default: start "
                        "fresh); may be the --out file itself")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out checkpoint that is not the one resumed")
    p.add_argument("--iterations", type=positive_int, default=_DEFAULTS["iterations"],
                   help="training iterations in all, counted across resumes")
    p.add_argument("--time-limit", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="stop after this many seconds of training (counted across resumes); "
                        "the cosine decay then follows the clock (default 0: no limit)")
    p.add_argument("--batch", type=positive_int, default=_DEFAULTS["batch"],
                   help="crops per iteration")
    p.add_argument("--crop", type=positive_int, default=_DEFAULTS["crop"],
                   help="crop side, multiple of 32, >= 128")
    p.add_argument("--lr", type=positive_float, default=_DEFAULTS["lr"],
                   help="Adam learning rate at the start of the cosine decay")
    p.add_argument("--lr-min", type=non_negative_float, default=_DEFAULTS["lr_min"],
                   help="learning rate at the end of the cosine decay")
    p.add_argument("--seed", type=non_negative_int, default=_DEFAULTS["seed"],
                   help="seed of the weights and of the crop sampler")
    p.add_argument("--checkpoint-every", type=positive_int, default=_DEFAULTS["checkpoint_every"],
                   help="iterations between checkpoints written to --out (one is always "
                        "written at the end and on Ctrl-C / SIGTERM)")
    p.add_argument("--validate-every", type=positive_int, default=_DEFAULTS["validate_every"],
                   help="iterations between validations on --val-noisy/--val-clean")
    p.add_argument("--frames-per-video", type=positive_int, default=32,
                   help="evenly spaced frames taken from each video in --data (default 32)")
    p.add_argument("--val-noisy", nargs="*", default=[],
                   help="noisy validation images (default: none, no validation)")
    p.add_argument("--val-clean", nargs="*", default=[],
                   help="their clean references, same order (default: none)")
    add_run_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser, written: str = "checkpoint") -> None:
    """``--device``, ``--no-bf16``, ``--threads``, ``--description`` and ``--verbose``: the
    flags every training CLI shares (train, distill, qat, adapt)."""
    p.add_argument("--device", default="cpu", type=torch_device, help="cpu, cuda or cuda:N")
    p.add_argument("--no-bf16", action="store_true",
                   help="train in float32 (default: bf16 autocast where the device has it)")
    p.add_argument("--threads", type=thread_count, default=0,
                   help="CPU threads (default 0: PyTorch's default)")
    p.add_argument("--description", default="",
                   help=f"text stored in the {written}'s metadata (default: a generic one)")
    add_verbose_argument(p)


def check_out(out: Path, resume: Path | None, overwrite: bool,
              inputs: tuple[Path, ...] = (), flag: str = "--out") -> None:
    """Refuse, before any work, an ``--out`` that cannot be written, that is one of the run's
    ``inputs`` (a teacher, a data file; never, even with ``--overwrite``), or that would
    silently replace a checkpoint other than the one being resumed. ``flag``: the option
    that named ``out``, for the messages."""
    from .assets import ASSETS
    from .bundle.manifest import bundle_holding

    check_output_path(out, flag)
    for item in inputs:
        if same_file(item, out):
            raise AtbsnError(f"{flag} {out} is an input of this run ({item}), never replaced "
                             f"even with --overwrite; choose another {flag}")
    folder = bundle_holding(out)
    if folder is not None:
        raise AtbsnError(f"{flag} {out} is a file of the bundle {folder}, never replaced even "
                         f"with --overwrite; choose another {flag}")
    if out.resolve().parent == ASSETS:
        raise AtbsnError(f"{flag} {out} is one of atbsn-edge's bundled files, never replaced "
                         f"even with --overwrite (continuing a demo model first makes it "
                         f"worse); choose another {flag}")
    if not out.exists() or overwrite:
        return
    if resume is not None and same_file(resume, out):
        return
    resuming = f", --resume {out} to continue it," if flag == "--out" else ""
    raise AtbsnError(f"{flag} {out} exists and is not the checkpoint being resumed; pass "
                     f"--overwrite to replace it{resuming} or choose another {flag}")


def input_files(items: Iterable[str | Path], suffixes: tuple[str, ...]) -> list[Path]:
    """The files ``items`` (files, folders, globs) name, as they will be read: a file as given,
    the ``suffixes`` files of a folder or glob; an item that names nothing is left out here (it
    is reported where it is read)."""
    files: list[Path] = []
    for item in items:
        if Path(item).is_file():
            files.append(Path(item))
            continue
        with contextlib.suppress(AtbsnError):
            files += [path for path in expand_inputs([str(item)], suffixes)
                      if path.suffix.lower() in suffixes]
    return files


def run_inputs(args: argparse.Namespace, *checkpoints: Path | None) -> tuple[Path, ...]:
    """Every file a training run reads, which its ``--out`` must never replace: ``checkpoints``
    (a teacher, a starting checkpoint; None left out), the --data images and videos and the
    --val-noisy/--val-clean images, folders and globs expanded (for :func:`check_out`)."""
    return (*(path for path in checkpoints if path is not None),
            *input_files(args.data, SOURCE_SUFFIXES),
            *input_files([*args.val_noisy, *args.val_clean], READ_SUFFIXES))


def config_from_args(args: argparse.Namespace) -> "TrainConfig":
    """A validated :class:`TrainConfig` from parsed flags (threads applied to PyTorch)."""
    import torch

    from .training import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise AtbsnError("--device cuda was given but PyTorch sees no CUDA GPU")
    config = TrainConfig(iterations=args.iterations, batch=args.batch, crop=args.crop,
                         lr=args.lr, lr_min=args.lr_min, seed=args.seed,
                         checkpoint_every=args.checkpoint_every,
                         validate_every=args.validate_every, device=args.device,
                         bf16=not args.no_bf16, threads=args.threads,
                         time_limit=args.time_limit,
                         train_hole=getattr(args, "train_hole", 9),
                         infer_hole=getattr(args, "infer_hole", 3))
    config.validate()
    return config


def read_pairs(noisy: list[str], clean: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation pairs (noisy, clean) as float arrays, in the order given; a pair that
    differs in size or grayscale-ness is refused here, not in the middle of training."""
    from .evaluate import check_pair
    from .imageio import read_image

    if not noisy and not clean:
        return []
    if not noisy or not clean:
        raise AtbsnError("--val-noisy and --val-clean go together (noisy images and their clean "
                         "references, in the same order)")
    pairs = []
    for noisy_path, clean_path in paired_in_order(noisy, clean, noisy_flag="--val-noisy",
                                                  clean_flag="--val-clean"):
        noisy, clean = read_image(noisy_path), read_image(clean_path)
        check_pair(noisy, clean)
        pairs.append((noisy.rgb, clean.rgb))
    return pairs


def log_written(out: Path, advice: str = "") -> None:
    """The last line of a training command (``train``, ``distill``, ``qat``): the checkpoint
    it wrote, its iterations and its validation PSNR where the run validated
    (:func:`~atbsn_edge.training.run_summary`), then ``advice``. Rank 0 of a distributed run
    only (the one that writes)."""
    from .distributed import Distributed
    from .training import run_summary

    if Distributed.from_environment().is_main:
        log.info("wrote %s%s", run_summary(out), advice)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.train``."""
    p = new_parser("python -m atbsn_edge.train", __doc__)
    p.add_argument("--data", nargs="+", required=True,
                   help="noisy images or videos: files, folders, globs")
    p.add_argument("--out", required=True, type=path_arg,
                   help="checkpoint to write (project format); an existing one only with "
                        "--overwrite or when it is the --resume checkpoint")
    p.add_argument("--train-hole", type=hole_size_arg, default=9,
                   help="blind-spot size the loss is computed at")
    p.add_argument("--infer-hole", type=hole_size_arg, default=3,
                   help="blind-spot size stored as the checkpoint's default for denoising")
    add_optimisation_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.train`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def job() -> int:
        from .training import load_noisy_images, train

        check_out(args.out, args.resume, args.overwrite, inputs=run_inputs(args))
        config = config_from_args(args)
        images = load_noisy_images(args.data, config.crop, args.frames_per_video)
        pairs = read_pairs(args.val_noisy, args.val_clean)
        log.info("training on %d images, %d validation pairs", len(images), len(pairs))
        train(config, images, args.out, resume=args.resume, val_pairs=pairs,
              description=args.description)
        log_written(args.out)
        return 0

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

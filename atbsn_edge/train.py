"""``python -m atbsn_edge.train``: self-supervised AT-BSN training on noisy images only."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli import hole_size_arg, run_cli
from .errors import AtbsnError
from .inputs import expand_inputs

log = logging.getLogger(__name__)

_DEFAULTS = dict(iterations=6000, batch=4, crop=128, lr=3e-4, lr_min=1e-6, seed=0,
                 checkpoint_every=100, validate_every=500)


def add_optimisation_args(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``train`` and ``distill`` (defaults suit a CPU run)."""
    p.add_argument("--resume", type=Path, help="checkpoint to resume from (its optimizer too)")
    p.add_argument("--iterations", type=int, default=_DEFAULTS["iterations"])
    p.add_argument("--time-limit", type=float, default=0.0, metavar="SECONDS",
                   help="stop after this many seconds of training (counted across resumes); "
                        "the cosine decay then follows the clock (0: no limit)")
    p.add_argument("--batch", type=int, default=_DEFAULTS["batch"])
    p.add_argument("--crop", type=int, default=_DEFAULTS["crop"],
                   help="crop side, multiple of 32, >= 128")
    p.add_argument("--lr", type=float, default=_DEFAULTS["lr"])
    p.add_argument("--lr-min", type=float, default=_DEFAULTS["lr_min"])
    p.add_argument("--seed", type=int, default=_DEFAULTS["seed"])
    p.add_argument("--checkpoint-every", type=int, default=_DEFAULTS["checkpoint_every"])
    p.add_argument("--validate-every", type=int, default=_DEFAULTS["validate_every"])
    p.add_argument("--frames-per-video", type=int, default=32,
                   help="evenly spaced frames taken from each video in --data (default 32)")
    p.add_argument("--val-noisy", nargs="*", default=[], help="noisy validation images")
    p.add_argument("--val-clean", nargs="*", default=[], help="their clean references, same order")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-bf16", action="store_true", help="train in float32")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch default)")
    p.add_argument("--description", default="")


def config_from_args(args: argparse.Namespace):
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


def read_pairs(noisy: list[str], clean: list[str]):
    """Validation pairs (noisy, clean) as float arrays, in the order given."""
    from .imageio import read_image

    noisy_paths = expand_inputs(noisy) if noisy else []
    clean_paths = expand_inputs(clean) if clean else []
    if len(noisy_paths) != len(clean_paths):
        raise AtbsnError(f"--val-noisy has {len(noisy_paths)} images, --val-clean {len(clean_paths)}")
    return [(read_image(n).rgb, read_image(c).rgb) for n, c in zip(noisy_paths, clean_paths)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m atbsn_edge.train", description=__doc__)
    p.add_argument("--data", nargs="+", required=True,
                   help="noisy images or videos: files, folders, globs")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (project format)")
    p.add_argument("--train-hole", type=hole_size_arg, default=9)
    p.add_argument("--infer-hole", type=hole_size_arg, default=3)
    add_optimisation_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def job() -> int:
        from .training import load_noisy_images, train

        config = config_from_args(args)
        images = load_noisy_images(args.data, config.crop, args.frames_per_video)
        pairs = read_pairs(args.val_noisy, args.val_clean)
        log.info("training on %d images, %d validation pairs", len(images), len(pairs))
        train(config, images, args.out, resume=args.resume, val_pairs=pairs,
              description=args.description)
        return 0

    return run_cli(job)


if __name__ == "__main__":
    raise SystemExit(main())

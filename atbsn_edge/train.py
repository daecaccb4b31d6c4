"""``python -m atbsn_edge.train``: self-supervised AT-BSN training on noisy images only."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .cli import hole_size_arg, run_cli
from .inputs import expand_inputs
from .training import TrainConfig, load_noisy_images, train

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m atbsn_edge.train", description=__doc__)
    p.add_argument("--data", nargs="+", required=True, help="noisy images: files, folders, globs")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (project format)")
    p.add_argument("--resume", type=Path, help="checkpoint to resume from (its optimizer too)")
    p.add_argument("--iterations", type=int, default=d.iterations)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--crop", type=int, default=d.crop, help="crop side, multiple of 32, >= 128")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-min", type=float, default=d.lr_min)
    p.add_argument("--train-hole", type=hole_size_arg, default=d.train_hole)
    p.add_argument("--infer-hole", type=hole_size_arg, default=d.infer_hole)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--validate-every", type=int, default=d.validate_every)
    p.add_argument("--val-noisy", nargs="*", default=[], help="noisy validation images")
    p.add_argument("--val-clean", nargs="*", default=[], help="their clean references, same order")
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--no-bf16", action="store_true", help="train in float32")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch default)")
    p.add_argument("--description", default="")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def job() -> int:
        import torch

        from .imageio import read_image

        if args.threads:
            torch.set_num_threads(args.threads)
        config = TrainConfig(iterations=args.iterations, batch=args.batch, crop=args.crop,
                             lr=args.lr, lr_min=args.lr_min, train_hole=args.train_hole,
                             infer_hole=args.infer_hole, seed=args.seed,
                             checkpoint_every=args.checkpoint_every,
                             validate_every=args.validate_every, device=args.device,
                             bf16=not args.no_bf16, threads=args.threads)
        config.validate()
        images = load_noisy_images(expand_inputs(args.data), config.crop)
        noisy = expand_inputs(args.val_noisy) if args.val_noisy else []
        clean = expand_inputs(args.val_clean) if args.val_clean else []
        if len(noisy) != len(clean):
            raise SystemExit(f"--val-noisy has {len(noisy)} images, --val-clean {len(clean)}")
        pairs = [(read_image(n).rgb, read_image(c).rgb) for n, c in zip(noisy, clean)]
        log.info("training on %d images, %d validation pairs", len(images), len(pairs))
        train(config, images, args.out, resume=args.resume, val_pairs=pairs,
              description=args.description)
        return 0

    return run_cli(job)


if __name__ == "__main__":
    raise SystemExit(main())

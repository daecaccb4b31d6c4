"""``python -m atbsn_edge.distill``: distil a student from AT-BSN at several hole sizes at once."""
from __future__ import annotations

import argparse
import logging

from .arguments import comma_list, non_negative_int, path_arg
from .cli import new_parser, run_cli
from .errors import AtbsnError
from .holes import check_hole
from .train import (add_optimisation_args, check_out, config_from_args, log_written, read_pairs,
                    run_inputs)

log = logging.getLogger(__name__)


_HOLE_LIST = comma_list(non_negative_int, "non-negative integers", "0,1,3")


def parse_holes(text: str) -> list[int]:
    """``"0,1,3"`` -> [0, 1, 3], with an error naming a bad entry."""
    holes = _HOLE_LIST(text)
    for hole in holes:
        try:
            check_hole(hole)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"--holes {text}: {exc}") from None
    return holes


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.distill``."""
    p = new_parser("python -m atbsn_edge.distill", __doc__)
    p.add_argument("--teacher", required=True, type=path_arg, help="AT-BSN checkpoint (any layout)")
    p.add_argument("--student", required=True, choices=("a", "b", "c"),
                   help="student architecture to train (c: the paper's)")
    p.add_argument("--holes", type=parse_holes, default=[0, 1, 3, 5, 7, 9, 11],
                   help="teacher hole sizes (default 0,1,3,5,7,9,11)")
    p.add_argument("--target", choices=("holes", "mean"), default="holes",  # distillation.TARGETS
                   help="how the loss combines the teacher's holes: holes (the paper's: the sum "
                        "of L1 distances to each) or mean (the L1 distance to their mean, "
                        "measured better on the Nam pairs: docs/quality.md) (default holes)")
    p.add_argument("--data", nargs="+", required=True,
                   help="noisy images or videos: files, folders, globs")
    p.add_argument("--out", required=True, type=path_arg,
                   help="student checkpoint to write (project format); an existing one only "
                        "with --overwrite or when it is the --resume checkpoint")
    add_optimisation_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.distill`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def job() -> int:
        from .models.checkpoint import load_checkpoint
        from .distillation import distill
        from .training import load_noisy_images

        check_out(args.out, args.resume, args.overwrite, inputs=run_inputs(args, args.teacher))
        config = config_from_args(args)
        teacher = load_checkpoint(args.teacher, part="teacher")
        if teacher.architecture.name != "atbsn":
            raise AtbsnError(f"--teacher {args.teacher} is {teacher.architecture.name}, not AT-BSN")
        images = load_noisy_images(args.data, config.crop, args.frames_per_video)
        pairs = read_pairs(args.val_noisy, args.val_clean)
        distill(config, teacher.network, f"student_{args.student}", args.holes, images, args.out,
                resume=args.resume, val_pairs=pairs, teacher_source=str(args.teacher),
                teacher_sha256=teacher.metadata.get("checkpoint_sha256", ""),
                description=args.description, target=args.target)
        log_written(args.out)
        return 0

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

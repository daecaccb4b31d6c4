"""``python -m atbsn_edge.adapt``: fine-tune a student to one camera's noise from that camera's
own noisy frames (images, folders, globs or videos), self-supervised, within a time limit.

The blind-spot teacher (AT-BSN) is fine-tuned with its training loss for --teacher-share of
the time (half by default), then the student is distilled from the adapted teacher on the
camera's frames, starting from the given student (docs/adapt.md: what it gains, measured on
held-out scenes, and what it does not). The adapted student is written to --out (atomically, never
over an input), the adapted teacher to --teacher-out when given; the no-reference report of
the student on the frames is printed before and after. Defaults: the bundled demo models.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .arguments import non_negative_float, non_negative_int, path_arg, positive_float, positive_int
from .cli import new_parser, run_cli
from .distill import parse_holes
from .errors import AtbsnError
from .output_paths import same_file
from .train import add_run_arguments, check_out

log = logging.getLogger(__name__)


def _share(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


# AdaptConfig's defaults, repeated here so that --help needs no PyTorch (a test keeps them equal)
DEFAULTS = argparse.Namespace(time_limit=300.0, teacher_share=0.5, targets="pool", region=256,
                              holes=[0, 1, 3, 5, 7, 9, 11], distill_target="holes", batch=4,
                              crop=128, student_lr=1e-4, teacher_lr=1e-4, warmup=0.0, seed=0,
                              report_frames=8, report_crop=512)
TARGETS = ("pool", "online")
DISTILL_TARGETS = ("holes", "mean")  # atbsn_edge.distillation.TARGETS (a test keeps them equal)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.adapt``."""
    from .assets import DEMO_ATBSN, DEMO_STUDENT_C

    d = DEFAULTS
    p = new_parser("python -m atbsn_edge.adapt", __doc__)
    p.add_argument("--data", nargs="+", required=True, metavar="FRAMES",
                   help="the camera's noisy images or videos: files, folders, globs; every "
                        "picture at least 128 pixels on its short side")
    p.add_argument("--out", required=True, type=path_arg,
                   help="adapted student checkpoint to write (project format); an existing "
                        "file only with --overwrite, an input never")
    p.add_argument("--teacher", type=path_arg, default=DEMO_ATBSN,
                   help="AT-BSN checkpoint (any layout; an authors' distillation checkpoint "
                        "gives its teacher) (default: the bundled demo_atbsn.pt)")
    p.add_argument("--student", type=path_arg, default=DEMO_STUDENT_C,
                   help="student checkpoint to adapt (A, B or C) (default: the bundled "
                        "demo_student_c.pt)")
    p.add_argument("--teacher-out", type=path_arg,
                   help="also write the adapted teacher here (default: not written)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing --out / --teacher-out files (never an input)")
    p.add_argument("--time-limit", type=non_negative_float, default=d.time_limit,
                   metavar="SECONDS",
                   help="seconds of adaptation in all (both phases and the teacher targets; "
                        "loading and the reports come on top); 0: iteration counts decide")
    p.add_argument("--teacher-share", type=_share, default=d.teacher_share,
                   help="fraction of --time-limit spent fine-tuning the teacher; 0 distils "
                        "the student from the given teacher")
    p.add_argument("--teacher-iterations", type=non_negative_int, default=0,
                   help="teacher iterations: a cap under --time-limit (0: none), the count "
                        "without it (0: teacher not fine-tuned)")
    p.add_argument("--student-iterations", type=non_negative_int, default=0,
                   help="student iterations: a cap under --time-limit (0: none), the count "
                        "without it (required then)")
    p.add_argument("--targets", choices=TARGETS, default=d.targets,
                   help="pool: teacher outputs computed once on regions of the frames, the "
                        "student trained on crops of them; online: fresh teacher outputs "
                        "for every batch")
    p.add_argument("--pool-regions", type=non_negative_int, default=0,
                   help="regions in the pool (default 0: as many as a third of the "
                        "student's time computes, at most twice the frames' area and 256)")
    p.add_argument("--region", type=positive_int, default=d.region,
                   help="side of a pooled region, multiple of 32, >= --crop")
    p.add_argument("--holes", type=parse_holes, default=d.holes,
                   help="teacher hole sizes the student is distilled from")
    p.add_argument("--distill-target", choices=DISTILL_TARGETS, default=d.distill_target,
                   help="holes: the sum of L1 distances to the teacher at each hole (the "
                        "paper's loss); mean: the L1 distance to the mean of those outputs")
    p.add_argument("--batch", type=positive_int, default=d.batch, help="crops per iteration")
    p.add_argument("--crop", type=positive_int, default=d.crop,
                   help="crop side, multiple of 32, >= 128")
    p.add_argument("--lr", type=positive_float, default=d.student_lr,
                   help="student Adam learning rate at the start of the cosine decay")
    p.add_argument("--teacher-lr", type=positive_float, default=d.teacher_lr,
                   help="teacher Adam learning rate at the start of the cosine decay")
    p.add_argument("--warmup", type=_share, default=d.warmup,
                   help="fraction of each phase (of its clock under --time-limit) over which "
                        "the learning rate rises linearly to --lr / --teacher-lr before the "
                        "cosine decay")
    p.add_argument("--seed", type=non_negative_int, default=d.seed,
                   help="seed of the crop and region samplers")
    p.add_argument("--frames-per-video", type=positive_int, default=32,
                   help="evenly spaced frames taken from each video in --data")
    p.add_argument("--report-frames", type=non_negative_int, default=d.report_frames,
                   help="frames of the no-reference report (evenly spaced; 0: no report)")
    p.add_argument("--report-crop", type=positive_int, default=d.report_crop,
                   help="the report's centre crop of each frame, at most this side")
    add_run_arguments(p, written="adapted checkpoint")
    return p


def _load(path: Path, part: str):
    """The ``part`` network of a checkpoint; errors name the flag that gave it."""
    from .errors import CheckpointError, MissingPartError
    from .models.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path, part=part)
    except MissingPartError as exc:  # the two models swapped, or one given twice
        want = {"teacher": "an AT-BSN checkpoint (default: the bundled demo_atbsn.pt)",
                "student": "a student checkpoint, A, B or C (default: the bundled "
                           "demo_student_c.pt)"}[part]
        raise AtbsnError(f"--{part} {path} is {exc.architecture}, not a {part}: give "
                         f"{want}") from None
    except CheckpointError as exc:
        raise AtbsnError(f"--{part}: {exc}") from None


#: what ``adapt`` measured on a CPU with the bundled models (benchmarks/adapt_polyu.py, PolyU
#: Nikon D800, 3 splits of held-out scenes, at the default strength), said in main's warning
#: when it runs on a CPU (docs/adapt.md has the tables)
CPU_MEASURED_EFFECT = "0.05 dB at --time-limit 80 and 0.15 dB at 300 (the default)"


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.adapt`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def job() -> int:
        import torch

        from .adaptation import AdaptConfig, adapt, load_camera_frames
        from .adaptation_report import report_table

        config = AdaptConfig(time_limit=args.time_limit, teacher_share=args.teacher_share,
                             teacher_iterations=args.teacher_iterations,
                             student_iterations=args.student_iterations, targets=args.targets,
                             pool_regions=args.pool_regions, region=args.region,
                             holes=list(args.holes), distill_target=args.distill_target,
                             batch=args.batch, crop=args.crop,
                             teacher_lr=args.teacher_lr, student_lr=args.lr,
                             warmup=args.warmup, seed=args.seed,
                             device=args.device, bf16=not args.no_bf16, threads=args.threads,
                             report_frames=args.report_frames, report_crop=args.report_crop)
        config.validate()
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise AtbsnError("--device cuda was given but PyTorch sees no CUDA GPU")
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.teacher_out is not None and same_file(args.teacher_out, args.out):
            raise AtbsnError(f"--teacher-out and --out are the same file ({args.out}); "
                             "give two different paths")
        teacher = _load(args.teacher, "teacher")  # only an AT-BSN has a teacher part
        student = _load(args.student, "student")  # and it has no student part
        inputs = (args.teacher, args.student, *(Path(d) for d in args.data))
        check_out(args.out, None, args.overwrite, inputs=inputs)
        if args.teacher_out is not None:
            check_out(args.teacher_out, None, args.overwrite, inputs=inputs, flag="--teacher-out")
        files, pictures = load_camera_frames(args.data, max(config.crop, 128),
                                             args.frames_per_video)
        for target in (args.out, args.teacher_out):  # a data folder may hold an output's name
            if target is not None and any(same_file(target, f) for f in files):
                raise AtbsnError(f"{target} is one of the --data files; choose another output")
        log.info("adapting %s (teacher %s) to %d picture(s) from %d file(s)",
                 args.student, args.teacher, len(pictures), len(files))
        if args.device == "cpu":
            log.warning("on a CPU, adapt has not been shown to improve pictures it did not see: "
                        "on held-out scenes of a real camera it cost %s (docs/adapt.md). Compare "
                        "denoise --checkpoint %s with the given student on a few of your own "
                        "pictures before using it", CPU_MEASURED_EFFECT, args.out)
        reports: list[tuple[str, dict]] = []

        def on_report(label: str, report: dict) -> None:
            name = args.student.name if label == "before" else args.out.name
            reports.append((f"{label}: {name}", report))
            if label == "before":
                print(report_table(reports), flush=True)

        result = adapt(config, teacher, student, pictures, args.out,
                       teacher_out=args.teacher_out, sources=args.data,
                       description=args.description, on_report=on_report)
        if reports:
            print(report_table(reports))
        sys.stdout.flush()
        check = result.teacher.check
        log.info("wrote %s%s in %.0f s: teacher %d iterations (%.0f s%s), teacher targets on %d "
                 "regions (%.0f s), student %d iterations (%.0f s)", result.out,
                 f" and {result.teacher_out}" if result.teacher_out else "", result.seconds,
                 result.teacher.iterations, result.teacher.seconds,
                 "" if not check else ", kept" if check["kept"] else ", not kept: its loss rose",
                 result.student.regions,
                 result.student.target_seconds, result.student.iterations,
                 result.student.seconds)
        return 0

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

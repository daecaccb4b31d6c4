"""``python -m atbsn_edge.qat``: fine-tune a student for int8 (quantization-aware training).

Fake int8 quantization at exactly the points the exported Q/DQ graph quantizes (symmetric,
per-channel weights, per-tensor activations, zero points 0), trained by distillation from the
float student itself on noisy images (no clean image needed). The output checkpoint holds
the fine-tuned float weights and the learned ranges; ``python -m atbsn_edge.export`` then
writes its int8 targets with those ranges, every layer in int8, with no calibration.

    python -m atbsn_edge.qat --checkpoint student.pt --data frames/ --out student-int8.pt \\
        --time-limit 1200
"""
from __future__ import annotations

import argparse
import logging

from .arguments import non_negative_int, path_arg, positive_int, set_argument_types
from .cli import new_parser, run_cli
from .errors import AtbsnError
from .quantization.offsets import OFFSET_MODES
from .quantization.sums import SUMS
from .train import (add_optimisation_args, check_out, config_from_args, log_written, read_pairs,
                    run_inputs)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.qat``."""
    p = new_parser("python -m atbsn_edge.qat", __doc__)
    p.add_argument("--checkpoint", type=path_arg,
                   help="float student checkpoint (default: the bundled demo student C)")
    p.add_argument("--data", nargs="+", required=True,
                   help="noisy images or videos: files, folders, globs (the student's training "
                        "data or the camera's own frames)")
    p.add_argument("--out", required=True, type=path_arg,
                   help="int8-ready checkpoint to write; an existing one only with --overwrite "
                        "or when it is the --resume checkpoint")
    p.add_argument("--calibration-batches", type=positive_int, default=8,
                   help="batches that set the starting ranges (default 8)")
    p.add_argument("--weight-bits", choices=("portable", "7", "8"),
                   help="weight width: portable (default: 7 bits, except the output "
                        "convolution's at 8, and with --sums float the input image's too; the "
                        "same outputs on CPUs without VNNI, whose int16 pair sums saturate with "
                        "8-bit weights), "
                        "7 or 8 for every weight (8: an export whose 8-bit weights could "
                        "saturate writes them as two convolutions each, exact but slower)")
    p.add_argument("--sums", choices=SUMS,
                   help="how each decoder adds its two terms (the upsampled map and the skip): "
                        "low (default: the transposed convolution's output quantized first, the "
                        "skip term float: every layer int8 in the graph OpenVINO runs fastest, "
                        "and computes as trained), float (both terms float: the same quality, "
                        "about 1.2x slower in OpenVINO on an AVX-512 EPYC) or both (both terms "
                        "quantized, NNCF's graph of an addition: OpenVINO drops the skip term's "
                        "quantization, so it does not run what was trained); docs/export.md")
    p.add_argument("--shared-steps", choices=("yes", "no"),
                   help="points that read one tensor (an encoder's pooled map, read by the next "
                        "encoder and by a decoder's skip) share one int8 step: yes (default for "
                        "a new run: the export quantizes that map once, before its pool, and "
                        "OpenVINO runs the encoder and the pool in int8: 1.2x faster on an AMX "
                        "Xeon, and 0.015 dB lower on the Nam pairs in one pair of 7-minute "
                        "runs) or no. With --continue-from: "
                        "yes shares a checkpoint's steps that are not (each encoder's kept; "
                        "with --iterations 0, in seconds); left out, its own form")
    p.add_argument("--continue-from", type=path_arg, metavar="INT8_CHECKPOINT",
                   help="an int8-ready checkpoint fine-tuned from --checkpoint to train further "
                        "(its weights, ranges, weight widths and sums; --weight-bits and --sums "
                        "do not apply; an offset it has is kept). With --iterations 0 only "
                        "its output offset is calibrated (a checkpoint written before the "
                        "offset existed) and, with --shared-steps yes, its steps shared, in "
                        "seconds")
    p.add_argument("--output-offset", choices=OFFSET_MODES, default="after",
                   help="the output convolution's input (a nearly one-signed map that carries "
                        "the image) quantized less the middle of its range, a constant the "
                        "export adds back exactly, so that it uses all 256 int8 levels: after "
                        "(default: calibrated on the trained network at the end of every run; "
                        "student C's int8 cost at auto 0.47 -> 0.10 dB), during (from the "
                        "start: measured worse) or none; a --resume keeps its run's mode; "
                        "docs/export.md")
    add_optimisation_args(p)
    set_argument_types(p, iterations=non_negative_int)  # 0: calibrate a --continue-from only
    p.set_defaults(lr=5e-5, lr_min=1e-6, iterations=1000, validate_every=250,
                   checkpoint_every=50)
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.qat`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def job() -> int:
        from .assets import DEMO_STUDENT_C
        from .models.checkpoint import load_checkpoint
        from .quantization.qat_training import train_qat
        from .training import load_noisy_images

        checkpoint = args.checkpoint or DEMO_STUDENT_C
        check_out(args.out, args.resume, args.overwrite,
                  inputs=run_inputs(args, checkpoint, args.continue_from))
        denoiser = load_checkpoint(checkpoint)
        if denoiser.architecture.tunable_hole:
            raise AtbsnError(f"--checkpoint {checkpoint} is AT-BSN; quantization-aware training "
                             "takes a student (A, B or C): distil one first "
                             "(python -m atbsn_edge.distill)")
        if denoiser.metadata.get("int8_ranges"):
            raise AtbsnError(f"--checkpoint {checkpoint} is already int8-ready (fine-tuned by "
                             "python -m atbsn_edge.qat); give the float checkpoint it came from "
                             f"({denoiser.metadata.get('qat_from') or 'see its metadata'})")
        fixed = [flag for flag, value in (("--weight-bits", args.weight_bits),
                                          ("--sums", args.sums)) if value is not None]
        if args.continue_from and fixed:
            one = len(fixed) == 1
            raise AtbsnError(f"{' and '.join(fixed)} {'is' if one else 'are'} fixed by the "
                             f"--continue-from checkpoint {args.continue_from}: drop "
                             f"{'it' if one else 'them'}, or leave --continue-from out")
        weight_bits = args.weight_bits or "portable"
        start = load_checkpoint(args.continue_from) if args.continue_from else None
        train = args.iterations != 0
        if not train:  # calibrate the continued checkpoint's new offset only (train_qat checks)
            args.iterations = 1  # for the configuration's checks; nothing is trained
        config = config_from_args(args)
        images = load_noisy_images(args.data, config.crop, args.frames_per_video)
        pairs = read_pairs(args.val_noisy, args.val_clean)
        train_qat(config, denoiser, images, args.out, resume=args.resume, val_pairs=pairs,
                  calibration_batches=args.calibration_batches, source=str(checkpoint),
                  description=args.description,
                  weight_bits=None if weight_bits == "portable" else int(weight_bits),
                  sums=args.sums or "low", output_offset=args.output_offset,
                  start=start, start_source=str(args.continue_from or ""), train=train,
                  shared_steps=None if args.shared_steps is None else args.shared_steps == "yes")
        log_written(args.out, f"; export it with python -m atbsn_edge.export --checkpoint "
                              f"{args.out} --target openvino-int8 (or onnx-int8, trt-int8, coreml-int8)")
        return 0

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

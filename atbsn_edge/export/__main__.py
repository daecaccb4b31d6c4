"""``python -m atbsn_edge.export``: turn a checkpoint into a deployment bundle for a target.

The bundle is a folder: the artifact (and the fp32 ONNX it came from), ``manifest.json``
(target, tile, hole, hashes, the artifact's metadata) and ``reference.npz`` (real noisy crops
of the tile shape with PyTorch's outputs for them, for ``python -m atbsn_edge.parity``). It is written atomically; an existing bundle is replaced only with
``--overwrite``. ``--list-targets`` shows every target and whether it can be built here.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path

from ..atomic import atomic_path
from ..cli import hole_size_arg, run_cli
from ..errors import AtbsnError
from ..hashing import file_sha256
from .targets import TARGETS, get_target, targets_table

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m atbsn_edge.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="targets: " + ", ".join(TARGETS))
    p.add_argument("--target", help="one of the targets below, e.g. onnx-fp32")
    p.add_argument("--checkpoint", type=Path, help="checkpoint (default: the bundled demo model)")
    p.add_argument("--part", choices=("student", "teacher"))
    p.add_argument("--out", type=Path, help="bundle folder to write (default: bundle-<target>)")
    p.add_argument("--tile", type=int, default=512, help="static tile side (multiple of 32)")
    p.add_argument("--batch", type=int, default=1, help="static batch size")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--hole", type=hole_size_arg, help="AT-BSN hole size fixed in the artifact")
    p.add_argument("--fuse-upsampling", action=argparse.BooleanOptionalAction, default=True,
                   help="fold each decoder's 2x upsampling into its first convolution (a "
                        "transposed convolution at the low resolution): same outputs, 2/3 of "
                        "student C's work (default: on)")
    p.add_argument("--reference-images", nargs="+",
                   help="noisy images to cut the bundle's reference crops from "
                        "(default: three bundled 512x512 real noisy crops)")
    p.add_argument("--reference-crops", type=int, default=2,
                   help="reference crops stored with PyTorch's outputs (default 2)")
    p.add_argument("--calib-data", nargs="+",
                   help="int8: noisy images, folders or videos to calibrate on "
                        "(default: three bundled 512x512 real noisy crops)")
    p.add_argument("--calib-images", type=int, default=64, help="int8: at most this many images/frames")
    p.add_argument("--calib-crops", type=int, default=64, help="int8: crops of the tile shape")
    p.add_argument("--calib-method", default="max", choices=("max", "entropy", "percentile"))
    p.add_argument("--calib-mode", default="random", choices=("random", "grid"))
    p.add_argument("--calib-seed", type=int, default=0)
    p.add_argument("--int8-keep-float", nargs="*", metavar="PATTERN",
                   help="int8: nodes whose name a PATTERN (regular expression) is found in stay "
                        "float (mixed precision); default: the architecture's measured choice "
                        "(docs/export.md); give the flag with no pattern to quantize every layer")
    p.add_argument("--int8-quantizer", choices=("nncf", "qdq"), default="nncf",
                   help="openvino-int8: NNCF on the IR (default) or the onnx-int8 Q/DQ graph "
                        "converted to IR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--list-targets", action="store_true", help="list targets and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def job() -> int:
        if args.list_targets:
            print(targets_table())
            return 0
        if not args.target:
            raise AtbsnError(f"give --target (one of {', '.join(TARGETS)}) or --list-targets")
        target = get_target(args.target)
        available, why = target.availability()
        if not available:
            raise AtbsnError(f"target {target.name} cannot be built here: {why}")
        if args.tile <= 0 or args.tile % 32 or args.batch < 1:
            raise AtbsnError(f"--tile must be a positive multiple of 32 and --batch >= 1 "
                             f"(got {args.tile}, {args.batch})")
        from ..assets import default_checkpoint
        from ..models.checkpoint import load_checkpoint

        checkpoint = args.checkpoint or default_checkpoint()
        if checkpoint is None:
            raise AtbsnError("no --checkpoint given and this install has no bundled demo model")
        denoiser = load_checkpoint(checkpoint, part=args.part)
        try:
            hole = denoiser.resolve_hole(args.hole)
        except ValueError as exc:
            raise AtbsnError(str(exc)) from None
        out = args.out or Path(f"bundle-{target.name}")
        if out.exists() and not args.overwrite:
            raise AtbsnError(f"{out} exists; pass --overwrite to replace it")
        from ..assets import CALIBRATION_IMAGES
        from ..inputs import expand_inputs
        from .reference import reference_crops, save_reference, torch_outputs

        sources = expand_inputs(args.reference_images or [str(CALIBRATION_IMAGES)])
        if args.reference_crops < 1:
            raise AtbsnError(f"--reference-crops must be at least 1, got {args.reference_crops}")
        inputs, names = reference_crops(sources, args.tile, args.tile, args.reference_crops)
        outputs = torch_outputs(denoiser, hole, inputs)
        options = {"tile": args.tile, "batch": args.batch, "hole_size": hole, "dynamic": args.dynamic,
                   "fuse_upsampling": args.fuse_upsampling}
        if target.precision == "int8":
            from ..calibration import collect_crops

            calib_sources = args.calib_data or [CALIBRATION_IMAGES]
            options["calibration"] = collect_crops(
                calib_sources, args.tile, args.tile, max_images=args.calib_images,
                crops=args.calib_crops, mode=args.calib_mode, seed=args.calib_seed)
            options["method"] = args.calib_method
            options["keep_float"] = tuple(denoiser.architecture.int8_keep_float
                                          if args.int8_keep_float is None else args.int8_keep_float)
            if target.backend == "openvino":
                options["quantizer"] = args.int8_quantizer
        module, function = target.converter.split(":")
        convert = getattr(importlib.import_module(module), function)
        with atomic_path(out, overwrite=True) as tmp:
            tmp.mkdir()
            artifact = tmp / target.artifact
            metadata = convert(denoiser, artifact, **options)
            save_reference(tmp, inputs, outputs, names)
            manifest = {"target": target.name, "artifact": target.artifact,
                        "artifact_sha256": file_sha256(artifact), "runtime": target.runtime,
                        "precision": target.precision, "checkpoint": str(checkpoint),
                        "reference": {"file": "reference.npz", "crops": names,
                                      "sources": [str(p) for p in sources]},
                        "metadata": metadata}
            if "calibration" in options:
                manifest["calibration"] = {**options["calibration"].describe(),
                                           "method": args.calib_method, "mode": args.calib_mode,
                                           "seed": args.calib_seed}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        log.info("wrote bundle %s (%s)", out, target.name)
        return 0

    return run_cli(job)


if __name__ == "__main__":
    raise SystemExit(main())

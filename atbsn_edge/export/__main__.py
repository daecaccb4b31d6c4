"""python -m atbsn_edge.export: build a deployment bundle for a target.

From a checkpoint (--checkpoint, default the bundled demo model, or for int8 targets its
int8-ready fine-tune; needs PyTorch): writes the
fp32 ONNX, reference data (real noisy crops with PyTorch's outputs) and the target's
artifact into a new bundle folder. From an existing bundle (--from-bundle B; no PyTorch):
adds the target's artifact to B, converted from B's ONNX; this is how a TensorRT engine is
built on the device that runs it. Bundles are written atomically: a failed or interrupted
export leaves the old bundle (or nothing) behind. --overwrite replaces only a folder this
toolkit wrote (one with its manifest.json), never other files.

Exit codes: 0 done; 2 bad input (one line says why); 3 the bundle is written but its
TensorRT engine must be built on the device (the command to run there is printed).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import shutil
from pathlib import Path
from typing import Iterator

from ..arguments import (hole_size_arg, non_negative_int, path_arg, positive_int,
                         positive_multiple_of_32)
from ..atomic import atomic_path
from ..bundle import PENDING, Bundle, is_bundle
from ..cli import USER_ERRORS, add_verbose_argument, new_parser, run_cli, user_error_line
from ..errors import AtbsnError
from ..output_paths import check_output_path
from .job import ConversionJob, Int8Request
from .onnx_fp32_to_int8 import METHODS
from .onnx_to_openvino import QUANTIZERS
from .targets import TARGETS, Target, get_target, targets_table
from .tensorrt_target import DEFAULT_WORKSPACE_MB, engine_options

log = logging.getLogger(__name__)

EXIT_ENGINE_PENDING = 3
DEFAULT_TILE = 512
# flags that describe the network; a bundle has them fixed
_NETWORK_FLAGS = ("checkpoint", "part", "tile", "batch", "dynamic", "hole", "fuse_upsampling",
                  "reference_images", "reference_crops")
_CALIB_FLAGS = ("calib_data", "calib_images", "calib_crops", "calib_method", "calib_mode",
                "calib_seed", "int8_keep_float", "int8_quantizer")
_ENGINE_FLAGS = ("workspace_mb", "dla_core", "timing_cache")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.export``."""
    p = new_parser("python -m atbsn_edge.export", __doc__, epilog="targets: " + ", ".join(TARGETS))
    p.add_argument("--target", help="what to build, e.g. onnx-fp32, openvino-int8, trt-fp16 "
                                    "(--list-targets shows all)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=path_arg,
                        help="checkpoint to export (default: the bundled demo model; for "
                             "int8 targets, its int8-ready fine-tune "
                             "demo_student_c_int8.pt, every layer int8, unless --calib-*, "
                             "--int8-keep-float or --int8-quantizer ask for a calibrated "
                             "export)")
    source.add_argument("--from-bundle", type=path_arg, metavar="BUNDLE",
                        help="add the target to this existing bundle, converted from its ONNX "
                             "(no PyTorch needed; written in place unless --out is given)")
    p.add_argument("--part", choices=("student", "teacher"),
                   help="network of a distillation checkpoint (default: student)")
    p.add_argument("--out", type=path_arg,
                   help="bundle folder to write (default: bundle-<target>, or the --from-bundle folder)")
    p.add_argument("--tile", type=positive_multiple_of_32,
                   help=f"static tile side, a multiple of 32 (default {DEFAULT_TILE})")
    p.add_argument("--batch", type=positive_int, help="static batch size (default 1)")
    p.add_argument("--dynamic", action="store_true", default=None,
                   help="dynamic batch, height and width (default: static)")
    p.add_argument("--hole", type=hole_size_arg,
                   help="AT-BSN hole size fixed in the artifact (default: the checkpoint's)")
    p.add_argument("--fuse-upsampling", action=argparse.BooleanOptionalAction, default=None,
                   help="fold each decoder's 2x upsampling into its first convolution (a "
                        "transposed convolution at the low resolution): same outputs, 2/3 of "
                        "student C's work (default: on)")
    p.add_argument("--reference-images", nargs="+",
                   help="noisy images to cut the bundle's reference crops from "
                        "(default: three bundled 512x512 real noisy crops)")
    p.add_argument("--reference-crops", type=positive_int,
                   help="reference crops stored with PyTorch's outputs (default 2)")
    int8 = p.add_argument_group("int8 calibration")
    int8.add_argument("--calib-data", nargs="+",
                      help="noisy images, folders or videos to calibrate on "
                           "(default: three bundled 512x512 real noisy crops)")
    int8.add_argument("--calib-images", type=positive_int, help="at most this many images/frames (default 64)")
    int8.add_argument("--calib-crops", type=positive_int, help="crops of the tile shape (default 64)")
    int8.add_argument("--calib-method", choices=tuple(METHODS),
                      help="activation range estimate (default max). Student C's onnx-int8 "
                      "on the Nam pairs: percentile loses 0.079 dB, max 0.127, entropy 0.286; "
                      "the histogram methods take minutes (docs/export.md)")
    int8.add_argument("--calib-mode", choices=("random", "grid"),
                      help="where crops are cut (default random)")
    int8.add_argument("--calib-seed", type=int, help="seed of the random crops (default 0)")
    int8.add_argument("--int8-keep-float", nargs="*", metavar="PATTERN",
                      help="nodes whose name a PATTERN (regular expression) is found in stay "
                           "float (mixed precision); default: the architecture's measured choice "
                           "(docs/export.md); give the flag with no pattern to quantize every layer")
    int8.add_argument("--int8-quantizer", choices=QUANTIZERS,
                      help="openvino-int8 of a float checkpoint: NNCF on the IR, or the "
                           "onnx-int8 Q/DQ graph converted to IR (default nncf; an int8-ready "
                           "checkpoint's learned Q/DQ graph is always converted)")
    trt = p.add_argument_group("TensorRT engine (trt-* targets, built where TensorRT is)")
    trt.add_argument("--workspace-mb", type=positive_int,
                     help=f"builder workspace limit in MiB (default {DEFAULT_WORKSPACE_MB})")
    trt.add_argument("--dla-core", type=non_negative_int, metavar="N",
                     help="build for DLA core N with GPU fallback (Jetson Orin/Xavier; static "
                          "shapes, fp16 or int8)")
    trt.add_argument("--timing-cache", type=path_arg,
                     help="TensorRT timing cache file (default: one per GPU and TensorRT version "
                          "in the atbsn-edge cache folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing bundle (only a folder this toolkit wrote)")
    p.add_argument("--list-targets", action="store_true", help="list targets and exit")
    add_verbose_argument(p)
    return p


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return ["--" + n.replace("_", "-") for n in names if getattr(args, n) is not None]


def check_destination(out: Path, *, overwrite: bool, in_place: Path | None,
                      inputs: list[Path], flag: str = "--out") -> None:
    """Refuse an --out that would lose a user's files: the current folder or one above it, a
    folder this toolkit did not write, an existing bundle without --overwrite, or a folder
    that holds one of this export's own inputs; and one that cannot be written. ``flag``:
    what named ``out`` (``--from-bundle``: no --out was given, the bundle is added to in
    place), for the messages."""
    resolved = out.resolve()
    named, other = f"--out {out}", "choose another --out"
    outside = "give a new folder name, e.g. --out bundle"
    if flag == "--from-bundle":
        named = f"--from-bundle {out} (added to in place, as no --out was given)"
        other = "give --out NEW_FOLDER to write the bundle with the new target there"
        outside = f"run the export from outside the bundle, or {other}"
    if out.is_dir():  # replaced by a folder staged beside it
        for folder in (out, resolved.parent):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise AtbsnError(f"{named}: no permission to write in {folder}; make it "
                                 f"writable, or {other}")
    check_output_path(out, flag, folder=True)
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise AtbsnError(f"{named} is the current folder or contains it; {outside}")
    if not out.exists():
        return
    if not out.is_dir():
        raise AtbsnError(f"--out {out} is a file; give a folder name for the bundle")
    if not is_bundle(out):
        raise AtbsnError(f"--out {out} exists and is not an atbsn-edge bundle (no manifest.json "
                         "of this toolkit); export never replaces other folders: choose a new --out")
    same_as_source = in_place is not None and resolved == in_place.resolve()
    if not overwrite and not same_as_source:
        raise AtbsnError(f"{out} exists; pass --overwrite to replace it")
    for item in inputs:
        path = Path(item).resolve()
        if path == resolved or resolved in path.parents:
            if not same_as_source or path.suffix not in {".pt", ".pth"}:
                raise AtbsnError(f"{item} is inside {named}, which the export replaces; "
                                 f"move it out of the bundle, or {other}")


def _int8_request(args: argparse.Namespace, defaults) -> Int8Request:
    return Int8Request(
        sources=args.calib_data or [defaults], crops=args.calib_crops or 64,
        max_images=args.calib_images or 64, method=args.calib_method or "max",
        mode=args.calib_mode or "random", seed=args.calib_seed or 0,
        keep_float=args.int8_keep_float, quantizer=args.int8_quantizer or "nncf",
        explicit=bool(_given(args, _CALIB_FLAGS)))


def check_flags_apply(args: argparse.Namespace, target: Target) -> None:
    """Refuse flags the target would ignore: int8 calibration flags for a float target,
    ``--int8-quantizer`` for an int8 target other than OpenVINO's, TensorRT engine flags for
    another backend."""
    groups = ((_CALIB_FLAGS, target.precision == "int8", "int8 calibration", "an *-int8 target"),
              (("int8_quantizer",), target.name == "openvino-int8", "OpenVINO's int8",
               "openvino-int8"),
              (_ENGINE_FLAGS, target.backend == "trt", "the TensorRT engine", "a trt-* target"))
    for names, applies, what, which in groups:
        given = _given(args, names)
        if given and not applies:
            verb = "is" if len(given) == 1 else "are"
            raise AtbsnError(f"{', '.join(given)} {verb} for {what}; --target {target.name} "
                             f"would ignore it: drop the flag, or export {which}")


def _stage_from_checkpoint(args: argparse.Namespace, target: Target,
                           folder: Path) -> tuple[object, Bundle]:
    from ..assets import CALIBRATION_IMAGES
    from ..inputs import expand_inputs
    from ..models.checkpoint import load_checkpoint
    from .checkpoint_to_bundle import checkpoint_to_bundle

    checkpoint = args.checkpoint or _default_checkpoint(args, target)
    if args.checkpoint is None:
        log.info("no --checkpoint: exporting the bundled %s", Path(checkpoint).name)
    denoiser = load_checkpoint(checkpoint, part=args.part)
    if denoiser.metadata.get("int8_ranges") and not target.takes_learned_int8:
        raise AtbsnError(f"{checkpoint} is int8-ready (python -m atbsn_edge.qat: float weights "
                         f"tuned for the learned int8 ranges), which {target.name} does not use; "
                         f"export the float checkpoint it came from "
                         f"({denoiser.metadata.get('qat_from') or 'see its metadata'}) instead")
    try:
        hole = denoiser.resolve_hole(args.hole)
    except ValueError as exc:
        raise AtbsnError(str(exc)) from None
    folder.mkdir()
    return denoiser, checkpoint_to_bundle(
        denoiser, folder, checkpoint=str(checkpoint), part=args.part, tile=args.tile or DEFAULT_TILE,
        batch=args.batch or 1, hole_size=hole, dynamic=bool(args.dynamic),
        fuse_upsampling=args.fuse_upsampling is not False,
        reference_images=expand_inputs(args.reference_images or [str(CALIBRATION_IMAGES)]),
        reference_crops=args.reference_crops or 2)


def _default_checkpoint(args: argparse.Namespace, target: Target) -> Path:
    """The bundled model a target exports when no --checkpoint is given: for an int8 target,
    the int8-ready student (every layer int8, learned ranges: faster than the calibrated mixed
    int8 on the AVX-512 EPYC and with OpenVINO capped at AVX2, and within 0.15 dB in Core ML,
    where coremltools' own calibration is not; docs/export.md, docs/coreml.md) unless
    calibration flags (or --int8-quantizer) ask for a calibrated export; else the demo model."""
    from ..assets import default_checkpoint, default_int8_checkpoint

    learned = default_int8_checkpoint()
    if learned is not None and target.takes_learned_int8 and not _given(args, _CALIB_FLAGS):
        return learned
    return default_checkpoint()


def _check_int8_ready(bundle: Bundle, target: Target, source: Path) -> None:
    """Refuse a float target of a bundle exported from an int8-ready checkpoint,
    as its --checkpoint export would: its weights are tuned for the learned int8 ranges and
    its reference outputs are the int8 simulation's."""
    entry = bundle.learned_int8
    if entry is not None and not target.takes_learned_int8:
        origin = (entry.details.get("qat") or {}).get("from") or "see its manifest"
        raise AtbsnError(f"{source} was exported from an int8-ready checkpoint (python -m "
                         f"atbsn_edge.qat: float weights tuned for the learned int8 ranges), "
                         f"which {target.name} does not use; export {target.name} from the "
                         f"float checkpoint it came from ({origin}) instead")


def _stage_from_bundle(source: Path, folder: Path, destination: Path) -> Bundle:
    """A copy of the (already opened and verified, so a sound bundle) ``source`` at
    ``folder``, opened; the device commands of its pending artifacts name ``destination``,
    where the copy goes, not ``source`` (saved with the bundle)."""
    shutil.copytree(source, folder, symlinks=True)
    bundle = Bundle.open(folder)
    for entry in bundle.artifacts.values():
        command = entry.details.get("device_command")
        if entry.status == PENDING and command:
            words = shlex.split(command)
            if "--from-bundle" in words[:-1]:
                words[words.index("--from-bundle") + 1] = str(destination)
                entry.details["device_command"] = shlex.join(words)
    return bundle


@contextlib.contextmanager
def _named_as(tmp: Path, name: Path) -> Iterator[None]:
    """A user error raised while the bundle is staged in the temporary folder ``tmp`` names
    ``name`` (the folder the user gave) instead: never an internal temporary path."""
    try:
        yield
    except USER_ERRORS as exc:
        line = user_error_line(exc)
        if line is None or str(tmp) not in line:
            raise
        raise AtbsnError(line.replace(str(tmp), str(name))) from None


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.export`` command on ``argv`` (None: sys.argv); returns its exit code."""
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
        check_flags_apply(args, target)
        from ..assets import CALIBRATION_IMAGES, default_checkpoint

        source = args.from_bundle
        if source is not None:
            fixed = _given(args, _NETWORK_FLAGS)
            if fixed:
                raise AtbsnError(f"{', '.join(fixed)} describe the network, which the bundle "
                                 f"{source} has fixed; drop them, or export from the checkpoint")
            opened = Bundle.open(source)
            opened.verify_all()  # every file the manifest lists: nothing copied from a damaged one
            _check_int8_ready(opened, target, source)  # before anything is staged
            out = args.out or source
            inputs = [Path(p) for p in args.calib_data or []]
        else:
            if args.checkpoint is None and default_checkpoint() is None:
                raise AtbsnError("no --checkpoint given and this install has no bundled demo model")
            out = args.out or Path(f"bundle-{target.name}")
            inputs = [Path(p) for p in [args.checkpoint, *(args.reference_images or []),
                                        *(args.calib_data or [])] if p is not None]
        check_destination(out, overwrite=args.overwrite, in_place=source, inputs=inputs,
                          flag="--from-bundle" if source is not None and args.out is None
                          else "--out")
        target.check(args)  # a backend's own options, before any work
        with atomic_path(out, overwrite=True) as tmp, _named_as(tmp, source or out):
            denoiser, bundle = ((None, _stage_from_bundle(source, tmp, out)) if source is not None
                                else _stage_from_checkpoint(args, target, tmp))
            conversion = ConversionJob(
                bundle, int8=_int8_request(args, CALIBRATION_IMAGES),
                engine=engine_options(args),
                tile=args.tile or DEFAULT_TILE, destination=out, denoiser=denoiser)
            entry = conversion.convert(target.name)
            bundle.add_artifact(entry)
            bundle.save()
        if entry.status == PENDING:
            print(f"bundle {out} written; its {target.name} engine has to be built where "
                  f"TensorRT is ({entry.details.get('pending_because', '')}). On the device run:\n"
                  f"  {entry.details['device_command']}")
            return EXIT_ENGINE_PENDING
        log.info("wrote bundle %s (%s: %s)", out, target.name, entry.entry)
        return 0

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

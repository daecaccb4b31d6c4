"""``python -m atbsn_edge.denoise``: denoise images of any size with a checkpoint, tiled.

Outputs keep the input's name, format, bit depth, grayscale and alpha. They are written
atomically, never over an input, and over an existing file only with ``--overwrite``. A bad
image is reported in one line and the rest of the batch is still processed; the exit code
is 1 when any image failed.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .arguments import path_arg, positive_int, request_count, thread_count
from .cli import add_verbose_argument, new_parser, run_cli
from .errors import AtbsnError, ImageError, is_out_of_memory
from .imageio import (READ_SUFFIXES, WRITE_SUFFIXES, Picture, probe_image, read_image,
                      write_image)
from .inputs import expand_inputs, paired_in_order
from .output_paths import check_output_path
from .pipeline import TiledRuntime, add_tiling_arguments, open_tiled
from .readahead import READ_AHEAD_MAX_PIXELS, ReadAhead
from .runtimes.openvino_runtime import HINTS, PERFORMANCE_HINTS

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.denoise``."""
    p = new_parser("python -m atbsn_edge.denoise", __doc__)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("-o", "--output", required=True, type=path_arg,
                   help="output folder (or an image file name when there is one input)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=path_arg,
                        help="AT-BSN or student checkpoint (default: the bundled demo model)")
    source.add_argument("--artifact", type=path_arg,
                        help="exported bundle folder (verified against its manifest) or artifact "
                             "file (.onnx, .xml, .engine); its tile shape, hole and overlap come "
                             "from its metadata")
    p.add_argument("--target",
                   help="with --artifact BUNDLE: which of its artifacts to run, e.g. onnx-fp16 "
                        "(default: the bundle's default target, the one last exported)")
    p.add_argument("--part", choices=("student", "teacher"),
                   help="network of a distillation checkpoint (default: student)")
    add_tiling_arguments(p)
    p.add_argument("--threads", type=thread_count, default=0,
                   help="CPU threads (default 0: the backend's default)")
    p.add_argument("--inference-precision", choices=("auto", *HINTS),
                   help="OpenVINO artifacts: what the CPU computes in (default auto: f32 for fp32 "
                        "artifacts, else the CPU's own default reduced type, bf16 on AMX or "
                        "AVX512-BF16 CPUs)")
    p.add_argument("--performance-hint", choices=("auto", *(h.lower() for h in PERFORMANCE_HINTS)),
                   default="auto",
                   help="OpenVINO artifacts: compile for one tile at a time (latency) or for "
                        "several tiles (or batches, with a batched export) in flight at once, "
                        "one per CPU stream (throughput); default auto: throughput when an "
                        "input needs more than one tile, else latency")
    p.add_argument("--requests", type=request_count,
                   help="OpenVINO infer requests in flight, with the throughput hint (default: "
                        "the compiled model's optimal number, one per stream)")
    compare = p.add_argument_group("comparison pictures")
    compare.add_argument("--compare", action="store_true",
                         help="also write NAME_compare.png beside each output: the same zoomed "
                              "crop of noisy | denoised (| clean with --clean)")
    compare.add_argument("--clean", nargs="+", metavar="INPUT",
                         help="clean references for the comparison, one per input, same order")
    compare.add_argument("--compare-crop", type=_crop_arg, metavar="X,Y,W,H",
                         help="the crop to compare (default: the 128x128 window with most detail)")
    compare.add_argument("--compare-zoom", type=_zoom_arg,
                         help=f"enlargement of the crop, nearest neighbour, 1 to {MAX_ZOOM} "
                              f"(default {COMPARE_ZOOM})")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (never an input)")
    add_verbose_argument(p)
    return p


MAX_ZOOM = 16  # a 128-pixel crop becomes 2048 pixels per panel
COMPARE_ZOOM = 3  # --compare-zoom's default


def _zoom_arg(text: str) -> int:
    """argparse type of --compare-zoom: 1 to MAX_ZOOM."""
    value = positive_int(text)
    if value > MAX_ZOOM:
        raise argparse.ArgumentTypeError(f"expected a zoom of 1 to {MAX_ZOOM}, got {text!r}")
    return value


def _crop_arg(text: str):
    from .compare import Crop

    try:
        return Crop.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_compare_size(args: argparse.Namespace) -> None:
    """Refuse, before any work, --compare-crop or --compare-zoom without --compare, and a crop
    and zoom whose picture would be too large to write (the crop can only shrink to fit an
    image). Sets the default zoom."""
    if not args.compare:
        given = [flag for flag, value in (("--compare-crop", args.compare_crop),
                                          ("--compare-zoom", args.compare_zoom)) if value is not None]
        if given:
            verb = "shape" if len(given) > 1 else "shapes"
            raise AtbsnError(f"{' and '.join(given)} {verb} the comparison pictures; give "
                             "--compare too, or drop them")
        return
    if args.compare_zoom is None:
        args.compare_zoom = COMPARE_ZOOM
    if not args.compare_crop:
        return  # the default crop (128 px) at any allowed zoom is within the limit
    from .compare import check_comparison_size

    try:
        check_comparison_size(args.compare_crop, args.compare_zoom, 3 if args.clean else 2)
    except ImageError as exc:
        raise AtbsnError(str(exc)) from None


def compare_path(target: Path) -> Path:
    """Where the comparison picture of an output goes: ``NAME_compare.png`` beside it."""
    return target.with_name(f"{target.stem}_compare.png")


def inputs_and_references(args: argparse.Namespace) -> tuple[list[Path], list[Path | None]]:
    """The input files (folders and globs expanded, each once) and the --clean image of each
    (paired in the order given: :func:`~atbsn_edge.inputs.paired_in_order`), or None each
    without --clean."""
    if args.clean is None:
        inputs = expand_inputs(args.inputs)
        return inputs, [None] * len(inputs)
    if not args.compare:
        raise AtbsnError("--clean is for the comparison pictures; give --compare too")
    pairs = paired_in_order(args.inputs, args.clean, noisy_flag="the inputs",
                            clean_flag="--clean")
    return [n for n, _ in pairs], [c for _, c in pairs]


def read_reference(item: "Job", picture: Picture, clean: Path) -> np.ndarray:
    """The --clean reference of one input, read and checked against it before the input is
    denoised (so that a bad reference writes nothing)."""
    try:
        reference = read_image(clean)
    except ImageError as exc:
        raise ImageError(f"--clean reference of {item.source}: {exc}") from None
    if reference.rgb.shape != picture.rgb.shape:
        raise ImageError(f"{item.source} is {picture.width}x{picture.height} but its clean "
                         f"reference {clean} is {reference.width}x{reference.height}")
    return reference.rgb


def write_compare(item: "Job", picture: Picture, result: np.ndarray, reference: np.ndarray | None,
                  args: argparse.Namespace) -> None:
    """The comparison picture of one denoised image (beside it the checked reference)."""
    from .compare import write_comparison

    panels = [("noisy", picture.rgb), ("denoised", result)]
    if reference is not None:
        panels.append(("clean", reference))
    write_comparison(compare_path(item.target), panels, args.compare_crop, args.compare_zoom)


@dataclass
class Job:
    """One input and where its result goes."""

    source: Path
    target: Path


def check_one_image_name(output: Path, suffix: str, count: int) -> None:
    """Refuse an -o named as an image file (``suffix``, one of READ_SUFFIXES, and not an
    existing folder) that cannot take the outputs: a format denoise does not write, or
    ``count`` > 1 inputs (it would become a folder of that name)."""
    if suffix not in WRITE_SUFFIXES:
        raise AtbsnError(f"-o {output}: denoise cannot write {suffix} images (it writes "
                         f"{', '.join(WRITE_SUFFIXES)}); give such a name, or a folder")
    if count > 1:
        raise AtbsnError(f"-o {output} names one image file but {count} inputs were given; "
                         "give a folder")


def plan_outputs(inputs: list[Path], output: Path) -> list[Job]:
    """Map inputs to outputs: a file name for a single input, else a folder of same names.
    An output that cannot be written (below a regular file, no permission) is refused here,
    before any work."""
    suffix = output.suffix.lower()
    if suffix in READ_SUFFIXES and not output.is_dir():
        check_one_image_name(output, suffix, len(inputs))
    single_file = len(inputs) == 1 and suffix in WRITE_SUFFIXES and not output.is_dir()
    check_output_path(output, "-o", folder=not single_file and not output.is_file())
    if single_file:
        return [Job(inputs[0], output)]
    if output.exists() and not output.is_dir():
        if len(inputs) == 1:
            raise AtbsnError(f"-o {output} is an existing file whose name has no image "
                             f"extension denoise writes ({', '.join(WRITE_SUFFIXES)}); name the "
                             "output with one of them, or give a folder")
        raise AtbsnError(f"-o {output} is a file; give a folder for {len(inputs)} inputs")
    jobs = []
    for source in inputs:
        suffix = source.suffix.lower()
        name = source.name if suffix in WRITE_SUFFIXES else source.stem + ".png"
        jobs.append(Job(source, output / name))
    return jobs


def check_job(job: Job, inputs: set[str], taken: set[str], overwrite: bool) -> None:
    """Refuse to write over an input, twice to one file, or over a file without --overwrite."""
    target = os.path.realpath(job.target)
    if target in inputs:
        raise ImageError(f"{job.source}: output {job.target} is an input; choose another -o")
    if target in taken:
        raise ImageError(f"{job.source}: another input already writes {job.target} "
                         "(same file name); denoise them into separate folders")
    if job.target.exists() and not overwrite:
        raise ImageError(f"{job.source}: {job.target} exists; pass --overwrite to replace it")
    taken.add(target)


def network_files(args: argparse.Namespace) -> list[Path]:
    """The files the network is read from: the --checkpoint (or the bundled demo model), or
    the --artifact file and every file of its bundle (a folder, or the one holding it)."""
    from .bundle.manifest import bundle_files

    if args.artifact is None:
        from .assets import default_checkpoint

        checkpoint = args.checkpoint or default_checkpoint()
        return [checkpoint] if checkpoint is not None else []
    folder = args.artifact if args.artifact.is_dir() else args.artifact.parent
    return [args.artifact, *sorted(bundle_files(folder))]


def check_outputs_spare_inputs(jobs: list[Job], references: list[Path | None],
                               network: list[Path], args: argparse.Namespace) -> None:
    """Refuse, before any work and even with --overwrite, an output image or comparison
    picture that would replace a --clean reference or a file of the network (symlinks
    resolved). An output over a noisy input fails that image alone (:func:`check_job`)."""
    protected = {os.path.realpath(path): f"the network file {path}" for path in network}
    for item, clean in zip(jobs, references):
        if clean is not None:
            protected[os.path.realpath(clean)] = f"the --clean reference {clean} of {item.source}"
    for item in jobs:
        for target in [item.target, *([compare_path(item.target)] if args.compare else [])]:
            replaced = protected.get(os.path.realpath(target))
            if replaced is not None:
                raise AtbsnError(f"-o {args.output}: {target} would replace {replaced}, an "
                                 "input of this run (never replaced, even with --overwrite); "
                                 "choose another -o")


def image_sizes(paths: list[Path]) -> Iterator[tuple[int, int]]:
    """(height, width) of each readable input, upright, from its header alone, read only as
    they are drawn (the hint stops at the first input of several tiles); an unreadable one is
    left out here and reported when its turn comes."""
    for path in paths:
        try:
            header = probe_image(path)
        except ImageError:
            continue
        width, height = header.upright_size
        yield height, width


def openvino_flags(args: argparse.Namespace) -> list[str]:
    """The OpenVINO-only flags given (not left at their defaults)."""
    return [flag for flag, given in (
        ("--requests", args.requests is not None),
        ("--inference-precision", args.inference_precision not in (None, "auto")),
        ("--performance-hint", args.performance_hint != "auto")) if given]


def open_source(args: argparse.Namespace, inputs: list[Path]) -> TiledRuntime:
    """The network to run: an exported artifact (no torch needed) or a checkpoint."""
    if args.artifact is not None:
        if args.hole is not None or args.part is not None or args.device != "cpu":
            raise AtbsnError("--hole, --part and --device belong to checkpoints; an artifact "
                             "has its hole size and backend fixed at export")
        from .pipeline import open_artifact_tiled

        options = {"threads": args.threads, "performance_hint": args.performance_hint}
        if args.requests is not None:
            if args.performance_hint == "latency":
                raise AtbsnError(f"--requests {args.requests} needs the throughput hint: the "
                                 "latency hint compiles one stream, which runs one request at "
                                 "a time; drop --performance-hint latency or --requests")
            options["infer_requests"] = args.requests
        if args.inference_precision:
            options["inference_precision"] = args.inference_precision
        sizes = image_sizes(inputs) if args.performance_hint == "auto" else iter(())
        return open_artifact_tiled(args.artifact, target=args.target, tile=args.tile,
                                   overlap=args.overlap, batch=args.batch,
                                   strength=args.strength, image_sizes=sizes,
                                   openvino_flags=openvino_flags(args), **options)
    if args.target is not None:
        raise AtbsnError("--target chooses an artifact of the --artifact bundle; it has no "
                         "meaning with a checkpoint")
    openvino_only = openvino_flags(args)
    if openvino_only:
        verb = "is" if len(openvino_only) == 1 else "are"
        raise AtbsnError(f"{' and '.join(openvino_only)} {verb} for OpenVINO artifacts "
                         "(--artifact BUNDLE); a checkpoint runs in PyTorch: drop the flag, or "
                         "export the checkpoint first")
    from .assets import default_checkpoint

    checkpoint = args.checkpoint or default_checkpoint()
    if checkpoint is None:
        raise AtbsnError("no --checkpoint given and this install has no bundled demo model")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return open_tiled(checkpoint, part=args.part, hole_size=args.hole, device=args.device,
                      tile=args.tile, overlap=args.overlap, batch=args.batch,
                      strength=args.strength)


def small_enough_to_read_ahead(path: Path) -> bool:
    """Whether an input is read while the one before it is denoised (its header says it has
    at most READ_AHEAD_MAX_PIXELS pixels); a larger one waits for its turn, so that two huge
    images are never in memory at once. Runs in the reading thread."""
    # an unreadable header (no size) is read now; its error is reported when its turn comes
    return all(height * width <= READ_AHEAD_MAX_PIXELS for height, width in image_sizes([path]))


def take_input(reader: ReadAhead, index: int, item: Job) -> Picture:
    """Input ``index`` from the reader, running out of memory reported as an ImageError."""
    try:
        return reader.get(index)
    except MemoryError:
        raise ImageError(f"{item.source}: out of memory while reading it; close other "
                         "programs or split the image") from None


def denoise_one(item: Job, picture: Picture, clean: Path | None, tiled: TiledRuntime,
                args: argparse.Namespace) -> None:
    """Denoise one read input and write its output (and its comparison picture)."""
    from .progress import progress_bar

    reference = (read_reference(item, picture, clean)
                 if args.compare and clean is not None else None)
    with progress_bar(desc=item.source.name, unit="tile", leave=False) as tiles_bar:
        result = tiled.denoise(picture.rgb, tiles_bar.update)
    write_image(item.target, picture, result, overwrite=args.overwrite)
    if args.compare:
        write_compare(item, picture, result, reference, args)


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.denoise`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def job() -> int:
        from tqdm import tqdm

        from .progress import progress_bar

        inputs, references = inputs_and_references(args)
        jobs = plan_outputs(inputs, args.output)
        check_outputs_spare_inputs(jobs, references, network_files(args), args)
        check_compare_size(args)
        # the first input is read while the network opens, each next one while the one
        # before it is denoised (readahead.py)
        with ReadAhead(read_image, [item.source for item in jobs],
                       ahead=small_enough_to_read_ahead) as reader:
            tiled = open_source(args, inputs)
            input_paths = {os.path.realpath(p) for p in inputs}
            taken: set[str] = set()
            failures = 0
            with tiled, progress_bar(total=len(jobs), desc="images", unit="img") as images_bar:
                for index, (item, clean) in enumerate(zip(jobs, references)):
                    try:
                        check_job(item, input_paths, taken, args.overwrite)
                        if args.compare:  # the comparison picture is an output like the other
                            check_job(Job(item.source, compare_path(item.target)), input_paths,
                                      taken, args.overwrite)
                        # a recompiling runtime compiles the first tile shape while it is
                        # still read (others have nothing to prepare: no header read for them)
                        if index == 0 and tiled.runtime.reshapable:
                            for height, width in image_sizes([item.source]):
                                tiled.prepare(height, width)
                        denoise_one(item, take_input(reader, index, item), clean, tiled, args)
                        log.debug("%s -> %s", item.source, item.target)
                    except ImageError as exc:
                        failures += 1
                        tqdm.write(f"error: {exc}", file=sys.stderr)
                    except Exception as exc:  # noqa: BLE001 - out of memory fails this image only
                        if not is_out_of_memory(exc):
                            raise
                        failures += 1
                        tqdm.write(f"error: {item.source}: out of memory while denoising it; "
                                   "use a smaller --tile or --batch", file=sys.stderr)
                    images_bar.update(1)
        done = len(jobs) - failures
        log.info("denoised %d of %d image(s) into %s", done, len(jobs), args.output)
        return 1 if failures else 0

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

"""python -m atbsn_edge.parity BUNDLE: does the artifact compute what PyTorch computes?

Runs the bundle's reference crops through the artifact and compares with the PyTorch outputs
stored beside them (no PyTorch needed), or, with --images, denoises given images tiled
through both the artifact and the bundle's checkpoint (PyTorch needed). With --clean
references it also reports both outputs' PSNR against clean. Every file of the artifact is
checked against the bundle's manifest first. Prints a table, writes JSON and error heatmaps on
request. Exit code 0 when every comparison passes the thresholds of the artifact's precision
(see atbsn_edge/verification.py); 1 when one fails, including any NaN or infinite output; 2 for
unusable input (one line says why).
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .arguments import path_arg
from .atomic import atomic_path
from .cli import USER_ERRORS, add_verbose_argument, new_parser, run_cli, user_error_line
from .errors import AtbsnError
from .hashing import file_sha256
from .jsonsafe import write_json
from .output_paths import check_output_path, check_report_path
from .runtimes.openvino_runtime import HINTS
from .verification import (THRESHOLDS, Comparison, compare, error_heatmap, mean_psnr_drop,
                           set_failures, thresholds_key)

if TYPE_CHECKING:
    from .bundle.manifest import Bundle
    from .pipeline import TiledRuntime
    from .runtimes.base import Runtime

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.parity``."""
    p = new_parser("python -m atbsn_edge.parity", __doc__)
    p.add_argument("bundle", type=path_arg, help="bundle folder written by atbsn_edge.export")
    p.add_argument("--target",
                   help="which of the bundle's artifacts to check, e.g. onnx-fp16 (default: the "
                        "bundle's default target)")
    p.add_argument("--images", nargs="+", help="noisy images to use instead of the reference crops")
    p.add_argument("--clean", nargs="+", help="clean references of --images, same order")
    p.add_argument("--checkpoint", type=path_arg,
                   help="checkpoint for --images (default: the one named in the manifest)")
    p.add_argument("--inference-precision", choices=("auto", *HINTS),
                   help="OpenVINO artifacts: what the CPU computes in (default auto: f32 for "
                        "fp32 artifacts, else the CPU's own default reduced type)")
    p.add_argument("--json", type=path_arg, help="write the report as JSON")
    p.add_argument("--heatmaps", type=path_arg, help="folder for one error heatmap PNG per input")
    add_verbose_argument(p)
    return p


def reference_pairs(bundle: Bundle, runtime: Runtime,
                    reference: tuple[np.ndarray, np.ndarray, list[str]],
                    ) -> list[tuple[str, np.ndarray, np.ndarray, None]]:
    """(name, artifact output, torch output, clean) for the bundle's reference crops
    (``reference``: what ``bundle.reference()`` read)."""
    inputs, outputs, names = reference
    spec = runtime.input_spec
    if (spec.height, spec.width) != (None, None) and inputs.shape[2:] != (spec.height, spec.width):
        raise AtbsnError(f"{bundle.path}: reference crops are {inputs.shape[3]}x{inputs.shape[2]}, "
                         f"the artifact takes {spec.width}x{spec.height}; re-export the bundle")
    got = runtime.run(inputs)
    return [(n, g, o, None) for n, g, o in zip(names, got, outputs)]


def input_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The names of ``paths`` in the table, the report and the heatmaps: one per path, all
    different. The file name, with as many parent folders as it takes to tell same-named
    files apart (``p1/a.png``, ``p2/a.png``), and ``#2``, ``#3``... after a file given twice
    under different spellings."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    depth = [1] * len(parts)
    names = [p[-1] for p in parts]
    while True:
        files: dict[str, set[tuple[str, ...]]] = {}  # name -> the different files it names
        for name, file in zip(names, parts):
            files.setdefault(name, set()).add(file)
        clashing = [i for i, n in enumerate(names)
                    if len(files[n]) > 1 and depth[i] < len(parts[i]) - 1]  # not up to the root
        if not clashing:
            break
        for i in clashing:
            depth[i] += 1
            names[i] = "/".join(parts[i][-depth[i]:])
    return _numbered(names, key=str)


def _numbered(names: Iterable[str], key, suffix: str = "", sep: str = "#") -> list[str]:
    """``names`` with ``{sep}2``, ``{sep}3``... added (before ``suffix``) to the repeats, so
    that no two have the same ``key``."""
    used: set[str] = set()
    out = []
    for name in names:
        candidate, index = name + suffix, 1
        while key(candidate) in used:
            index += 1
            candidate = f"{name}{sep}{index}{suffix}"
        used.add(key(candidate))
        out.append(candidate)
    return out


def heatmap_paths(folder: Path, names: Sequence[str]) -> list[Path]:
    """Where :func:`write_heatmaps` writes the heatmap of each of ``names``: one PNG per name
    in ``folder``, all different (also on a case-insensitive file system)."""
    stems = [name.replace("/", "_").replace("\\", "_").replace("@", "_") for name in names]
    return [Path(folder) / file for file in _numbered(stems, key=str.casefold, suffix=".png",
                                                     sep="-")]


def reference_names(bundle_path: Path) -> list[str]:
    """The names of a bundle's reference crops (raises :class:`AtbsnError` where the bundle or
    its reference data cannot be read)."""
    from .bundle import Bundle

    return Bundle.open(bundle_path).reference()[2]


def check_heatmap_paths(folder: Path, names: Sequence[str], *,
                        inputs: Iterable[str | os.PathLike | None] = (),
                        report: Path | None = None) -> list[Path]:
    """Refuse, before any work, a ``--heatmaps`` folder where a heatmap of ``names`` would
    replace something: an input of this run, a file of a bundle, the ``--json`` report, a
    folder, or an existing non-empty file that is not a PNG (an earlier run's heatmaps are
    replaced, as a rerun expects); also a report that is the folder or above it. Returns the
    heatmaps' paths (:func:`heatmap_paths`)."""
    folder = check_output_path(folder, "--heatmaps", folder=True)
    where = folder.resolve()
    if report is not None:
        mine = Path(report).resolve()
        if mine == where or mine in where.parents:
            raise AtbsnError(f"--json {report} and --heatmaps {folder} "
                             + ("are the same path" if mine == where else
                                "overlap (the heatmap folder would be inside the report)")
                             + "; give the report a file name outside the heatmap folder")
    targets = heatmap_paths(folder, names)
    for name, target in zip(names, targets):
        heatmap = f"--heatmaps {folder}: the heatmap of {name},"
        if report is not None and target.resolve() == Path(report).resolve():
            raise AtbsnError(f"{heatmap} {target}, would be the --json report; give the report "
                             "another name or the heatmaps another folder")
        if target.is_dir():
            raise AtbsnError(f"{heatmap} {target}, is a folder; choose another folder for the "
                             "heatmaps, or move that folder away")
        # as a report: never an input, a bundle's file or a non-PNG file
        check_report_path(target, heatmap, inputs=inputs, kind="png",
                          instead="choose another folder for the heatmaps")
    return targets


def checked_image_pairs(images: Sequence[str],
                        clean: Sequence[str] | None) -> list[tuple[Path, Path | None]]:
    """``--images`` with their ``--clean`` references (None each without), paired in the order
    given (:func:`~atbsn_edge.inputs.paired_in_order`), each pair's size and gray-or-colour
    checked from the headers by evaluate's rule, before any network opens."""
    from .evaluate import check_pair_headers
    from .inputs import expand_inputs, paired_in_order

    if not clean:
        return [(n, None) for n in expand_inputs(images)]
    pairs = paired_in_order(images, clean, noisy_flag="--images", clean_flag="--clean")
    for n, c in pairs:
        check_pair_headers(n, c)
    return pairs


def image_pairs(images: list[str], clean_images: list[str] | None, checkpoint: Path | None,
                bundle: Bundle, tiled: TiledRuntime,
                torch_outputs: dict[tuple, np.ndarray] | None = None) -> list:
    """(name, artifact output, torch output, clean) for user images, tiled the same way.

    ``torch_outputs``: a dict kept across the calls of one run (``benchmark`` keeps one) that
    holds PyTorch's output per checkpoint, network, tiling and image path, so that every target
    of one checkpoint reuses it instead of running PyTorch again. It is not bounded: keep it for
    one run of a few images, not longer (the images must not change during the run)."""
    import contextlib

    from .evaluate import check_pair
    from .imageio import read_image
    from .pipeline import open_tiled

    noisy, clean = zip(*checked_image_pairs(images, clean_images))
    checkpoint = checkpoint or Path(bundle.checkpoint)
    if bundle.checkpoint_sha256 and Path(checkpoint).is_file() \
            and file_sha256(checkpoint) != bundle.checkpoint_sha256:
        raise AtbsnError(f"{checkpoint} is not the checkpoint {bundle.path} was exported from "
                         "(its SHA-256 differs from the manifest's); give that one with --checkpoint")
    hole = tiled.runtime.info.hole_size
    spec = tiled.spec
    memo = {} if torch_outputs is None else torch_outputs
    network = (str(Path(checkpoint).resolve()), bundle.checkpoint_sha256, bundle.part, hole,
               spec.tile_h, spec.tile_w, spec.overlap)
    missing = [n for n in noisy if (*network, str(n.resolve())) not in memo]
    reference = (open_tiled(checkpoint, part=bundle.part, hole_size=hole, tile=spec.tile_h,
                            overlap=spec.overlap, batch=1, strength=1.0)
                 if missing else contextlib.nullcontext())
    pairs = []
    with reference:
        for name, n, c in zip(input_names(noisy), noisy, clean):
            picture = read_image(n)
            truth = read_image(c) if c is not None else None
            if truth is not None:
                check_pair(picture, truth)  # size and gray against colour: evaluate's rule
            got = tiled.denoise(picture.rgb).transpose(2, 0, 1)
            key = (*network, str(n.resolve()))
            if key not in memo:
                memo[key] = reference.denoise(picture.rgb).transpose(2, 0, 1)
                memo[key].setflags(write=False)
            want = memo[key]
            pairs.append((name, got, want,
                          truth.rgb.transpose(2, 0, 1) if truth is not None else None))
    return pairs


def render(results: list[Comparison], precision: str, failures: dict[str, list[str]],
           overall: list[str], held_to: str | None = None) -> str:
    """The report as a markdown table and a summary; ``held_to``, the :data:`THRESHOLDS` key
    the artifact was judged by where it is not its own ``precision`` (it ran in bf16)."""
    lines = ["| input | max abs | mean abs | rel L2 | PSNR vs torch | PSNR clean torch / artifact | result |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        clean = (f"{r.psnr_clean_torch:.3f} / {r.psnr_clean_artifact:.3f}"
                 if r.psnr_clean_torch is not None else "-")
        verdict = "pass" if not failures[r.name] else "FAIL: " + "; ".join(failures[r.name])
        lines.append(f"| {r.name} | {r.max_abs:.3g} | {r.mean_abs:.3g} | {r.rel_l2:.2e} | "
                     f"{r.psnr_vs_torch:.2f} | {clean} | {verdict} |")
    held_to = held_to or precision
    limits = THRESHOLDS[held_to]
    drop = mean_psnr_drop(results)
    if drop is not None:
        scored = [r for r in results if r.psnr_drop is not None]
        torch_mean = np.mean([r.psnr_clean_torch for r in scored])
        artifact_mean = np.mean([r.psnr_clean_artifact for r in scored])
        lines.append(f"\nmean PSNR vs clean over {len(scored)} images: torch {torch_mean:.3f} dB, "
                     f"artifact {artifact_mean:.3f} dB, drop {drop:.3f} dB"
                     + (" FAIL" if overall else ""))
    computed = f", computed in {held_to}" if held_to != precision else ""
    lines.append(f"\nprecision {precision}{computed}: thresholds rel L2 <= {limits.rel_l2:.0e}"
                 + (f", max abs <= {limits.max_abs}" if limits.max_abs is not None else "")
                 + (f", mean PSNR drop <= {limits.max_psnr_drop_db} dB" if limits.max_psnr_drop_db else "")
                 + "; any NaN or infinite output fails")
    return "\n".join(lines)


def write_heatmaps(folder: Path, pairs: list) -> None:
    """One error heatmap PNG per compared input (at :func:`heatmap_paths`), written atomically."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    targets = heatmap_paths(folder, [name for name, *_ in pairs])
    for target, (name, got, want, _) in zip(targets, pairs):
        with atomic_path(target) as tmp:
            ok, png = cv2.imencode(".png", error_heatmap(got, want))
            tmp.write_bytes(png.tobytes())


@dataclass
class ParityRun:
    """One artifact checked: its comparisons, what failed, and what ran."""

    bundle: Path
    target: str
    precision: str
    held_to: str  # the THRESHOLDS key judged by: the precision, or the coarser one it ran in
    info: Any
    pairs: list
    results: list[Comparison]
    failures: dict[str, list[str]]
    overall: list[str]

    @property
    def passed(self) -> bool:
        """Whether every comparison, and the set as a whole, is within the thresholds."""
        return not any(self.failures.values()) and not self.overall

    @property
    def apple_runtime_measured(self) -> bool:
        """False when a stand-in computed the artifact instead of the device's runtime (the
        numpy evaluator of a Core ML program off macOS)."""
        from .runtimes.registry import backend_column

        return not backend_column(self.info.backend, "stand_in")

    def report(self) -> dict:
        """The JSON report's content."""
        info = self.info
        return {"bundle": str(self.bundle), "target": self.target, "precision": self.precision,
                "backend": info.backend, "device": info.device,
                "inference_precision": info.inference_precision, "passed": self.passed,
                **({} if self.apple_runtime_measured else {"apple_runtime_measured": False}),
                "thresholds_of": self.held_to, "thresholds": THRESHOLDS[self.held_to].__dict__,
                "mean_psnr_drop": mean_psnr_drop(self.results), "set_failures": self.overall,
                "results": [r.as_dict() for r in self.results]}


def check_precision(bundle: Bundle, target: str, manifest_precision: str,
                    artifact_precision: str) -> None:
    """Refuse an artifact whose own metadata (what its runtime read from the file) states
    another precision than the manifest: the thresholds come from the precision, so a
    manifest edited from fp32 to int8 would hold an fp32 artifact to int8's looser bar."""
    if manifest_precision != artifact_precision:
        raise AtbsnError(f"{bundle.path}: the manifest says the {target} artifact is "
                         f"{manifest_precision}, but the artifact's own metadata says "
                         f"{artifact_precision} (the manifest was edited or files of different "
                         "exports were mixed); re-export the bundle")


def check_parity(bundle_path: Path, *, target: str | None = None,
                 images: list[str] | None = None, clean: list[str] | None = None,
                 checkpoint: Path | None = None,
                 inference_precision: str | None = None,
                 torch_outputs: dict[tuple, np.ndarray] | None = None) -> ParityRun:
    """Compare a bundle's artifact with PyTorch: on its reference crops, or on ``images``
    (with ``clean`` references) tiled through both (``torch_outputs``: see
    :func:`image_pairs`). Raises :class:`AtbsnError` when the bundle cannot be opened or the
    inputs are unusable."""
    from .bundle import Bundle
    from .pipeline import open_artifact_tiled

    bundle = Bundle.open(bundle_path)
    entry = bundle.artifact(target)
    if bundle.learned_int8 is not None and entry.precision != "int8":
        raise AtbsnError(f"{bundle_path} was exported from an int8-ready checkpoint: its "
                         f"{entry.target} artifact is the float graph its int8 targets were "
                         "made from (weights tuned for the int8 ranges), and its reference "
                         "outputs are the int8 simulation's, so parity has nothing to hold it "
                         f"to; check --target {bundle.learned_int8.target} or "
                         f"{bundle.default_target}")
    # the reference data, hash-checked and finite, before the artifact opens
    reference = None if images else bundle.reference()
    options = {"inference_precision": inference_precision} if inference_precision else {}
    # reference crops run whole: no overlap to fit (nor warn about) then; parity compares
    # the networks, so both run at strength 1 whatever the model's metadata recommends
    given = ["--inference-precision"] if inference_precision not in (None, "auto") else []
    with open_artifact_tiled(bundle_path, target=target, overlap=None if images else 0,
                             strength=1.0, openvino_flags=given, **options) as tiled:
        info = tiled.runtime.info
        check_precision(bundle, entry.target, entry.precision, info.precision)
        pairs = (image_pairs(images, clean, checkpoint, bundle, tiled, torch_outputs) if images
                 else reference_pairs(bundle, tiled.runtime, reference))
    held_to = thresholds_key(entry.precision, info.inference_precision)
    limits = THRESHOLDS[held_to]
    results = [compare(name, got, want, truth) for name, got, want, truth in pairs]
    return ParityRun(Path(bundle_path), entry.target, entry.precision, held_to, info, pairs,
                     results, {r.name: r.failures(limits) for r in results},
                     set_failures(results, limits))


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.parity`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def report_failure(exc: BaseException) -> None:
        """The one-line error in the --json report too: a pipeline reading it sees it."""
        line = user_error_line(exc)
        if args.json and line is not None:
            write_json(args.json, {"bundle": str(args.bundle), "target": args.target,
                                     "passed": False, "error": line})

    def job() -> int:
        from .inputs import expand_inputs

        if args.json is not None:
            check_report_path(args.json, "--json", inputs=[args.bundle, *(args.images or ()),
                                                           *(args.clean or ()), args.checkpoint])
        if args.clean and not args.images:
            raise AtbsnError("--clean needs --images (the noisy images it belongs to)")
        if args.checkpoint is not None and not args.images:
            raise AtbsnError("--checkpoint is the reference for --images (the bundle's own "
                             "reference data needs none); give --images too, or drop it")
        try:
            # the files the images name (folders and globs expanded): no output may replace one
            images = expand_inputs(args.images) if args.images else []
            clean = expand_inputs(args.clean) if args.clean else []
            names = ((input_names(images) if images else reference_names(args.bundle))
                     if args.heatmaps is not None else [])
        except USER_ERRORS as exc:
            report_failure(exc)
            raise
        inputs = [args.bundle, *images, *clean, args.checkpoint]
        if args.json is not None:
            check_report_path(args.json, "--json", inputs=inputs)
        if args.heatmaps is not None:
            check_heatmap_paths(args.heatmaps, names, inputs=inputs, report=args.json)
        try:
            run = check_parity(args.bundle, target=args.target, images=args.images,
                               clean=args.clean, checkpoint=args.checkpoint,
                               inference_precision=args.inference_precision)
        except USER_ERRORS as exc:
            report_failure(exc)
            raise
        info = run.info
        print(f"{run.target} ({info.backend} on {info.device}"
              + (f", computing in {info.inference_precision}" if info.inference_precision else "")
              + ")")
        if not run.apple_runtime_measured:
            print("Apple's Core ML runtime was not measured (it needs macOS): the saved ML "
                  "program was evaluated with numpy, op by op")
        print(render(run.results, run.precision, run.failures, run.overall, run.held_to))
        if args.heatmaps:
            write_heatmaps(args.heatmaps, run.pairs)
        if args.json:
            write_json(args.json, run.report())
        return 0 if run.passed else 1

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

"""python -m atbsn_edge.benchmark: every target of one checkpoint, exported, verified and timed.

For each target (--targets all, or a comma-separated list) it exports a bundle, runs parity on
the bundle's reference crops (PSNR of the artifact against PyTorch), with --images/--clean the
quality against clean references (mean PSNR of the artifact, and what it loses against
PyTorch), and profiles it (python -m atbsn_edge.profile: per-tile latency median and p90, the
physical floor and the ratio to it, megapixels per second and fps on a tiled 1080p frame).
A target that cannot be built here is listed with its status: "bundle only" (a TensorRT
engine is built on the device) or "failed" with the reason. Prints one markdown table with
the machine it ran on; --json writes the numbers, --log appends the table to a markdown log,
--plot draws latency against quality (needs matplotlib: pip install 'atbsn-edge[plot]').
Exits 1 when a target failed its export or parity, after the table and one line on stderr
that names them ("error: parity failed for coreml-int8; export failed for ...").
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .arguments import path_arg, positive_int, positive_multiple_of_32, thread_count
from .atomic import atomic_path
from .cli import add_verbose_argument, new_parser, run_cli
from .errors import AtbsnError
from .jsonsafe import write_json
from .output_paths import check_report_path, same_file
from .profile import parse_resolution
from .progress import progress_bar

if TYPE_CHECKING:
    from .parity import ParityRun

log = logging.getLogger(__name__)
OK, BUNDLE_ONLY, FAILED, UNAVAILABLE = "ok", "bundle only", "failed", "not available here"


@dataclass
class Row:
    """One target's line of the table."""

    target: str
    status: str
    reason: str = ""
    size_mb: float | None = None
    psnr_vs_torch: float | None = None
    parity_passed: bool | None = None
    psnr_clean: float | None = None
    psnr_drop: float | None = None
    latency_median_ms: float | None = None
    latency_p90_ms: float | None = None
    floor_ms: float | None = None
    ratio_to_floor: float | None = None
    megapixels_per_s: float | None = None
    fps: float | None = None
    inference_precision: str | None = None
    parity_failure: str | None = None   # what failed parity first (None: passed or not run)
    failed_step: str | None = None      # export, parity or profile (status "failed" only)
    profile: dict[str, Any] = field(default_factory=dict, repr=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.benchmark``."""
    p = new_parser("python -m atbsn_edge.benchmark", __doc__)
    p.add_argument("--checkpoint", type=path_arg,
                   help="checkpoint to benchmark (default: the bundled demo model, for every "
                        "target, int8 ones included: --checkpoint "
                        "atbsn_edge/assets/demo_student_c_int8.pt --targets openvino-int8 "
                        "measures the int8-ready student that export takes by default)")
    p.add_argument("--targets", default="all",
                   help="all, or a comma-separated list such as onnx-fp32,openvino-int8")
    p.add_argument("--images", nargs="+", help="noisy images for the quality column")
    p.add_argument("--clean", nargs="+", help="their clean references, same order")
    p.add_argument("--tile", type=positive_multiple_of_32, default=512, help="tile side of the exports")
    p.add_argument("--bundles", type=path_arg, default=Path("benchmark-bundles"),
                   help="folder for the exported bundles (one per target; replaced)")
    p.add_argument("--iters", type=positive_int, default=10,
                   help="timed network calls per target")
    p.add_argument("--frame-iters", type=positive_int, default=3,
                   help="timed tiled frames per target")
    p.add_argument("--resolution", type=parse_resolution, default=(1920, 1080),
                   help="frame size for MP/s and fps, WIDTHxHEIGHT (default 1920x1080)")
    p.add_argument("--threads", type=thread_count, default=0,
                   help="CPU threads of the backends (0: their default)")
    p.add_argument("--json", type=path_arg, help="write every number as JSON")
    p.add_argument("--log", type=path_arg, help="append the table (with date and machine) to this markdown file")
    p.add_argument("--plot", type=path_arg, help="write a latency-vs-quality PNG (needs matplotlib)")
    add_verbose_argument(p)
    return p


def chosen_targets(text: str) -> list[str]:
    """The targets named by ``--targets``, checked against the target table (each once, in
    the order given); a list that names none is refused."""
    from .export.targets import TARGETS, get_target

    if text.strip() == "all":
        return list(TARGETS)
    names = [get_target(name.strip()).name for name in text.split(",") if name.strip()]
    if not names:
        raise AtbsnError(f"--targets {text!r} names no target; give all, or a comma-separated "
                         f"list of: {', '.join(TARGETS)}")
    return list(dict.fromkeys(names))


def check_distinct_reports(reports: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse, before any work, two report flags (``--json``, ``--log``, ``--plot``) that
    name one file: the second would replace or append to the first."""
    seen: list[tuple[str, Path]] = []
    for flag, path in reports:
        if path is None:
            continue
        for other_flag, other in seen:
            if same_file(path, other):
                raise AtbsnError(f"{other_flag} {other} and {flag} {path} are the same file; "
                                 "give each report its own path")
        seen.append((flag, path))


def check_outside_bundles(items: Sequence[tuple[str, str | Path | None]], bundles: Path,
                          targets: Sequence[str]) -> None:
    """Refuse, before any work, an input or report inside a target's bundle folder under
    ``--bundles``: each target's folder is replaced by its export (``items``: flag, path)."""
    folders = [(bundles / target).resolve() for target in targets]
    for flag, item in items:
        if item is None:
            continue
        path = Path(item).resolve()
        for folder in folders:
            if path == folder or folder in path.parents:
                raise AtbsnError(f"{flag} {item} is inside {folder}, the {folder.name} bundle "
                                 "that this benchmark replaces; move it out, or give another "
                                 "--bundles folder")


def _quiet_call(function, argv: Sequence[str]) -> tuple[int, str]:
    """Run a CLI ``main`` in-process; its exit code and the last line it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = function(list(argv))
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    return code, (lines[-1][len("error: "):] if lines else "")


def export_target(target: str, args: argparse.Namespace) -> tuple[str, str, Path]:
    """(status, reason, bundle) of exporting ``target`` into ``args.bundles``."""
    from .assets import default_checkpoint
    from .export.__main__ import EXIT_ENGINE_PENDING
    from .export.__main__ import main as export
    from .export.targets import get_target

    out = args.bundles / target
    available, why = get_target(target).availability()
    if not available:
        return UNAVAILABLE, why, out
    argv = ["--target", target, "--tile", str(args.tile), "--out", str(out), "--overwrite"]
    if args.verbose:  # the nested CLI sets the log level again: keep benchmark's -v
        argv.append("--verbose")
    # always named: with no --checkpoint the export of an int8 target takes the int8-ready
    # student, and this table compares the targets of one checkpoint
    checkpoint = args.checkpoint or default_checkpoint()
    if checkpoint:
        argv += ["--checkpoint", str(checkpoint)]
    code, reason = _quiet_call(export, argv)
    if code == EXIT_ENGINE_PENDING:
        return BUNDLE_ONLY, "engine is built on the device (export ... --from-bundle)", out
    if code != 0:
        return FAILED, reason or f"export exited with {code}", out
    return OK, "", out


def measure(target: str, args: argparse.Namespace, torch_outputs: dict | None = None) -> Row:
    """Export, verify and profile one target (``torch_outputs``: PyTorch's outputs on
    ``--images``, kept across the targets of one run)."""
    from .bundle import Bundle
    from .parity import check_parity
    from .profile import profile_artifact

    status, reason, out = export_target(target, args)
    row = Row(target, status, reason, failed_step="export" if status == FAILED else None)
    if status != OK:
        return row
    step = "parity"
    try:
        bundle = Bundle.open(out)
        entry = bundle.artifact(target)
        row.size_mb = sum((out / name).stat().st_size for name in entry.files) / 2**20
        parity = check_parity(out, target=target)
        row.parity_passed = parity.passed
        row.parity_failure = first_parity_failure(parity)
        row.psnr_vs_torch = min(r.psnr_vs_torch for r in parity.results)
        if args.images:
            quality = check_parity(out, target=target, images=args.images, clean=args.clean,
                                   torch_outputs=torch_outputs)
            row.parity_passed = row.parity_passed and quality.passed
            row.parity_failure = row.parity_failure or first_parity_failure(quality)
            scored = [r for r in quality.results if r.psnr_clean_artifact is not None]
            if scored:
                row.psnr_clean = sum(r.psnr_clean_artifact for r in scored) / len(scored)
                row.psnr_drop = sum(r.psnr_drop for r in scored) / len(scored)
        if not parity.apple_runtime_measured:  # numbers of numpy, not of a device: no latency
            row.reason = "verified by the numpy evaluator; Apple's runtime needs macOS"
            return row
        step = "profile"
        report = profile_artifact(out, target=target, warmup_s=1.0, iters=args.iters,
                                  frame_iters=args.frame_iters, threads=args.threads,
                                  resolution=args.resolution, power=True)
    except AtbsnError as exc:
        row.status, row.reason, row.failed_step = FAILED, str(exc), step
        return row
    call = report["call"]
    row.latency_median_ms = call["latency_ms"]["median"]
    row.latency_p90_ms = call["latency_ms"]["p90"]
    row.floor_ms = call["floor_ms"]
    row.ratio_to_floor = call["ratio_to_floor"]["median"]
    row.inference_precision = report.get("inference_precision")
    frame = report.get("frame") or {}
    row.megapixels_per_s, row.fps = frame.get("megapixels_per_s"), frame.get("fps")
    row.profile = report
    return row


def first_parity_failure(run: ParityRun) -> str | None:
    """What failed first in a :class:`~atbsn_edge.parity.ParityRun` (the whole set's check,
    else the first input's), as the parity table words it; None where it passed."""
    if run.overall:
        return run.overall[0]
    for name, failures in run.failures.items():
        if failures:
            return f"{name}: {failures[0]}"
    return None


def row_summary(row: Row) -> str:
    """One target's outcome for its log line, as the table's status column says it, with the
    parity failure spelled out: ``coreml-int8: ok, parity FAILED (...); verified by ...``."""
    if row.status == OK and row.parity_passed is False:
        failure = f" ({row.parity_failure})" if row.parity_failure else ""
        status = f"ok, parity FAILED{failure}"
    elif row.status == FAILED and row.failed_step:
        status = f"{row.failed_step} failed"
    else:
        status = row.status
    return f"{row.target}: {status}" + (f"; {row.reason}" if row.reason else "")


def failure_line(rows: Sequence[Row]) -> str | None:
    """The line that explains exit code 1: the targets that failed parity, and those whose
    export (or parity run, or profile) failed, e.g. ``parity failed for coreml-int8; export
    failed for onnx-int8``; None where every target passed."""
    failed: dict[str, list[str]] = {}
    for row in rows:
        if row.status == FAILED:
            failed.setdefault(row.failed_step or "export", []).append(row.target)
        elif row.parity_passed is False:
            failed.setdefault("parity", []).append(row.target)
    if not failed:
        return None
    parts = [f"{step} failed for {', '.join(failed[step])}"
             for step in ("parity", "export", "profile") if step in failed]
    return "; ".join(parts) + " (see the table's status column)"


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render_table(rows: list[Row], machine: str, resolution: str) -> str:
    """The markdown table, with the machine line above it."""
    lines = [f"Machine: {machine}", "",
             f"| target | status | size MB | parity PSNR vs torch (min) | PSNR vs clean | drop | "
             f"latency median / p90 ms | floor ms | x floor | MP/s | fps at {resolution} |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        status = r.status if not r.reason else f"{r.status}: {r.reason}"
        if r.status == OK and r.parity_passed is False:
            status = "ok, parity FAILED"
        compute = f" ({r.inference_precision})" if r.inference_precision else ""
        latency = ("-" if r.latency_median_ms is None
                   else f"{r.latency_median_ms:.1f} / {r.latency_p90_ms:.1f}")
        lines.append(f"| {r.target}{compute} | {status} | {_cell(r.size_mb, '.2f')} | "
                     f"{_cell(r.psnr_vs_torch, '.2f')} | {_cell(r.psnr_clean, '.3f')} | "
                     f"{_cell(r.psnr_drop, '.3f')} | {latency} | {_cell(r.floor_ms, '.1f')} | "
                     f"{_cell(r.ratio_to_floor, '.2f')} | {_cell(r.megapixels_per_s, '.2f')} | "
                     f"{_cell(r.fps, '.3f')} |")
    return "\n".join(lines)


def write_plot(path: Path, rows: list[Row]) -> None:
    """Latency (x, log) against quality (y: PSNR vs clean, else vs PyTorch) of the ok rows."""
    try:
        import matplotlib
    except ImportError:
        raise AtbsnError("--plot needs matplotlib: pip install 'atbsn-edge[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.latency_median_ms is not None]
    clean = all(r.psnr_clean is not None for r in points)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in points:
        y = r.psnr_clean if clean else r.psnr_vs_torch
        ax.scatter(r.latency_median_ms, y)
        ax.annotate(r.target, (r.latency_median_ms, y), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("latency per tile, median (ms, log scale)")
    ax.set_ylabel("mean PSNR vs clean (dB)" if clean else "min PSNR vs PyTorch (dB)")
    ax.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def append_log(path: Path, text: str) -> None:
    """Append ``text`` to the markdown log ``path`` (created with its folders if missing),
    atomically: the log is the old one or the old one plus ``text``, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_bytes() if path.is_file() else b""  # as it is, whatever its bytes
    with atomic_path(path) as tmp:
        tmp.write_bytes(old + text.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    """The ``atbsn_edge.benchmark`` command on ``argv`` (None: sys.argv); returns its exit code."""
    args = build_parser().parse_args(argv)

    def job() -> int:
        from .profiling.machine import describe_cpu

        inputs = [args.checkpoint, *(args.images or ()), *(args.clean or ())]
        reports = (("--json", args.json, "json"), ("--log", args.log, "text"),
                   ("--plot", args.plot, "png"))
        for flag, path, kind in reports:
            if path is not None:
                check_report_path(path, flag, inputs=inputs, kind=kind)
        check_distinct_reports([(flag, path) for flag, path, _ in reports])
        if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
            raise AtbsnError("--plot needs matplotlib: pip install 'atbsn-edge[plot]'")
        if bool(args.images) != bool(args.clean):
            raise AtbsnError("--images and --clean go together (noisy images and their clean "
                             "references, same order)")
        if args.images:  # as parity pairs them, before any export
            from .parity import checked_image_pairs

            checked_image_pairs(args.images, args.clean)
        targets = chosen_targets(args.targets)
        check_outside_bundles([("--checkpoint", args.checkpoint),
                               *(("--images", p) for p in args.images or ()),
                               *(("--clean", p) for p in args.clean or ()),
                               *((flag, path) for flag, path, _ in reports)],
                              args.bundles, targets)
        rows = []
        torch_outputs: dict = {}  # PyTorch's outputs on --images, per tiling, for every target
        for target in progress_bar(targets, desc="targets", unit="target"):
            rows.append(measure(target, args, torch_outputs))
            failed = rows[-1].status == FAILED or rows[-1].parity_passed is False
            log.log(logging.WARNING if failed else logging.INFO, "%s", row_summary(rows[-1]))
        machine = describe_cpu()
        table = render_table(rows, machine, "x".join(map(str, args.resolution)))
        print(table)
        if args.json:
            write_json(args.json, {"machine": machine, "rows": [asdict(r) for r in rows]})
        if args.log:
            append_log(args.log, f"\n## {time.strftime('%Y-%m-%d %H:%M')} "
                                 f"{args.checkpoint or 'demo model'}\n\n{table}\n")
        if args.plot:
            write_plot(args.plot, rows)
        failures = failure_line(rows)
        if failures is None:
            return 0
        print(f"error: {failures}", file=sys.stderr)
        return 1

    return run_cli(job, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())

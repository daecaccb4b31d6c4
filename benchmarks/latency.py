"""Latency of one network at one tile size on every backend that runs here, in one run.

Exports the checkpoint to each target (temporary bundles), then times PyTorch eager fp32 and
each artifact through the Runtime interface, and the backend called directly (to show the
interface's overhead); then tiled denoising of a ``--tiled`` image (default 1920x1080) through
the same artifact, against (number of tiles) x (single-tile latency). The interface and the
direct call are timed alternately, so drift falls on both alike. Prints a table with the
machine it ran on. A target may carry export flags after a colon, e.g.
``openvino-int8:--int8-quantizer=qdq``.

The PyTorch baseline is the float network in fp32, also for an int8-ready checkpoint (whose
artifacts are exported from its learned int8 ranges): that is the default ``openvino-int8``
export against PyTorch eager fp32 with
``--checkpoint atbsn_edge/assets/demo_student_c_int8.pt --targets openvino-int8``.

    python benchmarks/latency.py --checkpoint atbsn_edge/assets/demo_student_c.pt --tile 512
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import (non_negative_int, positive_int, positive_multiple_of_32,
                                  thread_count)
from atbsn_edge.cli import new_parser
from atbsn_edge.profiling.machine import describe_cpu
from atbsn_edge.profiling.timing import time_calls


def median_time(fn, x, warmup: int, repeats: int) -> tuple[float, float]:
    """Median and p90 through the toolkit's one timing function."""
    for _ in range(warmup):
        fn(x)
    timing = time_calls(lambda: fn(x), warmup_s=0.0, iters=repeats)
    return timing.median, timing.p90


def paired_times(interface, direct, x, warmup: int, repeats: int) -> tuple[float, float, float]:
    """Median and p90 of ``interface`` and median of ``direct``, called alternately so that
    the machine's drift (clock, other load) falls on both alike (each call timed by
    :func:`atbsn_edge.profiling.timing.time_calls`)."""
    for _ in range(warmup):
        interface(x)
        direct(x)
    a, b = [], []
    for _ in range(repeats):
        for fn, times in ((interface, a), (direct, b)):
            times.extend(time_calls(lambda: fn(x), warmup_s=0.0, iters=1, min_iters=1).samples)
    return statistics.median(a), float(np.percentile(a, 90)), statistics.median(b)


def parse_targets(text: str) -> list[tuple[str, list[str]]]:
    """``--targets``: comma-separated export targets, each with optional export flags after
    colons; every name checked against the export's target table (a one-line error naming
    the valid ones) before any export."""
    from atbsn_edge.errors import AtbsnError
    from atbsn_edge.export.targets import get_target

    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise AtbsnError(f"--targets {text!r} names no target; give comma-separated export "
                         "targets, e.g. --targets onnx-fp32,openvino-int8")
    parsed = []
    for entry in entries:
        target, *flags = entry.split(":")
        get_target(target)  # an unknown name: AtbsnError listing the valid targets
        parsed.append((target, flags))
    return parsed


def parse_size(text: str) -> tuple[int, int]:
    """``--tiled WxH`` as (width, height), or a one-line error."""
    from atbsn_edge.errors import AtbsnError

    width, x, height = text.lower().partition("x")
    if not (x and width.strip().isdigit() and height.strip().isdigit()
            and int(width) > 0 and int(height) > 0):
        raise AtbsnError(f"--tiled {text!r}: give the image size as WIDTHxHEIGHT, e.g. "
                         "--tiled 1920x1080, or --tiled '' to skip the tiled check")
    return int(width), int(height)


def main() -> None:
    parser = new_parser("latency.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tile", type=positive_multiple_of_32, default=512)
    parser.add_argument("--targets", default="onnx-fp32,onnx-fp16,onnx-int8,openvino-fp32,"
                        "openvino-fp16,openvino-int8,openvino-int8:--int8-quantizer=qdq")
    parser.add_argument("--tiled", default="1920x1080", help="WxH image for the tiled check ('' skips)")
    parser.add_argument("--threads", type=thread_count, default=0,
                        help="threads for every backend (0: default)")
    parser.add_argument("--warmup", type=non_negative_int, default=2)
    parser.add_argument("--repeats", type=positive_int, default=10)
    args = parser.parse_args()
    targets = parse_targets(args.targets)  # every name checked before any export
    tiled_size = parse_size(args.tiled) if args.tiled else None

    import torch

    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.models.checkpoint import float_network
    from atbsn_edge.pipeline import locate_artifact, open_artifact_tiled
    from atbsn_edge.runtimes.registry import open_artifact
    from atbsn_edge.tiling import plan_tiles

    if args.threads:
        torch.set_num_threads(args.threads)
    image = None
    if tiled_size is not None:
        width, height = tiled_size
        image = (np.random.default_rng(1).random((height, width, 3)) * 255).astype(np.float32)

    x = (np.random.default_rng(0).random((1, 3, args.tile, args.tile)) * 255).astype(np.float32)
    model = load_checkpoint(args.checkpoint)
    core = float_network(model.core())  # an int8-ready checkpoint: its float network, in fp32
    rows = []

    def eager(batch):
        with torch.inference_mode():
            return core(torch.from_numpy(batch)).numpy()

    base, base90 = median_time(eager, x, args.warmup, args.repeats)
    rows.append(("torch eager fp32", base, base90, None))
    tiled_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (target, flags) in enumerate(targets):
            label = " ".join([target, *flags])
            out = Path(tmp) / f"{index}-{target}"
            if export(["--target", target, "--checkpoint", args.checkpoint, "--tile",
                       str(args.tile), "--out", str(out), *flags]) != 0:
                rows.append((label, float("nan"), float("nan"), None))
                continue
            options = {"threads": args.threads} if args.threads else {}
            entry, runtime_name = locate_artifact(out)
            with open_artifact(entry, runtime=runtime_name, **options) as runtime:
                direct = getattr(runtime, "session", None) or getattr(runtime, "request", None)
                if hasattr(direct, "run"):
                    raw = lambda b: direct.run(None, {runtime.input_name: b})[0]  # noqa: E731
                else:
                    raw = lambda b: direct.infer({0: b})[0]  # noqa: E731
                t, t90, d = paired_times(runtime.infer, raw, x, args.warmup, args.repeats)
            rows.append((label, t, t90, d))
            if image is not None:
                with open_artifact_tiled(out, **options) as tiled:
                    plan = plan_tiles(image.shape[0], image.shape[1], tiled.spec)
                    count = len(plan.ys) * len(plan.xs)
                    whole, _ = median_time(tiled.denoise, image, 1, 3)
                tiled_rows.append((label, count, t, whole))
    print(f"CPU: {describe_cpu()}; "
          f"torch {torch.__version__}; {model.architecture.name} at {args.tile}x{args.tile}, "
          f"batch 1, median of {args.repeats}")
    print("| backend | median | p90 | speed-up vs torch | backend called directly | interface overhead |")
    print("|---|---|---|---|---|---|")
    for name, t, t90, direct in rows:
        over = f"{(t / direct - 1) * 100:+.1f}%" if direct else "-"
        print(f"| {name} | {t * 1000:.0f} ms | {t90 * 1000:.0f} ms | {base / t:.2f}x | "
              f"{direct * 1000:.0f} ms | {over} |" if direct else
              f"| {name} | {t * 1000:.0f} ms | {t90 * 1000:.0f} ms | {base / t:.2f}x | - | - |")
    if tiled_rows:
        print(f"\ntiled {args.tiled} through the runtime interface (median of 3), against "
              "tiles x single-tile latency (bar: at most 1.25x)")
        print("| backend | tiles | tiled | tiles x single tile | ratio |")
        print("|---|---|---|---|---|")
        for name, count, single, whole in tiled_rows:
            print(f"| {name} | {count} | {whole * 1000:.0f} ms | {count * single * 1000:.0f} ms | "
                  f"{whole / (count * single):.2f}x |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

"""Latency of one network at one tile size on every backend that runs here, in one run.

Exports the checkpoint to each available target (temporary bundles), then times PyTorch eager
fp32 and each artifact through the Runtime interface, and the backend called directly (to
show the interface's overhead). Prints a table with the machine it ran on.

    python benchmarks/latency.py --checkpoint atbsn_edge/assets/demo_student_c.pt --tile 512
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def median_time(fn, x, warmup: int, repeats: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - started)
    return statistics.median(times), float(np.percentile(times, 90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--targets", default="onnx-fp32,openvino-fp32,openvino-fp16")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import torch

    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.runtimes.registry import open_artifact

    x = (np.random.default_rng(0).random((1, 3, args.tile, args.tile)) * 255).astype(np.float32)
    model = load_checkpoint(args.checkpoint)
    core = model.core()
    rows = []

    def eager(batch):
        with torch.inference_mode():
            return core(torch.from_numpy(batch)).numpy()

    base, base90 = median_time(eager, x, args.warmup, args.repeats)
    rows.append(("torch eager fp32", base, base90, None))
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets.split(","):
            out = Path(tmp) / target
            if export(["--target", target, "--checkpoint", args.checkpoint, "--tile",
                       str(args.tile), "--out", str(out)]) != 0:
                rows.append((target, float("nan"), float("nan"), None))
                continue
            artifact = next(p for p in out.iterdir() if p.suffix in (".onnx", ".xml")
                            and p.name.startswith(f"model-{target.split('-')[1]}"))
            with open_artifact(artifact) as runtime:
                t, t90 = median_time(runtime.infer, x, args.warmup, args.repeats)
                direct = getattr(runtime, "session", None) or getattr(runtime, "request", None)
                if hasattr(direct, "run"):
                    raw = lambda b: direct.run(None, {runtime.input_name: b})[0]  # noqa: E731
                else:
                    raw = lambda b: direct.infer({0: b})[0]  # noqa: E731
                d, _ = median_time(raw, x, args.warmup, args.repeats)
            rows.append((target, t, t90, d))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}; {model.architecture.name} at {args.tile}x{args.tile}, "
          f"batch 1, median of {args.repeats}")
    print("| backend | median | p90 | speed-up vs torch | backend called directly | interface overhead |")
    print("|---|---|---|---|---|---|")
    for name, t, t90, direct in rows:
        over = f"{(t / direct - 1) * 100:+.1f}%" if direct else "-"
        print(f"| {name} | {t * 1000:.0f} ms | {t90 * 1000:.0f} ms | {base / t:.2f}x | "
              f"{direct * 1000:.0f} ms | {over} |" if direct else
              f"| {name} | {t * 1000:.0f} ms | {t90 * 1000:.0f} ms | {base / t:.2f}x | - | - |")


if __name__ == "__main__":
    main()

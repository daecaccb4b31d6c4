"""Tiles per second for a 12 MP photo: one tile at a time against OpenVINO's throughput hint
with several infer requests in flight, and against a batched export (issue 12, part 4).

Exports (or takes, ``--bundle`` / ``--batched-bundle``) the openvino-int8 bundle of a
checkpoint (default: the bundled demo student C) at batch 1 and at ``--batch``, builds a
``--width`` x ``--height`` photo from ``atbsn_edge/assets/example_noisy.png`` (reflected, so
every tile holds real noise and detail), and denoises it tiled, exactly as
``python -m atbsn_edge.denoise --artifact`` does, under four configurations:

- latency hint, batch 1: one tile at a time (the baseline);
- throughput hint, batch 1: ``--requests`` tiles in flight (default: OpenVINO's optimal
  number, one per CPU stream);
- latency and throughput hints on the batched export (``--batch`` tiles per request).

Configurations alternate within each of ``--rounds`` rounds so that machine drift falls on
all alike; the table gives the median seconds per photo and tiles per second, with the CPU
(``atbsn_edge.profiling.machine.describe_cpu``), threads, OpenVINO version, streams and
requests. The denoise CLI flags of each row are printed under the table.

    python benchmarks/throughput.py --threads 2                      # exports, ~5 minutes
    python benchmarks/throughput.py --bundle b-ov8 --batched-bundle b-ov8-b2 --rounds 3
"""
from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("benchmarks.throughput")


@dataclass
class Config:
    """One row: which bundle, which hint, how many requests (0: OpenVINO's optimal)."""

    label: str
    bundle: Path
    hint: str
    requests: int = 0
    seconds: list[float] = field(default_factory=list)
    tiles: int = 0
    batch: int = 1
    overlap: int = 0
    streams: int = 0
    in_flight: int = 0

    def flags(self) -> str:
        """The denoise CLI flags that run this configuration."""
        requests = f" --requests {self.requests}" if self.requests else ""
        return (f"--artifact {self.bundle.name} --performance-hint {self.hint.lower()}"
                f"{requests}")


def export_bundle(out: Path, batch: int, tile: int, checkpoint: str | None) -> Path:
    """Export the openvino-int8 bundle of ``checkpoint`` (default the demo model) at ``batch``."""
    from atbsn_edge.export.__main__ import main as export

    log.warning("exporting %s (a minute or two)", out.name)
    extra = ["--checkpoint", checkpoint] if checkpoint else []
    code = export(["--target", "openvino-int8", "--tile", str(tile), "--batch", str(batch),
                   "--out", str(out), *extra])
    if code != 0:
        raise SystemExit(f"export of {out.name} failed (exit code {code})")
    return out


def test_photo(width: int, height: int, source: Path) -> np.ndarray:
    """A ``height`` x ``width`` x 3 float32 photo: ``source`` reflected to that size."""
    from atbsn_edge.imageio import read_image
    from atbsn_edge.tiling import reflect_indices

    rgb = read_image(source).rgb
    rows = reflect_indices(rgb.shape[0], height)
    cols = reflect_indices(rgb.shape[1], width)
    return np.ascontiguousarray(rgb[np.ix_(rows, cols)], dtype=np.float32)


def measure(config: Config, image: np.ndarray, threads: int, overlap: int | None,
            inference_precision: str | None = None) -> None:
    """Open ``config``'s bundle, warm it up on one batch, denoise ``image`` once, timed."""
    from atbsn_edge.progress import progress_bar

    from atbsn_edge.pipeline import open_artifact_tiled
    from atbsn_edge.tiling import plan_tiles

    options = {"performance_hint": config.hint, "threads": threads,
               "infer_requests": config.requests}
    if inference_precision:
        options["inference_precision"] = inference_precision
    with open_artifact_tiled(config.bundle, overlap=overlap, **options) as tiled:
        runtime, spec = tiled.runtime, tiled.spec
        config.tiles = plan_tiles(image.shape[0], image.shape[1], spec).count
        config.batch, config.overlap, config.streams = spec.batch, spec.overlap, runtime.streams
        log.info("%s", tiled.describe())
        warm = np.zeros((spec.batch, 3, spec.tile_h, spec.tile_w), np.float32)
        list(runtime.run_many([warm] * runtime.infer_requests))
        with progress_bar(total=config.tiles, desc=config.label, unit="tile", leave=False) as bar:
            start = time.perf_counter()
            tiled.denoise(image, bar.update)
            config.seconds.append(time.perf_counter() - start)
        config.in_flight = max(config.in_flight, runtime.peak_in_flight)


def main() -> None:
    from atbsn_edge.cli import new_parser

    parser = new_parser("throughput.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", help="checkpoint to export (default: the bundled demo "
                                             "student C)")
    parser.add_argument("--bundle", type=Path, help="existing openvino-int8 bundle, batch 1")
    parser.add_argument("--batched-bundle", type=Path,
                        help="existing openvino-int8 bundle exported with --batch")
    parser.add_argument("--batch", type=int, default=2,
                        help="batch of the batched export (default 2)")
    parser.add_argument("--tile", type=int, default=512, help="exported tile side")
    parser.add_argument("--overlap", type=int, help="default: the network's")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--image", type=Path,
                        help="photo to reflect to size (default: the bundled example_noisy.png)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=0,
                        help="requests in flight with the throughput hint (default 0: "
                             "OpenVINO's optimal number)")
    parser.add_argument("--rounds", type=int, default=2, help="photos per configuration")
    parser.add_argument("--inference-precision", choices=("auto", "f32", "bf16", "f16"),
                        help="OpenVINO's float type for the float layers (default: the CPU's "
                             "own; f32 under ONEDNN_MAX_CPU_ISA=AVX2, which has no bf16)")
    args = parser.parse_args()

    import openvino as ov

    from atbsn_edge.assets import ASSETS
    from atbsn_edge.profiling.machine import describe_cpu

    image = test_photo(args.width, args.height, args.image or ASSETS / "example_noisy.png")
    with tempfile.TemporaryDirectory() as tmp:
        single = args.bundle or export_bundle(Path(tmp) / "openvino-int8", 1, args.tile,
                                              args.checkpoint)
        batched = args.batched_bundle or export_bundle(
            Path(tmp) / f"openvino-int8-b{args.batch}", args.batch, args.tile, args.checkpoint)
        configs = [Config("latency, batch 1 (one tile at a time)", single, "LATENCY"),
                   Config("throughput, batch 1", single, "THROUGHPUT", args.requests),
                   Config(f"latency, batch {args.batch}", batched, "LATENCY"),
                   Config(f"throughput, batch {args.batch}", batched, "THROUGHPUT",
                          args.requests)]
        for _ in range(args.rounds):
            for config in configs:
                measure(config, image, args.threads, args.overlap, args.inference_precision)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    megapixels = args.width * args.height / 1e6
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA")
    cap = f" (OpenVINO capped at ONEDNN_MAX_CPU_ISA={capped})" if capped else ""
    precision = f", inference precision {args.inference_precision}" if args.inference_precision else ""
    print(f"\nCPU: {describe_cpu()}{cap}{precision}; OpenVINO {ov.__version__}; {args.threads} threads; "
          f"openvino-int8 {args.checkpoint or 'demo student C'}, tile {args.tile}, overlap "
          f"{configs[0].overlap}; "
          f"{args.width}x{args.height} photo ({megapixels:.1f} MP, {configs[0].tiles} tiles); "
          f"median of {args.rounds} photos per row; load average {load:.2f} at the end\n")
    base = statistics.median(configs[0].seconds)
    print("| configuration | export batch | CPU streams | requests in flight | s / photo | "
          "tiles / s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for c in configs:
        seconds = statistics.median(c.seconds)
        print(f"| {c.label} | {c.batch} | {c.streams} | {c.in_flight} | {seconds:.2f} | "
              f"{c.tiles / seconds:.2f} | {base / seconds:.2f}x |")
    print("\nflags (python -m atbsn_edge.denoise PHOTO -o OUT ...):")
    for c in configs:
        print(f"- {c.label}: {c.flags()} --threads {args.threads}")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

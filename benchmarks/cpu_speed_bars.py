"""Issue 12's two speed bars on the CPU at hand, in one run, with the floor timed between calls.

The default ``openvino-int8`` bundle (or ``--bundle``) through the runtime interface, PyTorch
eager fp32 (the float network of the bundle's checkpoint) and the profiler's int8 floor model
(four chained 3x3 convolutions, 128 -> 128 at 64 x 64, its fastest node by OpenVINO's
counters, as ``python -m atbsn_edge.profile`` measures it) take turns, round after round, so
that the machine's drift falls on all three alike. Prints, with the CPU named:

- the bundle against PyTorch eager fp32 (bar **20x**, which applies on a CPU with AMX only);
- the bundle against the int8 floor: the network's multiply-adds (its fp32 ONNX) at the floor's
  rate (bar **1.3x**): by the whole run (the median call against the fastest floor sample, the
  profiler's statistic) and round by round (each round's median against that round's floor);
- the bundle against the floor as issue 12 words it, "network multiply-adds at the fastest int8
  layer rate": the rate of the network's own fastest int8 layer (``benchmarks/layer_profile.py``'s
  figure), from a second compiled copy of the bundle with OpenVINO's counters on, profiled
  ``--profiled-calls`` times each round (the timed copy runs without counters);
- the same bundle under OpenVINO's throughput hint (``--tiles`` tiles per round through
  ``Runtime.run_many``, one stream of one thread per core: what ``denoise`` runs on an input of
  more than one tile), as time per tile against both floors. On the AMD EPYC VM a single call on
  two threads has slow periods that one-thread streams do not (docs/export.md).

    python benchmarks/cpu_speed_bars.py                      # exports the default bundle first
    python benchmarks/cpu_speed_bars.py --bundle B --rounds 12 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import positive_float, positive_int, thread_count
from atbsn_edge.cli import new_parser
from atbsn_edge.errors import AtbsnError
from atbsn_edge.profiling.machine import cpu_info, describe_cpu

FLOOR_CHANNELS, FLOOR_SIZE = 128, 64


def main() -> None:
    parser = new_parser("cpu_speed_bars.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--bundle", type=Path, help="an openvino-int8 bundle (default: export "
                        "the default one, from the bundled int8-ready student, to a temporary folder)")
    parser.add_argument("--checkpoint", type=Path, help="PyTorch baseline (default: the bundle's "
                        "own checkpoint, its float network in fp32)")
    parser.add_argument("--threads", type=thread_count, default=2)
    parser.add_argument("--rounds", type=positive_int, default=8)
    parser.add_argument("--calls", type=positive_int, default=6, help="bundle calls per round")
    parser.add_argument("--floor-seconds", type=positive_float, default=0.4,
                        help="floor-model time per round (its fastest node counts)")
    parser.add_argument("--profiled-calls", type=positive_int, default=2,
                        help="calls of the counters-on copy per round (the layer floor)")
    parser.add_argument("--tiles", type=positive_int, default=8,
                        help="tiles per round under the throughput hint")
    parser.add_argument("--no-eager", action="store_true", help="skip PyTorch (1 s a call)")
    args = parser.parse_args()
    if args.bundle is not None and not (args.bundle / "manifest.json").is_file():
        raise AtbsnError(f"--bundle {args.bundle} is not a bundle folder (no manifest.json); "
                         "give an openvino-int8 bundle, or leave --bundle out to export the "
                         "default one")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None:
            from atbsn_edge.export.__main__ import main as export

            bundle = Path(tmp) / "bundle"
            if export(["--target", "openvino-int8", "--out", str(bundle)]) != 0:
                raise SystemExit("the default openvino-int8 export failed (its message is above)")
        measure(bundle, args)


def measure(bundle: Path, args: argparse.Namespace) -> None:
    from atbsn_edge.bundle import Bundle
    from atbsn_edge.pipeline import locate_artifact
    from atbsn_edge.profiling import floors
    from atbsn_edge.profiling.graph_cost import fp32_onnx_for, graph_cost
    from atbsn_edge.profiling.openvino_layers import (call_profile, fastest_int8_layer,
                                                      layer_macs, layers_of)
    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime
    from atbsn_edge.runtimes.registry import open_artifact

    entry, runtime_name = locate_artifact(bundle, "openvino-int8")
    floor_model = floors.compile_floor_convolutions("int8", args.threads, channels=FLOOR_CHANNELS,
                                                    size=FLOOR_SIZE)
    floor_x = floors.floor_input(FLOOR_CHANNELS, FLOOR_SIZE)
    floor_macs = float(FLOOR_SIZE ** 2 * FLOOR_CHANNELS ** 2 * 9)
    eager = None if args.no_eager else eager_network(args.checkpoint or Bundle.open(bundle).checkpoint,
                                                     args.threads)
    # the timed copy runs without counters; a second copy with them gives the layer floor
    with open_artifact(entry, runtime=runtime_name, threads=args.threads) as runtime, \
            open_artifact(entry, runtime=runtime_name, threads=args.threads,
                          performance_hint="throughput") as streams, \
            OpenVinoRuntime(entry, threads=args.threads, profile=True) as counted:
        spec = runtime.input_spec
        x = (np.random.default_rng(0).random((1, spec.channels, spec.height, spec.width))
             * 255).astype(np.float32)
        macs = graph_cost(fp32_onnx_for(entry), input_shape=x.shape).macs
        for _ in range(2):  # warm-up
            runtime.run(x)
            consume(streams.run_many(x for _ in range(args.tiles)))
            counted.infer(x)
            if eager is not None:
                eager(x)
        calls, eager_calls, rounds, profiles, tiles = [], [], [], [], []
        for _ in range(args.rounds):
            if eager is not None:
                started = time.perf_counter()
                eager(x)
                eager_calls.append(time.perf_counter() - started)
            round_calls = []
            for _ in range(args.calls):
                started = time.perf_counter()
                runtime.run(x)
                round_calls.append(time.perf_counter() - started)
            started = time.perf_counter()
            consume(streams.run_many(x for _ in range(args.tiles)))
            tiles.append((time.perf_counter() - started) / args.tiles)
            rate, kernel = floors.best_convolution_rate(floor_model, floor_x, floor_macs,
                                                        args.floor_seconds)
            for _ in range(args.profiled_calls):
                counted.infer(x)
                profiles.append(call_profile(counted.request))
            calls += round_calls
            rounds.append((statistics.median(round_calls), rate))
        info, in_flight = runtime.info, (streams.streams, streams.infer_requests)
        layers = layers_of(profiles, layer_macs(counted.model))
    report(info, spec, macs, calls, eager_calls, rounds, kernel, fastest_int8_layer(layers), args)
    report_streams(in_flight, macs, tiles, max(rate for _, rate in rounds),
                   fastest_int8_layer(layers))


def consume(outputs) -> None:
    """Run a stream of outputs to its end (each is dropped as it comes)."""
    for _ in outputs:
        pass


def eager_network(checkpoint, threads: int):
    """PyTorch eager fp32 of the checkpoint's float network: one call on a batch."""
    import torch

    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.models.checkpoint import float_network

    if threads:
        torch.set_num_threads(threads)
    core = float_network(load_checkpoint(checkpoint).core())

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return core(torch.from_numpy(batch)).numpy()
    return run


def report(info, spec, macs: float, calls: list[float], eager_calls: list[float],
           rounds: list[tuple[float, float]], kernel: str, fastest_layer,
           args: argparse.Namespace) -> None:
    amx = "amx_int8" in cpu_info()["flags_that_matter"]
    median = statistics.median(calls)
    best_rate = max(rate for _, rate in rounds)
    floor = macs / best_rate
    per_round = [m / (macs / rate) for m, rate in rounds]
    print(f"CPU: {describe_cpu()}")
    print(f"{info.model}, {spec.height}x{spec.width}, {args.threads} threads, "
          f"{info.inference_precision} for float layers; {args.rounds} rounds of {args.calls} "
          f"calls, {args.tiles} tiles under the throughput hint, {len(eager_calls)} PyTorch calls "
          f"and {args.floor_seconds} s of the floor model each, taking turns; network "
          f"{macs / 1e9:.2f} GMAC")
    print("| what | figure | bar |")
    print("|---|---|---|")
    print(f"| bundle, median call (min) | {median * 1e3:.2f} ms ({min(calls) * 1e3:.2f}) | |")
    if eager_calls:
        eager = statistics.median(eager_calls)
        bar = "20x (applies: this CPU has AMX)" if amx else "20x applies only with AMX: none here"
        print(f"| PyTorch eager fp32, median | {eager * 1e3:.0f} ms: **{eager / median:.1f}x** "
              f"the bundle | {bar} |")
    print(f"| int8 floor: fastest node {best_rate / 1e9:.0f} GMAC/s ({kernel}); rounds "
          f"{min(r for _, r in rounds) / 1e9:.0f}-{best_rate / 1e9:.0f} | {floor * 1e3:.2f} ms | |")
    print(f"| bundle / floor, whole run | **{median / floor:.3f}x** (min call "
          f"{min(calls) / floor:.3f}x) | 1.3x: {'met' if median / floor <= 1.3 else 'not met'} |")
    print(f"| bundle / floor, round by round | median {statistics.median(per_round):.3f}x, "
          f"{min(per_round):.3f}-{max(per_round):.3f}x | |")
    if fastest_layer is not None:  # issue 12's own wording of the floor
        layer_floor = macs / fastest_layer.rate
        print(f"| int8 floor by the network's fastest int8 layer: {fastest_layer.name} "
              f"({fastest_layer.kernel}), {fastest_layer.rate / 1e9:.0f} GMAC/s (median of "
              f"{args.rounds * args.profiled_calls} profiled calls) | {layer_floor * 1e3:.2f} ms | |")
        print(f"| bundle / that floor | **{median / layer_floor:.3f}x** (min call "
              f"{min(calls) / layer_floor:.3f}x) | 1.3x: "
              f"{'met' if median / layer_floor <= 1.3 else 'not met'} |")


def report_streams(in_flight: tuple[int, int], macs: float, tiles: list[float], best_rate: float,
                   fastest_layer) -> None:
    """The throughput-hint row: median time per tile against both floors (``in_flight``:
    streams and infer requests)."""
    per_tile = statistics.median(tiles)
    floor = macs / best_rate
    ratios = [("the floor model", per_tile / floor)]
    if fastest_layer is not None:
        ratios.append(("the fastest layer's floor", per_tile / (macs / fastest_layer.rate)))
    print(f"| throughput hint ({in_flight[0]} streams, {in_flight[1]} requests in flight, what "
          f"`denoise` runs on more than one tile), median per tile (min) | "
          f"{per_tile * 1e3:.2f} ms ({min(tiles) * 1e3:.2f}): "
          + ", ".join(f"**{ratio:.3f}x** {name}" for name, ratio in ratios)
          + " | 1.3x: " + ", ".join(f"{'met' if ratio <= 1.3 else 'not met'} against {name}"
                                    for name, ratio in ratios) + " |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

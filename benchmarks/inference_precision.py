"""Which OpenVINO inference precision is fastest on this CPU, and does ``auto`` pick it?

Exports (or takes) the openvino-fp16 and openvino-int8 bundles of a checkpoint and times each
artifact under every ``INFERENCE_PRECISION_HINT`` this CPU offers (f32 always; bf16 and f16
where OpenVINO lists BF16 / FP16 among its capabilities), alternating hints and bundles in
rounds so that machine drift falls on all alike, then prints the table with the CPU named and
the hint ``--inference-precision auto`` chooses (the CPU's own default, see
``atbsn_edge/runtimes/openvino_runtime.py``).

    python benchmarks/inference_precision.py                       # demo student C, 512x512
    python benchmarks/inference_precision.py --bundles b-ov16 b-ov8 --rounds 4 --iters 5
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="default: the bundled demo model")
    parser.add_argument("--bundles", nargs="+", type=Path,
                        help="existing OpenVINO bundles (default: export fp16 and int8)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5, help="timed calls per hint and round")
    args = parser.parse_args()

    import openvino as ov

    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.pipeline import open_artifact_tiled
    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.profiling.timing import time_calls

    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    hints = ["f32"] + [h for h, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap in capabilities]
    with tempfile.TemporaryDirectory() as tmp:
        bundles = args.bundles or []
        if not bundles:
            for target in ("openvino-fp16", "openvino-int8"):
                out = Path(tmp) / target
                extra = ["--checkpoint", args.checkpoint] if args.checkpoint else []
                assert export(["--target", target, "--tile", str(args.tile), "--out", str(out),
                               *extra]) == 0
                bundles.append(out)
        print(f"CPU: {describe_cpu()}; OpenVINO {ov.__version__}; capabilities "
              f"{', '.join(capabilities)}; {args.threads} threads\n")
        print("| bundle | " + " | ".join(f"{h} median ms" for h in hints) + " | fastest | auto picks |")
        print("|---|" + "---|" * (len(hints) + 2))
        # every bundle under every hint, opened first and timed in alternating rounds, so
        # that drift falls on all alike (bundles are compared in one run, too)
        opened = {(bundle, h): open_artifact_tiled(bundle, threads=args.threads,
                                                   inference_precision=h)
                  for bundle in bundles for h in hints}
        chosen = {}
        for bundle in bundles:
            with open_artifact_tiled(bundle, threads=args.threads) as auto:
                chosen[bundle] = auto.runtime.info.inference_precision
        inputs = {}  # one input per bundle, shared by its hints
        for bundle in bundles:
            spec = opened[bundle, hints[0]].runtime.input_spec
            inputs[bundle] = (np.random.default_rng(0).random(
                (spec.batch or 1, 3, spec.height, spec.width)) * 255).astype(np.float32)
        samples: dict[tuple, list[float]] = {key: [] for key in opened}
        for _ in range(args.rounds):
            for key, tiled in opened.items():
                x = inputs[key[0]]
                timing = time_calls(lambda: tiled.runtime.run(x), 0.5, args.iters)
                samples[key].extend(timing.samples)
        for tiled in opened.values():
            tiled.close()
        names = [b.name for b in bundles]
        for bundle in bundles:
            medians = {h: float(np.median(samples[bundle, h])) * 1e3 for h in hints}
            fastest = min(medians, key=medians.get)
            label = bundle.name if names.count(bundle.name) == 1 else str(bundle)
            pick = chosen[bundle]
            print(f"| {label} | " + " | ".join(f"{medians[h]:.1f}" for h in hints)
                  + f" | {fastest} | {pick}{'' if pick == fastest else ' (not the fastest)'} |")


if __name__ == "__main__":
    main()

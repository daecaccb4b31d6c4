"""Which OpenVINO inference precision is fastest on this CPU, and does ``auto`` pick it?

Exports (or takes) the openvino-fp16 and openvino-int8 bundles of a checkpoint and times each
artifact under every ``INFERENCE_PRECISION_HINT`` this CPU offers (f32 always; bf16 and f16
where OpenVINO lists BF16 / FP16 among its capabilities), alternating the hints in rounds so
that machine drift falls on all alike, then prints the table with the CPU named and the hint
``--inference-precision auto`` chooses (the CPU's own default, see
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
        for bundle in bundles:
            opened = {h: open_artifact_tiled(bundle, threads=args.threads, inference_precision=h)
                      for h in hints}
            with open_artifact_tiled(bundle, threads=args.threads) as auto:
                chosen = auto.runtime.info.inference_precision
            spec = next(iter(opened.values())).runtime.input_spec
            x = (np.random.default_rng(0).random((spec.batch or 1, 3, spec.height, spec.width))
                 * 255).astype(np.float32)
            samples: dict[str, list[float]] = {h: [] for h in hints}
            for _ in range(args.rounds):
                for hint, tiled in opened.items():
                    timing = time_calls(lambda: tiled.runtime.run(x), 0.5, args.iters)
                    samples[hint].extend(timing.samples)
            medians = {h: float(np.median(v)) * 1e3 for h, v in samples.items()}
            fastest = min(medians, key=medians.get)
            for tiled in opened.values():
                tiled.close()
            print(f"| {bundle.name} | " + " | ".join(f"{medians[h]:.1f}" for h in hints)
                  + f" | {fastest} | {chosen}{'' if chosen == fastest else ' (not the fastest)'} |")


if __name__ == "__main__":
    main()

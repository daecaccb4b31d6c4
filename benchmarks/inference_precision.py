"""Which OpenVINO inference precision is fastest on this CPU, and does ``auto`` pick it?

Exports (or takes) the openvino-fp16 and openvino-int8 bundles ``export`` writes (of
``--checkpoint``, else its defaults: the demo student, and for int8 its int8-ready fine-tune)
and times each
artifact under every ``INFERENCE_PRECISION_HINT`` this CPU offers (f32 always; bf16 and f16
where OpenVINO lists BF16 / FP16 among its capabilities), alternating hints and bundles in
rounds so that machine drift falls on all alike, then prints the table with the CPU named and
the hint ``--inference-precision auto`` chooses (the CPU's own default, see
``atbsn_edge/runtimes/openvino_runtime.py``).

    python benchmarks/inference_precision.py                       # demo student C, 512x512
    python benchmarks/inference_precision.py --bundles b-ov16 b-ov8 --rounds 4 --iters 5
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/inference_precision.py --bundles A B --hints f32

With ``--images NOISY... --clean CLEAN...`` each (bundle, hint) also denoises the pairs as
``denoise`` does (tiled, at the model's own strength, ``auto`` for the bundled student) and a
second table gives the mean PSNR against clean under every hint: a reduced float type is
faster, and this says what it costs in quality (the float layers a mixed int8 IR keeps are
the ones that carry the image).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import positive_int, positive_multiple_of_32, thread_count
from atbsn_edge.cli import new_parser


def main() -> int:
    parser = new_parser("inference_precision.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", help="default: the bundled demo model")
    parser.add_argument("--bundles", nargs="+", type=Path,
                        help="existing OpenVINO bundles (default: export fp16 and int8)")
    parser.add_argument("--tile", type=positive_multiple_of_32, default=512)
    parser.add_argument("--threads", type=thread_count, default=2)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--iters", type=positive_int, default=5,
                        help="timed calls per hint and round")
    parser.add_argument("--hints", help="comma-separated hints to time (default: every one "
                        "this CPU offers); f32 alone under ONEDNN_MAX_CPU_ISA=AVX2, where "
                        "OpenVINO still lists BF16 but cannot compile it")
    parser.add_argument("--images", nargs="+", type=Path, help="noisy images for the quality table")
    parser.add_argument("--clean", nargs="+", type=Path, help="their clean references, same order")
    args = parser.parse_args()
    if bool(args.images) != bool(args.clean) or len(args.images or ()) != len(args.clean or ()):
        parser.error("--images and --clean go together, as many of each")
    for bundle in args.bundles or ():
        check_openvino_bundle(bundle)

    import openvino as ov

    from atbsn_edge.errors import AtbsnError
    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.pipeline import open_artifact_tiled
    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.profiling.timing import time_calls

    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    hints = ["f32"] + [h for h, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap in capabilities]
    if args.hints:
        asked = [h.strip() for h in args.hints.split(",") if h.strip()]
        if not asked or set(asked) - set(hints):
            parser.error(f"--hints {args.hints}: this CPU offers {', '.join(hints)}")
        hints = asked
    with tempfile.TemporaryDirectory() as tmp:
        bundles = args.bundles or []
        if not bundles:
            for target in ("openvino-fp16", "openvino-int8"):
                out = Path(tmp) / target
                extra = ["--checkpoint", args.checkpoint] if args.checkpoint else []
                code = export(["--target", target, "--tile", str(args.tile), "--out", str(out),
                               *extra])
                if code:  # the export printed its one-line error
                    return code
                bundles.append(out)
        # every bundle under every hint, opened first and timed in alternating rounds, so
        # that drift falls on all alike (bundles are compared in one run, too)
        opened = {(bundle, h): open_artifact_tiled(bundle, threads=args.threads,
                                                   inference_precision=h)
                  for bundle in bundles for h in hints}
        chosen = {}
        for bundle in bundles:
            try:
                with open_artifact_tiled(bundle, threads=args.threads) as auto:
                    chosen[bundle] = auto.runtime.info.inference_precision
            except AtbsnError as exc:  # e.g. bf16 under ONEDNN_MAX_CPU_ISA=AVX2
                chosen[bundle] = f"cannot compile ({str(exc)[-60:]})"
        # the header only once every bundle is open: a bundle's error is its one line alone
        print(f"CPU: {describe_cpu()}; OpenVINO {ov.__version__}; capabilities "
              f"{', '.join(capabilities)}; {args.threads} threads\n")
        print("| bundle | " + " | ".join(f"{h} median ms" for h in hints) + " | fastest | auto picks |")
        print("|---|" + "---|" * (len(hints) + 2))
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
        pairs = read_pairs(args.images, args.clean) if args.images else []
        quality = {key: mean_psnr(tiled, pairs) for key, tiled in opened.items()} if pairs else {}
        for tiled in opened.values():
            tiled.close()
        names = [b.name for b in bundles]
        for bundle in bundles:
            medians = {h: float(np.median(samples[bundle, h])) * 1e3 for h in hints}
            fastest = min(medians, key=medians.get)
            label = bundle.name if names.count(bundle.name) == 1 else str(bundle)
            pick = chosen[bundle]
            print(f"| {label} | " + " | ".join(f"{medians[h]:.1f}" for h in hints)
                  + f" | {fastest} | {pick}{pick_note(pick, fastest, hints)} |")
        if quality:
            print(f"\nMean PSNR against clean on {len(args.images)} pairs, tiled as denoise runs "
                  "it, at the model's own strength:\n")
            print("| bundle | " + " | ".join(f"{h} dB" for h in hints) + " |")
            print("|---|" + "---:|" * len(hints))
            for bundle in bundles:
                print(f"| {bundle.name} | "
                      + " | ".join(f"{quality[bundle, h]:.3f}" for h in hints) + " |")
    return 0


def pick_note(pick: str, fastest: str, timed: list[str]) -> str:
    """What the table says after the hint ``auto`` picks: nothing where it is the fastest of
    those timed, "(not timed)" where it was not among them (``--hints`` left it out, so it
    is not known to be slower), else "(not the fastest)"."""
    if pick == fastest:
        return ""
    return " (not the fastest)" if pick in timed else " (not timed)"


def check_openvino_bundle(path: Path) -> None:
    """Refuse, in one line and before any work, a ``--bundles`` entry that is not an
    OpenVINO artifact (the hints are OpenVINO's; an ONNX bundle would be timed under hints
    that do nothing)."""
    from atbsn_edge.errors import AtbsnError
    from atbsn_edge.pipeline import locate_artifact
    from atbsn_edge.runtimes.registry import backend_for_file

    entry, runtime = locate_artifact(path)
    runtime = runtime or backend_for_file(entry)
    if runtime != "openvino":
        raise AtbsnError(f"{path} runs on {runtime} ({entry.name}), and "
                         "INFERENCE_PRECISION_HINT is OpenVINO's: give openvino-* bundles "
                         "(python -m atbsn_edge.export --target openvino-fp16 or openvino-int8), "
                         "or leave --bundles out to export both")


def read_pairs(noisy: list[Path], clean: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(noisy, clean) pixels of each pair, read once for every bundle and hint."""
    from atbsn_edge.imageio import read_image

    return [(read_image(n).rgb, read_image(c).rgb) for n, c in zip(noisy, clean)]


def mean_psnr(tiled, pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean PSNR of ``tiled``'s output against the clean references."""
    from atbsn_edge.metrics import psnr

    return float(np.mean([psnr(tiled.denoise(noisy), clean) for noisy, clean in pairs]))


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

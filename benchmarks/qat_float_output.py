"""An int8-ready bundle with its output convolution (student C's ``dec1.conv2``, 96 -> 3) in
float: what the one costly quantization point of the QAT graph buys back, and what it costs.

Takes the ``model-int8.onnx`` of a bundle exported from a QAT checkpoint, writes a copy whose
output convolution reads the float activation and float weights (the dequantized int8 ones),
then times both in OpenVINO (bf16 and f32 hints, 2 threads, alternating rounds) and scores
both, and the bundle's fp32 ONNX, on the given pairs (mean PSNR against clean at strength 1
and at ``auto``), the CPU named.

    python benchmarks/qat_float_output.py --bundle BUNDLE --noisy $N/*_noisy.png \\
        --clean $N/*_clean.png --threads 2

The graphs are scored whole, one pair per call, so every image must be exactly the bundle's
tile (512 x 512 for the default export, as the Nam pairs are; crop larger pairs to it, or
export the bundle with ``--tile`` at the pairs' size). Sizes are checked before any work; a
bundle exported with ``--dynamic`` takes any size that is a multiple of its stride (32).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import check_one_clean_each, positive_int, thread_count
from atbsn_edge.cli import new_parser

OUTPUT_CONV = "/quantized/unet/dec1/conv2/Conv"


def float_output_variant(source: Path, target: Path) -> None:
    """``source`` with the output convolution fed by the float activation and float weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    conv = next(node for node in graph.node if node.name == OUTPUT_CONV)
    data_dq = producer[conv.input[0]]
    data_q = producer[data_dq.input[0]]
    weight_dq = producer[conv.input[1]]
    initializers = {i.name: i for i in graph.initializer}

    def value(name: str) -> np.ndarray:
        if name in initializers:
            return numpy_helper.to_array(initializers[name])
        return numpy_helper.to_array(producer[name].attribute[0].t)

    levels = value(weight_dq.input[0]).astype(np.float32)
    steps = value(weight_dq.input[1]).astype(np.float32).reshape(-1, 1, 1, 1)
    graph.initializer.append(numpy_helper.from_array(levels * steps, "output_conv_float_weight"))
    conv.input[0] = data_q.input[0]
    conv.input[1] = "output_conv_float_weight"
    onnx.save(model, str(target))


def qat_graphs(folder: Path) -> tuple[Path, Path, tuple[int, int] | None, int]:
    """The int8 ONNX (learned ranges) and fp32 ONNX of the bundle at ``folder``, its tile
    (None: dynamic) and stride; a one-line error for a bundle not exported from a QAT
    checkpoint (before any work)."""
    from atbsn_edge.bundle import ArtifactMetadata, Bundle
    from atbsn_edge.errors import AtbsnError
    from atbsn_edge.export.torch_qat_to_int8_onnx import LEARNED

    bundle = Bundle.open(folder)
    entry = bundle.artifacts.get("onnx-int8")
    if entry is None or entry.details.get("int8_ranges") != LEARNED:
        raise AtbsnError(f"{folder} holds no int8 ONNX with learned ranges (it has "
                         f"{', '.join(bundle.artifacts) or 'no artifact'}): give a bundle exported "
                         "from an int8-ready (QAT) checkpoint, e.g. python -m atbsn_edge.export "
                         "--target openvino-int8 --out BUNDLE (the bundled int8-ready student)")
    meta = ArtifactMetadata.parse(bundle.network, folder / "manifest.json")
    return (bundle.entry_path("onnx-int8"), bundle.entry_path("onnx-fp32"), meta.tile,
            meta.stride)


def check_pairs(noisy: list[tuple[Path, np.ndarray]], clean: list[tuple[Path, np.ndarray]],
                tile: tuple[int, int] | None, stride: int) -> None:
    """Refuse, in one line, pairs the graphs cannot take whole: each image at the bundle's
    tile (or, for a dynamic bundle, a multiple of its stride), each clean one at its noisy
    one's size (as many of each: checked on the paths, before reading, by
    ``check_one_clean_each``)."""
    from atbsn_edge.errors import AtbsnError

    for path, image in noisy + clean:
        h, w = image.shape[:2]
        if tile is not None and (h, w) != tuple(tile):
            raise AtbsnError(f"{path} is {w}x{h}, and the bundle's graphs take {tile[1]}x"
                             f"{tile[0]} images (its tile) whole: crop the pairs to "
                             f"{tile[1]}x{tile[0]}, or export a bundle with --tile at their size")
        if tile is None and (h % stride or w % stride):
            raise AtbsnError(f"{path} is {w}x{h}; this dynamic bundle takes sides that are "
                             f"multiples of {stride}: crop the pairs to such a size")
    for (noisy_path, x), (clean_path, c) in zip(noisy, clean):
        if x.shape != c.shape:
            raise AtbsnError(f"{noisy_path} is {x.shape[1]}x{x.shape[0]} but its clean "
                             f"reference {clean_path} is {c.shape[1]}x{c.shape[0]}; give pairs "
                             "of one size, in the same order")


def main() -> None:
    parser = new_parser("qat_float_output.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--bundle", required=True, type=Path,
                        help="bundle exported from a QAT checkpoint (has model-int8.onnx)")
    parser.add_argument("--noisy", nargs="+", required=True)
    parser.add_argument("--clean", nargs="+", required=True)
    parser.add_argument("--threads", type=thread_count, default=2)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--iters", type=positive_int, default=5)
    args = parser.parse_args()

    from atbsn_edge.imageio import read_image
    from atbsn_edge.inputs import expand_inputs
    from atbsn_edge.metrics import psnr
    from atbsn_edge.profiling.machine import cpu_info
    from atbsn_edge.strength import blend_with_input

    int8_onnx, fp32_onnx, tile, stride = qat_graphs(args.bundle)
    noisy_paths, clean_paths = expand_inputs(args.noisy), expand_inputs(args.clean)
    check_one_clean_each(noisy_paths, clean_paths)
    noisy = [read_image(p).rgb for p in noisy_paths]
    clean = [read_image(p).rgb for p in clean_paths]
    check_pairs(list(zip(noisy_paths, noisy)), list(zip(clean_paths, clean)), tile, stride)
    height, width = tile or (512, 512)

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        variant = Path(tmp) / "model-int8-float-output.onnx"
        float_output_variant(int8_onnx, variant)
        graphs = {"every layer int8": int8_onnx,
                  "output convolution float": variant,
                  "its float weights, unquantized (fp32 ONNX)": fp32_onnx}
        core = ov.Core()
        compiled = {(name, hint): core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": args.threads,
            "PERFORMANCE_HINT": "LATENCY"}) for name, path in graphs.items()
            for hint in ("bf16", "f32")}
        x = np.random.default_rng(0).uniform(0, 255, (1, 3, height, width)).astype(np.float32)
        times: dict[tuple[str, str], list[float]] = {key: [] for key in compiled}
        for _ in range(args.rounds):
            for key, model in compiled.items():
                request = model.create_infer_request()
                request.infer({0: x})
                started = time.perf_counter()
                for _ in range(args.iters):
                    request.infer({0: x})
                times[key].append((time.perf_counter() - started) / args.iters * 1e3)

        info = cpu_info()
        print(f"CPU: {info['model']}; {' '.join(info['flags_that_matter'])}; OpenVINO "
              f"{ov.__version__}; {args.threads} threads; {width}x{height}; {len(noisy)} pairs")
        print("| graph | hint | ms per tile (median of rounds) | dB at strength 1 | dB at auto |")
        print("|---|---|---|---|---|")
        for (name, hint), model in compiled.items():
            one, auto = [], []
            for image, reference in zip(noisy, clean):
                y = model({0: image.transpose(2, 0, 1)[None].copy()})[0][0].transpose(1, 2, 0)
                one.append(psnr(y, reference, clip=False))  # the network's raw output
                auto.append(psnr(blend_with_input(image, y.copy(), "auto"), reference, clip=False))
            print(f"| {name} | {hint} | {statistics.median(times[(name, hint)]):.1f} | "
                  f"{np.mean(one):.3f} | {np.mean(auto):.3f} |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

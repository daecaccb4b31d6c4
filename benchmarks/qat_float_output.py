"""An int8-ready bundle with its output convolution (student C's ``dec1.conv2``, 96 -> 3) in
float: what the one costly quantization point of the QAT graph buys back, and what it costs.

Takes the ``model-int8.onnx`` of a bundle exported from a QAT checkpoint, writes a copy whose
output convolution reads the float activation and float weights (the dequantized int8 ones),
then times both in OpenVINO (bf16 and f32 hints, 2 threads, alternating rounds) and scores
both, and the bundle's fp32 ONNX, on the given pairs (mean PSNR against clean at strength 1
and at ``auto``), the CPU named.

    python benchmarks/qat_float_output.py --bundle BUNDLE --noisy $N/*_noisy.png \
        --clean $N/*_clean.png --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path,
                        help="bundle exported from a QAT checkpoint (has model-int8.onnx)")
    parser.add_argument("--noisy", nargs="+", required=True)
    parser.add_argument("--clean", nargs="+", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    import openvino as ov

    from atbsn_edge.imageio import read_image
    from atbsn_edge.inputs import expand_inputs
    from atbsn_edge.metrics import psnr
    from atbsn_edge.profiling.machine import cpu_info
    from atbsn_edge.strength import blend_with_input

    noisy = [read_image(p).rgb for p in expand_inputs(args.noisy)]
    clean = [read_image(p).rgb for p in expand_inputs(args.clean)]
    with tempfile.TemporaryDirectory() as tmp:
        variant = Path(tmp) / "model-int8-float-output.onnx"
        float_output_variant(args.bundle / "model-int8.onnx", variant)
        graphs = {"every layer int8": args.bundle / "model-int8.onnx",
                  "output convolution float": variant,
                  "its float weights, unquantized (fp32 ONNX)": args.bundle / "model-fp32.onnx"}
        core = ov.Core()
        compiled = {(name, hint): core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": args.threads,
            "PERFORMANCE_HINT": "LATENCY"}) for name, path in graphs.items()
            for hint in ("bf16", "f32")}
        x = np.random.default_rng(0).uniform(0, 255, (1, 3, 512, 512)).astype(np.float32)
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
              f"{ov.__version__}; {args.threads} threads; 512x512; {len(noisy)} pairs")
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

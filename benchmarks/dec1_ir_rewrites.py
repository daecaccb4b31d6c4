"""Issue 12: rewrites of the real int8 IR's last stage (``dec1``), timed against the original.

``benchmarks/thin_conv_rewrite.py`` times rewrites of ``dec1`` rebuilt in PyTorch; this script
rewrites the bundle's own OpenVINO IR (NNCF int8, ``dec1`` float), so that every other layer,
every FakeQuantize and every fusion OpenVINO makes are those of the artifact ``denoise`` runs.
Variants, each applied to a fresh copy of the IR with OpenVINO's graph API:

- ``original``: the IR as exported.
- ``conv2-1x1+grouped``: the thin output convolution (3x3, 96 -> 3) as a 1x1 convolution
  96 -> 27 (one channel per output channel and tap) and a one-hot grouped 3x3 convolution
  27 -> 3 that adds the shifted taps: the same multiply-adds in a GEMM 27 channels wide instead
  of 3. Exact in f32; in bf16 the 27 partial sums are rounded to bf16 between the two.
- ``add-swapped``: ``dec1``'s float sum of the transposed convolution and the image convolution
  with its inputs in the other order (which of the two OpenVINO fuses the sum into).
- ``deconv-bf16``: a Convert to bf16 and back after the int8 transposed convolution, to ask
  for a bf16 output instead of the f32 one that is then reordered to bf16.

Variants alternate in rounds within one run; each figure is the median of every timed call.
The per-layer counters of ``dec1`` are printed for each variant, and the largest difference of
its output from the original's on one random 0..255 tile.

The rewrites need the NNCF IR of the float checkpoint (node names ``/unet/dec1/...``, ``dec1``
in float); the default ``openvino-int8`` export of the int8-ready (QAT) student has another
``dec1`` (int8, its output convolution in four phases, names ``/quantized/unet/...``) and is
refused. Export the bundle, then time it:

    python -m atbsn_edge.export --target openvino-int8 \\
        --checkpoint atbsn_edge/assets/demo_student_c.pt --out BUNDLE
    python benchmarks/dec1_ir_rewrites.py BUNDLE --threads 2
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import comma_choices, positive_int, thread_count
from atbsn_edge.cli import new_parser

DEC1_ADD = "/unet/dec1/conv1/Add"
DEC1_DECONV = "/unet/dec1/conv1/low/ConvTranspose"
DEC1_SKIP = "/unet/dec1/conv1/skip/conv/Conv"
DEC1_CONV2 = "/unet/dec1/conv2/conv/Conv/WithoutBiases"


def _ops(model) -> dict:
    return {node.get_friendly_name(): node for node in model.get_ordered_ops()}


#: every node a rewrite looks up by name
DEC1_NODES = (DEC1_ADD, DEC1_DECONV, DEC1_SKIP, DEC1_CONV2)
NNCF_EXPORT = ("python -m atbsn_edge.export --target openvino-int8 "
               "--checkpoint atbsn_edge/assets/demo_student_c.pt --out BUNDLE")


def find_ir(bundle: Path) -> Path:
    """The bundle's ``model-int8.xml`` (or ``bundle`` itself, an .xml), or a one-line error."""
    from atbsn_edge.errors import AtbsnError

    xml = bundle if bundle.suffix == ".xml" else bundle / "model-int8.xml"
    if not bundle.exists():
        raise AtbsnError(f"{bundle} does not exist; give an openvino-int8 bundle folder (or its "
                         f"model-int8.xml), exported with {NNCF_EXPORT}")
    if bundle.is_file() and bundle.suffix != ".xml":
        raise AtbsnError(f"{bundle} is neither a bundle folder nor an OpenVINO IR (.xml); give "
                         f"an openvino-int8 bundle folder, exported with {NNCF_EXPORT}")
    if not xml.is_file():
        raise AtbsnError(f"{bundle} holds no model-int8.xml (not an openvino-int8 bundle); "
                         f"give one exported with {NNCF_EXPORT}")
    return xml


def check_rewritable(model, xml: Path) -> None:
    """Refuse an IR whose ``dec1`` lacks the nodes the rewrites change (the QAT export's)."""
    from atbsn_edge.errors import AtbsnError

    names = {node.get_friendly_name() for node in model.get_ordered_ops()}
    if all(name in names for name in DEC1_NODES):
        return
    if any(name.startswith("/quantized/") for name in names):
        raise AtbsnError(f"{xml} is the int8-ready (quantization-aware) export, whose dec1 is "
                         "int8 with its output convolution in four phases: these rewrites "
                         "apply to the NNCF IR of the float checkpoint; export it with "
                         f"{NNCF_EXPORT}")
    missing = [name for name in DEC1_NODES if name not in names]
    raise AtbsnError(f"{xml} lacks {', '.join(missing)} (not the NNCF int8 IR of student C's "
                     f"float checkpoint); export one with {NNCF_EXPORT}")


def thin_conv_as_1x1_grouped(model) -> None:
    """Replace ``dec1.conv2`` (3x3, C -> O) by a 1x1 convolution C -> 9 O and a one-hot
    grouped 3x3 convolution 9 O -> O (groups O) that sums the taps."""
    import openvino.opset13 as op

    conv = _ops(model)[DEC1_CONV2]
    weight = conv.input_value(1).get_node().get_data().astype(np.float32)
    out_channels, in_channels = weight.shape[:2]
    taps = np.zeros((out_channels * 9, in_channels, 1, 1), np.float32)
    one_hot = np.zeros((out_channels, 1, 9, 3, 3), np.float32)
    for c in range(out_channels):
        for k in range(9):
            taps[c * 9 + k, :, 0, 0] = weight[c, :, k // 3, k % 3]
            one_hot[c, 0, k, k // 3, k % 3] = 1.0
    partial = op.convolution(conv.input_value(0), op.constant(taps), [1, 1], [0, 0], [0, 0],
                             [1, 1])
    summed = op.group_convolution(partial, op.constant(one_hot), [1, 1],
                                  list(conv.get_pads_begin()), list(conv.get_pads_end()), [1, 1])
    partial.set_friendly_name(DEC1_CONV2 + "/taps_1x1")
    summed.set_friendly_name(DEC1_CONV2 + "/taps_summed")
    conv.output(0).replace(summed.output(0))


def _replace_add(model, first, second) -> None:
    import openvino.opset13 as op

    add = _ops(model)[DEC1_ADD]
    new_add = op.add(first, second)
    new_add.set_friendly_name(DEC1_ADD + "/rewritten")
    add.output(0).replace(new_add.output(0))


def add_swapped(model) -> None:
    """``dec1``'s sum with its two inputs in the other order."""
    ops = _ops(model)
    _replace_add(model, ops[DEC1_SKIP].output(0), ops[DEC1_DECONV].output(0))


def deconv_bf16(model) -> None:
    """A Convert to bf16 and back after ``dec1``'s int8 transposed convolution."""
    import openvino as ov
    import openvino.opset13 as op

    ops = _ops(model)
    rounded = op.convert(op.convert(ops[DEC1_DECONV].output(0), ov.Type.bf16), ov.Type.f32)
    rounded.set_friendly_name(DEC1_DECONV + "/bf16_round_trip")
    _replace_add(model, rounded.output(0), ops[DEC1_SKIP].output(0))


VARIANTS: dict[str, Callable | None] = {
    "original": None,
    "conv2-1x1+grouped": thin_conv_as_1x1_grouped,
    "add-swapped": add_swapped,
    "deconv-bf16": deconv_bf16,
}


def main() -> None:
    parser = new_parser("dec1_ir_rewrites.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("bundle", type=Path, help="an openvino-int8 bundle folder or its .xml")
    parser.add_argument("--threads", type=thread_count, default=2)
    parser.add_argument("--rounds", type=positive_int, default=6)
    parser.add_argument("--calls", type=positive_int, default=5,
                        help="timed calls per variant and round")
    parser.add_argument("--inference-precision", choices=("auto", "f32", "bf16", "f16"),
                        default="auto",
                        help="OpenVINO's precision for the float layers (default auto: the "
                             "runtime's choice on this CPU)")
    parser.add_argument("--variants", type=comma_choices(tuple(VARIANTS), "variant"),
                        default=",".join(VARIANTS),
                        help="comma-separated variants to time; original is always timed")
    args = parser.parse_args()
    chosen = ["original", *(v for v in args.variants if v != "original")]
    xml = find_ir(args.bundle)

    import openvino as ov

    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime

    ir = ov.Core().read_model(str(xml))
    check_rewritable(ir, xml)
    shape = ir.input(0).get_partial_shape()  # the bundle's tile (512 unless dynamic)
    side = (shape[2].get_length(), shape[3].get_length()) if shape.is_static else (512, 512)
    # the inference precision the runtime would choose on this CPU (its default for int8 IRs)
    precision = OpenVinoRuntime(xml, threads=args.threads,
                                inference_precision=args.inference_precision).inference_precision
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": args.threads, "PERF_COUNT": True}
    requests = {}
    for name in chosen:
        rewrite = VARIANTS[name]
        model = core.read_model(str(xml))
        if rewrite is not None:
            rewrite(model)
        requests[name] = core.compile_model(model, "CPU", config).create_infer_request()
    tile = (np.random.default_rng(0).random((1, 3, *side)) * 255).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            for _ in range(2):
                request.infer({0: tile})
            for _ in range(args.calls):
                start = time.perf_counter()
                request.infer({0: tile})
                times[name].append(time.perf_counter() - start)
    reference = np.array(requests["original"].infer({0: tile})[0], copy=True)
    base = float(np.median(times["original"]))
    print(f"CPU: {describe_cpu()}; OpenVINO {ov.__version__}, {args.threads} threads, LATENCY "
          f"hint, float layers {precision}; {xml}; {args.rounds} rounds x {args.calls} calls\n")
    print(f"| variant | ms per {side[1]}x{side[0]} tile | ratio | max / mean abs diff vs original (0..255) | "
          "dec1's layers over 2 ms (ms, kernel) |")
    print("|---|---:|---:|---:|---|")
    for name, request in requests.items():
        output = request.infer({0: tile})[0]
        median = float(np.median(times[name]))
        layers = sorted((p for p in request.profiling_info
                         if "dec1" in p.node_name and p.real_time.total_seconds() > 0.002),
                        key=lambda p: -p.real_time.total_seconds())
        detail = "; ".join(f"{p.node_type} {p.real_time.total_seconds() * 1e3:.1f} "
                           f"({p.exec_type})" for p in layers)
        print(f"| {name} | {median * 1e3:.1f} | {median / base:.3f} | "
              f"{np.abs(output - reference).max():.4f} / {np.abs(output - reference).mean():.4f} | "
              f"{detail} |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

"""Issue 12: the int8 export's thin output convolution, as it is and in the form of its four
output phases (``atbsn_edge/quantization/output_phases.py``), timed against each other.

Exports an int8-ready checkpoint (default: the bundled one, the default ``openvino-int8``
export) twice at 512 x 512 through ``torch_qat_to_int8_onnx``: once as the export writes it
now (student C's 96 -> 3 output convolution as a stride-2 4x4 convolution 96 -> 12 and one
``DepthToSpace``), once with ``plain_thin_convolutions()`` (a stride-1 3x3 convolution 96 -> 3).
Each ONNX is converted to OpenVINO IR as the export does. The two forms then alternate in
rounds within one run: OpenVINO at every float precision asked (``auto``: the runtime's own
choice on this CPU), and ONNX Runtime (the ``onnx-int8`` target). Prints the median per
512 x 512 tile, the ratio, and the largest difference between the two forms' outputs on one
random 0..255 tile, with the CPU named.

    python benchmarks/output_phases.py --threads 2
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/output_phases.py --precisions f32 --no-ort
        # OpenVINO capped at AVX2 (how a CPU without AVX-512 computes int8)
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import comma_choices, positive_int, positive_multiple_of_32, thread_count
from atbsn_edge.cli import new_parser

FORMS = ("plain", "phases")
#: ``--precisions``: OpenVINO's float inference precisions, and auto (the runtime's choice)
PRECISIONS = ("auto", "f32", "bf16", "f16")


def export_forms(checkpoint: Path, folder: Path, tile: int) -> dict[str, Path]:
    """Both forms of ``checkpoint``'s int8 graph as OpenVINO IR in ``folder``: {form: xml}."""
    from atbsn_edge.export.checkpoint_to_bundle import artifact_metadata
    from atbsn_edge.export.onnx_to_openvino import onnx_to_openvino
    from atbsn_edge.export.torch_qat_to_int8_onnx import torch_qat_to_int8_onnx
    from atbsn_edge.models.checkpoint import load_checkpoint
    from atbsn_edge.quantization.output_phases import plain_thin_convolutions

    denoiser = load_checkpoint(checkpoint)
    xmls = {}
    for form in FORMS:
        onnx_path = folder / f"{form}.onnx"
        metadata = artifact_metadata(denoiser, None, "int8")
        with plain_thin_convolutions() if form == "plain" else contextlib.nullcontext():
            meta = torch_qat_to_int8_onnx(denoiser, onnx_path, tile=tile, metadata=metadata)
        xmls[form] = folder / f"{form}.xml"
        onnx_to_openvino(onnx_path, xmls[form], compress_to_fp16=False, metadata=meta)
    return xmls


def main() -> None:
    parser = new_parser("output_phases.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="an int8-ready checkpoint (default: the bundled one)")
    parser.add_argument("--threads", type=thread_count, default=2)
    parser.add_argument("--tile", type=positive_multiple_of_32, default=512,
                        help="tile side, a positive multiple of 32 (the network's stride)")
    parser.add_argument("--rounds", type=positive_int, default=8)
    parser.add_argument("--calls", type=positive_int, default=6,
                        help="timed calls per form and round")
    parser.add_argument("--precisions", type=comma_choices(PRECISIONS, "precision"),
                        default="auto,f32",
                        help="OpenVINO float precisions to time, comma-separated out of "
                             f"{', '.join(PRECISIONS)} (auto: the runtime's choice)")
    parser.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    args = parser.parse_args()
    precisions = args.precisions

    import openvino as ov

    from atbsn_edge.assets import DEMO_STUDENT_C_INT8
    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime

    checkpoint = args.checkpoint or DEMO_STUDENT_C_INT8
    with tempfile.TemporaryDirectory() as tmp:
        xmls = export_forms(checkpoint, Path(tmp), args.tile)
        core = ov.Core()
        runners = {}
        for precision in precisions:
            chosen = OpenVinoRuntime(xmls["phases"], threads=args.threads,
                                     inference_precision=precision).inference_precision
            for form, xml in xmls.items():
                compiled = core.compile_model(core.read_model(str(xml)), "CPU", {
                    "INFERENCE_PRECISION_HINT": chosen, "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": args.threads})
                request = compiled.create_infer_request()
                runners[(f"OpenVINO, float layers {chosen}"
                         f"{' (auto)' if precision == 'auto' else ''}", form)] = (
                    lambda x, r=request: np.array(r.infer({0: x})[0], copy=True))
        if not args.no_ort:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            for form in FORMS:
                session = ort.InferenceSession(str(Path(tmp) / f"{form}.onnx"), options,
                                               providers=["CPUExecutionProvider"])
                runners[("ONNX Runtime " + ort.__version__, form)] = (
                    lambda x, s=session: s.run(None, {"input": x})[0])
        tile = (np.random.default_rng(0).random((1, 3, args.tile, args.tile)) * 255
                ).astype(np.float32)
        times: dict = {key: [] for key in runners}
        outputs = {key: run(tile) for key, run in runners.items()}
        for _ in range(args.rounds):
            for key, run in runners.items():
                run(tile)
                for _ in range(args.calls):
                    start = time.perf_counter()
                    run(tile)
                    times[key].append(time.perf_counter() - start)
    print(f"CPU: {describe_cpu()}; OpenVINO {ov.__version__}; {args.threads} threads; "
          f"{checkpoint.name} at {args.tile}x{args.tile}; {args.rounds} alternating rounds x "
          f"{args.calls} calls\n")
    print("| backend | plain ms | phases ms | phases / plain | max abs diff (0..255) |")
    print("|---|---:|---:|---:|---:|")
    for backend in dict.fromkeys(key[0] for key in runners):
        plain, phases = (float(np.median(times[(backend, form)])) * 1e3 for form in FORMS)
        diff = np.abs(outputs[(backend, "plain")] - outputs[(backend, "phases")]).max()
        print(f"| {backend} | {plain:.1f} | {phases:.1f} | {phases / plain:.3f} | {diff:.4f} |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

"""What int8 costs against clean references, per choice of layers kept in float and quantizer.

Exports the checkpoint's fp32 ONNX at the images' size once, then for every ``--keep`` choice
builds the ONNX Runtime Q/DQ graph (``qdq``) and the NNCF-quantized OpenVINO IR (``nncf``),
calibrated on the same crops, and prints the mean and worst PSNR lost against clean relative to
the fp32 graph. This chose ``int8_keep_float`` in ``atbsn_edge/models/registry.py``.

    python benchmarks/int8_quality.py --checkpoint atbsn_edge/assets/demo_student_c.pt \\
        --noisy ../shared/data/real/nam_pairs/*_noisy.png --clean ../shared/data/real/nam_pairs/*_clean.png \\
        --keep all= --keep dec1=/dec1/ --keep default
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import check_one_clean_each, comma_choices, positive_int
from atbsn_edge.cli import new_parser
from atbsn_edge.profiling.machine import describe_cpu

#: the int8 quantizers this script compares: ONNX Runtime's Q/DQ graph and NNCF's OpenVINO IR
QUANTIZERS = ("qdq", "nncf")


def main() -> None:
    parser = new_parser("int8_quality.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--noisy", nargs="+", required=True, help="noisy images, all one size")
    parser.add_argument("--clean", nargs="+", required=True, help="their clean references")
    parser.add_argument("--keep", action="append", default=[], metavar="NAME=PATTERN,...",
                        help="a keep-float choice (repeatable); 'all=' quantizes every layer, "
                             "'default' is the architecture's choice in the registry")
    # checked before any work (an unknown name used to be run as nncf)
    parser.add_argument("--quantizers", type=comma_choices(QUANTIZERS, "quantizer"),
                        default="qdq,nncf",
                        help=f"comma-separated, out of {', '.join(QUANTIZERS)}")
    parser.add_argument("--calib-data", nargs="+", help="default: the bundled calibration crops")
    parser.add_argument("--calib-crops", type=positive_int, default=64)
    parser.add_argument("--no-fuse-upsampling", dest="fuse_upsampling", action="store_false",
                        help="export the plain graph (Resize + Concat) instead of the fused one")
    parser.add_argument("--method", default="max", choices=("max", "percentile", "entropy"))
    args = parser.parse_args()
    quantizers = args.quantizers

    from atbsn_edge.assets import CALIBRATION_IMAGES
    from atbsn_edge.calibration import collect_crops
    from atbsn_edge.errors import AtbsnError
    from atbsn_edge.export.onnx_fp32_to_int8 import onnx_fp32_to_int8
    from atbsn_edge.export.checkpoint_to_bundle import export_fp32_onnx as build
    from atbsn_edge.imageio import read_image
    from atbsn_edge.inputs import expand_inputs
    from atbsn_edge.metrics import psnr
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.runtimes.registry import open_artifact

    noisy_paths, clean_paths = expand_inputs(args.noisy), expand_inputs(args.clean)
    check_one_clean_each(noisy_paths, clean_paths)
    noisy = [read_image(p).rgb for p in noisy_paths]
    clean = [read_image(p).rgb for p in clean_paths]
    height, width = noisy[0].shape[:2]
    sizes = {image.shape[:2] for image in noisy + clean}
    if height != width or len(sizes) > 1:
        raise AtbsnError(f"the images are {', '.join(f'{w}x{h}' for h, w in sorted(sizes))}; "
                         "give square images all of one size (the export tile is square), "
                         "e.g. crops of one size")
    denoiser = load_checkpoint(args.checkpoint)
    choices = [(name, tuple(p for p in patterns.split(",") if p)) if eq else
               ("default", denoiser.architecture.int8_keep_float)
               for name, eq, patterns in (k.partition("=") for k in (args.keep or ["default"]))]
    calibration = collect_crops(args.calib_data or [CALIBRATION_IMAGES], height, width,
                                crops=args.calib_crops)

    def scores(artifact: Path) -> np.ndarray:
        with open_artifact(artifact) as runtime:
            return np.array([psnr(runtime.infer(n.transpose(2, 0, 1)[None].copy())[0]
                                  .transpose(1, 2, 0), c) for n, c in zip(noisy, clean)])

    def row(name: str, quantizer: str, mean: float, drop: float, worst: float) -> None:
        print(f"| {name} | {quantizer} | {mean:.3f} dB | {drop:.3f} dB | {worst:.3f} dB |",
              flush=True)  # each row as it is measured: a later failure loses none of them

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        network = build(denoiser, fp32, tile=height, batch=1,
                        fuse_upsampling=args.fuse_upsampling)
        base = scores(fp32)
        print(f"CPU: {describe_cpu()}; {Path(args.checkpoint).name} on "
              f"{len(noisy)} pairs at {width}x{height}; {args.method} calibration on "
              f"{args.calib_crops} crops; upsampling "
              f"{'fused' if args.fuse_upsampling else 'explicit'}")
        print("| layers kept float | quantizer | mean PSNR | mean drop | worst image drop |")
        print("|---|---|---|---|---|")
        row("fp32", "-", base.mean(), 0.0, 0.0)
        for name, keep in choices:
            for quantizer in quantizers:
                artifact = Path(tmp) / f"{name}-{quantizer}".replace("/", "_")
                if quantizer == "qdq":
                    artifact = artifact.with_suffix(".onnx")
                    onnx_fp32_to_int8(fp32, artifact, calibration, args.method, keep_float=keep)
                else:
                    import openvino as ov

                    from atbsn_edge.export.onnx_to_openvino import save_ir
                    from atbsn_edge.export.openvino_fp32_to_int8 import openvino_fp32_to_int8

                    artifact = artifact.with_suffix(".xml")
                    model = openvino_fp32_to_int8(ov.convert_model(str(fp32)), calibration,
                                                  method=args.method, keep_float=keep)
                    # the fp32 graph's full metadata (model, hole, stride, tile, ...: the
                    # runtime refuses an IR without it), as the export's NNCF target writes it
                    save_ir(model, artifact, compress_to_fp16=False,
                            metadata={**network, **calibration.int8_metadata(
                                args.method, keep, False), "int8_quantizer": "nncf"})
                got = scores(artifact)
                row(name, quantizer, got.mean(), (base - got).mean(), (base - got).max())


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

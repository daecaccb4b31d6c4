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

import argparse
import tempfile
from pathlib import Path

import numpy as np

from atbsn_edge.profiling.machine import describe_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--noisy", nargs="+", required=True, help="noisy images, all one size")
    parser.add_argument("--clean", nargs="+", required=True, help="their clean references")
    parser.add_argument("--keep", action="append", default=[], metavar="NAME=PATTERN,...",
                        help="a keep-float choice (repeatable); 'all=' quantizes every layer, "
                             "'default' is the architecture's choice in the registry")
    parser.add_argument("--quantizers", default="qdq,nncf")
    parser.add_argument("--calib-data", nargs="+", help="default: the bundled calibration crops")
    parser.add_argument("--calib-crops", type=int, default=64)
    parser.add_argument("--no-fuse-upsampling", dest="fuse_upsampling", action="store_false",
                        help="export the plain graph (Resize + Concat) instead of the fused one")
    parser.add_argument("--method", default="max", choices=("max", "percentile", "entropy"))
    args = parser.parse_args()

    from atbsn_edge.assets import CALIBRATION_IMAGES
    from atbsn_edge.calibration import collect_crops
    from atbsn_edge.export.onnx_fp32_to_int8 import onnx_fp32_to_int8
    from atbsn_edge.export.checkpoint_to_bundle import export_fp32_onnx as build
    from atbsn_edge.imageio import read_image
    from atbsn_edge.inputs import expand_inputs
    from atbsn_edge.metrics import psnr
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.runtimes.registry import open_artifact

    noisy = [read_image(p).rgb for p in expand_inputs(args.noisy)]
    clean = [read_image(p).rgb for p in expand_inputs(args.clean)]
    height, width = noisy[0].shape[:2]
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

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        build(denoiser, fp32, tile=height, batch=1,
              fuse_upsampling=args.fuse_upsampling)
        if height != width:
            raise SystemExit("give square images (the export tile is square)")
        base = scores(fp32)
        rows.append(("fp32", "-", base.mean(), 0.0, 0.0))
        for name, keep in choices:
            for quantizer in args.quantizers.split(","):
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
                    save_ir(model, artifact, compress_to_fp16=False, metadata={"precision": "int8"})
                got = scores(artifact)
                rows.append((name, quantizer, got.mean(), (base - got).mean(), (base - got).max()))
    print(f"CPU: {describe_cpu()}; {Path(args.checkpoint).name} on "
          f"{len(noisy)} pairs at {width}x{height}; {args.method} calibration on "
          f"{args.calib_crops} crops; upsampling {'fused' if args.fuse_upsampling else 'explicit'}")
    print("| layers kept float | quantizer | mean PSNR | mean drop | worst image drop |")
    print("|---|---|---|---|---|")
    for name, quantizer, mean, drop, worst in rows:
        print(f"| {name} | {quantizer} | {mean:.3f} dB | {drop:.3f} dB | {worst:.3f} dB |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

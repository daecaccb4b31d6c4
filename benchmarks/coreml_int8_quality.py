"""Core ML int8 against clean references, computed by the numpy evaluator of the saved programs.

Converts the checkpoint to Core ML ML programs at the images' size (fp32, fp16, int8 W8A8 through
``coremltools.optimize.torch`` post-training quantization on the bundled calibration crops, and
optionally weight-only 8-bit), and optionally an int8-ready checkpoint's W8A8 program with its
learned ranges (``int8-learned``, what ``export --target coreml-int8`` writes by default), saves
each ``.mlpackage``, evaluates the SAVED programs with ``atbsn_edge.coreml_mil`` (Apple's
runtime needs macOS), and prints PSNR against clean, the drop against PyTorch fp32 (of
``--checkpoint``), relative L2 against it, and the evaluator's seconds per image, naming the CPU
(the evaluator is a numpy interpreter: its time says nothing about a device). ``--strength
model`` scores every output blended with the float checkpoint's own strength (``auto`` for the
bundled student), as ``denoise`` writes it; the default scores the network's output.

    python benchmarks/coreml_int8_quality.py --checkpoint atbsn_edge/assets/demo_student_c.pt \\
        --noisy ../shared/data/real/nam_pairs/*_noisy.png \\
        --clean ../shared/data/real/nam_pairs/*_clean.png
    python benchmarks/coreml_int8_quality.py --variants int8,int8-learned --strength model \\
        --noisy ../shared/data/real/nam_pairs/*_noisy.png \\
        --clean ../shared/data/real/nam_pairs/*_clean.png
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from atbsn_edge.arguments import check_one_clean_each, comma_choices
from atbsn_edge.cli import new_parser

VARIANTS = ("fp32", "fp16", "int8", "int8-all", "int8-affine", "int8-w8", "int8-learned")
STRENGTHS = ("network", "model")


def main() -> None:
    parser = new_parser("coreml_int8_quality.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", default="atbsn_edge/assets/demo_student_c.pt")
    parser.add_argument("--hole", type=int, help="AT-BSN hole size (default: the checkpoint's)")
    parser.add_argument("--noisy", nargs="+", required=True, help="noisy images, all one square size")
    parser.add_argument("--clean", nargs="+", required=True, help="their clean references")
    parser.add_argument("--variants", type=comma_choices(VARIANTS, "variant"),
                        default="fp32,fp16,int8",
                        help="comma list of fp32, fp16, int8 (W8A8, symmetric activations, the "
                             "default keep-float), "
                             "int8-all (W8A8, every layer), int8-affine (W8A8 with zero points), "
                             "int8-w8 (weight-only), int8-learned (W8A8 of --int8-ready, its "
                             "learned ranges)")
    parser.add_argument("--int8-ready",
                        help="int8-learned: the int8-ready checkpoint (python -m atbsn_edge.qat) "
                             "fine-tuned from --checkpoint (default: the bundled one); its "
                             "program is its own export form (--hole, --keep-float and "
                             "--no-fuse-upsampling do not apply to it)")
    parser.add_argument("--strength", choices=STRENGTHS, default="network",
                        help="network: score the network's output (default); model: blended "
                             "with --checkpoint's own strength, as denoise writes it")
    parser.add_argument("--calib-crops", type=int, default=64)
    parser.add_argument("--keep-float", nargs="*", metavar="PATTERN",
                        help="int8 variants: layers kept float (default: the architecture's choice)")
    parser.add_argument("--limit", type=int, help="only the first N pairs (the evaluator is slow)")
    parser.add_argument("--no-fuse-upsampling", dest="fuse", action="store_false")
    args = parser.parse_args()
    from atbsn_edge.errors import AtbsnError

    import torch

    from atbsn_edge.assets import CALIBRATION_IMAGES, DEMO_STUDENT_C_INT8, default_int8_checkpoint
    from atbsn_edge.calibration import collect_crops
    from atbsn_edge.coreml_mil.evaluator import ProgramEvaluator
    from atbsn_edge.export import torch_to_coreml as tc
    from atbsn_edge.export.torch_qat_to_int8_onnx import learned_ranges
    from atbsn_edge.imageio import read_image
    from atbsn_edge.inputs import expand_inputs
    from atbsn_edge.metrics import psnr
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.strength import blend_with_input, model_strength

    noisy_paths, clean_paths = expand_inputs(args.noisy), expand_inputs(args.clean)
    check_one_clean_each(noisy_paths, clean_paths)
    if args.limit:
        noisy_paths, clean_paths = noisy_paths[:args.limit], clean_paths[:args.limit]
    noisy = [read_image(p).rgb.transpose(2, 0, 1)[None].copy() for p in noisy_paths]
    clean = [read_image(p).rgb for p in clean_paths]
    height, width = noisy[0].shape[2:]
    if height != width:
        raise AtbsnError(f"{noisy_paths[0]} is {width} x {height}: give square images (the "
                         "Core ML tile is square here), e.g. 512 x 512 crops")
    denoiser = load_checkpoint(args.checkpoint)
    hole = denoiser.resolve_hole(args.hole)
    int8_ready = None
    if "int8-learned" in args.variants:  # checked before any conversion
        int8_ready = load_checkpoint(args.int8_ready or default_int8_checkpoint()
                                     or DEMO_STUDENT_C_INT8)
        if learned_ranges(int8_ready) is None:
            raise AtbsnError(f"--int8-ready {int8_ready.metadata['checkpoint']}: not an "
                             "int8-ready checkpoint (no "
                             "learned int8 ranges); make one with python -m atbsn_edge.qat")
    elif args.int8_ready:
        raise AtbsnError("--int8-ready is for the int8-learned variant; add it to --variants "
                         "or drop the flag")
    module = tc.prepare_network(denoiser, hole, fuse=args.fuse)
    strength = model_strength(denoiser.metadata) if args.strength == "model" else 1.0
    scored = "the network output" if strength == 1.0 else f"the output at strength {strength}"

    def score(out: np.ndarray, n: np.ndarray, c: np.ndarray) -> float:
        """PSNR of one output against clean, at the chosen strength."""
        out_hwc = np.ascontiguousarray(out[0].transpose(1, 2, 0), dtype=np.float32)
        if strength != 1.0:
            out_hwc = blend_with_input(np.ascontiguousarray(n[0].transpose(1, 2, 0)), out_hwc,
                                       strength)
        return psnr(out_hwc, c)

    with torch.inference_mode():
        reference = [denoiser.core(hole)(torch.from_numpy(n)).numpy() for n in noisy]
    base = np.array([score(r, n, c) for r, n, c in zip(reference, noisy, clean)])
    keep_default = (denoiser.architecture.int8_keep_float if args.keep_float is None
                    else tuple(args.keep_float))
    calibration = None
    rows = [("PyTorch fp32", "-", base.mean(), 0.0, 0.0, 0.0, None)]  # no evaluator time
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            build_start = time.perf_counter()
            if variant in ("fp32", "fp16"):
                mlmodel = tc.convert_module(module, batch=1, height=height, width=width,
                                            precision=variant)
                scheme = "-"
            elif variant in ("int8", "int8-all", "int8-affine"):
                if calibration is None:
                    calibration = collect_crops([CALIBRATION_IMAGES], height, width,
                                                crops=args.calib_crops)
                keep = () if variant == "int8-all" else keep_default
                scheme_name = "affine" if variant == "int8-affine" else "symmetric"
                quantized, kept = tc.quantize_w8a8(tc.prepare_network(denoiser, hole, fuse=args.fuse),
                                                   calibration.crops, keep, scheme=scheme_name)
                mlmodel = tc.convert_module(quantized, batch=1, height=height, width=width,
                                            precision="int8")
                scheme = f"W8A8 {scheme_name}, float: {','.join(kept) or 'none'}"
            elif variant == "int8-learned":
                mlmodel = tc.learned_int8_program(int8_ready, batch=1, height=height,
                                                  width=width)
                scheme = ("W8A8 symmetric, learned ranges of "
                          f"{Path(int8_ready.metadata['checkpoint']).name}")
            elif variant == "int8-w8":
                mlmodel = tc.weight_only_int8(tc.convert_module(module, batch=1, height=height,
                                                                width=width, precision="fp16"))
                scheme = "weight-only 8-bit, fp16 compute"
            path = Path(tmp) / f"{variant}.mlpackage"
            tc.save_package(mlmodel, path)
            build = time.perf_counter() - build_start
            evaluator = ProgramEvaluator(path)
            scores, rels, seconds = [], [], []
            for n, c, r in zip(noisy, clean, reference):
                start = time.perf_counter()
                out = evaluator.evaluate({"input": n})["output"].astype(np.float32)
                seconds.append(time.perf_counter() - start)
                scores.append(score(out, n, c))
                rels.append(float(np.linalg.norm(out - r) / np.linalg.norm(r)))
            scores = np.array(scores)
            rows.append((f"coreml-{variant}", scheme, scores.mean(), (base - scores).mean(),
                         (base - scores).max(), max(rels), float(np.median(seconds))))
            print(f"  {variant}: built in {build:.0f} s, evaluated {len(noisy)} images", flush=True)
    from atbsn_edge.profiling.machine import cpu_info

    print(f"CPU: {cpu_info()['model']} ({os.cpu_count()} cores); {Path(args.checkpoint).name} on "
          f"{len(noisy)} pairs at {width}x{height}; upsampling {'fused' if args.fuse else 'explicit'}; "
          f"int8 calibration: {args.calib_crops} crops of the bundled DND images, min/max; "
          f"PSNR of {scored}")
    print("| program | int8 scheme | mean PSNR | mean drop vs PyTorch fp32 | worst image drop | "
          "max rel L2 vs PyTorch | evaluator s/image (numpy) |")
    print("|---|---|---|---|---|---|---|")
    for name, scheme, mean, drop, worst, rel, sec in rows:
        print(f"| {name} | {scheme} | {mean:.3f} dB | {drop:.3f} dB | {worst:.3f} dB | "
              f"{rel:.2e} | {'-' if sec is None else f'{sec:.1f}'} |")


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

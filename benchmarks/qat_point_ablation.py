"""Where an int8-ready (QAT) checkpoint loses its PSNR: its int8 simulation on the 12 Nam pairs
with one group of activation quantization points passed through at a time, and three
attempts at the costly point without retraining.

    python benchmarks/qat_point_ablation.py --checkpoint atbsn_edge/assets/demo_student_c_int8.pt \\
        --noisy $N/*_noisy.png --clean $N/*_clean.png --calibration $D/*.png --threads 2

Prints mean PSNR against clean at strength 1 (the network's output; the QAT target) and at
``auto`` (what ``denoise`` writes) for:

- the float network the checkpoint came from (``qat_from``, beside it or ``--float``);
- the simulation as trained, and with each group of points (a convolution's input; a
  decoder's low, skip and ``low_out`` points) passed through in float, and with every
  activation float (weights still quantized);
- ``--recalibrate``: every step reset to its least-squared-error value on the calibration
  images (the steps are learned in the log domain at the weights' learning rate, so they
  barely move from where calibration started them);
- ``--equalize A,B``: the output convolution's input channels equalized (cross-layer
  equalization, exact in float since LeakyReLU is positively homogeneous: the previous
  convolution's output channel c divided by ``(range_c / max range) ** alpha``, the output
  convolution's input channel c multiplied by it), its two steps recalibrated;
- ``--groups G,...``: the output convolution computed as G convolutions over groups of its
  input channels sorted by range, each group with its own step (what per-group activation
  scales would buy);
- ``--output-steps S,...``: the output convolution's input step set to each value.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from atbsn_edge.arguments import check_one_clean_each, thread_count
from atbsn_edge.cli import new_parser


def float_checkpoint(args: argparse.Namespace, model) -> str:
    """The float checkpoint ``model`` (loaded from ``--checkpoint``) was fine-tuned from:
    ``--float``, else its ``qat_from`` beside it; a one-line error where ``model`` is not an
    int8-ready checkpoint or its float one cannot be found (before any output)."""
    from atbsn_edge.errors import AtbsnError
    from atbsn_edge.export.torch_qat_to_int8_onnx import learned_ranges

    if learned_ranges(model) is None:
        raise AtbsnError(f"{args.checkpoint} is not an int8-ready (quantization-aware) "
                         "checkpoint: it has no learned int8 ranges to ablate; give one written "
                         "by python -m atbsn_edge.qat as --checkpoint (e.g. "
                         "atbsn_edge/assets/demo_student_c_int8.pt), and a float checkpoint "
                         "such as this one as --float")
    if args.float_checkpoint:
        return args.float_checkpoint
    origin = model.metadata.get("qat_from") or ""
    path = Path(args.checkpoint).parent / origin
    if not origin or not path.is_file():
        raise AtbsnError(f"{args.checkpoint} names its float checkpoint as "
                         f"{origin or '(nothing)'!r}, and {path} is not a file; give the float "
                         "checkpoint it was fine-tuned from with --float FILE.pt")
    return str(path)


def check_calibration_sides(paths, images, stride: int) -> None:
    """The calibration images run through the bare network (no padding), so each side must be
    a multiple of its ``stride``: a one-line error before any output (it was a RuntimeError
    traceback from a skip connection, after the table)."""
    from atbsn_edge.errors import AtbsnError

    for path, image in zip(paths, images):
        height, width = image.shape[:2]
        if height % stride or width % stride:
            raise AtbsnError(f"--calibration {path} is {width}x{height}; the network takes "
                             f"sides that are multiples of {stride}: give crops of such a size "
                             "(e.g. 512x512)")


def main() -> None:
    parser = new_parser("qat_point_ablation.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--checkpoint", required=True, help="int8-ready checkpoint (qat)")
    parser.add_argument("--float", dest="float_checkpoint",
                        help="its float checkpoint (default: qat_from beside it)")
    parser.add_argument("--noisy", nargs="+", required=True)
    parser.add_argument("--clean", nargs="+", required=True)
    parser.add_argument("--calibration", nargs="+", required=True,
                        help="noisy images for the steps (training data, not the test pairs)")
    parser.add_argument("--recalibrate", action="store_true")
    parser.add_argument("--equalize", default="", help="alphas, e.g. 0.5,1")
    parser.add_argument("--groups", default="", help="group counts, e.g. 2,4")
    parser.add_argument("--output-steps", default="", help="steps, e.g. 0.9,1.2,1.7,2.4")
    parser.add_argument("--threads", type=thread_count, default=0)
    args = parser.parse_args()
    try:
        alphas = [float(a) for a in args.equalize.split(",") if a.strip()]
        counts = [int(g) for g in args.groups.split(",") if g.strip()]
        output_steps = [float(v) for v in args.output_steps.split(",") if v.strip()]
    except ValueError as exc:
        parser.error(f"--equalize, --groups and --output-steps take comma-separated numbers "
                     f"(e.g. --equalize 0.5,1 --groups 2,4): {exc}")
    if any(c < 1 for c in counts) or any(v <= 0 for v in output_steps):
        parser.error(f"--groups {args.groups!r} / --output-steps {args.output_steps!r}: group "
                     "counts must be >= 1 and steps > 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    from atbsn_edge.imageio import read_image
    from atbsn_edge.inputs import expand_inputs
    from atbsn_edge.metrics import psnr
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.profiling.machine import cpu_info
    from atbsn_edge.quantization.fake_quant import best_step, fake_quantize_weight
    from atbsn_edge.quantization.qat_network import QuantizationAware
    from atbsn_edge.strength import blend_with_input

    noisy_paths, clean_paths = expand_inputs(args.noisy), expand_inputs(args.clean)
    check_one_clean_each(noisy_paths, clean_paths)
    noisy = [read_image(p).rgb for p in noisy_paths]
    clean = [read_image(p).rgb for p in clean_paths]
    calibration_paths = expand_inputs(args.calibration)
    calibration = [read_image(p).rgb for p in calibration_paths]

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]

    def score(model) -> str:
        one, auto = [], []
        with torch.inference_mode():
            for x, c in zip(noisy, clean):
                y = model(tensor(x))[0].numpy().transpose(1, 2, 0)
                one.append(psnr(np.rint(y), c))  # the 8-bit output denoise writes
                auto.append(psnr(np.rint(blend_with_input(x, y.copy(), "auto")), c))
        return f"{np.mean(one):.3f} | {np.mean(auto):.3f}"

    def wrapper(model) -> QuantizationAware:
        return next(m for m in model.modules() if isinstance(m, QuantizationAware))

    def run_calibration(model) -> None:
        with torch.inference_mode():
            for x in calibration:
                model(tensor(x))

    model = load_checkpoint(args.checkpoint)
    float_path = float_checkpoint(args, model)
    float_model = load_checkpoint(float_path)
    check_calibration_sides(calibration_paths, calibration, model.stride)
    info = cpu_info()
    print(f"CPU: {info['model']}; {' '.join(info['flags_that_matter'])}; torch threads "
          f"{torch.get_num_threads()}; {len(noisy)} pairs; {len(calibration)} calibration images")
    print("| variant | strength 1 dB | auto dB |")
    print("|---|---|---|")
    print(f"| float network ({Path(float_path).name}) | {score(float_model)} |")
    print(f"| int8 simulation as trained | {score(model)} |", flush=True)
    quantizers = wrapper(model).quantizers()
    groups: dict[str, list[str]] = {}
    for name in quantizers:
        parts = name.split(".")
        key = ".".join(parts[1:3]) if parts[1].startswith(("enc", "dec")) else parts[1]
        groups.setdefault(key, []).append(name)
    for key, names in groups.items():
        for name in names:
            quantizers[name].observing = True  # passes its input through
        points = ", ".join(n.rsplit(".", 1)[-1] for n in names)
        print(f"| {key} ({points}) float | {score(model)} |", flush=True)
        for name in names:
            quantizers[name].observing = False
            quantizers[name]._observed.clear()
    for quantizer in quantizers.values():
        quantizer.observing = True
    print(f"| every activation float (weights int8) | {score(model)} |", flush=True)
    for quantizer in quantizers.values():
        quantizer.observing = False
        quantizer._observed.clear()

    if args.recalibrate:
        variant = copy.deepcopy(model)
        wrapped = wrapper(variant)
        wrapped.observe(True)
        run_calibration(variant)
        for quantizer in wrapped.quantizers().values():
            quantizer.start_from_observations()
        print(f"| every step recalibrated | {score(variant)} |", flush=True)

    unet = wrapper(model).network.unet
    ranges: list[torch.Tensor] = []
    hook = unet.dec1.conv2.register_forward_pre_hook(
        lambda module, inputs: ranges.append(inputs[0].abs().amax(dim=(0, 2, 3))))
    with torch.inference_mode():
        for x in calibration:
            wrapper(model).network(tensor(x))
    hook.remove()
    channel_range = torch.stack(ranges).amax(0)
    for alpha in alphas:
        variant = copy.deepcopy(model)
        wrapped = wrapper(variant)
        scale = (channel_range / channel_range.max()).clamp_min(1e-4) ** alpha
        with torch.no_grad():
            first = wrapped.network.unet.dec1.conv1.conv
            last = wrapped.network.unet.dec1.conv2.conv
            first.weight.div_(scale[:, None, None, None])
            first.bias.div_(scale)
            last.weight.mul_(scale[None, :, None, None])
        points = [q for n, q in wrapped.quantizers().items()
                  if n.endswith(("dec1.conv1.low_out", "dec1.conv2.input"))]
        for quantizer in points:
            quantizer.observing = True
        run_calibration(variant)
        for quantizer in points:
            quantizer.start_from_observations()
        print(f"| output input equalized, alpha {alpha:g} | {score(variant)} |", flush=True)

    if counts:
        inputs: list[torch.Tensor] = []
        qconv = wrapper(model).quantized.unet.dec1.conv2
        hook = qconv.register_forward_pre_hook(lambda m, a: inputs.append(a[0].flatten(2)[0]))
        run_calibration(model)
        hook.remove()
        acts = torch.cat(inputs, dim=1)
        order = torch.argsort(acts.abs().amax(1))
        conv = qconv.float_conv.conv
        levels = qconv.weight_levels["input"]
        for count in counts:
            parts = [order[k * len(order) // count:(k + 1) * len(order) // count]
                     for k in range(count)]
            steps = [best_step(acts[idx].flatten()[torch.randint(0, acts[idx].numel(), (400_000,))])
                     for idx in parts]

            def grouped(x, parts=parts, steps=steps):
                out = conv.bias[None, :, None, None]
                for idx, step in zip(parts, steps):
                    xq = torch.fake_quantize_per_tensor_affine(x[:, idx], step, 0, -128, 127)
                    out = out + F.conv2d(xq, fake_quantize_weight(conv.weight[:, idx], 0, levels),
                                         padding=1)
                return F.leaky_relu(out, 0.1)

            qconv.forward = grouped
            print(f"| output convolution in {count} channel groups, a step each | "
                  f"{score(model)} |", flush=True)
            del qconv.forward
    for step in output_steps:
        variant = copy.deepcopy(model)
        wrapper(variant).quantizers()["unet.dec1.conv2.input"].set_step(step)
        print(f"| output convolution's input step {step:g} | {score(variant)} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

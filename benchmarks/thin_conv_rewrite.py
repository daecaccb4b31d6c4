"""Issue 12, part 3: exact rewrites of student C's thin full-resolution convolutions, timed.

At 512 x 512, student C (with the upsampling fold) has three convolutions with 3 input or 3
output channels at full resolution: ``intro`` (3 -> 48), the image path of ``dec1.conv1``
(3 -> 96, summed with the transposed convolution of the low map) and ``dec1.conv2`` (96 -> 3).
A matrix unit (AMX) fed 3 channels is mostly idle. This script builds each of them as a small
PyTorch module together with the layer that follows or precedes it (so that layout changes are
counted), and exact rewrites:

``intro`` pair (image -> intro 3->48 -> enc1.conv1 48->48 at full resolution -> enc1's 2x2
max pool, so that the pair's output is the half-size map the network passes on)
  - ``original``
  - ``s2d``: intro as a 3x3 convolution over ``pixel_unshuffle(image, 2)`` (12 -> 192 channels
    at half resolution, 4x the multiply-adds, taps that fall outside zero), then
    ``pixel_shuffle`` back before enc1
  - ``im2col``: the 27 shifted copies of the zero-padded image (Pad, Slices, Concat) and a
    1x1 convolution 27 -> 48

``dec1`` (low 96@256 and image 3@512 -> 3@512: ConvTranspose(low) + conv(image), LeakyReLU,
conv2 96->3, LeakyReLU; the exported form after ``fuse_upsampling``)
  - ``original``
  - ``pad16``: conv2 with 13 zero filters (96 -> 16), then the first 3 channels
  - ``im2col``: the image path as a 1x1 convolution over the 27 shifted copies
  - ``s2d-dense``: the whole stage at half resolution: the transposed convolution as a 3x3
    convolution 96 -> 384 of ``low`` (its four output phases, channel ``4 o + phase``) plus the
    image convolution over ``pixel_unshuffle(image)`` (12 -> 384), LeakyReLU, conv2 over the
    space-to-depth map 384 -> 12, LeakyReLU, ``pixel_shuffle`` (3 channels at full size)
  - ``s2d-phase``: the same with each output phase its own pair of 2x2 convolutions (96 -> 96
    and 12 -> 96, with the phase's one-sided padding), concatenated: no multiply-add on a tap
    known to be zero
  - ``s2d-concat``: ``s2d-dense`` with both first convolutions as one over
    ``cat(low, k * pixel_unshuffle(image))`` (``k`` brings the image to the low map's range, as
    one int8 scale covers the concatenation)

Every rewrite is checked against the original in PyTorch (float32; max abs difference), exported
with ``torch.onnx.export(dynamo=False, opset 17)`` and timed in OpenVINO on the CPU (2 threads,
LATENCY hint) as f32 (hint f32), bf16 (hint bf16) and int8 (NNCF post-training quantization,
PERFORMANCE preset, on a few random but realistically scaled inputs; float layers bf16). Variants
alternate in rounds within one run, so drift of a shared machine falls on all of them; each
figure is the median of every timed call. OpenVINO's per-layer counters (PERF_COUNT) then show
what each rewritten convolution and each layout op cost.

    .venv/bin/python benchmarks/thin_conv_rewrite.py [--rounds 8] [--seconds 0.4]

Result on an AMX Xeon (docs/profiling.md, last section): no rewrite clearly faster in int8
with its layout ops counted; none kept.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from atbsn_edge.arguments import comma_choices, pick_choices
from atbsn_edge.cli import new_parser

SLOPE = 0.1
H = W = 512


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE)


# --- exact weight rewrites --------------------------------------------------------------------

def s2d_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """A 3x3, stride-1, zero-padding-1 convolution (O x C x 3 x 3) as a 3x3 zero-padding-1
    convolution over ``pixel_unshuffle(x, 2)`` whose output is ``pixel_unshuffle(y, 2)``:
    weight (4 O) x (4 C) x 3 x 3, channel ``4 c + 2 a + b`` for phase (a, b) (PyTorch's order).

    Output row ``2 i + a'`` reads input row ``2 i + a' + dy - 1`` = row ``a`` of block
    ``i + di`` with ``a' + dy - 1 = 2 di + a``; block tap ``di + 1``. Rows outside the image are
    blocks outside the half-size map (even sides), so zero padding stays exact."""
    out_ch, in_ch = weight.shape[:2]
    new = weight.new_zeros(4 * out_ch, 4 * in_ch, 3, 3)
    for ao in range(2):
        for bo in range(2):
            for dy in range(3):
                for dx in range(3):
                    ty, tx = ao + dy - 1, bo + dx - 1
                    di, a = divmod(ty, 2)
                    dj, b = divmod(tx, 2)
                    new[ao * 2 + bo::4, a * 2 + b::4, di + 1, dj + 1] = weight[:, :, dy, dx]
    return new


def s2d_conv_transpose_weight(weight: torch.Tensor) -> torch.Tensor:
    """A ConvTranspose2d(kernel 4, stride 2, padding 1) weight (C x O x 4 x 4) as a 3x3
    zero-padding-1 convolution at the low resolution producing ``pixel_unshuffle(y, 2)``:
    output row ``2 i + a'`` = sum over input rows ``m = i + dm`` of tap ``k = a' + 1 - 2 dm``."""
    in_ch, out_ch = weight.shape[:2]
    new = weight.new_zeros(4 * out_ch, in_ch, 3, 3)
    for ao in range(2):
        for bo in range(2):
            for dm in (-1, 0, 1):
                for dn in (-1, 0, 1):
                    ky, kx = ao + 1 - 2 * dm, bo + 1 - 2 * dn
                    if 0 <= ky < 4 and 0 <= kx < 4:
                        new[ao * 2 + bo::4, :, dm + 1, dn + 1] = weight[:, :, ky, kx].t()
    return new


def im2col(x: torch.Tensor) -> torch.Tensor:
    """The 9 shifted copies of the zero-padded map, channel ``(3 dy + dx) C + c``."""
    p = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    return torch.cat([p[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], 1)


def im2col_weight(weight: torch.Tensor) -> torch.Tensor:
    """O x C x 3 x 3 -> O x 9C x 1 x 1 in :func:`im2col`'s channel order."""
    out_ch, in_ch = weight.shape[:2]
    return weight.permute(0, 2, 3, 1).reshape(out_ch, 9 * in_ch, 1, 1).contiguous()


def conv_module(weight: torch.Tensor, bias: torch.Tensor | None, padding) -> nn.Conv2d:
    out_ch, in_ch, kh, kw = weight.shape
    conv = nn.Conv2d(in_ch, out_ch, (kh, kw), padding=padding, bias=bias is not None)
    conv.weight.data = weight.clone()
    if bias is not None:
        conv.bias.data = bias.clone()
    return conv


# --- the intro pair ---------------------------------------------------------------------------

class IntroOriginal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.intro = nn.Conv2d(3, 48, 3, padding=1)
        self.enc1 = nn.Conv2d(48, 48, 3, padding=1)

    def forward(self, image):
        return F.max_pool2d(lrelu(self.enc1(lrelu(self.intro(image)))), 2)


class IntroS2D(nn.Module):
    def __init__(self, ref: IntroOriginal) -> None:
        super().__init__()
        self.intro = conv_module(s2d_conv_weight(ref.intro.weight.detach()),
                                 ref.intro.bias.detach().repeat_interleave(4), 1)
        self.enc1 = ref.enc1

    def forward(self, image):
        x = F.pixel_shuffle(lrelu(self.intro(F.pixel_unshuffle(image, 2))), 2)
        return F.max_pool2d(lrelu(self.enc1(x)), 2)


class IntroIm2col(nn.Module):
    def __init__(self, ref: IntroOriginal) -> None:
        super().__init__()
        self.intro = conv_module(im2col_weight(ref.intro.weight.detach()), ref.intro.bias.detach(), 0)
        self.enc1 = ref.enc1

    def forward(self, image):
        return F.max_pool2d(lrelu(self.enc1(lrelu(self.intro(im2col(image))))), 2)


# --- dec1 -------------------------------------------------------------------------------------

class Dec1Original(nn.Module):
    """``dec1`` after ``fuse_upsampling``: ConvTranspose(low) + conv(image), then conv2."""

    def __init__(self) -> None:
        super().__init__()
        self.low = nn.ConvTranspose2d(96, 96, 4, stride=2, padding=1, bias=False)
        self.skip = nn.Conv2d(3, 96, 3, padding=1)
        self.conv2 = nn.Conv2d(96, 3, 3, padding=1)

    def forward(self, low, image):
        return lrelu(self.conv2(lrelu(self.low(low) + self.skip(image))))


class Dec1Pad16(nn.Module):
    def __init__(self, ref: Dec1Original) -> None:
        super().__init__()
        self.low, self.skip = ref.low, ref.skip
        w, b = ref.conv2.weight.detach(), ref.conv2.bias.detach()
        self.conv2 = conv_module(torch.cat((w, w.new_zeros(13, *w.shape[1:]))),
                                 torch.cat((b, b.new_zeros(13))), 1)

    def forward(self, low, image):
        return lrelu(self.conv2(lrelu(self.low(low) + self.skip(image)))[:, :3])


class Dec1Im2col(nn.Module):
    def __init__(self, ref: Dec1Original) -> None:
        super().__init__()
        self.low, self.conv2 = ref.low, ref.conv2
        self.skip = conv_module(im2col_weight(ref.skip.weight.detach()), ref.skip.bias.detach(), 0)

    def forward(self, low, image):
        return lrelu(self.conv2(lrelu(self.low(low) + self.skip(im2col(image)))))


def _dec1_s2d_weights(ref: Dec1Original):
    """The stage over the space-to-depth maps: the transposed convolution as a 3x3 convolution
    of ``low`` (384 x 96, output ``4 o + phase``), the image convolution over
    ``pixel_unshuffle(image)`` (384 x 12) and its bias, conv2 over the space-to-depth map
    (12 x 384). Low map and image stay two convolutions (summed, as in the original): a
    concatenation would share one int8 scale between an image in 0..255 and activations."""
    return (s2d_conv_transpose_weight(ref.low.weight.detach()),
            s2d_conv_weight(ref.skip.weight.detach()), ref.skip.bias.detach().repeat_interleave(4),
            s2d_conv_weight(ref.conv2.weight.detach()), ref.conv2.bias.detach().repeat_interleave(4))


class Dec1S2DDense(nn.Module):
    def __init__(self, ref: Dec1Original) -> None:
        super().__init__()
        w_low, w_img, bias, w2, b2 = _dec1_s2d_weights(ref)
        self.low = conv_module(w_low, None, 1)
        self.skip = conv_module(w_img, bias, 1)
        self.conv2 = conv_module(w2, b2, 1)

    def forward(self, low, image):
        x = lrelu(self.low(low) + self.skip(F.pixel_unshuffle(image, 2)))
        return F.pixel_shuffle(lrelu(self.conv2(x)), 2)


class Dec1S2DPhase(nn.Module):
    """Output phase (a, b) reads block rows {-1, 0} for a = 0 and {0, 1} for a = 1 (columns
    likewise): per phase a 2x2 convolution of the low map plus one of the space-to-depth
    image, with the phase's one-sided padding; phases concatenated phase-major (conv2's input
    channels permuted to match)."""

    PADS = {(0, 0): (1, 0, 1, 0), (0, 1): (0, 1, 1, 0), (1, 0): (1, 0, 0, 1), (1, 1): (0, 1, 0, 1)}

    def __init__(self, ref: Dec1Original) -> None:
        super().__init__()
        w_low, w_img, bias, w2, b2 = _dec1_s2d_weights(ref)
        self.low, self.skip = nn.ModuleList(), nn.ModuleList()
        for a in range(2):
            for b in range(2):
                rows, cols, p = slice(a, a + 2), slice(b, b + 2), a * 2 + b
                self.low.append(conv_module(w_low[p::4, :, rows, cols].contiguous(), None, 0))
                self.skip.append(conv_module(w_img[p::4, :, rows, cols].contiguous(),
                                             bias[p::4].clone(), 0))
        out = w2.shape[1] // 4
        perm = torch.tensor([o * 4 + p for p in range(4) for o in range(out)])
        self.conv2 = conv_module(w2[:, perm].contiguous(), b2, 1)

    def forward(self, low, image):
        image = F.pixel_unshuffle(image, 2)
        y = torch.cat([self.low[i](F.pad(low, self.PADS[divmod(i, 2)]))
                       + self.skip[i](F.pad(image, self.PADS[divmod(i, 2)])) for i in range(4)], 1)
        return F.pixel_shuffle(lrelu(self.conv2(lrelu(y))), 2)


class Dec1S2DConcat(nn.Module):
    """``s2d-dense`` with the two first convolutions as one over ``cat(low, k * s2d(image))``
    (108 -> 384; image weights divided by ``k``). One tensor gets one int8 scale, so ``k``
    (here 1/25: the synthetic low map's range over the image's 0..255) has to bring the image
    to the low map's range; in a real network that is a calibration-dependent constant."""

    def __init__(self, ref: Dec1Original, k: float = 1 / 25) -> None:
        super().__init__()
        w_low, w_img, bias, w2, b2 = _dec1_s2d_weights(ref)
        self.k = k
        self.conv1 = conv_module(torch.cat((w_low, w_img / k), 1), bias, 1)
        self.conv2 = conv_module(w2, b2, 1)

    def forward(self, low, image):
        x = torch.cat((low, F.pixel_unshuffle(image, 2) * self.k), 1)
        return F.pixel_shuffle(lrelu(self.conv2(lrelu(self.conv1(x)))), 2)


# --- measurement ------------------------------------------------------------------------------

def count_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> float:
    total = [0.0]

    def hook(m, args, out):
        if isinstance(m, nn.ConvTranspose2d):
            total[0] += args[0].numel() * m.out_channels * m.weight[0, 0].numel()
        else:
            total[0] += out.numel() * m.weight[0].numel()
    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.inference_mode():
        module(*inputs)
    for h in handles:
        h.remove()
    return total[0]


def export(module: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], path: Path) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), inputs, buffer, dynamo=False, opset_version=17,
                          input_names=names, output_names=["output"], do_constant_folding=True)
    path.write_bytes(buffer.getvalue())


def realistic_inputs(rng: np.random.Generator, names: list[str]) -> dict[str, np.ndarray]:
    """The image in 0..255 (smooth plus noise), the low map as LeakyReLU activations."""
    out = {}
    for name in names:
        if name == "image":
            base = rng.random((1, 3, 1, 1)) * 160 + rng.normal(0, 25, (1, 3, H, W))
            out[name] = np.clip(base, 0, 255).astype(np.float32)
        else:
            a = rng.normal(0.5, 2.0, (1, 96, H // 2, W // 2))
            out[name] = np.where(a > 0, a, SLOPE * a).astype(np.float32)
    return out


FORMS = ("f32", "bf16", "f16", "int8")  # float hints, and int8 (NNCF, float layers in bf16)


def check_names(pairs: dict, args: argparse.Namespace) -> list[str] | None:
    """Refuse, before any work, a --pairs prefix or --variants name that names nothing (the
    table would be empty, or silently lack it; --forms is checked by argparse). Returns the
    --variants names, None when it is not given (every variant)."""
    from atbsn_edge.errors import AtbsnError

    given_pairs = [p for p in args.pairs.split(",") if p]
    unknown = [p for p in given_pairs if not any(k.startswith(p) for k in pairs)]
    if unknown or not given_pairs:
        raise AtbsnError(f"--pairs {args.pairs!r}: {', '.join(unknown) or 'nothing'} names no "
                         f"pair; give name prefixes of: {', '.join(k.split()[0] for k in pairs)}")
    if not args.variants:
        return None
    variants = sorted({v for _, vs in pairs.values() for v, _ in vs})
    try:
        return pick_choices(args.variants, variants, "variant")
    except ValueError as exc:
        raise AtbsnError(f"--variants: {exc}") from None


def main() -> None:
    parser = new_parser("thin_conv_rewrite.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.4, help="timed seconds per variant per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=4, help="inputs for NNCF")
    parser.add_argument("--forms", type=comma_choices(FORMS, "form"), default="f32,bf16,int8",
                        help=f"comma-separated, out of {', '.join(FORMS)}")
    parser.add_argument("--pairs", default="intro,dec1", help="which pairs (name prefixes)")
    parser.add_argument("--variants", default="", help="only these variants (and the original)")
    parser.add_argument("--size", type=int, default=512, help="image side (512: the real shape)")
    args = parser.parse_args()
    global H, W
    H = W = args.size

    import nncf
    import openvino as ov

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from atbsn_edge.profiling.machine import describe_cpu
    from atbsn_edge.profiling.openvino_layers import call_profile, layers_of
    from atbsn_edge.profiling.timing import time_calls

    nncf.set_log_level(logging.ERROR)
    torch.manual_seed(0)
    intro = IntroOriginal().eval()
    dec1 = Dec1Original().eval()
    with torch.no_grad():  # weights at a realistic scale for a 0..255 image
        for m in (intro.intro, dec1.skip):
            m.weight.mul_(1 / 255)
    pairs: dict[str, tuple[list[str], list[tuple[str, nn.Module]]]] = {
        "intro + enc1 (conv, pool)": (["image"], [("original", intro), ("s2d", IntroS2D(intro)),
                                      ("im2col", IntroIm2col(intro))]),
        "dec1 (convT + image conv + conv2)": (["low", "image"], [
            ("original", dec1), ("pad16", Dec1Pad16(dec1)), ("im2col", Dec1Im2col(dec1)),
            ("s2d-dense", Dec1S2DDense(dec1)), ("s2d-phase", Dec1S2DPhase(dec1)),
            ("s2d-concat", Dec1S2DConcat(dec1))]),
    }
    only = check_names(pairs, args)
    pairs = {k: (names, [(v, m) for v, m in variants if v == "original" or only is None
                         or v in only])
             for k, (names, variants) in pairs.items()
             if any(k.startswith(p) for p in args.pairs.split(","))}
    rng = np.random.default_rng(0)
    forms = args.forms
    core = ov.Core()
    tmp = Path(tempfile.mkdtemp(prefix="thin_conv_"))
    entries = []  # dicts: pair, variant, macs, diff, compiled per form, request
    for pair, (names, variants) in pairs.items():
        feeds = realistic_inputs(rng, names)
        calib = [realistic_inputs(rng, names) for _ in range(args.calibration)]
        tensors = tuple(torch.from_numpy(feeds[n]) for n in names)
        with torch.inference_mode():
            want = variants[0][1](*tensors)
        for variant, module in variants:
            module.eval()
            with torch.inference_mode():
                got = module(*tensors)
            diff = float((got - want).abs().max())
            path = tmp / f"{pair.split()[0]}-{variant}.onnx"
            export(module, tensors, names, path)
            model = core.read_model(str(path))
            entry = {"pair": pair, "variant": variant, "macs": count_macs(module, tensors),
                     "diff": diff, "scale": float(want.abs().max()), "feeds": feeds,
                     "want": want.numpy(),
                     "compiled": {}, "profiled": {}, "samples": {f: [] for f in forms}}
            for form in forms:
                if form == "int8":
                    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars
                        m = nncf.quantize(model, nncf.Dataset(calib),
                                          preset=nncf.QuantizationPreset.PERFORMANCE,
                                          target_device=nncf.TargetDevice.CPU,
                                          subset_size=len(calib))
                    hint = "bf16"
                else:
                    m, hint = model, form
                config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                          "INFERENCE_NUM_THREADS": args.threads}
                entry["compiled"][form] = core.compile_model(m, "CPU", config)
                entry["profiled"][form] = core.compile_model(m, "CPU", {**config, "PERF_COUNT": True})
            entries.append(entry)
            path.unlink()
            print(f"built {pair} / {variant}: {entry['macs'] / 1e9:.2f} GMAC, "
                  f"max |diff| {diff:.2e} of max |y| {entry['scale']:.1f}", file=sys.stderr)

    shutil.rmtree(tmp, ignore_errors=True)
    # every form's output against the PyTorch float32 original (int8: its quantization error)
    outputs = {}
    for e in entries:
        for form in forms:
            req = e["compiled"][form].create_infer_request()
            outputs[(e["pair"], e["variant"], form)] = req.infer(e["feeds"])[0].copy()
            e.setdefault("requests", {})[form] = req

    for r in range(args.rounds):
        order = entries if r % 2 == 0 else entries[::-1]
        for e in order:
            for form in forms:
                req, feeds = e["requests"][form], e["feeds"]
                t = time_calls(lambda: req.infer(feeds), warmup_s=0.1, duration_s=args.seconds,
                               min_iters=3)
                e["samples"][form].extend(t.samples)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print(f"CPU: {describe_cpu()}; OpenVINO {ov.__version__}, {args.threads} threads, LATENCY "
          f"hint; {args.rounds} alternating rounds x {args.seconds} s per variant and form; "
          f"load average at the end {os.getloadavg()[0]:.1f} (other jobs share the CPU when "
          f"it exceeds 0)\n")
    header = "| layer | variant | GMAC | " + " | ".join(f"ms {f}" for f in forms) + " | " + \
        " | ".join(f"ratio {f}" for f in forms) + \
        " | max abs diff vs original (PyTorch f32) | int8 max abs diff vs PyTorch f32 original |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for pair in pairs:
        rows = [e for e in entries if e["pair"] == pair]
        base = {f: statistics.median(rows[0]["samples"][f]) for f in forms}
        for e in rows:
            ms = {f: statistics.median(e["samples"][f]) for f in forms}
            i8 = ""
            if "int8" in forms:
                a = outputs[(pair, e["variant"], "int8")]
                i8 = f"{float(np.abs(a - e['want']).max()):.3g}"
            print(f"| {pair} | {e['variant']} | {e['macs'] / 1e9:.2f} | "
                  + " | ".join(f"{ms[f] * 1e3:.2f}" for f in forms) + " | "
                  + " | ".join(f"{ms[f] / base[f]:.2f}" for f in forms)
                  + f" | {e['diff']:.2e} (of {e['scale']:.3g}) | {i8} |")

    print("\nPer-layer counters (OpenVINO PERF_COUNT; median over 3 alternating rounds of 5 "
          "calls; nodes >= 2% of the variant's sum):")
    profiled_forms = [f for f in ("int8", "bf16") if f in forms]
    runs: dict[tuple[int, str], list[dict]] = {}
    requests = {(i, f): e["profiled"][f].create_infer_request()
                for i, e in enumerate(entries) for f in profiled_forms}
    for (i, f), req in requests.items():
        for _ in range(2):
            req.infer(entries[i]["feeds"])
    for r in range(3):
        keys = list(requests) if r % 2 == 0 else list(requests)[::-1]
        for key in keys:
            req = requests[key]
            for _ in range(5):
                req.infer(entries[key[0]]["feeds"])
                runs.setdefault(key, []).append(call_profile(req))
    for f in profiled_forms:
        for i, e in enumerate(entries):
            layers = layers_of(runs[(i, f)], {})
            total = sum(layer.seconds for layer in layers)
            parts = [f"{layer.name} [{layer.kind}, {layer.kernel}] {layer.seconds * 1e3:.2f}"
                     for layer in layers if layer.seconds >= 0.02 * total]
            print(f"- {f} {e['pair']} / {e['variant']} (sum {total * 1e3:.2f} ms): "
                  + "; ".join(parts))


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

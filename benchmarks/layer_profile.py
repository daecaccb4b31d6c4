"""Where an OpenVINO artifact's time goes: per-layer time, precision and multiply-add rate.

Opens the bundle's IR through ``atbsn_edge.runtimes.openvino_runtime`` (the precision hint
``denoise`` and ``parity`` use) with OpenVINO's performance counters on, runs it and prints,
per convolution, the time, the kernel OpenVINO chose (its precision), the GMAC and the GMAC/s achieved. The last lines bound
what int8 could reach on this CPU: the network's multiply-adds at the fastest int8 rate any of
its layers achieved here, with every other cost (memory-bound layers, reorders) ignored.
(``python -m atbsn_edge.profile`` now measures that rate on its own, on a wide convolution,
and reports every latency against it; this script stays for the per-layer breakdown.)

    python benchmarks/layer_profile.py bundle-openvino-int8 --threads 2
"""
from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from atbsn_edge.profiling.machine import describe_cpu
from atbsn_edge.cli import new_parser
from atbsn_edge.profiling.openvino_layers import (call_profile, fastest_int8_layer, layer_macs,
                                                  layers_of)


def main() -> None:
    parser = new_parser("layer_profile.py", __doc__)  # one-line errors, exit 2
    parser.add_argument("bundle", type=Path, help="an openvino-* bundle folder or .xml")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--min-share", type=float, default=0.01,
                        help="list the layers taking at least this share of the time (default 0.01)")
    parser.add_argument("--torch-ms", type=float,
                        help="PyTorch eager latency measured in the same session, to print ratios")
    args = parser.parse_args()

    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime

    from atbsn_edge.errors import AtbsnError

    xml = (args.bundle if args.bundle.suffix == ".xml"
           else next(args.bundle.glob("model-*.xml"), None))
    if xml is None or not xml.is_file():
        raise AtbsnError(f"{args.bundle} is neither an OpenVINO .xml nor a folder holding one "
                         "(model-*.xml); export one with "
                         "python -m atbsn_edge.export --target openvino-int8")
    runtime = OpenVinoRuntime(xml, threads=args.threads, profile=True)
    spec = runtime.input_spec
    x = (np.random.default_rng(0).random((spec.batch or 1, spec.channels, spec.height,
                                          spec.width)) * 255).astype(np.float32)
    from atbsn_edge.profiling.timing import time_calls

    for _ in range(2):  # warm-up, not recorded
        runtime.infer(x)
    profiles = []

    def call():
        runtime.infer(x)
        profiles.append(call_profile(runtime.request))
    times = time_calls(call, warmup_s=0.0, iters=args.repeats).samples
    precision = runtime.metadata.precision
    hint = runtime.inference_precision
    macs = layer_macs(runtime.model)
    layers = layers_of(profiles, macs)
    total = sum(layer.seconds for layer in layers)
    latency = statistics.median(times)
    print(f"CPU: {describe_cpu()}; "
          f"{xml.name} ({precision}, float layers in {hint}); {args.threads or 'default'} threads")
    print(f"latency {latency * 1e3:.1f} ms (median of {args.repeats}); layers sum to {total * 1e3:.1f} ms")
    print("| layer | type | kernel | ms | share | GMAC | GMAC/s |")
    print("|---|---|---|---|---|---|---|")
    for layer in layers:
        if layer.seconds < args.min_share * total:
            continue
        rate = f"{layer.rate / 1e9:.0f}" if layer.rate else "-"
        print(f"| {layer.name} | {layer.kind} | {layer.kernel} | {layer.seconds * 1e3:.2f} | "
              f"{layer.seconds / total:.1%} | {layer.macs / 1e9:.2f} | {rate} |")
    gmac = sum(macs.values()) / 1e9
    print(f"\nnetwork: {gmac:.1f} GMAC")
    fastest = fastest_int8_layer(layers)
    if fastest is not None:
        bound = gmac / (fastest.rate / 1e9) * 1e3
        line = (f"fastest int8 layer: {fastest.rate / 1e9:.0f} GMAC/s; every multiply-add at that "
                f"rate: {bound:.1f} ms")
        if args.torch_ms:
            line += (f" = {args.torch_ms / bound:.1f}x PyTorch's {args.torch_ms:.0f} ms "
                     f"(measured: {args.torch_ms / (latency * 1e3):.1f}x)")
        print(line)


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

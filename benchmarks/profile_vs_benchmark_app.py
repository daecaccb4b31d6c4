"""The profiler's median against OpenVINO's own benchmark_app and a plain ONNX Runtime loop.

For an OpenVINO bundle: ``python -m atbsn_edge.profile``'s median of one network call
(:func:`atbsn_edge.profile.profile_artifact`, through the Runtime interface) against
``benchmark_app`` on the same IR with the same precision hint (``-infer_precision``, what
the runtime chose: ``runtime.info.inference_precision``), threads (``-nthreads``), shape
(``-shape``), the latency hint and ``-niter`` (``-api sync``; with ``-nthreads``,
benchmark_app insists on ``-hint none``, so the latency hint's one stream and one request are
given as ``-nstreams 1 -nireq 1``). For an ONNX bundle: the profiler against a
plain ``InferenceSession.run`` loop with the same thread count. The two are run
alternately (A B A B ..., ``--rounds`` times ``--niter`` calls each) and the median of each
side's per-round medians is compared, so that drift of a shared machine falls on both alike.
Bar: within 10%.

    python benchmarks/profile_vs_benchmark_app.py --openvino /tmp/b-ovint8 --onnx /tmp/b-onnx \\
        --threads 2 --niter 10 --rounds 6
"""
from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def benchmark_app_median(xml: Path, precision_hint: str, threads: int, shape, niter: int) -> float:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    cmd = [exe, "-m", str(xml), "-d", "CPU", "-niter", str(niter), "-api", "sync",
           "-infer_precision", precision_hint, "-shape", "[" + ",".join(map(str, shape)) + "]"]
    if threads:
        # benchmark_app refuses -nthreads beside a -hint ("fine tune options"): what the
        # latency hint sets -- one stream, one request -- is given by hand instead
        cmd += ["-hint", "none", "-nstreams", "1", "-nireq", "1", "-nthreads", str(threads)]
    else:
        cmd += ["-hint", "latency"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Median:\s*([\d.]+)\s*ms", out)
    if not m:
        raise RuntimeError("benchmark_app printed no median:\n" + out[-2000:])
    return float(m.group(1)) / 1e3


def ort_loop_median(onnx: Path, threads: int, shape, niter: int, warmup: int = 2) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = (np.random.default_rng(0).random(shape) * 255).astype(np.float32)
    for _ in range(warmup):
        session.run(None, {name: x})
    times = []
    for _ in range(niter):
        t0 = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profiler_median(bundle: Path, threads: int, niter: int) -> tuple[float, dict]:
    from atbsn_edge.profile import profile_artifact

    r = profile_artifact(bundle, iters=niter, warmup_s=1.0, threads=threads, floor_device="none",
                         power=False, frames=False)
    return r["call"]["latency_ms"]["median"] / 1e3, r


def main() -> int:
    from atbsn_edge.arguments import positive_int, thread_count
    from atbsn_edge.cli import new_parser
    from atbsn_edge.errors import AtbsnError

    p = new_parser("profile_vs_benchmark_app.py", __doc__)  # one-line errors, exit 2
    p.add_argument("--openvino", type=Path, help="an openvino-* bundle")
    p.add_argument("--onnx", type=Path, help="an onnx-* bundle")
    p.add_argument("--threads", type=thread_count, default=2)
    p.add_argument("--niter", type=positive_int, default=10, help="timed calls per round and side")
    p.add_argument("--rounds", type=positive_int, default=6, help="alternating rounds of each pair")
    args = p.parse_args()
    if args.openvino is None and args.onnx is None:
        raise AtbsnError("give --openvino BUNDLE, --onnx BUNDLE or both: the bundles to time "
                         "against OpenVINO's benchmark_app and ONNX Runtime's own timing")

    from atbsn_edge.pipeline import locate_artifact
    from atbsn_edge.profiling.machine import describe_cpu

    rows = []
    if args.openvino:
        entry, _ = locate_artifact(args.openvino)
        ours, theirs, report = [], [], None
        for _ in range(args.rounds):
            median, report = profiler_median(args.openvino, args.threads, args.niter)
            ours.append(median)
            shape = [report["batch"], 3, *report["tile"]]
            hint = report["inference_precision"] or "f32"
            theirs.append(benchmark_app_median(entry, hint, args.threads, shape, args.niter))
        rows.append((f"{args.openvino.name} ({report['precision']}, hint {hint})", "benchmark_app",
                     statistics.median(ours), statistics.median(theirs), ours, theirs))
    if args.onnx:
        entry, _ = locate_artifact(args.onnx)
        ours, theirs, report = [], [], None
        for _ in range(args.rounds):
            median, report = profiler_median(args.onnx, args.threads, args.niter)
            ours.append(median)
            shape = [report["batch"], 3, *report["tile"]]
            theirs.append(ort_loop_median(entry, args.threads, shape, args.niter))
        rows.append((f"{args.onnx.name} ({report['precision']})", "plain InferenceSession.run loop",
                     statistics.median(ours), statistics.median(theirs), ours, theirs))
    print(f"CPU: {describe_cpu()}; {args.threads} threads, {args.niter} iterations, "
          f"{args.rounds} alternating rounds")
    print("| artifact | reference | profiler median | reference median | difference | within 10% |")
    print("|---|---|---|---|---|---|")
    ok = True
    for name, ref, a, b, ours, theirs in rows:
        diff = a / b - 1
        ok &= abs(diff) <= 0.10
        print(f"| {name} | {ref} | {a * 1e3:.1f} ms | {b * 1e3:.1f} ms | {diff:+.1%} | "
              f"{'yes' if abs(diff) <= 0.10 else 'NO'} |")
        print(f"|   rounds | | {', '.join(f'{v * 1e3:.1f}' for v in ours)} | "
              f"{', '.join(f'{v * 1e3:.1f}' for v in theirs)} | | |")
    return 0 if ok else 1


if __name__ == "__main__":
    from atbsn_edge.cli import run_cli  # a user mistake: one line and exit 2

    raise SystemExit(run_cli(main))

"""Latency profile of an exported artifact, beside the physical floor it is measured against.

    python -m atbsn_edge.profile BUNDLE_OR_ARTIFACT [--target T] [--resolution 1920x1080]
        [--warmup S] [--iters N | --duration S] [--threads N] [--json F]

Runs the artifact through the same Runtime interface and tiler as ``denoise``
(:func:`atbsn_edge.pipeline.open_artifact_tiled`): one network call (a tile, or a batch of
tiles) timed with :func:`atbsn_edge.profiling.timing.time_calls` -- median, p90, p99, min,
mean, standard deviation -- then, where the runtime keeps several requests in flight
(OpenVINO's throughput hint: one call alone runs on one stream), streams of calls through
``Runtime.run_many`` as the tiler runs them (time per call; ``call.in_flight`` in the JSON),
then whole frames of ``--resolution`` through the tiler (megapixels per second, frames per
second). Beside each latency: the floor, the artifact's
multiply-adds and minimum bytes per call (from the bundle's fp32 ONNX) over the device's peak
rate for the precision and its memory bandwidth (:mod:`atbsn_edge.profiling.floors`: a table
of Jetson modules, or measured on the spot on a CPU), and the ratio to it. Also: peak host
memory, device memory where the backend reports it, the backend, precision and inference
precision actually used, the machine, and on a Jetson with ``tegrastats`` the energy of the
run (mean power, millijoules per tile and per frame). ``--json`` writes all of it atomically
(no NaN: a figure that does not exist is null). Sizes are printed width x height; in the
JSON, ``resolution`` is [width, height] while ``tile`` and ``frame.tile_shape`` are [height,
width] (as the tiler orders them), so each tile also has explicit ``tile_width`` and
``tile_height`` keys. See docs/profiling.md.
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .errors import AtbsnError
from .jsonsafe import finite_or_none, write_json
from .runtimes.openvino_runtime import PERFORMANCE_HINTS

if TYPE_CHECKING:
    from .runtimes.base import Runtime, RuntimeInfo

log = logging.getLogger(__name__)

#: precision, inference precision -> (multiply-adds a second or None, what the rate is)
RateLookup = Callable[[str, "str | None"], "tuple[float | None, str]"]
#: a floor device: its label, its rate lookup, its memory bandwidth (B/s) and details
FloorChoice = tuple[str, RateLookup, "float | None", dict]


def parse_resolution(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080) (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r} is not WIDTHxHEIGHT") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"resolution {text!r} must be positive")
    from .imageio import MAX_PIXELS

    if w * h > MAX_PIXELS:
        raise argparse.ArgumentTypeError(
            f"resolution {text!r} is {w * h / 1e6:.0f} MP, over the {MAX_PIXELS // 1_000_000} MP "
            "limit of an image; give a smaller frame")
    return w, h


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process (``getrusage`` ru_maxrss: kB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def device_memory_bytes(runtime: Runtime) -> int | None:
    """Device memory the backend reports: a runtime's ``device_memory_bytes``, or a TensorRT
    engine's activation memory (``device_memory_size_v2`` / ``device_memory_size``)."""
    value = getattr(runtime, "device_memory_bytes", None)
    if callable(value):
        value = value()
    if value is not None:
        return int(value)
    engine = getattr(runtime, "engine", None)
    for name in ("device_memory_size_v2", "device_memory_size"):
        size = getattr(engine, name, None)
        if isinstance(size, (int, np.integer)):
            return int(size)
    return None


# The CPU floor's convolutions run in OpenVINO: without it a CPU backend has no floor.
CPU_FLOOR_NEEDS = ("the CPU floor is measured with OpenVINO, which is not installed "
                   "(pip install 'atbsn-edge[openvino]')")


def _cpu_floor_available() -> bool:
    import importlib

    try:
        importlib.import_module("openvino")
    except ImportError:
        return False
    return True


def _choose_floor(choice: str, info: RuntimeInfo, threads: int,
                  fresh: bool = False) -> FloorChoice | str:
    """(device label, rate lookup: precision -> (MAC/s, key), bandwidth B/s, details), or the
    reason there is no floor (a string); ``fresh``: a CPU's rates measured now, not read from
    the cache. ``cpu`` without OpenVINO has been refused before the timed runs."""
    from .profiling import floors
    from .runtimes.registry import backend_column

    floor_kind = backend_column(info.backend, "floor")
    device_text = (info.device or "").lower()
    on_cpu = floor_kind == "cpu" and ("cpu" in device_text or device_text == "")
    if choice == "auto":
        jetson = floors.detect_jetson()
        if jetson and floor_kind == "jetson":
            choice = jetson
        elif on_cpu and not _cpu_floor_available():
            return CPU_FLOOR_NEEDS
        elif on_cpu:
            choice = "cpu"
        else:
            return (f"no floor for {info.backend} on {info.device} (not a CPU, not a known "
                    "Jetson); --floor-device names one")
    if choice == "none":
        return "no floor device (--floor-device none)"
    if choice == "cpu":
        rates = floors.measure_cpu_rates(threads, refresh=fresh)
        when = "measured in this run" if fresh else f"measured {rates.measured_at}"

        def lookup(precision: str, inference_precision: str | None) -> tuple[float | None, str]:
            key = floors.cpu_precision_key(precision, inference_precision, rates.mac_rate)
            return rates.mac_rate.get(key), f"{key} (measured)"
        return (f"CPU {rates.cpu}, {when}", lookup, rates.bandwidth,
                {**rates.as_dict(), "fresh": fresh})
    if choice not in floors.DEVICES:
        raise AtbsnError(f"--floor-device {choice}: not one of auto, cpu, none, "
                         f"{', '.join(floors.DEVICES)}")
    spec = floors.DEVICES[choice]

    def lookup(precision: str, inference_precision: str | None) -> tuple[float | None, str]:
        rate = spec.mac_rate(precision)
        return rate, f"{precision} dense GPU (table)"
    bandwidth = spec.bandwidth_gbs * 1e9 if spec.bandwidth_gbs else None
    details = {"key": choice, **{k: getattr(spec, k) for k in spec.__dataclass_fields__}}
    return (f"{spec.name} (table)", lookup, bandwidth, details)


def target_that_ran(artifact: str | Path, target: str | None) -> str | None:
    """The bundle target ``artifact`` runs as: ``target``, else the bundle's default one; for
    an artifact file, the target its bundle's manifest lists it under (None for a file
    outside any bundle, which has no target)."""
    from .bundle import Bundle
    from .bundle.manifest import is_bundle

    path = Path(artifact)
    try:
        if is_bundle(path):
            return Bundle.open(path).artifact(target).target
        if is_bundle(path.parent):
            return next((entry.target for entry in Bundle.open(path.parent).artifacts.values()
                         if entry.entry == path.name), None)
    except AtbsnError as exc:  # it was opened to run, so this is unexpected: the report goes on
        log.debug("cannot tell which target %s is: %s", artifact, exc)
    return target


def _ratio(measured: float | None, floor: float | None) -> float | None:
    if measured is None or not floor:
        return None
    return measured / floor


def profile_artifact(artifact: str | Path, *, target: str | None = None,
                     resolution: tuple[int, int] = (1920, 1080), warmup_s: float = 2.0,
                     iters: int | None = None, duration_s: float | None = None,
                     threads: int = 0, floor_device: str = "auto", power: bool = True,
                     tegrastats_interval_ms: int = 100, performance_hint: str | None = None,
                     frames: bool = True, frame_iters: int | None = None,
                     tile: int | str | None = "auto", fresh_floor: bool = False) -> dict[str, Any]:
    """Profile ``artifact`` (see the module doc) and return the report as a dict. Network
    calls run at the artifact's own tile; frames are tiled as ``denoise --tile`` tiles them
    (``auto``: the frame's own tile shape where the runtime takes any, recompiled before the
    timed frames; None: the artifact's tile). ``fresh_floor``: a CPU floor's rates measured
    right after the timed runs, not read from the cache (a ratio from one run)."""
    from .pipeline import open_artifact_tiled
    from .profiling import floors
    from .profiling.graph_cost import fp32_onnx_for, graph_cost
    from .profiling.machine import machine_info
    from .profiling.tegrastats import TegrastatsSampler, summarize
    from .profiling.timing import time_calls
    from .tiling import plan_tiles

    if iters is None and duration_s is None:
        duration_s = 10.0
    if floor_device == "cpu" and not _cpu_floor_available():  # before the timed runs
        raise AtbsnError(f"--floor-device cpu: {CPU_FLOOR_NEEDS}; or give --floor-device none")
    options: dict[str, Any] = {}
    if threads:
        options["threads"] = threads
    if performance_hint:
        options["performance_hint"] = performance_hint.upper()
    sampler = None
    if power and TegrastatsSampler.available():
        sampler = TegrastatsSampler(tegrastats_interval_ms).start()
    try:
        given = ["--performance-hint"] if performance_hint else []
        with open_artifact_tiled(artifact, target=target, tile=tile, openvino_flags=given,
                                 **options) as tiled:
            runtime, spec = tiled.runtime, tiled.spec
            info = runtime.info
            batch = spec.batch
            shape = (batch, 3, spec.tile_h, spec.tile_w)
            x = (np.random.default_rng(0).random(shape) * 255).astype(np.float32)
            call = time_calls(lambda: runtime.run(x), warmup_s, iters, duration_s,
                              desc="single calls")
            in_flight = _time_calls_in_flight(runtime, x, iters, duration_s)
            width, height = resolution
            frame_timing = None
            plan = plan_tiles(height, width, tiled.spec_for(height, width))
            tiles = plan.count
            # the frame computes this many network calls' worth of pixels
            calls_per_frame = tiles * plan.tile_h * plan.tile_w / (spec.tile_h * spec.tile_w) / batch
            if frames:
                image = (np.random.default_rng(2).random((height, width, 3)) * 255).astype(np.float32)
                if (plan.tile_h, plan.tile_w) != (spec.tile_h, spec.tile_w):
                    tiled.denoise(image)  # recompiles for the frame's tiles, untimed
                f_iters = frame_iters if frame_iters is not None else iters
                frame_timing = time_calls(lambda: tiled.denoise(image), 0.0, f_iters,
                                          duration_s if f_iters is None else None, min_iters=3,
                                          desc="frames")
            device_mem = device_memory_bytes(runtime)
            describe = tiled.describe()
            peak_mb = peak_host_memory_mb()   # before the floor's micro-benchmark allocates
    finally:
        if sampler is not None:
            sampler.stop()
    floor_choice = _choose_floor(floor_device, info, threads, fresh_floor)

    precision = info.precision
    cost = None
    onnx_path = fp32_onnx_for(artifact)
    cost_error = None
    if onnx_path is not None:
        try:
            cost = graph_cost(onnx_path, input_shape=shape)
        except Exception as exc:  # a foreign graph: report without a floor, say why
            cost_error = f"{type(exc).__name__}: {exc}"
    else:
        cost_error = "no fp32 ONNX beside the artifact (bundle's model-fp32.onnx)"
    floor_call = None
    floor_info: dict[str, Any] = {"device": None, "reason": cost_error}
    if isinstance(floor_choice, str):  # no floor device: that reason before the graph's
        floor_info["reason"] = floor_choice
    elif cost is not None:
        label, lookup, bandwidth, details = floor_choice
        rate, key = lookup(precision, info.inference_precision)
        floor_call = floors.make_floor(cost.macs, cost.min_bytes(precision), rate, bandwidth, key, label)
        floor_info = {"device": label, "details": details, **floor_call.as_dict()}

    floor_s = floor_call.seconds if floor_call else None
    call_stats = call.stats_ms()
    call_ratios = {k: _ratio(call_stats[k] / 1e3, floor_s) for k in ("median", "p90", "p99", "min", "mean")}
    in_flight_report = None
    per_call_in_flight = call.median   # what a frame's tiles cost: calls as the tiler runs them
    if in_flight is not None:
        requests, per_stream, streams = in_flight
        per_call = {k: v / per_stream for k, v in streams.stats_ms().items()
                    if k in ("median", "min", "mean")}
        per_call_in_flight = per_call["median"] / 1e3
        in_flight_report = {
            "requests": requests, "calls_per_stream": per_stream, "streams": streams.count,
            "per_call_ms": per_call,
            "ratio_to_floor": {k: _ratio(v / 1e3, floor_s) for k, v in per_call.items()}}
    report: dict[str, Any] = {
        "artifact": str(artifact), "target": target_that_ran(artifact, target),
        "describe": describe, "backend": info.backend, "precision": precision,
        "inference_precision": info.inference_precision, "device": info.device,
        "model": info.model, "hole_size": info.hole_size,
        "tile": [spec.tile_h, spec.tile_w],   # [height, width], as the tiler orders them
        "tile_width": spec.tile_w, "tile_height": spec.tile_h,
        "batch": batch, "overlap": spec.overlap, "threads": threads or None,
        "call": {"per": f"network call of {batch} tile(s) {spec.tile_w}x{spec.tile_h}",
                 "latency_ms": call_stats,
                 "per_tile_median_ms": call_stats["median"] / batch,
                 "floor_ms": floor_s * 1e3 if floor_s else None, "ratio_to_floor": call_ratios,
                 "in_flight": in_flight_report},
        "cost": None if cost is None else {
            "fp32_onnx": str(onnx_path), "macs_per_call": cost.macs, "conv_macs": cost.conv_macs,
            "conv_transpose_macs": cost.conv_transpose_macs, "other_macs": cost.other_macs,
            "weights": cost.weights, "min_bytes_per_call": cost.min_bytes(precision),
            "macs_per_tile": cost.macs / batch},
        "floor": floor_info,
        "memory": {"peak_host_mb": peak_mb,
                   "device_mb": device_mem / 2**20 if device_mem is not None else None},
        "machine": machine_info(),
    }
    if frame_timing is not None:
        fstats = frame_timing.stats_ms()
        frame_floor = floor_s * calls_per_frame if floor_s else None
        median_s = fstats["median"] / 1e3
        mp = width * height / 1e6
        report["frame"] = {
            "resolution": [width, height], "tiles": tiles,   # resolution: [width, height]
            "tile_shape": [plan.tile_h, plan.tile_w],         # [height, width], as "tile"
            "tile_width": plan.tile_w, "tile_height": plan.tile_h, "latency_ms": fstats,
            "megapixels_per_s": mp / median_s if median_s else None,
            "fps": 1 / median_s if median_s else None,
            "floor_ms": frame_floor * 1e3 if frame_floor else None,
            "floor_fps": 1 / frame_floor if frame_floor else None,
            "ratio_to_floor": {k: _ratio(fstats[k] / 1e3, frame_floor) for k in ("median", "p90", "p99", "min", "mean")},
            "tiled_over_tiles_x_call": ((median_s / (calls_per_frame * per_call_in_flight))
                                        if per_call_in_flight else None),
        }
    if sampler is not None:
        report["power"] = {
            "tool": "tegrastats", "interval_ms": tegrastats_interval_ms,
            "samples_total": len(sampler.samples), "unparsed_lines": len(sampler.errors),
            "call": summarize(sampler.samples, call.marks["start"], call.marks["end"], call.count),
            "frame": (summarize(sampler.samples, frame_timing.marks["start"], frame_timing.marks["end"],
                                frame_timing.count) if frame_timing is not None else None)}
    else:
        report["power"] = None
    return finite_or_none(report)


#: calls in one timed stream per request kept in flight (several rounds of every request)
CALLS_PER_REQUEST = 4


def _time_calls_in_flight(runtime, x: np.ndarray, iters: int | None,
                          duration_s: float | None) -> tuple[int, int, Any] | None:
    """Where the runtime keeps several requests in flight (OpenVINO's throughput hint): time
    streams of calls through ``Runtime.run_many``, as the tiler runs them, and return
    (requests, calls per stream, the streams' timing); None for one request at a time.
    ``iters`` counts calls (rounded up to whole streams)."""
    requests = int(runtime.info.metadata.get("infer_requests", 1))
    if requests <= 1:
        return None
    from .profiling.timing import time_calls

    per_stream = CALLS_PER_REQUEST * requests

    def stream() -> None:
        for _ in runtime.run_many(x for _ in range(per_stream)):
            pass
    streams = None if iters is None else -(-iters // per_stream)
    # one untimed stream first: it opens the requests the single calls did not use
    return requests, per_stream, time_calls(stream, 0.0, streams, duration_s,
                                            desc="calls in flight")


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _frame_tile_size(frame: dict[str, Any], report: dict[str, Any]) -> str:
    """``WIDTHxHEIGHT`` of a frame's tiles, from ``tile_width`` and ``tile_height`` (a report
    without them: its [height, width] ``tile_shape``, else the call's ``tile``)."""
    if "tile_width" in frame:
        return f"{frame['tile_width']}x{frame['tile_height']}"
    height, width = frame.get("tile_shape") or report["tile"]
    return f"{width}x{height}"


def format_report(r: dict[str, Any]) -> str:
    """The report as text: what ran, the floor, and a table of figures with their ratios.
    Every size is width x height, as ``--resolution`` is given."""
    m = r["machine"]
    lines = [f"profile: {r['describe']}",
             f"backend {r['backend']}, precision {r['precision']}, inference precision "
             f"{r['inference_precision'] or r['precision']}, device {r['device']}"]
    cpu = m["cpu"]
    gpu = m.get("gpu") or {}
    v = m["versions"]
    lines.append(f"machine: {cpu['model']} ({cpu['cores']} cores, {cpu['arch']}; flags: "
                 f"{' '.join(cpu['flags_that_matter']) or 'none that matter'}); GPU: "
                 f"{gpu.get('name') or 'none'}; python {v['python']}, numpy {v['numpy']}, "
                 f"onnxruntime {v['onnxruntime'] or '-'}, openvino {v['openvino'] or '-'}, "
                 f"tensorrt {v['tensorrt'] or '-'}")
    cost = r.get("cost")
    if cost:
        lines.append(f"cost per call: {cost['macs_per_call'] / 1e9:.2f} GMAC (conv "
                     f"{cost['conv_macs'] / 1e9:.2f}, transposed conv "
                     f"{cost['conv_transpose_macs'] / 1e9:.2f}), at least "
                     f"{cost['min_bytes_per_call'] / 1e6:.1f} MB moved ({r['precision']}: input + "
                     f"output + {cost['weights'] / 1e6:.2f} M weights)")
    f = r["floor"]
    if f.get("seconds"):
        rate = f"{f['mac_rate'] / 1e9:.0f} GMAC/s {f['rate_key']}" if f.get("mac_rate") else "no compute rate"
        bw = f"{f['bandwidth'] / 1e9:.1f} GB/s" if f.get("bandwidth") else "no bandwidth"
        lines.append(f"floor: {f['device']}: {rate}, {bw} -> {f['seconds'] * 1e3:.2f} ms per call "
                     f"({f['bound']}-bound)")
    else:
        lines.append(f"floor: none ({f.get('reason')})")
    c = r["call"]
    lat = c["latency_ms"]
    flight = c.get("in_flight")
    alone = ", one at a time" if flight else ""
    lines += ["", f"| {c['per']} ({lat['count']} timed{alone}) | ms | x floor |", "|---|---|---|"]
    for k in ("median", "p90", "p99", "min", "mean"):
        ratio = c["ratio_to_floor"][k]
        lines.append(f"| {k} | {_fmt(lat[k], 2)} | {_fmt(ratio, 2, 'x')} |")
    lines.append(f"| std | {_fmt(lat['std'], 2)} | |")
    if c.get("floor_ms"):
        lines.append(f"| floor | {_fmt(c['floor_ms'], 2)} | 1.00x |")
    if flight:
        per, ratio = flight["per_call_ms"], flight["ratio_to_floor"]
        streams = f"{flight['streams']} timed stream{'' if flight['streams'] == 1 else 's'}"
        lines.append(f"with {flight['requests']} requests in flight ({streams} of "
                     f"{flight['calls_per_stream']} calls, as the tiler runs them): "
                     f"{_fmt(per['median'], 2)} ms per call (median; min {_fmt(per['min'], 2)}), "
                     f"{_fmt(ratio['median'], 2, 'x')} the floor")
    fr = r.get("frame")
    if fr:
        w, h = fr["resolution"]
        fl = fr["latency_ms"]
        lines += ["", f"| frame {w}x{h}, {fr['tiles']} tiles of {_frame_tile_size(fr, r)} "
                      f"({fl['count']} timed) "
                      "| ms | x floor |",
                  "|---|---|---|"]
        for k in ("median", "p90", "min", "mean"):
            lines.append(f"| {k} | {_fmt(fl[k], 1)} | {_fmt(fr['ratio_to_floor'][k], 2, 'x')} |")
        lines.append(f"| std | {_fmt(fl['std'], 1)} | |")
        lines.append(f"throughput: {_fmt(fr['megapixels_per_s'], 2)} MP/s, {_fmt(fr['fps'], 2)} fps "
                     f"(floor: {_fmt(fr['floor_fps'], 2)} fps); tiled / (its pixels' worth of calls) = "
                     f"{_fmt(fr['tiled_over_tiles_x_call'], 2)}")
    mem = r["memory"]
    lines.append(f"peak host memory {mem['peak_host_mb']:.0f} MB; device memory "
                 f"{_fmt(mem['device_mb'], 0, ' MB') if mem['device_mb'] is not None else 'not reported by the backend'}")
    p = r.get("power")
    if p:
        for name in ("call", "frame"):
            s = p.get(name)
            if s:
                lines.append(f"power ({name}s, {s['input_rail']}, {s['samples']} samples): mean "
                             f"{_fmt(s['mean_power_w'], 2)} W, {_fmt(s['mj_per_call'], 1)} mJ per {name}, "
                             f"peak {_fmt(s['peak_power_w'], 2)} W, GPU load {_fmt(s['gr3d_mean_pct'], 0, '%')}")
    else:
        lines.append("power: not measured (no tegrastats on PATH)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m atbsn_edge.profile``."""
    from .arguments import non_negative_float, path_arg, positive_float, positive_int, thread_count
    from .cli import add_verbose_argument, new_parser
    from .pipeline import tile_arg
    from .profiling.floors import DEVICES

    p = new_parser("python -m atbsn_edge.profile", __doc__)
    p.add_argument("artifact", type=path_arg, help="a bundle folder or an artifact file")
    p.add_argument("--target", help="which artifact of a bundle (default: the bundle's default)")
    p.add_argument("--resolution", type=parse_resolution, default=(1920, 1080),
                   help="WIDTHxHEIGHT of the tiled frames (default 1920x1080)")
    p.add_argument("--warmup", type=non_negative_float, default=2.0, metavar="S",
                   help="seconds of warm-up calls before timing (at least one call; default 2)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--iters", type=positive_int, metavar="N",
                      help="timed calls (and frames) (default: as many as --duration allows)")
    stop.add_argument("--duration", type=positive_float, metavar="S",
                      help="seconds of timed calls, then as long for calls in flight (throughput hint) and "
                           "as long for frames (default 10; at least 3 frames)")
    p.add_argument("--threads", type=thread_count, default=0,
                   help="CPU threads of the backend (default 0: its default)")
    p.add_argument("--performance-hint", choices=tuple(h.lower() for h in PERFORMANCE_HINTS),
                   help="OpenVINO: compile for one call at a time (the default) or many (then calls "
                        "are also timed several in flight, as the tiler runs them)")
    p.add_argument("--floor-device", default="auto", metavar="NAME",
                   choices=("auto", "cpu", "none", *DEVICES),
                   help="what the floor is measured against: auto (a known Jetson for TensorRT, the "
                        "CPU measured on the spot for CPU backends), cpu, none, or a device: "
                        + ", ".join(DEVICES))
    p.add_argument("--fresh-floor", action="store_true",
                   help="CPU floor: measure its rates in this run, right after the timed runs "
                        "(about 10 s), instead of reading them from the cache, and refresh the "
                        "cache; the ratio then comes from one run, as the machine runs now")
    p.add_argument("--frame-iters", type=positive_int, metavar="N",
                   help="timed frames (default: as --iters / --duration, at least 3)")
    p.add_argument("--no-frames", action="store_true", help="time network calls only, no tiled frames")
    p.add_argument("--tile", type=tile_arg, default="auto",
                   help="how frames are tiled, as denoise --tile: auto (default: the frame's own "
                        "tile shape where the artifact can take it, e.g. OpenVINO) or N; network "
                        "calls always run at the artifact's tile")
    p.add_argument("--no-power", action="store_true", help="do not run tegrastats")
    p.add_argument("--tegrastats-interval", type=positive_int, default=100, metavar="MS",
                   help="tegrastats sampling interval (default 100 ms)")
    p.add_argument("--json", type=path_arg, metavar="F",
                   help="write the full report as JSON (atomically)")
    add_verbose_argument(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The ``atbsn_edge.profile`` command on ``argv`` (None: sys.argv); returns its exit code."""
    from .cli import run_cli

    args = build_parser().parse_args(argv)

    def job() -> int:
        from .output_paths import check_report_path

        if args.no_frames and args.frame_iters is not None:
            raise AtbsnError("--frame-iters sets how many frames are timed; --no-frames times "
                             "none: drop one of them")
        if args.json is not None:
            # before the timed runs
            check_report_path(args.json, "--json", inputs=[args.artifact])
        report = profile_artifact(
            args.artifact, target=args.target, resolution=args.resolution, warmup_s=args.warmup,
            iters=args.iters, duration_s=args.duration, threads=args.threads,
            floor_device=args.floor_device, power=not args.no_power,
            tegrastats_interval_ms=args.tegrastats_interval,
            performance_hint=args.performance_hint, frames=not args.no_frames,
            frame_iters=args.frame_iters, tile=args.tile, fresh_floor=args.fresh_floor)
        print(format_report(report))
        if args.json:
            write_json(args.json, report)
            log.info("wrote %s", args.json)
        return 0

    return run_cli(job, args.verbose)


if __name__ == "__main__":
    sys.exit(main())

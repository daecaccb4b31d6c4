"""The physical floor of a latency: multiply-adds over the peak rate, bytes over bandwidth.

``floor = max(MACs / peak MAC rate at the precision, minimum bytes / memory bandwidth)``;
nothing real runs faster, so ``measured / floor >= 1`` says how far a figure is from the
limit of the device.

Peak rates come from one of two places:

- **a table of known devices** (:data:`DEVICES`): the Jetson Orin modules, with NVIDIA's
  published figures and the source of each. TOPS count operations, and one multiply-add is
  two operations, so a MAC rate is TOPS / 2. NVIDIA quotes *sparse* int8 TOPS (2:4
  structured sparsity, which an unpruned network cannot use); the table holds the dense
  rate, half the sparse one, as NVIDIA's own Orin Nano datasheet states (40 sparse / 20
  dense). The GPU alone is what a TensorRT engine on the GPU can use; GPU + DLA is listed
  beside it for reference (a DLA engine, ``--dla-core``, runs on one DLA only).
- **measured on the spot on a CPU** (:func:`measure_cpu_rates`): the fastest rate OpenVINO
  reaches on wide 3x3 convolutions (four chained, 128 -> 128 channels at 64 x 64 by
  default, cache-resident, which is where a CPU is fastest; timed by OpenVINO's per-node performance counters, so the layout reorders at the
  model's edges do not count) compiled
  with ``INFERENCE_PRECISION_HINT`` f32 / bf16 / f16 (where the CPU has it) and an int8
  variant (FakeQuantize on activations and weights, which the CPU plugin runs as an int8
  convolution), and the memory bandwidth of a large NumPy copy. This is what
  ``benchmarks/layer_profile.py`` found by hand ("int8 convolutions run at 400-440 GMAC/s"),
  folded in here. Results are cached per CPU model, flags, thread count and OpenVINO version
  under ``atbsn_edge.calibration.cache.cache_dir() / "floors"``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path

log = logging.getLogger(__name__)

SRC_NANO_DS = ("NVIDIA Jetson Orin Nano Series Data Sheet (DS-11105): 'Jetson Orin Nano 8GB: Up to "
               "40 (Sparse) INT8 TOPs and 20 (Dense) INT8 TOPs', '4GB: Up to 20 (Sparse) ... 10 "
               "(Dense)', GPU only (no DLA); copy seen at "
               "https://www.scribd.com/document/673174036/Orin-nano-datasheet")
SRC_DLA_SW = ("NVIDIA/Deep-Learning-Accelerator-SW README (https://github.com/NVIDIA/"
              "Deep-Learning-Accelerator-SW): Jetson AGX Orin 64GB at MAXN: GPU 171 sparse INT8 "
              "TOPs, 2x DLA 105 sparse INT8 TOPs, total 275")
SRC_AGX_BRIEF = ("NVIDIA Jetson AGX Orin Series Technical Brief v1.2 (as quoted at "
                 "http://mzph.cn/web/30785.shtml): GPU 2048 CUDA cores 5.3 FP32 TFLOPs, 64 Tensor "
                 "cores 170 sparse INT8 TOPs; DLA up to 105 sparse INT8 TOPs")
SRC_MODULES = ("NVIDIA Jetson module comparison, https://developer.nvidia.com/embedded/jetson-modules "
               "(AI performance in sparse INT8 TOPS and memory bandwidth per module)")
SRC_SUPER = ("NVIDIA Jetson Orin Nano Super Developer Kit datasheet (Dec 2024), as quoted at "
             "https://www.brojogopalsapui.com/ai-foundations/sub_contents/AI_hardware/"
             "jetson_orin_nano_light.html: 67 sparse INT8 TOPS, 102 GB/s (JetPack 6.1+ MAXN SUPER)")
FP16_NOTE = ("fp16: derived, not quoted: Ampere tensor cores run dense fp16 at half the dense int8 "
             "rate; GPU only (Orin's DLA is built for int8)")


@dataclass(frozen=True)
class DeviceSpec:
    """Peak dense rates of a device, in tera-operations per second (1 MAC = 2 ops), and its
    memory bandwidth. ``None`` where no published figure was found."""

    name: str
    int8_tops_gpu: float | None          # dense, GPU alone
    int8_tops_gpu_dla: float | None      # dense, GPU + DLA(s) (reference)
    fp16_tflops_gpu: float | None        # dense, GPU alone (derived, see FP16_NOTE)
    fp32_tflops_gpu: float | None        # CUDA cores
    bandwidth_gbs: float | None
    sources: tuple[str, ...]
    verified: str                        # which figures were seen in a source in this project
    notes: str = ""

    def mac_rate(self, precision: str) -> float | None:
        """Multiply-adds per second at ``precision`` on the GPU (dense), or None."""
        tera = {"int8": self.int8_tops_gpu, "fp16": self.fp16_tflops_gpu,
                "bf16": self.fp16_tflops_gpu, "fp32": self.fp32_tflops_gpu}.get(precision)
        return None if tera is None else tera * 1e12 / 2


DEVICES: dict[str, DeviceSpec] = {
    "orin-nano-4gb": DeviceSpec(
        "Jetson Orin Nano 4GB", 10.0, 10.0, 5.0, None, 34.0, (SRC_NANO_DS, SRC_MODULES),
        verified="int8 TOPS seen in the datasheet copy; 34 GB/s from the module page, not re-read here",
        notes="no DLA; " + FP16_NOTE),
    "orin-nano-8gb": DeviceSpec(
        "Jetson Orin Nano 8GB", 20.0, 20.0, 10.0, None, 68.0, (SRC_NANO_DS, SRC_SUPER),
        verified="int8 TOPS seen in the datasheet copy; 68 GB/s seen in the Super page (the pre-Super figure)",
        notes="no DLA; JetPack 6.1+ 'MAXN SUPER' raises it, see orin-nano-8gb-super; " + FP16_NOTE),
    "orin-nano-8gb-super": DeviceSpec(
        "Jetson Orin Nano 8GB (MAXN SUPER)", 33.5, 33.5, 16.75, None, 102.0, (SRC_SUPER,),
        verified="67 sparse TOPS and 102 GB/s seen in a third-party page quoting NVIDIA's datasheet",
        notes="not auto-detected (same module, a power mode): pass --floor-device orin-nano-8gb-super; "
              + FP16_NOTE),
    "orin-nx-8gb": DeviceSpec(
        "Jetson Orin NX 8GB", None, 35.0, None, None, 102.4, (SRC_MODULES,),
        verified="70 sparse TOPS (GPU + 1 DLA) from the module page, not re-read here; the GPU's share is "
                 "not published in a source found, so the GPU-alone floor uses the memory floor only",
        notes="1 DLA"),
    "orin-nx-16gb": DeviceSpec(
        "Jetson Orin NX 16GB", None, 50.0, None, None, 102.4, (SRC_MODULES, SRC_DLA_SW),
        verified="100 sparse TOPS (GPU + 2 DLA) from the module page, not re-read here; the DLA README "
                 "says its DLA peak matches AGX Orin 64GB at 15 W (40 sparse TOPs), but no GPU split "
                 "is stated, so the GPU-alone floor uses the memory floor only",
        notes="2 DLA"),
    "agx-orin-32gb": DeviceSpec(
        "Jetson AGX Orin 32GB", None, 100.0, None, None, 204.8, (SRC_MODULES,),
        verified="200 sparse TOPS (GPU + 2 DLA) and 204.8 GB/s from the module page, not re-read here; "
                 "GPU split not found in a source",
        notes="2 DLA"),
    "agx-orin-64gb": DeviceSpec(
        "Jetson AGX Orin 64GB", 85.5, 137.5, 42.75, 5.3, 204.8, (SRC_DLA_SW, SRC_AGX_BRIEF, SRC_MODULES),
        verified="GPU 171 sparse / total 275 sparse INT8 TOPs and 5.3 FP32 TFLOPs seen in the sources; "
                 "204.8 GB/s from the module page, not re-read here",
        notes="MAXN power mode; 2 DLA; " + FP16_NOTE),
}


def detect_jetson(model: str | None = None, mem_total_mb: float | None = None) -> str | None:
    """The :data:`DEVICES` key of this Jetson, from ``/proc/device-tree/model`` and the
    memory size (modules of one family differ only in memory); None elsewhere."""
    from .machine import jetson_model, meminfo_bytes

    if model is None:
        model = jetson_model()
        if model is None:
            return None
    if mem_total_mb is None:
        mem_total_mb = (meminfo_bytes("MemTotal") or 0) / 2**20
    text = model.lower()
    gb = (mem_total_mb or 0) / 1024
    if "orin" not in text:
        return None
    if "agx" in text:
        return "agx-orin-64gb" if gb > 40 else "agx-orin-32gb"
    if "nano" in text:
        return "orin-nano-8gb" if gb > 5 else "orin-nano-4gb"
    if " nx" in text or "orin nx" in text:
        return "orin-nx-16gb" if gb > 10 else "orin-nx-8gb"
    return None


# --- CPU: measured on the spot ---------------------------------------------------------------

@dataclass
class CpuRates:
    """Measured peak rates of this CPU: MAC/s per OpenVINO precision, bytes/s of a copy."""

    mac_rate: dict[str, float]          # "f32", "bf16", "f16", "int8" -> MAC/s
    bandwidth: float                    # bytes/s
    conv: str                           # the convolution measured
    threads: int
    cpu: str
    openvino: str
    measured_at: str
    cache_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The rates as a dict of their fields (what the cache file holds)."""
        return asdict(self)


def _conv_model(ov, channels: int, size: int, int8: bool, layers: int = 4):
    """``layers`` chained 3x3 convolutions (+ReLU) of ``channels`` channels at ``size`` x
    ``size``; int8: FakeQuantize on every activation and weight (u8 / symmetric i8), which
    OpenVINO's CPU plugin runs as int8 convolutions."""
    import openvino.opset13 as ops

    x = ops.parameter([1, channels, size, size], np.float32, name="x")
    rng = np.random.default_rng(0)

    def fq(node, low, high, levels=256):
        lo = ops.constant(np.array(low, np.float32))
        hi = ops.constant(np.array(high, np.float32))
        return ops.fake_quantize(node, lo, hi, lo, hi, levels)

    y = x
    for _ in range(layers):
        w = (rng.standard_normal((channels, channels, 3, 3)) * 0.05).astype(np.float32)
        data, weight = y, ops.constant(w)
        if int8:
            data = fq(y, 0.0, 255.0)
            weight = fq(weight, -0.5, 0.5 * 127 / 128)
        y = ops.relu(ops.convolution(data, weight, [1, 1], [1, 1], [1, 1], [1, 1]))
    return ov.Model([y], [x], "floor_conv")


def best_convolution_rate(compiled: Any, x: np.ndarray, macs_per_conv: float,
                          seconds: float) -> tuple[float, str]:
    """The fastest MAC rate of the convolution nodes alone (OpenVINO's performance counters:
    the layout reorders at the model's input and output are not the convolution's cost),
    and the kernel OpenVINO chose."""
    request = compiled.create_infer_request()
    request.infer({0: x})
    best, kernel = 0.0, ""
    started = time.perf_counter()
    while True:
        request.infer({0: x})
        for p in request.profiling_info:
            if p.node_type == "Convolution" and p.real_time.total_seconds() > 0:
                rate = macs_per_conv / p.real_time.total_seconds()
                if rate > best:
                    best, kernel = rate, p.exec_type
        if time.perf_counter() - started >= seconds:
            break
    return best, kernel


def memory_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes/s of the fastest of ``repeats`` copies of a ``megabytes`` array (read + write)."""
    src = np.ones(megabytes * 1024 * 1024 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best


def cpu_cache_path(threads: int, channels: int, size: int) -> Path:
    """The cache file of this CPU's measured rates (per model, flags, threads, OpenVINO)."""
    from ..calibration.cache import cache_dir
    from .machine import cpu_info

    import openvino as ov

    info = cpu_info()
    key = f"{info['model']}|{' '.join(info['flags_that_matter'])}|{threads}|{ov.__version__}|{channels}x{size}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir() / "floors" / f"cpu-{digest}.json"


def floor_input(channels: int = 128, size: int = 64) -> np.ndarray:
    """The input the floor's convolutions are timed on (0..255, fixed seed)."""
    return (np.random.default_rng(1).random((1, channels, size, size)) * 255).astype(np.float32)


def compile_floor_convolutions(precision: str, threads: int = 0, *, channels: int = 128,
                               size: int = 64) -> Any:
    """The floor's model (four chained 3x3 convolutions, ``channels`` wide) compiled for the CPU in
    ``precision`` (``int8``, or an inference precision: ``f32``, ``bf16``, ``f16``), as
    :func:`measure_cpu_rates` times it; ``best_convolution_rate`` reads its rate."""
    import openvino as ov

    from ..runtimes.openvino_runtime import openvino_core

    core = openvino_core()
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True,
                              "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if precision == "int8":
        # the int8 convolution; its (absent) float layers' hint does not matter
        caps = set(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        config["INFERENCE_PRECISION_HINT"] = "bf16" if "BF16" in caps else "f32"
    return core.compile_model(_conv_model(ov, channels, size, precision == "int8"), "CPU", config)


def measure_cpu_rates(threads: int = 0, *, channels: int = 128, size: int = 64,
                      seconds: float = 1.5, use_cache: bool = True,
                      refresh: bool = False) -> CpuRates:
    """Measure (or read from the cache) this CPU's peak MAC rate per precision and its copy
    bandwidth; see the module doc. ``threads`` 0 means OpenVINO's default. ``refresh``
    measures even where the cache has the rates, and rewrites the cache (``use_cache`` False:
    neither reads nor writes it)."""
    import openvino as ov

    from .machine import cpu_info

    cache = cpu_cache_path(threads, channels, size)
    if use_cache and not refresh and cache.is_file():
        try:
            data = json.loads(cache.read_text())
            data["cache_file"] = str(cache)
            return CpuRates(**data)
        except (ValueError, TypeError, OSError) as exc:
            log.warning("ignoring unreadable floor cache %s (%s)", cache, exc)
    from ..runtimes.openvino_runtime import openvino_core

    core = openvino_core()
    caps = set(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    x = floor_input(channels, size)
    macs = float(size * size * channels * channels * 9)
    rates: dict[str, float] = {}
    kernels: dict[str, str] = {}
    hints = ["f32"] + (["bf16"] if "BF16" in caps else []) + (["f16"] if "FP16" in caps else [])
    for hint in hints + ["int8"]:
        compiled = compile_floor_convolutions(hint, threads, channels=channels, size=size)
        rates[hint], kernels[hint] = best_convolution_rate(compiled, x, macs, seconds)
        log.info("CPU floor: %s %.0f GMAC/s (%s)", hint, rates[hint] / 1e9, kernels[hint])
    result = CpuRates(mac_rate=rates, bandwidth=memory_bandwidth(), threads=threads,
                      conv=f"4 chained 3x3 convs {channels}->{channels} at {size}x{size} "
                           f"({macs / 1e9:.2f} GMAC each); fastest convolution node by OpenVINO's "
                           f"performance counters; kernels {kernels}",
                      cpu=cpu_info()["model"], openvino=ov.__version__,
                      measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if use_cache:
        try:
            with atomic_path(cache) as tmp:
                tmp.write_text(json.dumps(result.as_dict(), indent=2))
            result.cache_file = str(cache)
        except OSError as exc:
            log.warning("cannot write the floor cache %s (%s)", cache, exc)
    return result


# --- the floor -------------------------------------------------------------------------------

def cpu_precision_key(precision: str, inference_precision: str | None, rates: dict[str, float]) -> str:
    """Which measured CPU rate bounds an artifact: int8 -> int8; fp32 -> f32; fp16 -> what it
    computes in where the backend says (OpenVINO's hint), else f16 where the CPU computes f16
    natively and f32 otherwise (ONNX Runtime computes an fp16 graph in f32 on CPUs without
    native fp16; bf16 is not a type it uses)."""
    if precision == "int8":
        return "int8"
    if precision == "fp32":
        return "f32"
    if inference_precision in rates:
        return inference_precision
    return "f16" if "f16" in rates else "f32"


@dataclass(frozen=True)
class Floor:
    """The floor of one call: compute and memory parts, and which bounds it."""

    seconds: float | None
    compute_s: float | None
    memory_s: float | None
    mac_rate: float | None        # MAC/s used
    bandwidth: float | None       # bytes/s used
    rate_key: str                 # e.g. "int8 (measured)", "int8 dense GPU (table)"
    bound: str                    # "compute", "memory" or "unknown"
    device: str

    def as_dict(self) -> dict[str, Any]:
        """The floor as a dict of its fields."""
        return asdict(self)


def make_floor(macs: float, min_bytes: float, mac_rate: float | None, bandwidth: float | None,
               rate_key: str, device: str) -> Floor:
    """The floor of a call of ``macs`` multiply-adds moving at least ``min_bytes``: the longer
    of its compute time at ``mac_rate`` and its memory time at ``bandwidth`` (either None:
    unknown, not a limit)."""
    compute = macs / mac_rate if mac_rate else None
    memory = min_bytes / bandwidth if bandwidth else None
    parts = [(v, k) for v, k in ((compute, "compute"), (memory, "memory")) if v is not None]
    if not parts:
        return Floor(None, compute, memory, mac_rate, bandwidth, rate_key, "unknown", device)
    seconds, bound = max(parts)
    return Floor(seconds, compute, memory, mac_rate, bandwidth, rate_key, bound, device)

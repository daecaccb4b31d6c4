"""How a TensorRT engine is built: the options, the input profile, the GPU and the timing cache.

What a build needs to know besides the graph, shared by :mod:`.onnx_to_tensorrt` and its two
builders (:mod:`.tensorrt_python_api`, :mod:`.tensorrt_trtexec`). Nothing here imports
TensorRT; :func:`gpu_info` asks pycuda, cuda-python or ``nvidia-smi``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import AtbsnError
from ..runtimes.tensorrt_runtime import version_tuple

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_WORKSPACE_MB = 1024
DEFAULT_STATIC_SIDE = 512          # static profile of a dynamic ONNX when no shape is given
DEFAULT_MAX_SIDE = 2048            # dynamic profile maximum
INPUT_NAME = "input"               # torch_to_onnx.INPUT_NAME, used when onnx is not importable


@dataclass
class EngineOptions:
    """How to build an engine.

    ``precision`` names the graph passed in (fp32, fp16, int8). ``timing_cache`` None: one
    file per GPU and TensorRT version under the atbsn-edge cache folder. ``dla_core``: build
    for that DLA core with GPU fallback (static shapes, fp16/int8 only). ``shape`` (H, W) and
    ``batch``: the static profile when the ONNX itself is dynamic (default: the metadata's
    tile, else 512x512, batch 1). ``dynamic``: a dynamic H/W profile ``min_shape`` ..
    ``max_shape`` (optimised for ``opt_shape``) instead; the ONNX must be dynamic.
    ``strongly_typed``: None = wherever the installed TensorRT has it; False forces the
    weakly typed flag build (TensorRT <= 10.x only). ``builder``: "auto", "python" or
    "trtexec"."""

    precision: str = "fp16"
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    timing_cache: Path | None = None
    dla_core: int | None = None
    dynamic: bool = False
    shape: tuple[int, int] | None = None
    batch: int | None = None
    min_shape: tuple[int, int] | None = None
    opt_shape: tuple[int, int] | None = None
    max_shape: tuple[int, int] | None = None
    strongly_typed: bool | None = None
    builder: str = "auto"
    verbose: bool = False

    def check(self) -> None:
        """Refuse combinations TensorRT cannot build, saying why."""
        if self.precision not in PRECISIONS:
            raise AtbsnError(f"engine precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.workspace_mb < 1:
            raise AtbsnError(f"workspace {self.workspace_mb} MiB: give at least 1")
        if self.builder not in ("auto", "python", "trtexec"):
            raise AtbsnError(f"engine builder {self.builder!r}: choose auto, python or trtexec")
        if self.dla_core is not None:
            if self.dla_core < 0:
                raise AtbsnError(f"DLA core {self.dla_core}: give 0 or more")
            if self.dynamic:
                raise AtbsnError("DLA takes static shapes only: build the DLA engine without "
                                 "dynamic shapes (the tiler feeds it fixed tiles)")
            if self.precision == "fp32":
                raise AtbsnError("DLA computes in fp16 and int8 only (an fp32 network would "
                                 "fall back to the GPU layer by layer): use trt-fp16 or trt-int8 "
                                 "with --dla-core")


@dataclass(frozen=True)
class Profile:
    """An optimization profile of the network input: full N x C x H x W shapes."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def static(self) -> bool:
        """Whether min, opt and max are the same shape."""
        return self.min == self.opt == self.max

    def as_dict(self) -> dict[str, Any]:
        """The profile as JSON values: the input name and each shape as a list."""
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt),
                "max": list(self.max)}


def engine_profile(metadata: Mapping[str, Any], options: EngineOptions,
                   input_name: str = INPUT_NAME) -> Profile | None:
    """The optimization profile the engine needs, from the ONNX's metadata: None for a fully
    static ONNX (TensorRT takes its shape), a static profile for a dynamic ONNX (``shape``,
    default the tile or 512x512), a min/opt/max profile with ``dynamic``."""
    tile = str(metadata.get("tile", "dynamic"))
    batch_text = str(metadata.get("batch", "dynamic"))
    onnx_dynamic_hw = tile == "dynamic"
    onnx_batch = None if batch_text == "dynamic" else int(batch_text)
    stride = int(metadata.get("stride", 32))
    if options.dynamic and not onnx_dynamic_hw:
        raise AtbsnError(f"a dynamic-shape engine needs a dynamic ONNX, but this bundle's ONNX "
                         f"has the fixed tile {tile}; re-export the bundle with --dynamic")
    if not onnx_dynamic_hw and onnx_batch is not None:
        return None
    batch = onnx_batch or options.batch or 1
    if not onnx_dynamic_hw:  # dynamic batch only: pin it
        h, w = (int(v) for v in tile.lower().split("x"))
        shape = (batch, 3, h, w)
        return Profile(input_name, shape, shape, shape)
    if not options.dynamic:
        h, w = options.shape or (DEFAULT_STATIC_SIDE, DEFAULT_STATIC_SIDE)
        for side in (h, w):
            if side <= 0 or side % stride:
                raise AtbsnError(f"engine shape {h}x{w}: each side must be a positive multiple "
                                 f"of the stride {stride}")
        shape = (batch, 3, h, w)
        return Profile(input_name, shape, shape, shape)
    lo = options.min_shape or (2 * stride, 2 * stride)
    opt = options.opt_shape or options.shape or (DEFAULT_STATIC_SIDE, DEFAULT_STATIC_SIDE)
    hi = options.max_shape or (max(DEFAULT_MAX_SIDE, opt[0]), max(DEFAULT_MAX_SIDE, opt[1]))
    for label, (h, w) in (("min", lo), ("opt", opt), ("max", hi)):
        if h <= 0 or w <= 0 or h % stride or w % stride:
            raise AtbsnError(f"dynamic profile {label} {h}x{w}: sides must be positive "
                             f"multiples of the stride {stride}")
    if not (lo[0] <= opt[0] <= hi[0] and lo[1] <= opt[1] <= hi[1]):
        raise AtbsnError(f"dynamic profile needs min <= opt <= max, got {lo} / {opt} / {hi}")
    min_batch = 1 if onnx_batch is None else batch
    return Profile(input_name, (min_batch, 3) + tuple(lo), (batch, 3) + tuple(opt),
                   (batch, 3) + tuple(hi))


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown-gpu"


def default_timing_cache(gpu_name: str, compute_capability: str, trt_version: str) -> Path:
    """``<cache>/tensorrt/<gpu>-sm<cc>-trt<version>.cache``: timing caches are per GPU and
    TensorRT version (they do not move between either)."""
    from ..calibration.cache import cache_dir

    cc = compute_capability.replace(".", "")
    version = ".".join(str(v) for v in version_tuple(trt_version)) or "unknown"
    return cache_dir() / "tensorrt" / f"{_sanitize(gpu_name)}-sm{cc}-trt{version}.cache"


def timing_cache_path(options: EngineOptions, gpu: tuple[str, str] | None,
                      trt_version: str) -> Path:
    """The timing cache of a build: the one given, else the per-GPU, per-version default."""
    if options.timing_cache is not None:
        return Path(options.timing_cache)
    name, cc = gpu or ("unknown-gpu", "unknown")
    return default_timing_cache(name, cc, trt_version)


def weak_flags(precision: str) -> list[str]:
    """The precision flags of a weakly typed build (TensorRT <= 10.x without strong typing)."""
    return {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}[precision]


def gpu_info(device: int = 0) -> tuple[str, str] | None:
    """(CUDA device name, compute capability "8.7") from pycuda, cuda-python or nvidia-smi;
    None where none of them answers."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        dev = cuda.Device(device)
        major, minor = dev.compute_capability()
        return dev.name(), f"{major}.{minor}"
    except Exception:  # not installed, or no driver
        pass
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, prop = cudart.cudaGetDeviceProperties(device)
        if err == cudart.cudaError_t.cudaSuccess:
            name = prop.name
            name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            return name.split("\x00")[0].strip(), f"{prop.major}.{prop.minor}"
    except Exception:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader",
                                  "-i", str(device)], capture_output=True, text=True, timeout=20)
            if out.returncode == 0 and "," in out.stdout:
                name, cc = out.stdout.strip().splitlines()[0].rsplit(",", 1)
                return name.strip(), cc.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return None

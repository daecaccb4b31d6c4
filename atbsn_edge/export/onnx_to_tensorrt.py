"""ONNX -> TensorRT engine, built on the device that runs it (no PyTorch needed).

Two builders, chosen in this order:

1. TensorRT's Python API (``import tensorrt``): ``Builder`` -> network -> ``OnnxParser`` ->
   ``IBuilderConfig`` -> ``build_serialized_network``;
2. ``trtexec`` on PATH (JetPack puts it in ``/usr/src/tensorrt/bin``): the same options as a
   command line (:func:`trtexec_command`).

Where neither exists :class:`EngineBuilderUnavailable` is raised; the export CLI then writes the
bundle without its engine and prints :func:`device_command`.

Precision comes from the graph (design.md): the caller passes the ONNX of the precision (the
fp32 graph, the fp16 graph with fp32 I/O, the int8 Q/DQ graph) and the network is strongly
typed where the installed TensorRT has ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (10.x;
from 11.0 every network is strongly typed and the FP16/INT8 builder flags are gone). Only a
TensorRT without strong typing (8.x, as on JetPack 5 and 6.0) gets the weakly typed build with
``BuilderFlag.FP16`` / ``BuilderFlag.INT8`` (Q/DQ graphs need INT8 there). fp32 builds clear
``BuilderFlag.TF32`` so that an "fp32" engine computes in fp32 (TF32 would make its parity
TF32's, ~1e-3, as bf16 did for OpenVINO).

DLA (``dla_core``): Jetson AGX Orin / Orin NX / Xavier only, static shapes, fp16 or int8,
with GPU fallback. TensorRT versions with DLA on Jetson: 8.x and 10.0-10.7 (JetPack 5 and 6:
TensorRT 8.5 / 8.6 / 10.3); none in 10.8-11.3; 11.4.0 only on Windows on ARM; 11.4.1 again on
Jetson AGX Orin with JetPack 7.2.2 or later (strongly typed).

The engine is written atomically with its JSON sidecar (``bundle.metadata.write_sidecar``):
the artifact metadata, and the build record (TensorRT version, GPU name, compute capability,
builder, strong typing, precision flags, DLA core, workspace, timing cache, profile shapes)
that the runtime checks before it loads the engine.

Not yet run against a real TensorRT: written against the documented Python API and trtexec
flags of TensorRT 10.x/11.x; the names it uses are checked against the 10.x and 11.x bindings
(tests/test_tensorrt_api_names.py).
"""
from __future__ import annotations

import datetime
import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..bundle.commands import add_target_command
from ..errors import AtbsnError
from ..runtimes.tensorrt_runtime import version_tuple

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_WORKSPACE_MB = 1024
DEFAULT_STATIC_SIDE = 512          # static profile of a dynamic ONNX when no shape is given
DEFAULT_MAX_SIDE = 2048            # dynamic profile maximum
INPUT_NAME = "input"               # torch_to_onnx.INPUT_NAME, used when onnx is not importable
TRTEXEC_TAIL_LINES = 20

# TensorRT names that one supported version has and another lacks. They are only ever read
# as strings through getattr()/hasattr() (tests/test_tensorrt_api_names.py checks this):
# STRONGLY_TYPED: NetworkDefinitionCreationFlag, 9.x/10.x (deprecated and ignored from 11.0);
# EXPLICIT_BATCH: needed on 8.x, ignored in 10.x, removed in 11.0;
# FP16 / INT8: BuilderFlag, the weakly typed fallback, removed in 11.0;
# TF32: BuilderFlag, cleared for fp32 builds where it exists;
# node_name / node_operator: ParserError, from 10.0.
VERSION_GUARDED_NAMES = {"STRONGLY_TYPED", "EXPLICIT_BATCH", "FP16", "INT8", "TF32",
                         "node_name", "node_operator"}


class EngineBuilderUnavailable(AtbsnError):
    """Neither TensorRT's Python API nor trtexec is on this machine: the engine has to be
    built on the device (the export CLI prints :func:`device_command`)."""


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
        return self.min == self.opt == self.max

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt),
                "max": list(self.max)}


# --- pure helpers (unit-tested without TensorRT) ------------------------------------------

def trt_version_from_number(number: int) -> str:
    """trtexec's ``[TensorRT v100300]`` -> ``10.3.0``; 8.x wrote ``v8502`` -> ``8.5.2``."""
    if number >= 100000:
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"


def parse_trtexec_output(text: str) -> dict[str, str]:
    """TensorRT version, device name and compute capability from trtexec's log."""
    found: dict[str, str] = {}
    m = re.search(r"TensorRT version:\s*([0-9][0-9.]*)", text)
    if m:
        found["tensorrt_version"] = m.group(1).rstrip(".")
    else:
        m = re.search(r"\[TensorRT v(\d+)\]", text)
        if m:
            found["tensorrt_version"] = trt_version_from_number(int(m.group(1)))
    m = re.search(r"Selected Device:\s*(.+)", text)
    if m:
        found["gpu_name"] = m.group(1).strip()
    m = re.search(r"Compute Capability:\s*(\d+\.\d+)", text)
    if m:
        found["compute_capability"] = m.group(1)
    return found


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown-gpu"


def default_timing_cache(gpu_name: str, compute_capability: str, trt_version: str) -> Path:
    """``<cache>/tensorrt/<gpu>-sm<cc>-trt<version>.cache``: timing caches are per GPU and
    TensorRT version (they do not move between either)."""
    from ..calibration.cache import cache_dir

    cc = compute_capability.replace(".", "")
    version = ".".join(str(v) for v in version_tuple(trt_version)) or "unknown"
    return cache_dir() / "tensorrt" / f"{_sanitize(gpu_name)}-sm{cc}-trt{version}.cache"


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


def _shape_spec(name: str, shape: Sequence[int]) -> str:
    return f"{name}:" + "x".join(str(d) for d in shape)


def trtexec_command(onnx: str | os.PathLike, engine: str | os.PathLike, options: EngineOptions,
                    strongly_typed: bool, *, profile: Profile | None = None,
                    timing_cache: str | os.PathLike | None = None,
                    trt_version: str = "10.0.0", trtexec: str = "trtexec") -> list[str]:
    """The exact trtexec command line of a build.

    Strongly typed: ``--stronglyTyped`` on 10.x (on 11.x strong typing is always on and the
    flag is not passed) and never a precision flag; a Q/DQ graph gets no ``--int8``.
    Weakly typed (the fallback of TensorRT <= 10.x): ``--fp16`` / ``--int8``. fp32:
    ``--noTF32``. DLA: ``--useDLACore=N --allowGPUFallback``. ``--skipInference`` (8.6+;
    ``--buildOnly`` before) builds without benchmarking."""
    options.check()
    major, minor = (version_tuple(trt_version) + (0, 0))[:2]
    if not strongly_typed and major >= 11:
        raise AtbsnError("TensorRT 11 builds strongly typed networks only; the weakly typed "
                         "(--fp16/--int8 flag) build does not exist there")
    cmd = [trtexec, f"--onnx={onnx}", f"--saveEngine={engine}",
           f"--memPoolSize=workspace:{options.workspace_mb}"]
    if strongly_typed:
        if major < 11:
            cmd.append("--stronglyTyped")
    elif options.precision == "fp16":
        cmd.append("--fp16")
    elif options.precision == "int8":
        cmd.append("--int8")
    if options.precision == "fp32":
        cmd.append("--noTF32")
    if profile is not None:
        cmd += [f"--minShapes={_shape_spec(profile.input, profile.min)}",
                f"--optShapes={_shape_spec(profile.input, profile.opt)}",
                f"--maxShapes={_shape_spec(profile.input, profile.max)}"]
    if timing_cache is not None:
        cmd.append(f"--timingCacheFile={timing_cache}")
    if options.dla_core is not None:
        cmd += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
    cmd.append("--skipInference" if (major, minor) >= (8, 6) else "--buildOnly")
    if options.verbose:
        cmd.append("--verbose")
    return cmd


def device_command(bundle: str | os.PathLike, target: str,
                   options: EngineOptions | None = None) -> str:
    """The command that finishes ``target``'s engine on the device, from the bundle folder
    (``--workspace-mb``, ``--dla-core``, ``--timing-cache`` only where not the default). It
    builds with the Python API, or with trtexec where only that is installed."""
    extra: list[str] = []
    if options is not None:
        if options.workspace_mb != DEFAULT_WORKSPACE_MB:
            extra += ["--workspace-mb", str(options.workspace_mb)]
        if options.dla_core is not None:
            extra += ["--dla-core", str(options.dla_core)]
        if options.timing_cache is not None:
            extra += ["--timing-cache", str(options.timing_cache)]
    return add_target_command(bundle, target, extra)


# --- the machine: TensorRT, trtexec, GPU ----------------------------------------------------

def _import_tensorrt():
    try:
        import tensorrt  # noqa: F401  (only on NVIDIA machines)
    except ImportError:
        return None
    return tensorrt


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


def _onnx_input_name(onnx_path: Path) -> str:
    try:
        import onnx
    except ImportError:
        return INPUT_NAME
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception:
        return INPUT_NAME
    weights = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in weights]
    return names[0] if names else INPUT_NAME


def _timing_cache_path(options: EngineOptions, gpu: tuple[str, str] | None,
                       trt_version: str) -> Path:
    if options.timing_cache is not None:
        return Path(options.timing_cache)
    name, cc = gpu or ("unknown-gpu", "unknown")
    return default_timing_cache(name, cc, trt_version)


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike,
                 metadata: Mapping[str, Any], options: EngineOptions) -> dict[str, Any]:
    """Build ``engine_path`` (and its sidecar) from ``onnx_path``; returns the build record
    written into the sidecar (JSON-serializable). Raises :class:`EngineBuilderUnavailable`
    where neither the Python API nor trtexec exists, :class:`AtbsnError` on a failed build."""
    options.check()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise AtbsnError(f"ONNX {onnx_path} does not exist")
    trt = _import_tensorrt() if options.builder in ("auto", "python") else None
    trtexec = shutil.which("trtexec") if options.builder in ("auto", "trtexec") else None
    if trt is None and trtexec is None:
        wanted = {"auto": "neither TensorRT's Python API (import tensorrt) nor trtexec on PATH",
                  "python": "TensorRT's Python API (import tensorrt)",
                  "trtexec": "trtexec on PATH"}[options.builder]
        raise EngineBuilderUnavailable(f"no TensorRT engine builder here: {wanted}")
    input_name = _onnx_input_name(onnx_path)
    profile = engine_profile(metadata, options, input_name)
    if trt is not None:
        build = _build_with_python_api(trt, onnx_path, engine_path, options, profile)
    else:
        build = _build_with_trtexec(trtexec, onnx_path, engine_path, options, profile)
    from ..hashing import file_sha256

    build = {**build, "workspace_mb": options.workspace_mb, "dla_core": options.dla_core,
             "gpu_fallback": options.dla_core is not None,
             "profile": profile.as_dict() if profile is not None else None,
             "onnx": onnx_path.name, "onnx_sha256": file_sha256(onnx_path),
             "precision": options.precision,
             "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                 timespec="seconds")}
    sidecar_meta = dict(metadata)
    sidecar_meta["precision"] = options.precision
    if profile is not None and profile.static:
        sidecar_meta["tile"] = f"{profile.opt[2]}x{profile.opt[3]}"
        sidecar_meta["batch"] = str(profile.opt[0])
    from ..bundle.metadata import write_sidecar

    write_sidecar(engine_path, sidecar_meta, build)
    log.info("wrote %s (%s, TensorRT %s, %s, %s)", engine_path.name, build["builder"],
             build["tensorrt_version"], build["gpu_name"],
             "strongly typed" if build["strongly_typed"] else "flags " + ",".join(build["precision_flags"]))
    return build


def _weak_flags(precision: str) -> list[str]:
    return {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}[precision]


# --- the Python API -------------------------------------------------------------------------

def _collecting_logger(trt, verbose: bool):
    """A TensorRT logger that prints like trt.Logger and keeps the errors for the message."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.threshold = int(trt.ILogger.Severity.VERBOSE if verbose
                                 else trt.ILogger.Severity.WARNING)
            self.error_level = int(trt.ILogger.Severity.ERROR)

        def log(self, severity, msg) -> None:  # noqa: A003 (TensorRT's name)
            level = int(severity)
            if level <= self.error_level:
                self.errors.append(str(msg))
            if level <= self.threshold:
                report = log.warning if level <= self.error_level + 1 else log.info
                report("TensorRT: %s", msg)

    return _Logger()


def parser_errors(parser) -> str:
    """Every error of an ``OnnxParser``: node index, name and operator (10.x), description,
    error code."""
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        where = []
        node = err.node()
        if node is not None and node >= 0:
            where.append(f"node {node}")
        name_of = getattr(err, "node_name", None)
        op_of = getattr(err, "node_operator", None)
        name = name_of() if callable(name_of) else ""
        op = op_of() if callable(op_of) else ""
        if op or name:
            where.append(" ".join(x for x in (op, f"'{name}'" if name else "") if x))
        lines.append(f"[{i + 1}] {', '.join(where) or 'graph'}: {err.desc()} ({err.code()})")
    return "; ".join(lines)


def _strongly_typed_flag(trt, options: EngineOptions) -> tuple[bool, Any]:
    """(strongly typed, the creation flag to set or None)."""
    major = version_tuple(trt.__version__)[0]
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if options.strongly_typed is False:
        if major >= 11:
            raise AtbsnError(f"TensorRT {trt.__version__} builds strongly typed networks only; "
                             "drop the weakly typed request")
        return False, None
    if major >= 11:
        return True, None  # always strongly typed; the flag is deprecated and ignored
    if flag is None:
        if options.strongly_typed:
            raise AtbsnError(f"TensorRT {trt.__version__} has no strongly typed networks "
                             "(NetworkDefinitionCreationFlag.STRONGLY_TYPED, TensorRT 9/10)")
        return False, None
    return True, flag


def _build_with_python_api(trt, onnx_path: Path, engine_path: Path, options: EngineOptions,
                           profile: Profile | None) -> dict[str, Any]:
    from ..atomic import atomic_path

    version = trt.__version__
    major = version_tuple(version)[0]
    logger = _collecting_logger(trt, options.verbose)
    builder = trt.Builder(logger)
    strongly_typed, st_flag = _strongly_typed_flag(trt, options)
    flags = 0
    if st_flag is not None:
        flags |= 1 << int(st_flag)
    explicit_batch = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if major < 10 and explicit_batch is not None:  # 8.x: implicit batch otherwise
        flags |= 1 << int(explicit_batch)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise AtbsnError(f"TensorRT {version}'s ONNX parser refuses {onnx_path.name}: "
                         f"{parser_errors(parser) or '; '.join(logger.errors) or 'no detail'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    precision_flags: list[str] = []
    if not strongly_typed:
        for name in _weak_flags(options.precision):
            flag = getattr(trt.BuilderFlag, name, None)
            if flag is None:
                raise AtbsnError(f"TensorRT {version} has no BuilderFlag.{name} and no strong "
                                 "typing; it cannot build this precision")
            config.set_flag(flag)
            precision_flags.append(name)
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if options.precision == "fp32" and tf32 is not None:
        config.clear_flag(tf32)
    if options.dla_core is not None:
        if builder.num_DLA_cores == 0:
            raise AtbsnError(f"--dla-core {options.dla_core}: this device has no DLA for TensorRT "
                             f"{version} (DLA is on Jetson AGX Orin/Orin NX/Xavier, with "
                             "TensorRT 8.x-10.7 or 11.4.1+ on JetPack 7.2.2+)")
        if options.dla_core >= builder.num_DLA_cores:
            raise AtbsnError(f"--dla-core {options.dla_core}: this device has "
                             f"{builder.num_DLA_cores} DLA core(s), numbered from 0")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if profile is not None:
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(profile.input, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(opt_profile)
    gpu = gpu_info()
    if gpu is None:
        log.warning("cannot tell the GPU (install pycuda or cuda-python); the sidecar records "
                    "it as unknown and the runtime cannot check it")
    cache_path = _timing_cache_path(options, gpu, version)
    blob = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, False):
        log.warning("timing cache %s does not match this device or TensorRT; starting a new one",
                    cache_path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, True)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        detail = "; ".join(logger.errors[-5:]) or "run with --verbose for the builder's log"
        raise AtbsnError(f"TensorRT {version} could not build an engine from {onnx_path.name}: "
                         f"{detail}")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(plan)   # IHostMemory has the buffer protocol
    try:
        with atomic_path(cache_path) as tmp:
            tmp.write_bytes(config.get_timing_cache().serialize())
    except OSError as exc:
        log.warning("could not save the timing cache %s: %s", cache_path, exc)
    return {"builder": "python-api", "tensorrt_version": version,
            "gpu_name": gpu[0] if gpu else "unknown",
            "compute_capability": gpu[1] if gpu else "unknown",
            "strongly_typed": strongly_typed, "precision_flags": precision_flags,
            "tf32": not (options.precision == "fp32" and tf32 is not None),
            "timing_cache": str(cache_path)}


# --- trtexec --------------------------------------------------------------------------------

def trtexec_version(trtexec: str) -> str | None:
    """The TensorRT version of a trtexec (from the first line of ``trtexec --help``)."""
    try:
        out = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_trtexec_output(out.stdout + out.stderr).get("tensorrt_version")


def _tail(text: str, lines: int = TRTEXEC_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _build_with_trtexec(trtexec: str, onnx_path: Path, engine_path: Path,
                        options: EngineOptions, profile: Profile | None) -> dict[str, Any]:
    from ..atomic import atomic_path

    version = trtexec_version(trtexec) or "unknown"
    major = version_tuple(version)[0] if version != "unknown" else 10
    # trtexec has --stronglyTyped from TensorRT 9/10; 8.x builds with the precision flags
    if options.strongly_typed is None:
        strongly_typed = major >= 10
    else:
        strongly_typed = bool(options.strongly_typed)   # False on 11.x: refused below
        if options.strongly_typed and major < 10:
            raise AtbsnError(f"trtexec of TensorRT {version} has no --stronglyTyped")
    gpu = gpu_info()
    cache_path = _timing_cache_path(options, gpu, version)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(engine_path) as tmp:
        cmd = trtexec_command(onnx_path, tmp, options, strongly_typed, profile=profile,
                              timing_cache=cache_path,
                              trt_version=version if version != "unknown" else "10.0.0",
                              trtexec=trtexec)
        # the command as run from the bundle folder: the staged folder's path means nothing later
        shown = shlex.join(str(c) for c in cmd).replace(str(tmp), engine_path.name) \
            .replace(str(onnx_path), onnx_path.name)
        log.info("building with: %s", shown)
        try:
            done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
        except OSError as exc:
            raise AtbsnError(f"cannot run {trtexec}: {exc}") from None
        output = done.stdout + done.stderr
        if done.returncode != 0 or not tmp.is_file():
            raise AtbsnError(f"trtexec (TensorRT {version}) failed to build {engine_path.name} "
                             f"from {onnx_path.name} (exit {done.returncode}); last lines:\n"
                             f"{_tail(output)}")
    found = parse_trtexec_output(output)
    version = found.get("tensorrt_version", version)
    gpu_name = found.get("gpu_name") or (gpu[0] if gpu else "unknown")
    cc = found.get("compute_capability") or (gpu[1] if gpu else "unknown")
    if options.timing_cache is None and gpu is None and "gpu_name" in found:
        # name the per-device cache after the device trtexec reported, for next time
        named = default_timing_cache(gpu_name, cc, version)
        if cache_path.is_file() and not named.exists():
            named.parent.mkdir(parents=True, exist_ok=True)
            os.replace(cache_path, named)
            cache_path = named
    flags = [] if strongly_typed else _weak_flags(options.precision)
    return {"builder": "trtexec", "trtexec": trtexec, "tensorrt_version": version,
            "gpu_name": gpu_name, "compute_capability": cc, "strongly_typed": strongly_typed,
            "precision_flags": flags, "tf32": options.precision != "fp32",
            "timing_cache": str(cache_path),
            "command": shown}


__all__ = ["EngineBuilderUnavailable", "EngineOptions", "Profile", "VERSION_GUARDED_NAMES",
           "build_engine", "default_timing_cache", "device_command", "engine_profile",
           "gpu_info", "parse_trtexec_output", "parser_errors", "trtexec_command",
           "trtexec_version", "version_tuple"]

"""TensorRT's Python API as an engine builder: ``Builder`` -> network -> ``OnnxParser`` ->
``IBuilderConfig`` -> ``build_serialized_network`` (see :mod:`.onnx_to_tensorrt` for the rules:
strongly typed where the installed TensorRT has it, the weakly typed flag build only before 11.0).

Not yet run against a real TensorRT: the names it uses are checked against the 10.x and 11.x
bindings (tests/test_tensorrt_api_names.py).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import AtbsnError
from ..runtimes.tensorrt_runtime import version_tuple
from .tensorrt_engine_options import EngineOptions, Profile, gpu_info, timing_cache_path, weak_flags

log = logging.getLogger(__name__)

# TensorRT names that one supported version has and another lacks, used here:
# STRONGLY_TYPED: NetworkDefinitionCreationFlag, 9.x/10.x (deprecated and ignored from 11.0);
# EXPLICIT_BATCH: needed on 8.x, ignored in 10.x, removed in 11.0;
# FP16 / INT8: BuilderFlag, the weakly typed fallback, removed in 11.0;
# TF32: BuilderFlag, cleared for fp32 builds where it exists;
# node_name / node_operator: ParserError, from 10.0.
# Every use reads them as strings through getattr()/hasattr(), which
# tests/test_tensorrt_api_names.py checks use by use; so none is exempted from that check here
# (a name listed in this set would be exempt everywhere in the module, guarded or not).
VERSION_GUARDED_NAMES: frozenset[str] = frozenset()


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


def parser_errors(parser: Any) -> str:
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


def build_with_python_api(trt: Any, onnx_path: Path, engine_path: Path, options: EngineOptions,
                          profile: Profile | None) -> dict[str, Any]:
    """Build ``engine_path`` with the Python API; returns the build record."""
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
        for name in weak_flags(options.precision):
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
    cache_path = timing_cache_path(options, gpu, version)
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

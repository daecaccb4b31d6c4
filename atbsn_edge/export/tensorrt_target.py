"""The ``trt-*`` targets' converter: the bundle's ONNX of the precision -> a TensorRT engine.

The engine is built from the graph that carries the precision (the fp32 graph, the fp16 graph,
the int8 Q/DQ graph; ``onnx-*`` artifacts of the same bundle, made first when missing) after a
TensorRT-readiness check of that graph (``onnx_tensorrt_readiness``). Where neither TensorRT's
Python API nor ``trtexec`` exists (a workstation without NVIDIA's libraries), the artifact is
recorded as *pending* with the exact command that finishes it on the device, and the export CLI
ends with its own exit code (``EXIT_ENGINE_PENDING``).
"""
from __future__ import annotations

import logging
from typing import Any

from ..bundle import PENDING, READY, ArtifactEntry, artifact_name
from .job import ConversionJob
from .tensorrt_engine_options import DEFAULT_WORKSPACE_MB

log = logging.getLogger(__name__)


def engine_options(args: Any) -> dict[str, Any]:
    """The TensorRT builder options of the export's arguments (``ConversionJob.engine``)."""
    workspace = args.workspace_mb if args.workspace_mb is not None else DEFAULT_WORKSPACE_MB
    engine = {"workspace_mb": workspace, "dla_core": args.dla_core,
              "timing_cache": args.timing_cache}
    if args.dynamic and args.tile:  # the static engine profile of a dynamic graph
        engine["shape"] = (args.tile, args.tile)
    return engine


def check_engine_options(target: Any, args: Any) -> None:
    """Refuse bad TensorRT builder options (``--workspace-mb``, ``--dla-core``, ...) before
    any work: the ``check_options`` of the trt-* rows of the target table."""
    from .onnx_to_tensorrt import EngineOptions

    EngineOptions(precision=target.precision, **engine_options(args)).check()


def _engine(job: ConversionJob, precision: str) -> ArtifactEntry:
    from .onnx_tensorrt_readiness import assert_tensorrt_ready
    from ..bundle.metadata import read_sidecar
    from .onnx_to_tensorrt import (EngineBuilderUnavailable, EngineOptions, build_engine,
                                   device_command)

    target = f"trt-{precision}"
    source = job.ensure(f"onnx-{precision}")
    onnx_path = job.folder / source.entry
    assert_tensorrt_ready(onnx_path, source.entry)
    log.info("%s passes the TensorRT-readiness check", source.entry)
    name = artifact_name("trt", precision)
    metadata = dict(source.metadata)
    details = {**source.details, "source_onnx": source.entry}
    options = EngineOptions(precision=precision, **job.engine)
    try:
        details["build"] = build_engine(onnx_path, job.folder / name, metadata, options)
    except EngineBuilderUnavailable as exc:
        details["device_command"] = device_command(job.destination or job.folder, target, options)
        details["pending_because"] = str(exc)
        return ArtifactEntry(target, name, "tensorrt", precision, PENDING, metadata=metadata,
                             details=details)
    metadata, _ = read_sidecar(job.folder / name)  # a static profile may pin the tile
    return ArtifactEntry(target, name, "tensorrt", precision, READY, metadata=metadata,
                         details=details)


def fp32(job: ConversionJob) -> ArtifactEntry:
    """``trt-fp32``: engine of the fp32 graph."""
    return _engine(job, "fp32")


def fp16(job: ConversionJob) -> ArtifactEntry:
    """``trt-fp16``: engine of the fp16 graph (strongly typed: precision from the graph)."""
    return _engine(job, "fp16")


def int8(job: ConversionJob) -> ArtifactEntry:
    """``trt-int8``: engine of the calibrated Q/DQ graph (explicit quantization)."""
    return _engine(job, "int8")

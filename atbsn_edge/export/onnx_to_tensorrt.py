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

The parts: :mod:`.tensorrt_engine_options` (options, profile, GPU, timing cache),
:mod:`.tensorrt_python_api` and :mod:`.tensorrt_trtexec` (the two builders); this module picks
the builder, and writes the engine's sidecar.

Not yet run against a real TensorRT: written against the documented Python API and trtexec
flags of TensorRT 10.x/11.x; the names it uses are checked against the 10.x and 11.x bindings
(tests/test_tensorrt_api_names.py).
"""
from __future__ import annotations

import datetime
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from ..bundle.commands import add_target_command
from ..errors import AtbsnError
from ..runtimes.tensorrt_runtime import version_tuple
from .tensorrt_engine_options import (DEFAULT_WORKSPACE_MB, INPUT_NAME, PRECISIONS, EngineOptions,
                                      Profile, default_timing_cache, engine_profile, gpu_info)
from .tensorrt_python_api import VERSION_GUARDED_NAMES, build_with_python_api, parser_errors
from .tensorrt_trtexec import (build_with_trtexec, parse_trtexec_output, trtexec_command,
                               trtexec_version)

log = logging.getLogger(__name__)


class EngineBuilderUnavailable(AtbsnError):
    """Neither TensorRT's Python API nor trtexec is on this machine: the engine has to be
    built on the device (the export CLI prints :func:`device_command`)."""


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


def _import_tensorrt():
    try:
        import tensorrt  # noqa: F401  (only on NVIDIA machines)
    except ImportError:
        return None
    return tensorrt


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
        build = build_with_python_api(trt, onnx_path, engine_path, options, profile)
    else:
        build = build_with_trtexec(trtexec, onnx_path, engine_path, options, profile)
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


__all__ = ["DEFAULT_WORKSPACE_MB", "EngineBuilderUnavailable", "EngineOptions", "PRECISIONS",
           "Profile", "VERSION_GUARDED_NAMES", "build_engine", "default_timing_cache",
           "device_command", "engine_profile", "gpu_info", "parse_trtexec_output",
           "parser_errors", "trtexec_command", "trtexec_version", "version_tuple"]

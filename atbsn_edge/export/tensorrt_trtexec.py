"""``trtexec`` as an engine builder: the command line of a build, its version and log.

JetPack puts ``trtexec`` in ``/usr/src/tensorrt/bin``; it is used where TensorRT's Python API is
missing (or with ``EngineOptions(builder="trtexec")``). The command is built by :func:`trtexec_command` (unit-
tested without TensorRT) and shown as it would run from the bundle folder.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import AtbsnError
from ..runtimes.tensorrt_runtime import version_tuple
from .tensorrt_engine_options import (EngineOptions, Profile, default_timing_cache, gpu_info,
                                      timing_cache_path, weak_flags)

log = logging.getLogger(__name__)

TRTEXEC_TAIL_LINES = 20


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
    else:  # the builder flags FP16 / INT8 are trtexec's --fp16 / --int8
        cmd += [f"--{flag.lower()}" for flag in weak_flags(options.precision)]
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


def trtexec_version(trtexec: str) -> str | None:
    """The TensorRT version of a trtexec (from the first line of ``trtexec --help``)."""
    try:
        out = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_trtexec_output(out.stdout + out.stderr).get("tensorrt_version")


def _tail(text: str, lines: int = TRTEXEC_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def _staged_timing_cache(cache: Path) -> Iterator[Path | None]:
    """A copy of the timing cache ``cache`` for trtexec, which rewrites its file in place: it
    replaces ``cache`` only after a build that succeeded, so that a failed or interrupted build
    never leaves half a cache for the next one. A cache that cannot be staged or saved (a
    read-only folder) is a warning: None, the build runs without one; the engine is kept."""
    staged = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        if cache.is_file():
            shutil.copyfile(cache, staged)
    except OSError as exc:
        log.warning("building without the timing cache %s (%s)", cache, exc.strerror or exc)
        with contextlib.suppress(OSError):
            staged.unlink(missing_ok=True)
        yield None
        return
    try:
        yield staged
        if staged.is_file():
            try:
                os.replace(staged, cache)
            except OSError as exc:
                log.warning("the timing cache %s was not saved (%s)", cache, exc.strerror or exc)
    finally:
        staged.unlink(missing_ok=True)


def build_with_trtexec(trtexec: str, onnx_path: Path, engine_path: Path,
                       options: EngineOptions, profile: Profile | None) -> dict[str, Any]:
    """Build ``engine_path`` with ``trtexec``; returns the build record."""
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
    cache_path = timing_cache_path(options, gpu, version)
    with atomic_path(engine_path) as tmp, _staged_timing_cache(cache_path) as staged_cache:
        cmd = trtexec_command(onnx_path, tmp, options, strongly_typed, profile=profile,
                              timing_cache=staged_cache,
                              trt_version=version if version != "unknown" else "10.0.0",
                              trtexec=trtexec)
        # the command as run from the bundle folder: the staged paths mean nothing later
        shown = shlex.join(str(c) for c in cmd).replace(str(tmp), engine_path.name) \
            .replace(str(onnx_path), onnx_path.name)
        if staged_cache is not None:
            shown = shown.replace(str(staged_cache), str(cache_path))
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
    flags = [] if strongly_typed else weak_flags(options.precision)
    return {"builder": "trtexec", "trtexec": trtexec, "tensorrt_version": version,
            "gpu_name": gpu_name, "compute_capability": cc, "strongly_typed": strongly_typed,
            "precision_flags": flags, "tf32": options.precision != "fp32",
            "timing_cache": str(cache_path) if staged_cache is not None else None,
            "command": shown}

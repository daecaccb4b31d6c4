"""The one table of export targets. It drives argument validation, ``--help``,
``--list-targets`` (with availability on this machine) and "did you mean" (Ultralytics-style).

A target names a backend and a precision; the artifact's file name comes from the bundle
module, the runtime that runs it from the runtime registry (the table is checked against
that registry when it is built), the modules its converter needs (and the extra that installs
them), and the converter, ``module:function`` taking an :class:`~atbsn_edge.export.job.ConversionJob`.
Every converter but Core ML's starts from the bundle's ONNX and imports no torch, so those
targets can be added to an existing bundle on a device (``--from-bundle``); Core ML has no
ONNX frontend and converts the traced PyTorch network (``--checkpoint`` only). Rows whose converter is not
written yet stay in the table so that their names are stable and listed, marked as planned.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import shutil
from dataclasses import dataclass
from typing import Any, Callable

from ..bundle.files import SUFFIXES, artifact_name
from ..errors import AtbsnError
from ..runtimes.registry import BACKENDS

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Target:
    """One row: ``<backend>-<precision>`` and what it takes to build and run it.

    ``builder_here``: where the artifact is built on the
    device that runs it, a function saying whether that builder is on this machine (without
    it the export writes the bundle and the device command). ``check_options``:
    "module:function" taking (target, the export's arguments) that refuses bad options of this
    backend before any work."""

    backend: str
    precision: str
    runtime: str                # runtime registry name that runs the artifact
    modules: tuple[str, ...]    # Python modules the converter imports
    extra: str                  # pip extra that installs them
    converter: str | None       # "module:function" building the artifact, None = planned
    note: str = ""
    builder_here: Callable[[], bool] | None = None
    check_options: str | None = None

    @property
    def name(self) -> str:
        """The target's name: ``<backend>-<precision>``."""
        return f"{self.backend}-{self.precision}"

    @property
    def artifact(self) -> str:
        """The artifact's entry file inside a bundle."""
        return artifact_name(self.backend, self.precision)

    def availability(self) -> tuple[bool, str]:
        """(can be exported here, note): converter written and its modules importable."""
        if self.converter is None:
            return False, "planned: converter not written yet"
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"needs {', '.join(missing)}: pip install 'atbsn-edge[{self.extra}]'"
        if self.builder_here is not None and not self.builder_here():
            return True, ("bundle only: no TensorRT here, the engine is built on the device "
                          "(export ends with code 3 and the command)")
        return True, self.note

    @property
    def takes_learned_int8(self) -> bool:
        """Whether it is built from an int8-ready checkpoint's learned ranges: every int8
        target (Core ML from the same quantization-aware network, traced in its export
        form); a float target refuses such a checkpoint."""
        return self.precision == "int8"

    def check(self, args: Any) -> None:
        """Refuse this backend's bad options in ``args`` (the export's arguments) before any
        work; nothing to check where the row names no ``check_options``."""
        if self.check_options is not None:
            module, function = self.check_options.split(":")
            getattr(importlib.import_module(module), function)(self, args)


def _tensorrt_builder_here() -> bool:
    return importlib.util.find_spec("tensorrt") is not None or shutil.which("trtexec") is not None


def _rows() -> list[Target]:
    rows = []
    for p in PRECISIONS:
        rows += [
            Target("onnx", p, "onnxruntime", ("onnx", "onnxruntime"), "onnx",
                   f"atbsn_edge.export.onnx_target:{p}"),
            Target("openvino", p, "openvino",
                   ("openvino", "onnx") + (("nncf",) if p == "int8" else ()), "openvino",
                   f"atbsn_edge.export.onnx_to_openvino:{p}"),
            # the int8 Q/DQ graph needs onnxruntime's quantizer only where the bundle lacks it
            # (on a Jetson it comes with the bundle): required by that converter, not here
            Target("trt", p, "tensorrt", ("onnx",), "onnx",
                   f"atbsn_edge.export.tensorrt_target:{p}",
                   "engine built on the device that runs it, from the bundle's ONNX",
                   builder_here=_tensorrt_builder_here,
                   check_options="atbsn_edge.export.tensorrt_target:check_engine_options"),
            Target("coreml", p, "coreml", ("coremltools",), "coreml",
                   f"atbsn_edge.export.torch_to_coreml:{p}"),
        ]
    return rows


def _checked(rows: list[Target]) -> dict[str, Target]:
    """The table, after checking every row against the runtime registry."""
    for row in rows:
        backend = BACKENDS.get(row.runtime)
        if backend is None or backend.suffix != SUFFIXES[row.backend]:
            raise RuntimeError(f"target {row.name}: runtime {row.runtime!r} is not registered for "
                               f"{SUFFIXES[row.backend]} artifacts in runtimes/registry.py")
    return {row.name: row for row in rows}


TARGETS: dict[str, Target] = _checked(_rows())


def get_target(name: str) -> Target:
    """The target called ``name``, or an error listing the valid names (with a suggestion)."""
    if name in TARGETS:
        return TARGETS[name]
    close = difflib.get_close_matches(name, TARGETS, n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise AtbsnError(f"unknown target '{name}'{hint}; valid targets: {', '.join(TARGETS)}")


def targets_table() -> str:
    """Markdown table of every target and whether it can be built on this machine."""
    lines = ["| target | artifact | runtime | available here |", "|---|---|---|---|"]
    for target in TARGETS.values():
        ok, why = target.availability()
        status = ("yes" if ok else "no") + (f" ({why})" if why else "")
        lines.append(f"| {target.name} | {target.artifact} | {target.runtime} | {status} |")
    return "\n".join(lines)

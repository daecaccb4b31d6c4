"""The one table of export targets. It drives argument validation, ``--help``,
``--list-targets`` (with availability on this machine) and "did you mean" (Ultralytics-style).

A target names a backend, a precision, the artifact it produces, the modules it needs (and the
extra that installs them) and the converter that builds it. Rows whose converter is not
written yet stay in the table so that their names are stable and listed, marked as planned.
"""
from __future__ import annotations

import difflib
import importlib.util
import platform
from dataclasses import dataclass

from ..errors import AtbsnError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Target:
    """One row: ``<backend>-<precision>`` and what it takes to build and run it."""

    backend: str
    precision: str
    artifact: str               # file name inside the bundle
    runtime: str                # runtime registry name that runs the artifact
    modules: tuple[str, ...]    # Python modules the converter and runtime import
    extra: str                  # pip extra that installs them
    converter: str | None       # "module:function" building the artifact, None = planned
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}"

    def availability(self) -> tuple[bool, str]:
        """(usable here, why not): converter written and its modules importable."""
        if self.converter is None:
            return False, "planned: converter not written yet"
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"needs {', '.join(missing)}: pip install 'atbsn-edge[{self.extra}]'"
        if self.backend == "coreml" and platform.system() != "Darwin":
            return True, "converts here; Core ML predicts (and parity runs) only on macOS"
        return True, ""


_ONNX_CONVERTERS = {"fp32": "atbsn_edge.export.onnx_target:build",
                    "fp16": "atbsn_edge.export.onnx_target:build_fp16",
                    "int8": "atbsn_edge.export.onnx_target:build_int8"}
_OPENVINO_CONVERTERS = {"fp32": "atbsn_edge.export.onnx_to_openvino:build",
                        "fp16": "atbsn_edge.export.onnx_to_openvino:build_fp16",
                        "int8": "atbsn_edge.export.onnx_to_openvino:build_int8"}


def _rows() -> list[Target]:
    rows = []
    for precision in PRECISIONS:
        rows += [
            Target("onnx", precision, f"model-{precision}.onnx", "onnxruntime",
                   ("onnx", "onnxruntime"), "onnx",
                   _ONNX_CONVERTERS.get(precision)),
            Target("openvino", precision, f"model-{precision}.xml", "openvino",
                   ("openvino", "onnx"), "openvino", _OPENVINO_CONVERTERS.get(precision)),
            Target("trt", precision, f"model-{precision}.engine", "tensorrt",
                   ("tensorrt",), "tensorrt", None,
                   "engine built on the device that runs it, from the bundle's ONNX"),
            Target("coreml", precision, f"model-{precision}.mlpackage", "coreml",
                   ("coremltools",), "coreml", None),
        ]
    return rows


TARGETS: dict[str, Target] = {t.name: t for t in _rows()}


def get_target(name: str) -> Target:
    """The target called ``name``, or an error listing the valid names (with a suggestion)."""
    if name in TARGETS:
        return TARGETS[name]
    close = difflib.get_close_matches(name, TARGETS, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise AtbsnError(f"unknown target '{name}'{hint} Valid targets: {', '.join(TARGETS)}")


def targets_table() -> str:
    """Markdown table of every target and whether it can be built on this machine."""
    lines = ["| target | artifact | runtime | available here |", "|---|---|---|---|"]
    for target in TARGETS.values():
        ok, why = target.availability()
        status = ("yes" if ok else "no") + (f" ({why})" if why else "")
        lines.append(f"| {target.name} | {target.artifact} | {target.runtime} | {status} |")
    return "\n".join(lines)

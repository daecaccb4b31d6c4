"""The Core ML ML program of a saved ``.mlpackage``, evaluated with numpy (Linux and anywhere).

Apple's Core ML runtime (``MLModel.predict``) exists only on macOS and iOS. To verify an
exported package elsewhere, this package reads what was written to disk (the package's
protobuf program and its weight file, never the converter's in-memory objects) and computes the
program op by op in numpy, each op's output rounded to its declared dtype:

- :mod:`.package`: the saved package: ``Manifest.json``, the ``Model`` protobuf, its inputs,
  outputs and ``user_defined_metadata``, and the MIL program with its weights (through
  coremltools' own loader of saved programs, ``frontend.milproto.load``);
- :mod:`.ops`: the ops the exported networks use, and nothing else;
- :mod:`.evaluator`: :class:`ProgramEvaluator`, the op-by-op interpreter;
- :mod:`.runtime`: :class:`CoreMlProgramRuntime`, the evaluator behind the toolkit's
  ``Runtime`` interface (backend ``coreml-mil-numpy``).

It needs coremltools (for the protobuf classes, the weight-blob reader and the op
definitions) but neither macOS nor PyTorch.
"""
from __future__ import annotations

from .package import SavedPackage, read_package

__all__ = ["SavedPackage", "read_package", "ProgramEvaluator", "CoreMlProgramRuntime",
           "SUPPORTED_OPS", "evaluate_package"]


def __getattr__(name: str):
    if name in ("ProgramEvaluator", "evaluate_package"):
        from . import evaluator
        return getattr(evaluator, name)
    if name == "SUPPORTED_OPS":
        from .ops import SUPPORTED_OPS
        return SUPPORTED_OPS
    if name == "CoreMlProgramRuntime":
        from .runtime import CoreMlProgramRuntime
        return CoreMlProgramRuntime
    raise AttributeError(name)

"""The numpy evaluator of a saved ML program behind the toolkit's ``Runtime`` interface.

Backend ``coreml-mil-numpy``: what ``parity`` and ``denoise --artifact`` use for a Core ML
artifact where Apple's runtime does not exist (every system but macOS). It computes the
program as saved (see ``evaluator.py`` for the precision rules); it is a verification tool,
not a deployment runtime, and says so in ``info.device``: the numbers it gives are the
program's, not Apple's runtime's.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..runtimes.base import InputSpec, Runtime, RuntimeInfo
from .evaluator import ProgramEvaluator

DEVICE = "numpy (Core ML program evaluated on Linux; not Apple's runtime)"


class CoreMlProgramRuntime(Runtime):
    """A saved ``.mlpackage`` evaluated op by op with numpy."""

    backend = "coreml-mil-numpy"

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        from ..runtimes.coreml_runtime import package_metadata

        self.path = Path(path)
        self.metadata, self._spec = package_metadata(self.path)
        self.evaluator = ProgramEvaluator(self.path)
        self._output = self.evaluator.output_names[0]

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_metadata(self.backend, self.metadata, DEVICE,
                                         apple_runtime_measured="false")

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        result = self.evaluator.evaluate({self._spec.name: batch})[self._output]
        return np.asarray(result, dtype=np.float32)

    def _close_impl(self) -> None:
        self.evaluator = None

"""ONNX Runtime backend: runs an exported ONNX artifact; input spec and model facts come from
the graph's input shape and the toolkit's ``metadata_props`` (read through ONNX Runtime: a
device needs no ``onnx`` package)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..bundle.metadata import ArtifactMetadata, read_onnxruntime_metadata
from ..errors import AtbsnError, require
from .base import InputSpec, Runtime, RuntimeInfo

log = logging.getLogger(__name__)


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class OnnxRuntimeRuntime(Runtime):
    """An ``onnxruntime.InferenceSession`` on the CPU (or the given providers)."""

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, *, providers: list[str] | None = None,
                 threads: int = 0) -> None:
        super().__init__()
        ort = require("onnxruntime", "onnx")
        path = Path(path)
        if not path.is_file():
            raise AtbsnError(f"ONNX artifact {path} does not exist")
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: its warnings are not the user's
            if threads:
                options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(path), options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # truncated or not an ONNX file: say so in one line
            raise AtbsnError(f"cannot load ONNX artifact {path}: {str(exc).splitlines()[0][:200]}") from None
        self.metadata = ArtifactMetadata.parse(read_onnxruntime_metadata(self.session), path)
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        n, c, h, w = graph_input.shape
        self._spec = InputSpec(batch=_static(n), height=_static(h), width=_static(w),
                               channels=_static(c) or 3, stride=self.metadata.stride)
        self.device = self.session.get_providers()[0]
        self.path = path

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_metadata(self.backend, self.metadata, self.device)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def _close_impl(self) -> None:
        self.session = None

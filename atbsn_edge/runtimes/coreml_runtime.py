"""Core ML backend: Apple's runtime (``MLModel.predict``) on macOS, for ``.mlpackage`` artifacts.

``compute_units`` chooses where Core ML may run the program: ``ALL`` (default: Neural Engine,
GPU and CPU as Core ML sees fit), ``CPU_AND_NE``, ``CPU_AND_GPU`` or ``CPU_ONLY``. Core ML runs
only on macOS and iOS (``coremltools.libcoremlpython`` is not built for other systems), so on
Linux the constructor refuses in one line; parity there evaluates the saved ML program with
numpy instead (:class:`atbsn_edge.coreml_mil.runtime.CoreMlProgramRuntime`), and
:func:`coreml_runtime_name` tells callers which of the two applies on this machine.

Metadata (tile shape, stride, overlap, hole size...) is read from the package's saved
``user_defined_metadata`` protobuf field, not through the runtime, so it reads the same on any
system.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

from ..bundle.metadata import ArtifactMetadata, read_coreml_metadata
from ..errors import AtbsnError
from .base import InputSpec, Runtime, RuntimeInfo

COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")
APPLE_RUNTIME = "coreml"
NUMPY_EVALUATOR = "coreml-mil-numpy"
NOT_ON_APPLE = ("Core ML runs only on macOS/iOS (this is {system}); parity of Core ML bundles "
                "here runs the ML program through the numpy evaluator (atbsn_edge.coreml_mil)")


def apple_runtime_available() -> bool:
    """Whether this machine has Apple's Core ML runtime (macOS)."""
    return platform.system() == "Darwin"


def coreml_runtime_name() -> str:
    """The runtime that runs ``.mlpackage`` artifacts here: ``coreml`` (Apple's, macOS) or
    ``coreml-mil-numpy`` (the numpy evaluator of the saved program, every other system)."""
    return APPLE_RUNTIME if apple_runtime_available() else NUMPY_EVALUATOR


def package_metadata(path: str | os.PathLike) -> tuple[ArtifactMetadata, InputSpec]:
    """The toolkit's metadata and the input spec of a saved package, from its protobuf."""
    from ..coreml_mil.package import read_package

    package = read_package(path)
    metadata = ArtifactMetadata.parse(read_coreml_metadata(package.user_defined_metadata), path)
    inputs = package.inputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise AtbsnError(f"{path}: expected one N x 3 x H x W input, the model has "
                         f"{[(i.name, i.shape) for i in inputs]}")
    n, c, h, w = inputs[0].shape
    return metadata, InputSpec(batch=n, height=h, width=w, channels=c, stride=metadata.stride,
                               name=inputs[0].name)


class CoreMlRuntime(Runtime):
    """An ``.mlpackage`` loaded by Core ML (``ct.models.MLModel``) with ``compute_units``."""

    backend = APPLE_RUNTIME

    def __init__(self, path: str | os.PathLike, *, compute_units: str = "ALL") -> None:
        super().__init__()
        if not apple_runtime_available():
            raise AtbsnError(NOT_ON_APPLE.format(system=platform.system() or "an unknown system"))
        units = str(compute_units).upper()
        if units not in COMPUTE_UNITS:
            raise AtbsnError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, "
                             f"got {compute_units!r}")
        from ..coreml_mil.package import quiet_coremltools

        ct = quiet_coremltools()
        self.path = Path(path)
        self.metadata, self._spec = package_metadata(self.path)
        try:
            self.model = ct.models.MLModel(str(self.path),
                                           compute_units=getattr(ct.ComputeUnit, units))
        except Exception as exc:
            raise AtbsnError(f"Core ML cannot load {self.path}: {type(exc).__name__}: "
                             f"{str(exc)[:200]}") from None
        self.compute_units = units
        self._output = self.model.get_spec().description.output[0].name

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo.from_metadata(self.backend, self.metadata,
                                         f"Core ML ({self.compute_units}, {platform.machine()})",
                                         compute_units=self.compute_units)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        result = self.model.predict({self._spec.name: batch})[self._output]
        return np.asarray(result, dtype=np.float32)

    def _close_impl(self) -> None:
        self.model = None

"""Registry of runtime backends, imported lazily so a missing library fails only when used."""
from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path

from ..errors import AtbsnError
from .base import Runtime

log = logging.getLogger(__name__)

# name -> (module, class, pip extra)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "torch": ("atbsn_edge.runtimes.torch_runtime", "TorchRuntime", "torch"),
    "onnxruntime": ("atbsn_edge.runtimes.onnxruntime_runtime", "OnnxRuntimeRuntime", "onnx"),
    "openvino": ("atbsn_edge.runtimes.openvino_runtime", "OpenVinoRuntime", "openvino"),
}
SUFFIXES: dict[str, str] = {".onnx": "onnxruntime", ".xml": "openvino"}


def runtime_class(name: str) -> type[Runtime]:
    """The runtime class registered as ``name``."""
    try:
        module, cls, _extra = BACKENDS[name]
    except KeyError:
        raise AtbsnError(f"unknown runtime '{name}'; registered: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)


def open_artifact(path: str | Path, **options) -> Runtime:
    """Open an artifact file with the runtime its suffix names (``.onnx`` -> onnxruntime).

    ``options`` (``threads``, ``performance_hint``, ...) go to the runtime that takes them;
    one it does not take is dropped with a log line naming it."""
    path = Path(path)
    backend = SUFFIXES.get(path.suffix.lower())
    if backend is None:
        raise AtbsnError(f"no runtime for '{path.suffix}' artifacts ({path}); known: "
                         f"{', '.join(SUFFIXES)}")
    cls = runtime_class(backend)
    accepted = inspect.signature(cls.__init__).parameters
    for name in [n for n in options if n not in accepted]:
        log.info("%s does not take %s; ignored", backend, name)
        del options[name]
    return cls(path, **options)

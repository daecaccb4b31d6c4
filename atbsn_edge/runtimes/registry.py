"""Registry of runtime backends, imported lazily so a missing library fails only when used.

One row per backend: the class that runs it, the pip extra that installs its library and the
suffix of the artifact files it opens. The export target table (``export/targets.py``)
names its runtime by these keys and is checked against this table when it is built.
"""
from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import AtbsnError
from .base import Runtime, check_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """One runtime backend: ``module:cls`` runs artifacts ending in ``suffix``.

    The optional columns say what differs between backends, so that no caller branches on a
    backend's name: ``floor``, which physical floor ``profile`` puts beside its latency (``cpu``:
    the CPU's measured rates where the runtime reports a CPU device; ``jetson``: the Orin
    table); ``resolver``, a function of ``module`` that names the registered runtime which runs
    this backend's artifacts on this system; ``auto_hint``, a function of ``module`` giving the
    performance hint that ``auto`` stands for (``(entry, image_sizes, tile, overlap) -> hint``;
    without one the backend takes no hint); ``stand_in``: it computes the artifact without the
    device's own runtime (parity says so)."""

    module: str
    cls: str
    extra: str
    suffix: str | None   # artifact entry suffix; None: not an artifact runtime (torch)
    floor: str | None = None
    resolver: str | None = None
    auto_hint: str | None = None
    stand_in: bool = False


BACKENDS: dict[str, Backend] = {
    "torch": Backend("atbsn_edge.runtimes.torch_runtime", "TorchRuntime", "torch", None,
                     floor="cpu"),
    "onnxruntime": Backend("atbsn_edge.runtimes.onnxruntime_runtime", "OnnxRuntimeRuntime",
                           "onnx", ".onnx", floor="cpu"),
    "openvino": Backend("atbsn_edge.runtimes.openvino_runtime", "OpenVinoRuntime", "openvino",
                        ".xml", floor="cpu", auto_hint="auto_performance_hint"),
    "tensorrt": Backend("atbsn_edge.runtimes.tensorrt_runtime", "TensorRtRuntime", "tensorrt",
                        ".engine", floor="jetson"),
    # Apple's runtime on macOS, else the numpy evaluator below (coreml_runtime_name)
    "coreml": Backend("atbsn_edge.runtimes.coreml_runtime", "CoreMlRuntime", "coreml",
                      ".mlpackage", resolver="coreml_runtime_name"),
    # the saved ML program computed with numpy: Core ML parity off macOS (not Apple's runtime)
    "coreml-mil-numpy": Backend("atbsn_edge.coreml_mil.runtime", "CoreMlProgramRuntime",
                                "coreml", ".mlpackage", stand_in=True),
}


def backend_column(name: str, column: str) -> Any:
    """The value in ``column`` of the row of ``name``; None for a runtime with no row."""
    backend = BACKENDS.get(name)
    return getattr(backend, column) if backend is not None else None


def backend_function(name: str, column: str) -> Callable[..., Any] | None:
    """The function that the row of ``name`` names in ``column`` (``resolver``,
    ``auto_hint``), imported from the row's module; None where the row names none."""
    function = backend_column(name, column)
    if function is None:
        return None
    return getattr(importlib.import_module(BACKENDS[name].module), function)


def runtime_here(name: str) -> str:
    """The registered runtime that runs ``name``'s artifacts on this system: ``name`` itself,
    or what its row's ``resolver`` says (Core ML: Apple's runtime on macOS, else the numpy
    evaluator)."""
    resolver = backend_function(name, "resolver")
    return resolver() if resolver is not None else name


def runtime_class(name: str) -> type[Runtime]:
    """The runtime class registered as ``name``."""
    try:
        backend = BACKENDS[name]
    except KeyError:
        raise AtbsnError(f"unknown runtime '{name}'; registered: {', '.join(BACKENDS)}") from None
    try:
        module = importlib.import_module(backend.module)
    except ModuleNotFoundError as exc:
        if exc.name != backend.module:
            raise
        raise AtbsnError(f"the {name} runtime is not part of this atbsn-edge version") from None
    return getattr(module, backend.cls)


def backend_for_file(path: Path) -> str:
    """The runtime that opens an artifact file, from its suffix."""
    suffix = path.suffix.lower()
    for name, backend in BACKENDS.items():
        if backend.suffix == suffix:
            return name
    known = ", ".join(f"{b.suffix} ({n})" for n, b in BACKENDS.items() if b.suffix)
    raise AtbsnError(f"no runtime opens '{path.suffix or path.name}' artifacts ({path}); known: {known}")


def open_artifact(path: str | Path, *, runtime: str | None = None, **options: Any) -> Runtime:
    """Open an artifact file with ``runtime`` (a bundle's manifest names it), or the runtime its
    suffix names (``.onnx`` -> onnxruntime).

    ``options`` (``threads``, ``performance_hint``, ...) go to the runtime that takes them; one
    that only another backend takes is dropped, with a warning where it was set (not None,
    0 or ``"auto"``: options are shared by every backend, so a caller may pass its defaults
    to any), a name no backend takes (a typo) is a TypeError, and counts out of range
    (``threads``, ``infer_requests``) an :class:`AtbsnError`."""
    path = Path(path)
    name = runtime or backend_for_file(path)
    cls = runtime_class(name)
    known = _every_option()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"open_artifact: unknown option {', '.join(unknown)}; the runtimes take "
                        f"{', '.join(sorted(known))}")
    check_counts(options.get("threads"), options.get("infer_requests"))
    accepted = inspect.signature(cls.__init__).parameters
    for option in [n for n in options if n not in accepted]:
        value = options.pop(option)
        if value is None or value == 0 or value == "auto" or any(
                value == default for default in known[option]):  # left at a default
            log.debug("%s does not take %s; not used", name, option)
        else:  # e.g. --threads 4 with a Core ML artifact: said, not silently ignored
            log.warning("%s runs %s and takes no %s option: %s=%r is not used", name,
                        path.name, option, option, value)
    return cls(path, **options)


def _every_option() -> dict[str, list[Any]]:
    """The keyword options of every registered runtime's constructor, each with the defaults
    the constructors that take it give it."""
    options: dict[str, list[Any]] = {}
    for backend in BACKENDS:
        parameters = inspect.signature(runtime_class(backend).__init__).parameters.values()
        for p in parameters:
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                options.setdefault(p.name, []).append(p.default)
    return options

"""Artifact file names, the files an artifact consists of, and their content hashes.

An artifact is named by its entry file (what a runtime opens) but may consist of several:
an OpenVINO IR is ``.xml`` + ``.bin``, a Core ML package is a folder, a TensorRT engine has
its JSON sidecar. The manifest records the SHA-256 of every one of them, so a damaged weight
file is caught even when its size is unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..hashing import file_sha256
from .metadata import sidecar_path

# entry-file suffix of each backend's artifacts
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "trt": ".engine", "coreml": ".mlpackage"}
FP32_ONNX = "model-fp32.onnx"


def artifact_name(backend: str, precision: str) -> str:
    """The entry file of a target's artifact inside a bundle: ``model-<precision><suffix>``."""
    return f"model-{precision}{SUFFIXES[backend]}"


def onnx_name(precision: str) -> str:
    """The ONNX graph of a precision (fp32, the fp16 graph, the int8 Q/DQ graph)."""
    return artifact_name("onnx", precision)


# the files beside an entry file that belong to its artifact, by the entry's suffix
COMPANIONS: dict[str, Callable[[Path], Path]] = {
    ".xml": lambda entry: entry.with_suffix(".bin"),   # an OpenVINO IR's weights
    ".engine": sidecar_path,                            # a TensorRT engine's JSON sidecar
}


def artifact_files(entry: str | os.PathLike) -> list[Path]:
    """Every file the artifact whose entry is ``entry`` consists of (existing or not)."""
    entry = Path(entry)
    if entry.is_dir():  # .mlpackage and other folder artifacts: every file inside
        return sorted(p for p in entry.rglob("*") if p.is_file())
    companion = COMPANIONS.get(entry.suffix)
    return [entry] if companion is None else [entry, companion(entry)]


def content_hashes(entry: str | os.PathLike, root: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of each file of an artifact, keyed by its path relative to ``root`` (posix)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in artifact_files(entry)}

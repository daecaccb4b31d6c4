"""The toolkit's metadata inside every artifact, and the carrier each backend puts it in.

Every artifact carries the facts a runtime needs to run it with no other flag (model, hole
size, stride, default tile overlap, precision, tile shape, batch, value range) plus where it
came from (checkpoint hash, toolkit version, calibration). The carriers:

- ONNX: ``metadata_props`` entries ``atbsn.<key>``;
- OpenVINO IR: ``rt_info`` under ``atbsn``;
- Core ML: ``user_defined_metadata`` entries ``atbsn.<key>``;
- TensorRT engines (no metadata slot): a JSON sidecar ``<engine>.json`` that also records
  the TensorRT version and the GPU the engine was built for.

Values travel as strings. :meth:`ArtifactMetadata.parse` turns them into typed facts and
refuses an artifact that lacks any of them: nothing is guessed (a foreign ONNX with no
toolkit metadata is refused, not run with an assumed stride and overlap).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import AtbsnError

ONNX_PREFIX = "atbsn."
RT_INFO_KEY = "atbsn"
COREML_PREFIX = "atbsn."
SIDECAR_SUFFIX = ".json"
SIDECAR_FORMAT = "atbsn-edge-engine-sidecar"

# What a runtime cannot do without; written by every converter, refused when missing.
REQUIRED_KEYS = ("model", "hole_size", "stride", "default_overlap", "precision", "tile",
                 "batch", "value_range")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ArtifactMetadata:
    """The typed facts of an artifact's metadata; ``raw`` keeps every string as stored."""

    model: str
    hole_size: int | None
    stride: int
    default_overlap: int
    precision: str
    tile: tuple[int, int] | None       # None: dynamic height and width
    batch: int | None                  # None: dynamic batch
    value_range: tuple[float, float]
    raw: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], source: str | os.PathLike) -> "ArtifactMetadata":
        """Typed metadata from ``raw`` strings, or :class:`AtbsnError` naming what is missing
        or malformed in ``source``."""
        raw = {str(k): str(v) for k, v in raw.items()}
        if not raw:
            raise AtbsnError(f"{source} carries no atbsn-edge metadata (it was not exported by "
                             "this toolkit, or its metadata was stripped); the tile shape, "
                             "stride and overlap would have to be guessed, so it is refused: "
                             "export the checkpoint with python -m atbsn_edge.export")
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise AtbsnError(f"{source}: its atbsn-edge metadata lacks {', '.join(missing)} "
                             f"(has {', '.join(sorted(raw)) or 'nothing'}); re-export it with "
                             "this version of python -m atbsn_edge.export")
        try:
            hole = raw["hole_size"]
            low, high = (float(v) for v in raw["value_range"].split(","))
            meta = cls(model=raw["model"], hole_size=int(hole) if hole not in ("", "None") else None,
                       stride=int(raw["stride"]), default_overlap=int(raw["default_overlap"]),
                       precision=raw["precision"], tile=_parse_tile(raw["tile"]),
                       batch=None if raw["batch"] == "dynamic" else int(raw["batch"]),
                       value_range=(low, high), raw=raw)
        except ValueError as exc:
            raise AtbsnError(f"{source}: malformed atbsn-edge metadata ({exc}); re-export it") from None
        if meta.precision not in PRECISIONS or meta.stride <= 0 or meta.default_overlap < 0:
            raise AtbsnError(f"{source}: metadata precision {meta.precision!r}, stride "
                             f"{meta.stride}, overlap {meta.default_overlap} are not valid; "
                             "re-export it")
        return meta


def _parse_tile(text: str) -> tuple[int, int] | None:
    if text == "dynamic":
        return None
    h, w = text.lower().split("x")
    return int(h), int(w)


def as_strings(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Metadata values as the strings every carrier stores (None becomes "")."""
    return {str(k): "" if v is None else str(v) for k, v in metadata.items()}


# --- ONNX: metadata_props ------------------------------------------------------------------

def read_onnxruntime_metadata(session: Any) -> dict[str, str]:
    """The toolkit's ``metadata_props``, without the prefix, as an
    ``onnxruntime.InferenceSession`` reads them: a device runs ONNX bundles without the
    ``onnx`` package."""
    return {key[len(ONNX_PREFIX):]: value
            for key, value in session.get_modelmeta().custom_metadata_map.items()
            if key.startswith(ONNX_PREFIX)}


def write_onnx_metadata(model: Any, metadata: Mapping[str, Any]) -> None:
    """Write ``metadata`` into ``metadata_props``, replacing the toolkit's old entries."""
    keep = [p for p in model.metadata_props if not p.key.startswith(ONNX_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in as_strings(metadata).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = ONNX_PREFIX + key, value


# --- OpenVINO: rt_info ---------------------------------------------------------------------

def read_openvino_metadata(model: Any) -> dict[str, str]:
    """The toolkit's ``rt_info`` entries of an ``openvino.Model``."""
    if not model.has_rt_info([RT_INFO_KEY]):
        return {}
    return {key: model.get_rt_info([RT_INFO_KEY, key]).astype(str)
            for key in model.get_rt_info()[RT_INFO_KEY]}


def write_openvino_metadata(model: Any, metadata: Mapping[str, Any]) -> None:
    """Set ``metadata`` in an ``openvino.Model``'s ``rt_info`` under ``atbsn``."""
    for key, value in as_strings(metadata).items():
        model.set_rt_info(value, [RT_INFO_KEY, key])


# --- Core ML: user_defined_metadata --------------------------------------------------------

def read_coreml_metadata(user_defined: Mapping[str, str]) -> dict[str, str]:
    """The toolkit's entries of a Core ML model's ``user_defined_metadata`` mapping."""
    return {k[len(COREML_PREFIX):]: v for k, v in user_defined.items()
            if k.startswith(COREML_PREFIX)}


def write_coreml_metadata(user_defined: Any, metadata: Mapping[str, Any]) -> None:
    """Set ``metadata`` in a Core ML ``user_defined_metadata`` mapping (``mlmodel.user_defined_metadata``)."""
    for key, value in as_strings(metadata).items():
        user_defined[COREML_PREFIX + key] = value


# --- TensorRT engines: a JSON sidecar ------------------------------------------------------

def sidecar_path(engine: str | os.PathLike) -> Path:
    """``model-fp16.engine`` -> ``model-fp16.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + SIDECAR_SUFFIX)


def write_sidecar(engine: str | os.PathLike, metadata: Mapping[str, Any],
                  build: Mapping[str, Any]) -> Path:
    """Write the engine's sidecar: the artifact metadata and ``build`` (TensorRT version, GPU
    name, compute capability, builder options). Returns its path."""
    from ..atomic import atomic_path

    path = sidecar_path(engine)
    document = {"format": SIDECAR_FORMAT, "metadata": as_strings(metadata), "build": dict(build)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(engine: str | os.PathLike) -> tuple[dict[str, str], dict[str, Any]]:
    """(artifact metadata, build record) from an engine's sidecar, or a one-line error."""
    path = sidecar_path(engine)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise AtbsnError(f"{engine}: its sidecar {path.name} is missing; a TensorRT engine "
                         "carries no metadata of its own, so keep the two together (or rebuild "
                         "with python -m atbsn_edge.export --from-bundle)") from None
    except (OSError, ValueError) as exc:
        raise AtbsnError(f"{path}: not a readable engine sidecar ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != SIDECAR_FORMAT:
        raise AtbsnError(f"{path} is not an atbsn-edge engine sidecar")
    return dict(document.get("metadata", {})), dict(document.get("build", {}))

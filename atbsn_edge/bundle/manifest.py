"""The bundle: a folder with one or more artifacts of one network, the ONNX they came from,
``reference.npz`` and ``manifest.json``. This module owns the manifest's schema.

Schema (version 2)::

    {"schema": "atbsn-edge-bundle", "schema_version": 2, "toolkit_version": "...",
     "source": {"checkpoint": "...", "checkpoint_sha256": "..."},
     "network": {<the fp32 ONNX's metadata: model, hole_size, stride, tile, ...>},
     "int8_keep_float_default": ["<regex>", ...],
     "reference": {"file": "reference.npz", "sha256": "...", "crops": [...], "sources": [...]},
     "default_target": "openvino-int8",
     "artifacts": {"<target>": {"entry": "model-int8.xml", "runtime": "openvino",
                                "precision": "int8", "status": "ready" | "pending",
                                "files": {"model-int8.xml": "<sha256>", "model-int8.bin": "..."},
                                "metadata": {...}, "details": {...}}}}

Every file of every artifact is hashed; :meth:`Bundle.entry_path` verifies them before a
runtime opens the artifact and refuses a mismatch in one line. ``status: pending`` is a
TensorRT target whose engine has to be built on the device (``details.device_command``).
"""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .. import __version__
from ..atomic import atomic_path
from ..errors import AtbsnError
from ..hashing import file_sha256
from .commands import add_target_command
from .files import artifact_files, content_hashes
from .reference import REFERENCE_FILE, load_reference

if TYPE_CHECKING:
    import numpy as np

SCHEMA = "atbsn-edge-bundle"
SCHEMA_VERSION = 2
MANIFEST_FILE = "manifest.json"
READY, PENDING = "ready", "pending"
# The largest manifest read: one this toolkit writes is a few kB (hashes and metadata); a
# bigger one, or one that is no regular file (a device, a FIFO, a link to /dev/zero), would
# be read without end or take all memory, so it is refused before any byte is read.
MAX_MANIFEST_BYTES = 16 * 2**20


@dataclass
class ArtifactEntry:
    """One target's artifact in a bundle (paths relative to the bundle folder)."""

    target: str
    entry: str
    runtime: str
    precision: str
    status: str = READY
    files: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, target: str, data: dict[str, Any]) -> "ArtifactEntry":
        """The entry of ``target`` from its manifest object (KeyError / TypeError where entry,
        runtime or precision is missing or not a string)."""
        for key in ("entry", "runtime", "precision"):
            if not isinstance(data[key], str):
                raise TypeError(f"artifact {target!r}: {key} is {data[key]!r}, not a file name "
                                "or name")
        return cls(target=target, entry=data["entry"], runtime=data["runtime"],
                   precision=data["precision"], status=data.get("status", READY),
                   files=dict(data.get("files", {})), metadata=dict(data.get("metadata", {})),
                   details=dict(data.get("details", {})))

    def as_dict(self) -> dict[str, Any]:
        """The entry as its manifest object: every field but ``target``, which is its key."""
        data = asdict(self)
        del data["target"]
        return data


class _UnreadableManifest(ValueError):
    """A manifest refused before or while parsing: not a regular file, too large, or nested
    too deep for the JSON parser; the message says which."""


def _read_manifest(path: Path) -> Any:
    """The JSON value in the manifest file ``path``. Raises ``FileNotFoundError`` where there
    is none, :class:`_UnreadableManifest` for a file that is not a regular file, is larger than
    :data:`MAX_MANIFEST_BYTES` or nests too deep, and ``OSError`` / ``ValueError`` for one
    that cannot be read or is not JSON."""
    info = path.stat()  # follows a link: what would be read
    if not stat.S_ISREG(info.st_mode):
        kind = ("a folder" if stat.S_ISDIR(info.st_mode) else
                "a pipe" if stat.S_ISFIFO(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "a device")
        raise _UnreadableManifest(f"it is {kind}" + (", through a link" if path.is_symlink()
                                                     else "")
                                  + ", not a regular file; a manifest is a small JSON file")
    limit = MAX_MANIFEST_BYTES
    if info.st_size > limit:
        raise _UnreadableManifest(f"it is {info.st_size} bytes, more than the {limit // 2**20} "
                                  "MB a manifest may have")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)  # never more, whatever the file became since stat
    if len(data) > limit:
        raise _UnreadableManifest(f"it is larger than the {limit // 2**20} MB a manifest may "
                                  "have")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise _UnreadableManifest("its JSON nests too deep to be a manifest") from None


def _manifest_document(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``folder``'s manifest, or None where there is none to read."""
    try:
        document = _read_manifest(Path(folder) / MANIFEST_FILE)
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def is_bundle(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a bundle this toolkit wrote (any schema version): the only kind
    of folder ``export --overwrite`` may replace."""
    document = _manifest_document(folder)
    return document is not None and (document.get("schema") == SCHEMA
                                      or {"target", "artifact"} <= set(document))


def bundle_files(folder: str | os.PathLike) -> set[Path]:
    """The files of the bundle in ``folder`` (resolved): its manifest, reference data and
    every file its artifacts list; empty where ``folder`` holds no readable manifest. What no
    report may replace (``output_paths.check_report_path``)."""
    folder = Path(folder)
    document = _manifest_document(folder)
    if document is None:
        return set()
    names = {MANIFEST_FILE, REFERENCE_FILE}
    artifacts = document.get("artifacts")
    for artifact in (artifacts.values() if isinstance(artifacts, dict) else ()):
        if isinstance(artifact, dict):
            names.update(n for n in [artifact.get("entry"), *(artifact.get("files") or ())]
                         if isinstance(n, str))
    return {(folder / name).resolve() for name in names}


def bundle_holding(path: str | os.PathLike) -> Path | None:
    """The bundle folder (one of ``path``'s parents) of which ``path`` is a file
    (:func:`bundle_files`), or None: what no output may replace."""
    target = Path(path).resolve()
    return next((folder for folder in target.parents if target in bundle_files(folder)), None)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_hashes(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_patterns(value: Any) -> bool:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return False
    try:
        for pattern in value:
            re.compile(pattern)
    except re.error:
        return False
    return True


# The manifest's fields that this class reads, with the type each must have where present
# (an absent one takes the default its reader gives): (dotted path, valid, expected). A
# parent object comes before its fields; artifacts are checked by _ARTIFACT_FIELDS.
_FIELDS = (
    ("source", _is_object, "an object"),
    ("source.checkpoint", _is_text, "a string"),
    ("source.checkpoint_sha256", _is_text, "a string"),
    ("source.part", lambda v: v is None or _is_name(v), "a network name or null"),
    ("network", _is_object, "an object"),
    ("int8_keep_float_default", _is_patterns, "a list of regular expressions"),
    ("reference", _is_object, "an object"),
    ("reference.sha256", _is_text, "a string"),
    ("default_target", lambda v: v is None or _is_name(v), "a target name or null"),
    ("artifacts", _is_object, "an object"),
)
# Each artifact's fields, the same way: (dotted path, required, valid, expected).
_ARTIFACT_FIELDS = (
    ("entry", True, _is_name, "a file name"),
    ("runtime", True, _is_name, "a runtime name"),
    ("precision", True, _is_name, "a precision name"),
    ("status", False, lambda v: v in (READY, PENDING), f"{READY!r} or {PENDING!r}"),
    ("files", False, _is_hashes, "an object of file names and SHA-256 strings"),
    ("metadata", False, _is_object, "an object"),
    ("details", False, _is_object, "an object"),
    ("details.device_command", False, _is_text, "a command line"),
    ("details.qat", False, _is_object, "an object"),
)
_MISSING = object()


def _json_kind(value: Any) -> str:
    """What a JSON value is, for a message: null, true, the number 5, the string 'x', ..."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        text = json.dumps(value)
        return f"the list {text if len(text) <= 60 else text[:56] + ' ...]'}"
    return "an object"


def _field(document: dict[str, Any], dotted: str) -> Any:
    value: Any = document
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _schema_problem(document: dict[str, Any]) -> str | None:
    """What is wrong with the types of a manifest's fields (``field 'reference' is null,
    expected an object``), or None when every field this class reads is usable."""
    for dotted, valid, expected in _FIELDS:
        value = _field(document, dotted)
        if value is not _MISSING and not valid(value):
            return f"field {dotted!r} is {_json_kind(value)}, expected {expected}"
    for target, artifact in document.get("artifacts", {}).items():
        if not isinstance(artifact, dict):
            return f"field 'artifacts.{target}' is {_json_kind(artifact)}, expected an object"
        for name, required, valid, expected in _ARTIFACT_FIELDS:
            value = _field(artifact, name)
            if value is _MISSING:
                if required:
                    return f"field 'artifacts.{target}.{name}' is missing, expected {expected}"
            elif not valid(value):
                return (f"field 'artifacts.{target}.{name}' is {_json_kind(value)}, "
                        f"expected {expected}")
    return None


class Bundle:
    """A bundle folder and its manifest. Open with :meth:`open`, create with :meth:`new`."""

    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = Path(path)
        self.document = document
        self.artifacts = {t: ArtifactEntry.from_dict(t, a)
                          for t, a in document.get("artifacts", {}).items()}

    # --- creating ---------------------------------------------------------------------------
    @classmethod
    def new(cls, path: Path, *, network: dict[str, str], checkpoint: str, checkpoint_sha256: str,
            part: str | None = None, int8_keep_float_default: Iterable[str] = ()) -> "Bundle":
        """An empty bundle of one network (its fp32 ONNX's metadata) at ``path``."""
        return cls(path, {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                          "toolkit_version": __version__,
                          "source": {"checkpoint": checkpoint,
                                     "checkpoint_sha256": checkpoint_sha256, "part": part},
                          "network": dict(network),
                          "int8_keep_float_default": list(int8_keep_float_default),
                          "reference": {}, "default_target": None, "artifacts": {}})

    def moved_to(self, path: Path) -> "Bundle":
        """The same manifest for a copy of the folder at ``path`` (paths are relative)."""
        return Bundle(path, json.loads(json.dumps(self.document)))

    def set_reference(self, crops: list[str], sources: list[str]) -> None:
        """Record the reference data written into the folder (hashes it)."""
        self.document["reference"] = {"file": REFERENCE_FILE,
                                      "sha256": file_sha256(self.path / REFERENCE_FILE),
                                      "crops": crops, "sources": sources}

    def add_artifact(self, entry: ArtifactEntry, *, default: bool = True) -> None:
        """Hash ``entry``'s files (when ready) and record it, replacing the target's old one."""
        if entry.status == READY:
            entry.files = content_hashes(self.path / entry.entry, self.path)
        self.artifacts[entry.target] = entry
        if default or self.document.get("default_target") is None:
            self.document["default_target"] = entry.target

    def save(self) -> Path:
        """Write ``manifest.json`` into the folder, atomically (the old manifest or the new
        one, never half of one; the exporter also stages the whole folder)."""
        self.document["artifacts"] = {t: a.as_dict() for t, a in self.artifacts.items()}
        self.document["toolkit_version"] = __version__
        path = self.path / MANIFEST_FILE
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.document, indent=2) + "\n")
        return path

    # --- reading ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> "Bundle":
        """Read a bundle's manifest (the type of every field this class reads checked), or
        raise a one-line :class:`AtbsnError` saying why not."""
        path = Path(path)
        manifest = path / MANIFEST_FILE
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is a file, not a bundle folder"
            raise AtbsnError(f"bundle {path} {what} (a bundle is the folder that "
                             "python -m atbsn_edge.export --out writes)")
        try:
            document = _read_manifest(manifest)
        except FileNotFoundError:
            raise AtbsnError(f"{path} is not a bundle: it has no {MANIFEST_FILE} (write one with "
                             "python -m atbsn_edge.export)") from None
        except _UnreadableManifest as exc:
            raise AtbsnError(f"{path}: {MANIFEST_FILE} is malformed or damaged ({exc}); "
                             "re-export the bundle") from None
        except (OSError, ValueError) as exc:
            raise AtbsnError(f"{path} is not a bundle: cannot read {MANIFEST_FILE} ({exc})") from None
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            if isinstance(document, dict) and {"target", "artifact"} <= set(document):
                raise AtbsnError(f"{path} was written by atbsn-edge 0.1 (manifest without a schema "
                                 "version, whose hash does not cover every file); re-export it")
            raise AtbsnError(f"{path}: {MANIFEST_FILE} is not an atbsn-edge bundle manifest")
        version = document.get("schema_version")
        if version != SCHEMA_VERSION:
            raise AtbsnError(f"{path}: bundle schema version {version!r}, this toolkit reads "
                             f"{SCHEMA_VERSION}; re-export it or install the matching atbsn-edge")
        problem = _schema_problem(document)
        if problem is not None:
            raise AtbsnError(f"{path}: {MANIFEST_FILE} is malformed ({problem}); re-export the "
                             "bundle")
        try:
            return cls(path, document)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise AtbsnError(f"{path}: {MANIFEST_FILE} is malformed ({exc!r}); re-export it") from None

    @property
    def network(self) -> dict[str, str]:
        """What the manifest records of the network (model, hole, stride, ...)."""
        return dict(self.document.get("network", {}))

    @property
    def default_target(self) -> str | None:
        """The target a bundle runs when none is named."""
        return self.document.get("default_target")

    @property
    def checkpoint(self) -> str:
        """The checkpoint the bundle was exported from, as given to the export."""
        return str(self.document.get("source", {}).get("checkpoint", ""))

    @property
    def checkpoint_sha256(self) -> str:
        """That checkpoint's SHA-256 at export time."""
        return str(self.document.get("source", {}).get("checkpoint_sha256", ""))

    @property
    def part(self) -> str | None:
        """Which network of a distillation checkpoint was exported (None: the default)."""
        return self.document.get("source", {}).get("part")

    @property
    def learned_int8(self) -> ArtifactEntry | None:
        """The onnx-int8 entry where its ranges were learned by quantization-aware training
        (a bundle of an int8-ready checkpoint, ``python -m atbsn_edge.qat``), else None. Such
        a bundle's float artifacts (its ``model-fp32.onnx``) are the graph its int8 targets
        were made from, with weights tuned for the int8 ranges: its reference outputs are the
        int8 simulation's, not theirs."""
        entry = self.artifacts.get("onnx-int8")
        if entry is None or entry.details.get("int8_ranges") != "learned":
            return None
        return entry

    @property
    def int8_keep_float_default(self) -> list[str]:
        """The layers an int8 export of this network keeps in float when not told otherwise."""
        return list(self.document.get("int8_keep_float_default", []))

    def artifact(self, target: str | None = None) -> ArtifactEntry:
        """The entry of ``target`` (default: the bundle's default target)."""
        target = target or self.default_target
        if target is None:
            raise AtbsnError(f"{self.path}: the manifest names no default target; give --target "
                             f"({', '.join(self.artifacts) or 'the bundle has no artifact'})")
        if target not in self.artifacts:
            raise AtbsnError(f"{self.path} has no {target} artifact; it has "
                             f"{', '.join(self.artifacts) or 'none'}")
        return self.artifacts[target]

    def entry_path(self, target: str | None = None) -> Path:
        """The verified entry file of ``target``'s artifact, ready for its runtime: every file
        present and matching the manifest's SHA-256, else a one-line error."""
        entry = self.artifact(target)
        if entry.status != READY:
            command = (entry.details.get("device_command")
                       or add_target_command(self.path, entry.target))
            here = [t for t, a in self.artifacts.items() if a.status == READY]
            raise AtbsnError(f"{self.path}: the {entry.target} artifact is not built yet; on the "
                             f"device run: {command}" + (f" (runnable here: --target "
                                                        f"{' / '.join(here)})" if here else ""))
        self.verify(entry)
        return self.path / entry.entry

    def _inside(self, name: str) -> Path:
        """``name`` (from the manifest) as a path inside the bundle, or a one-line refusal."""
        root = self.path.resolve()
        path = (self.path / name).resolve()
        if Path(name).is_absolute() or (path != root and root not in path.parents):
            raise AtbsnError(f"{self.path}: the manifest names {name!r}, which lies outside the "
                             "bundle; this manifest was not written by atbsn-edge")
        return self.path / name

    def verify(self, entry: ArtifactEntry) -> None:
        """Refuse an artifact whose files are missing, extra, or differ from the manifest."""
        fix = "re-export the bundle or copy it again"
        for name in [entry.entry, *entry.files]:
            self._inside(name)
        present = {p.relative_to(self.path).as_posix()
                   for p in artifact_files(self.path / entry.entry) if p.is_file()}
        for name in sorted(set(entry.files) - present):
            raise AtbsnError(f"{self.path}: {name} of the {entry.target} artifact is missing; {fix}")
        for name in sorted(present - set(entry.files)):
            raise AtbsnError(f"{self.path}: {name} is not in the manifest of the {entry.target} "
                             f"artifact (files were added or changed); {fix}")
        for name, digest in sorted(entry.files.items()):
            if file_sha256(self.path / name) != digest:
                raise AtbsnError(f"{self.path}: {name} does not match the manifest's SHA-256 "
                                 f"(modified, truncated or damaged); {fix}")

    def verify_all(self) -> None:
        """Refuse a bundle any file of which is missing, extra or differs from the manifest:
        every ready artifact's files and the reference data (before a bundle is copied)."""
        for entry in self.artifacts.values():
            if entry.status == READY:
                self.verify(entry)
        self._verify_reference(required=True)

    def _verify_reference(self, *, required: bool) -> None:
        """Refuse reference data that differs from the manifest's SHA-256 (``required``:
        and recorded data that is missing), and reference data that the manifest records no
        SHA-256 for: the exporter hashes every ``reference.npz`` it writes, so a file beside
        a manifest without the hash (empty or deleted) comes from an edited or damaged
        manifest, and would be trusted unchecked. A bundle without reference data (no hash,
        no file) passes; :func:`load_reference` says so where the data is needed."""
        recorded = self.document.get("reference", {}).get("sha256")
        path = self.path / REFERENCE_FILE
        if not recorded:
            if path.exists() or path.is_symlink():
                raise AtbsnError(f"{self.path}: {MANIFEST_FILE} records no SHA-256 for "
                                 f"{REFERENCE_FILE}, which is there (the manifest was edited "
                                 "or damaged, so the reference data cannot be trusted); "
                                 "re-export the bundle or copy it again")
            return
        if not path.is_file():
            if required:
                raise AtbsnError(f"{self.path}: {REFERENCE_FILE} (the reference data) is "
                                 "missing; re-export the bundle or copy it again")
            return  # load_reference says so
        if file_sha256(path) != recorded:
            raise AtbsnError(f"{path} does not match the manifest's SHA-256 (modified or "
                             "damaged); re-export the bundle or copy it again")

    def reference(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(inputs, PyTorch outputs, names) of the reference data, hash-checked."""
        self._verify_reference(required=False)
        return load_reference(self.path)

"""A saved ``.mlpackage`` read from disk: manifest, ``Model`` protobuf, weights, metadata.

Layout (what ``MLModel.save`` writes)::

    model.mlpackage/
      Manifest.json                               items, and which one is the root model
      Data/com.apple.CoreML/model.mlmodel         the Model protobuf (an ML program)
      Data/com.apple.CoreML/weights/weight.bin    the program's weight blobs

The protobuf is parsed with coremltools' generated classes (``coremltools.proto``) and the
program loaded with coremltools' loader of saved programs
(``coremltools.converters.mil.frontend.milproto.load``), which reads every ``const`` from the
protobuf or from ``weight.bin`` at its recorded offset (``BlobReader``). Nothing here needs
macOS: ``coremltools.libcoremlpython`` (the Core ML runtime bindings) is not used.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AtbsnError, require
from ..shared_setting import SharedOverride

log = logging.getLogger(__name__)

MANIFEST = "Manifest.json"
DATA = "Data"


# the coremltools logger at ERROR while it is imported; threads importing at once share it,
# and the last one puts the application's level back
_COREMLTOOLS_QUIET = SharedOverride(lambda: logging.getLogger("coremltools").level,
                                    lambda level: logging.getLogger("coremltools").setLevel(level),
                                    logging.ERROR)


def quiet_coremltools() -> Any:
    """Import coremltools without its Linux start-up noise (missing macOS bindings, version
    notices about scikit-learn and untested torch versions, logged at import). Only the
    import is quieted: what coremltools says later (about a model it converts) is kept. Every
    import of coremltools in this project goes through here, so that the first one, wherever
    it happens, is the quiet one."""
    with _COREMLTOOLS_QUIET.applied(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return require("coremltools", "coreml")



@dataclass(frozen=True)
class TensorDescription:
    """One input or output of the model: name, static shape and Core ML array dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str          # FLOAT32, FLOAT16, ...


@dataclass
class SavedPackage:
    """The files of a saved package and its parsed ``Model`` protobuf."""

    path: Path
    model_file: Path
    weights_dir: Path
    spec: Any                       # coremltools.proto.Model_pb2.Model

    @property
    def specification_version(self) -> int:
        """The Core ML specification version of the ``Model`` protobuf."""
        return int(self.spec.specificationVersion)

    @property
    def user_defined_metadata(self) -> dict[str, str]:
        """The model's user-defined metadata (where the export writes atbsn-edge's)."""
        return dict(self.spec.description.metadata.userDefined)

    @property
    def inputs(self) -> list[TensorDescription]:
        """The model's inputs, as its description declares them."""
        return [_describe(f) for f in self.spec.description.input]

    @property
    def outputs(self) -> list[TensorDescription]:
        """The model's outputs, as its description declares them."""
        return [_describe(f) for f in self.spec.description.output]

    def program(self) -> Any:
        """The ML program as a pymil ``Program`` (consts with their values from the protobuf
        and ``weight.bin``), loaded by coremltools' saved-program loader."""
        quiet_coremltools()
        from coremltools.converters.mil.frontend.milproto.load import load

        try:
            return load(self.spec, self.specification_version,
                        file_weights_dir=str(self.weights_dir))
        except Exception as exc:  # damaged weight file, foreign program
            raise AtbsnError(f"cannot load the ML program of {self.path}: "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _describe(feature: Any) -> TensorDescription:
    array = feature.type.multiArrayType
    from coremltools.proto import FeatureTypes_pb2

    dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
    return TensorDescription(feature.name, tuple(int(d) for d in array.shape), dtype)


def read_package(path: str | os.PathLike) -> SavedPackage:
    """Read a saved ``.mlpackage`` folder, or raise a one-line :class:`AtbsnError`."""
    quiet_coremltools()
    from coremltools.proto import Model_pb2

    path = Path(path)
    if not path.is_dir():
        raise AtbsnError(f"Core ML package {path} does not exist (an .mlpackage is a folder)")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        items = manifest["itemInfoEntries"]
        root = items[manifest["rootModelIdentifier"]]
        model_file = path / DATA / root["path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AtbsnError(f"{path}: not a readable .mlpackage ({MANIFEST}: {exc!r})") from None
    weights = [path / DATA / item["path"] for item in items.values()
               if item.get("name") == "weights"]
    weights_dir = weights[0] if weights else model_file.parent / "weights"
    try:
        spec = Model_pb2.Model.FromString(model_file.read_bytes())
    except OSError as exc:
        raise AtbsnError(f"{path}: cannot read {model_file.name} ({exc})") from None
    except Exception as exc:  # protobuf DecodeError
        raise AtbsnError(f"{path}: {model_file.name} is not a Core ML model protobuf "
                         f"({type(exc).__name__}); re-export it") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise AtbsnError(f"{path} holds a {spec.WhichOneof('Type')} model, not an ML program; "
                         "atbsn-edge exports (and evaluates) ML programs only")
    return SavedPackage(path, model_file, weights_dir, spec)

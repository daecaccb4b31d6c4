"""One export run over a staged bundle folder: what the torch-free converters receive.

Every converter is ``convert(job) -> ArtifactEntry``: it reads the bundle's ONNX (the fp32
graph, or the graph of another target it asks for with :meth:`ConversionJob.ensure`) and
writes its artifact into ``job.folder``. The same converters run after a checkpoint export on
a workstation and on a device from an existing bundle (``export --from-bundle``).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..bundle import READY, ArtifactEntry, ArtifactMetadata, Bundle
from ..errors import AtbsnError

log = logging.getLogger(__name__)


@dataclass
class Int8Request:
    """How int8 targets calibrate. ``explicit``: the user gave calibration flags, so an int8
    graph already in the bundle is reused only when it was made the same way."""

    sources: Sequence[str | Path]
    crops: int = 64
    max_images: int = 64
    method: str = "max"
    mode: str = "random"
    seed: int = 0
    keep_float: Sequence[str] | None = None     # None: the architecture's measured default
    quantizer: str = "nncf"
    explicit: bool = False
    _calibration: Any = field(default=None, repr=False)

    def key(self, keep_float: Sequence[str]) -> dict[str, Any]:
        """What identifies a calibration (recorded with every int8 artifact)."""
        return {"sources": [str(s) for s in self.sources], "crops": self.crops,
                "max_images": self.max_images, "method": self.method, "mode": self.mode,
                "seed": self.seed, "keep_float": list(keep_float)}


@dataclass
class ConversionJob:
    """A staged bundle and the options of this run."""

    bundle: Bundle
    int8: Int8Request | None = None
    engine: dict[str, Any] = field(default_factory=dict)   # TensorRT builder options
    tile: int = 512                                         # calibration tile of dynamic graphs
    destination: Path | None = None                         # where the bundle lands (for messages)
    denoiser: Any = None    # the loaded checkpoint, for converters from the torch network
                            # (Core ML); None when adding a target from a bundle

    def require_denoiser(self, target: str) -> Any:
        """The PyTorch network, or a one-line error for a --from-bundle run."""
        if self.denoiser is None:
            raise AtbsnError(f"{target} converts from the PyTorch network, which a bundle does "
                             "not hold: export it with --checkpoint")
        return self.denoiser

    @property
    def folder(self) -> Path:
        """The staged bundle folder, where converters write their artifacts."""
        return self.bundle.path

    @property
    def network(self) -> ArtifactMetadata:
        """The network's metadata as the bundle's manifest records it, parsed."""
        return ArtifactMetadata.parse(self.bundle.network, self.folder / "manifest.json")

    def metadata(self, precision: str, /, **extra: Any) -> dict[str, str]:
        """The network's metadata for an artifact of ``precision`` (strings), with ``extra``."""
        meta = dict(self.bundle.network)
        meta.update({k: str(v) for k, v in extra.items()}, precision=precision)
        return meta

    def keep_float(self) -> list[str]:
        """The int8 keep-float patterns: the user's, else the bundle's recorded default."""
        request = self.int8
        if request is not None and request.keep_float is not None:
            return list(request.keep_float)
        return self.bundle.int8_keep_float_default

    def calibration(self) -> Any:
        """The calibration crops of the tile shape (cut once per run)."""
        from ..calibration import collect_crops

        if self.int8 is None:
            raise AtbsnError("this target needs int8 calibration data; give --calib-data")
        if self.int8._calibration is None:
            tile = self.network.tile or (self.tile, self.tile)
            self.int8._calibration = collect_crops(
                self.int8.sources, tile[0], tile[1], max_images=self.int8.max_images,
                crops=self.int8.crops, mode=self.int8.mode, seed=self.int8.seed)
        return self.int8._calibration

    def learned_int8(self) -> ArtifactEntry | None:
        """The bundle's int8 graph with ranges learned by quantization-aware training
        (``python -m atbsn_edge.qat``), which every int8 target then starts from; None when
        int8 targets calibrate. Calibration flags given for such a bundle are an error."""
        entry = self.bundle.learned_int8
        if entry is None:
            return None
        if self.int8 is not None and self.int8.explicit:
            raise AtbsnError("this model's int8 ranges were learned by quantization-aware "
                             "training (python -m atbsn_edge.qat), so calibration flags "
                             "(--calib-*, --int8-keep-float, --int8-quantizer) do not apply: "
                             "drop them, or export "
                             "the float checkpoint it was fine-tuned from")
        return entry

    def ensure(self, target: str) -> ArtifactEntry:
        """``target``'s artifact in this bundle: the one already there when it is ready,
        verified and (for int8) calibrated as this run asks, else built now."""
        existing = self.bundle.artifacts.get(target)
        if existing is not None and existing.status == READY and self._reusable(existing):
            self.bundle.verify(existing)
            log.info("using the bundle's %s (%s)", target, existing.entry)
            return existing
        entry = self.convert(target)
        self.bundle.add_artifact(entry, default=False)
        return entry

    def convert(self, target: str) -> ArtifactEntry:
        """Run ``target``'s converter (from the target table) on this bundle."""
        from .targets import get_target

        row = get_target(target)
        if row.converter is None:
            raise AtbsnError(f"target {target} has no converter yet")
        module, function = row.converter.split(":")
        return getattr(importlib.import_module(module), function)(self)

    def _reusable(self, entry: ArtifactEntry) -> bool:
        if entry.details.get("int8_ranges") == "learned":
            return self.learned_int8() is not None  # the learned graph, or its refusal
        if entry.precision != "int8" or self.int8 is None or not self.int8.explicit:
            return True
        return entry.details.get("int8_request") == self.int8.key(self.keep_float())

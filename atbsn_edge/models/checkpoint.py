"""Checkpoint loading (the authors' layouts and our own) and saving (our own, atomically).

Layouts read:
- a plain ``torch.save(state_dict)`` of AT-BSN or student A/B/C, keys optionally prefixed
  ``module.`` (DataParallel) and optionally wrapped in a dict (``state_dict``, ``model_weight``...);
- the authors' distillation checkpoint: ``nbsn.*`` (student C) and ``bsn.*`` (AT-BSN);
- this project's format: ``{"format": "atbsn-edge-checkpoint", "architecture", "state_dict",
  "metadata", ["training"]}``.
"""
from __future__ import annotations

import logging
import pickle
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..atomic import atomic_path
from ..bundle.manifest import MANIFEST_FILE
from ..errors import AtbsnError, CheckpointError, MissingPartError
from ..hashing import file_sha256
from .atbsn import DEFAULT_INFER_HOLE, DEFAULT_TRAIN_HOLE
from .denoiser import Denoiser
from .registry import ARCHITECTURES, Architecture, architecture_of, detect_architecture, get_architecture

log = logging.getLogger(__name__)

FORMAT_NAME = "atbsn-edge-checkpoint"
FORMAT_VERSION = 1
PARTS = ("student", "teacher")
_CONTAINER_KEYS = ("state_dict", "model_weight", "model", "params", "net", "network", "denoiser")
_DISTILL_PREFIXES = {"student": "nbsn.", "teacher": "bsn."}


def read_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with one-line errors for missing or damaged files and
    for files holding pickled code (refused, never loaded)."""
    path = Path(path)
    if path.is_dir():
        hint = (" (a bundle: give it as --artifact, or to export as --from-bundle)"
                if (path / MANIFEST_FILE).is_file() else "")
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc) and _looks_like_torch_file(path):
            raise CheckpointError(_refused_objects(path, exc)) from None
        raise _damaged(path, exc) from None
    except Exception as exc:  # torch raises many types for damaged files
        raise _damaged(path, exc) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict of "
                              "tensors; save a state_dict (torch.save(model.state_dict(), path))")
    return obj


def _looks_like_torch_file(path: Path) -> bool:
    """Whether ``path`` starts as ``torch.save`` writes: a zip archive, or (the legacy
    format) a pickle's protocol opcode. Random bytes that the safe unpickler stops on are a
    damaged or foreign file, not a checkpoint holding code."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _damaged(path: Path, exc: Exception) -> CheckpointError:
    """The one-line error for a file ``torch.load`` cannot parse. PyTorch's safe unpickler
    wraps its reason in advice to load the file unsafely: only the reason is kept."""
    text = str(exc).strip()
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported (?:global|operand)[^\n.]*", text)
        text = found.group(0).strip() if found else "not a pickle of tensors"
    reason = text.splitlines()[0] if text else type(exc).__name__
    return CheckpointError(f"cannot read checkpoint {path}: damaged, truncated or not a "
                           f"PyTorch file ({reason[:200]})")


def _refused_objects(path: Path, exc: Exception) -> str:
    """The one-line refusal of a pickle that holds more than tensors. PyTorch's own text
    ends on advice to load it unsafely; only the name of the offending object is kept."""
    found = re.search(r"Unsupported (?:global|operand)[^.]*?(?= was not|\.|$)", str(exc),
                      re.MULTILINE)
    culprit = found.group(0).replace("GLOBAL ", "") if found else ""
    culprit = re.sub(r"\S*weights_only\S*", "", culprit)[:120].strip()
    detail = f" ({culprit})" if culprit else ""
    return (f"checkpoint {path} contains code objects: pickled Python objects other than "
            f"tensors{detail}; it is refused for safety, because loading it could run "
            "arbitrary code. Re-save only the tensors where it was made, e.g. "
            "torch.save(model.state_dict(), path), or use a checkpoint in a supported layout "
            "from a trusted source")


def _is_state_dict(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Descend through common training-script containers down to a dict of tensors."""
    seen = 0
    while not _is_state_dict(obj) and seen < 4:
        seen += 1
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            dicts = [v for v in obj.values() if isinstance(v, dict)]
            inner = dicts[0] if len(dicts) == 1 else None
        if inner is None:
            break
        obj = inner
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("no tensors found in the checkpoint (looked inside "
                              f"{', '.join(_CONTAINER_KEYS)}); top-level keys: {list(obj)[:8]}")
    return tensors


def _strip_module(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {re.sub(r"(^|\.)module\.", r"\1", k): v for k, v in state.items()}


def check_part(part: str | None) -> str | None:
    """``part`` if it is one of :data:`PARTS` or None, else :class:`CheckpointError`: checked
    for every checkpoint, not only distillation ones, so that a mistyped part never loads."""
    if part is not None and (not isinstance(part, str) or part not in PARTS):
        raise CheckpointError(f"part must be one of {', '.join(PARTS)} (or None), got {part!r}")
    return part


def _select_part(state: dict[str, torch.Tensor], part: str | None) -> tuple[dict, str | None]:
    """For the distillation layout, the keys of the chosen part without their prefix."""
    check_part(part)
    if not any(k.startswith(p) for p in _DISTILL_PREFIXES.values() for k in state):
        return state, None
    chosen = part or "student"
    prefix = _DISTILL_PREFIXES[chosen]
    selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not selected:
        raise CheckpointError(f"this distillation checkpoint has no {chosen} ({prefix}*) keys")
    return selected, chosen


def _layout_report(state: Mapping[str, torch.Tensor]) -> str:
    lines = []
    for arch in ARCHITECTURES.values():
        missing, unexpected, wrong = arch.mismatch(state)
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            detail.append(f"{len(wrong)} with wrong shapes (e.g. {', '.join(wrong[:3])})")
        lines.append(f"{arch.name}: " + "; ".join(detail))
    return " | ".join(lines)


def _build(arch: Architecture, state: Mapping[str, torch.Tensor], path: Path) -> nn.Module:
    missing, unexpected, wrong = arch.mismatch(state)
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path} says it is {arch.name} but its keys do not match: "
                              f"{_layout_report({**state})}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path} has NaN or infinite weights in {', '.join(bad[:3])}; "
                              "the file is damaged or training diverged")
    network = arch.build()
    network.load_state_dict({k: v.float() for k, v in state.items()})
    return network.eval()


def _check_single_part(path: Path, arch: Architecture, part: str | None) -> None:
    """Refuse a ``part`` that a checkpoint of one network does not hold: the teacher of a
    student, the student of an AT-BSN (it would load the other network unasked)."""
    if part == "teacher" and arch.name != "atbsn" or part == "student" and arch.name == "atbsn":
        raise MissingPartError(f"{path} holds only {arch.name}; it has no {part} part (a "
                               "distillation checkpoint has both): leave the part out to load "
                               f"its {arch.name}", arch.name)


def load_checkpoint(path: str | Path, part: str | None = None) -> Denoiser:
    """Load any supported checkpoint as an eval-mode :class:`Denoiser`.

    ``part`` selects the network of a distillation checkpoint: ``"student"`` (None: the
    default) or ``"teacher"`` (its AT-BSN). It is checked for every checkpoint: one that holds
    a single network refuses the part it does not have (the teacher of a student, the student
    of an AT-BSN). The architecture is detected from the keys.
    """
    check_part(part)
    path = Path(path)
    obj = read_checkpoint_file(path)
    if obj.get("format") == FORMAT_NAME:
        arch = get_architecture(str(obj.get("architecture")))
        metadata = dict(obj.get("metadata") or {})
        _check_single_part(path, arch, part)
        state = _unwrap(obj["state_dict"])
        network = _build(arch, state, path)
    else:
        state, chosen = _select_part(_strip_module(_unwrap(obj)), part)
        arch = detect_architecture(state)
        if arch is None:
            raise CheckpointError(f"{path} matches no known layout (tried the authors' AT-BSN, "
                                  f"students A/B/C, distillation nbsn/bsn and {FORMAT_NAME}): "
                                  f"{_layout_report(state)}")
        if chosen is None:
            _check_single_part(path, arch, part)
        network = _build(arch, state, path)
        metadata = {"source": "authors-layout" + (f" ({chosen})" if chosen else "")}
        if arch.tunable_hole:
            metadata.update(train_hole=DEFAULT_TRAIN_HOLE, infer_hole=DEFAULT_INFER_HOLE)
    metadata.setdefault("value_range", [0.0, 255.0])
    metadata["checkpoint"] = str(path)
    metadata["checkpoint_sha256"] = file_sha256(path)
    if arch.tunable_hole:
        network.hole_size = int(metadata.get("infer_hole", DEFAULT_INFER_HOLE))
    if metadata.get("int8_ranges"):  # an int8-ready checkpoint (python -m atbsn_edge.qat)
        network = _int8_simulation(network, metadata["int8_ranges"], path)
    log.debug("loaded %s from %s", arch.name, path)
    return Denoiser(network, arch, metadata).eval()


def _int8_simulation(network: nn.Module, ranges: Mapping[str, Any], path: Path) -> nn.Module:
    """The network of an int8-ready checkpoint as it computes: fake int8 at every point of its
    Q/DQ export, with the learned ranges (its float weights alone were tuned for int8)."""
    from ..quantization.qat_network import quantization_aware

    try:
        return quantization_aware(network, ranges).eval()
    except ValueError as exc:
        raise CheckpointError(f"{path}: its int8 ranges do not fit its network ({exc}); "
                              "re-run python -m atbsn_edge.qat on the float checkpoint") from None


def float_network(network: nn.Module) -> nn.Module:
    """The float network inside an int8 simulation (or ``network`` itself)."""
    view = getattr(network, "checkpoint_view", None)
    return view()[0] if view is not None else network


def checkpoint_payload(network: nn.Module, metadata: Mapping[str, Any] | None = None,
                       training: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dict this project saves: tensors, architecture and metadata (and training state)."""
    if isinstance(network, Denoiser):
        network = network.network
    view = getattr(network, "checkpoint_view", None)  # e.g. quantization-aware training's wrapper
    extra: dict[str, Any] = {}
    if view is not None:
        network, extra = view()
    arch = architecture_of(network)
    meta = {"value_range": [0.0, 255.0], **dict(metadata or {}), **extra}
    if arch.tunable_hole:
        meta.setdefault("train_hole", DEFAULT_TRAIN_HOLE)
        meta.setdefault("infer_hole", DEFAULT_INFER_HOLE)
    payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
               "architecture": arch.name, "metadata": meta,
               "state_dict": {k: v.detach().float().cpu().contiguous()
                              for k, v in network.state_dict().items()}}
    if training is not None:
        payload["training"] = _to_cpu(dict(training))
    return payload


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor moved to the CPU (optimizer state saved on a GPU loads anywhere)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def save_checkpoint(path: str | Path, network: nn.Module, metadata: Mapping[str, Any] | None = None,
                    training: Mapping[str, Any] | None = None) -> Path:
    """Write ``network`` in this project's format, atomically (a crash leaves the old file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(checkpoint_payload(network, metadata, training), tmp)
        except RuntimeError as exc:  # PyTorch's zip writer reports a short write (disk full) so
            if not any(sign in str(exc) for sign in ("unexpected pos", "PytorchStreamWriter",
                                                     "inline_container")):
                raise
            free = shutil.disk_usage(tmp.parent).free / 1e6
            first = str(exc).splitlines()[0][:120]
            raise AtbsnError(f"cannot write the checkpoint {path} ({first}): {free:.0f} MB "
                             "free on its disk; free space or give another output path (a "
                             "checkpoint written before is intact)") from None
    return path

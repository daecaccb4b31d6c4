"""The PyTorch reference runtime: a loaded checkpoint run eagerly (CPU or CUDA)."""
from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AtbsnError, require
from .base import InputSpec, Runtime, RuntimeInfo

if TYPE_CHECKING:  # PyTorch only for the type checker: this module imports without it
    from ..models.denoiser import Denoiser

log = logging.getLogger(__name__)

#: the PyTorch devices this toolkit runs on (group 1: the GPU index of ``cuda:N``), and how
#: an error names them; ``--device`` (``arguments.torch_device``) takes the same
DEVICE_PATTERN = re.compile(r"cpu|cuda(?::(\d+))?")
DEVICES_TEXT = "cpu, cuda or cuda:N (N a GPU index)"


class TorchRuntime(Runtime):
    """Runs a :class:`~atbsn_edge.models.Denoiser` on fixed- or any-shape batches."""

    backend = "torch"

    def __init__(self, denoiser: Denoiser, *, hole_size: int | None = None, device: str = "cpu",
                 tile: tuple[int, int] | None = None, batch: int | None = None) -> None:
        super().__init__()
        torch = require("torch", "torch")
        match = DEVICE_PATTERN.fullmatch(device) if isinstance(device, str) else None
        if match is None:
            raise ValueError(f"device {device!r}: valid are {DEVICES_TEXT}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise AtbsnError("--device cuda was given but PyTorch sees no CUDA GPU; "
                             "use --device cpu or install a CUDA build of PyTorch")
        if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
            raise AtbsnError(f"--device {device}: PyTorch sees {torch.cuda.device_count()} CUDA "
                             f"GPU(s), numbered from 0")
        self._torch = torch
        self.device = torch.device(device)
        self.denoiser = denoiser
        self.hole_size = denoiser.resolve_hole(hole_size)
        self.module = denoiser.core(self.hole_size).to(self.device).eval()
        th, tw = tile if tile else (None, None)
        self._spec = InputSpec(batch=batch, height=th, width=tw, stride=denoiser.stride)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, part: str | None = None,
                        **kwargs: Any) -> "TorchRuntime":
        """Load a checkpoint (any supported layout) and wrap it."""
        from ..models.checkpoint import load_checkpoint

        return cls(load_checkpoint(path, part=part), **kwargs)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        arch = self.denoiser.architecture
        # an int8-ready checkpoint (python -m atbsn_edge.qat) runs as its int8 simulation
        precision = ("int8 simulated in fp32" if self.denoiser.metadata.get("int8_ranges")
                     else "fp32")
        return RuntimeInfo(backend=self.backend, model=arch.name, precision=precision,
                           hole_size=self.hole_size, default_overlap=arch.default_overlap,
                           device=str(self.device), metadata=dict(self.denoiser.metadata))

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            return self.module(x).float().cpu().numpy()

"""atbsn-edge: self-supervised AT-BSN denoisers from checkpoint to edge device."""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # PyTorch only for the type checker: the package imports without it
    from .models.denoiser import Denoiser

__version__ = "0.1.0"

# a library's loggers reach no handler until the application configures logging (the CLIs
# do): without this, Python's last-resort handler printed the toolkit's warnings to stderr
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__", "load_checkpoint"]


def load_checkpoint(path: str | os.PathLike, part: str | None = None) -> "Denoiser":
    """Load an AT-BSN or student checkpoint as an eval-mode ``torch.nn.Module``.

    See :func:`atbsn_edge.models.checkpoint.load_checkpoint`; imported lazily so that the
    torch-free parts of the toolkit (runtimes, parity) work where PyTorch is not installed.
    """
    from .models.checkpoint import load_checkpoint as _load

    return _load(path, part=part)

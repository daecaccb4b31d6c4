"""atbsn-edge: self-supervised AT-BSN denoisers from checkpoint to edge device."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_checkpoint"]


def load_checkpoint(path, part=None):
    """Load an AT-BSN or student checkpoint as an eval-mode ``torch.nn.Module``.

    See :func:`atbsn_edge.models.checkpoint.load_checkpoint`; imported lazily so that the
    torch-free parts of the toolkit (runtimes, parity) work where PyTorch is not installed.
    """
    from .models.checkpoint import load_checkpoint as _load

    return _load(path, part=part)

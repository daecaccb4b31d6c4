"""Where calibration results are cached: one file per (model, data, method)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """``$ATBSN_EDGE_CACHE`` or ``$XDG_CACHE_HOME/atbsn-edge`` (default ``~/.cache``)."""
    root = os.environ.get("ATBSN_EDGE_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "atbsn-edge"


def calibration_cache_path(model_sha256: str, data_fingerprint: str, method: str) -> Path:
    """The cache file for calibrating this fp32 model on this data with this method."""
    key = hashlib.sha256(f"{model_sha256}:{data_fingerprint}:{method}".encode()).hexdigest()[:32]
    return cache_dir() / "calibration" / f"{key}.json"

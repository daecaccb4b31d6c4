"""Where calibration results are cached: one file per (model, data, method)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence


def cache_dir() -> Path:
    """``$ATBSN_EDGE_CACHE`` or ``$XDG_CACHE_HOME/atbsn-edge`` (default ``~/.cache``)."""
    root = os.environ.get("ATBSN_EDGE_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "atbsn-edge"


def calibration_cache_path(model_sha256: str, data_fingerprint: str, method: str,
                           keep_float: Sequence[str] = ()) -> Path:
    """The cache file for calibrating this fp32 model on this data with this method, with the
    layers matching ``keep_float`` left float (what gets calibrated may differ)."""
    method += "".join(f"|float:{p}" for p in keep_float)
    key = hashlib.sha256(f"{model_sha256}:{data_fingerprint}:{method}".encode()).hexdigest()[:32]
    return cache_dir() / "calibration" / f"{key}.json"

"""Reports as strict JSON: JSON has no NaN or infinity, numpy scalars and paths are not JSON."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .atomic import atomic_path


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) replaced by None, numpy
    scalars as Python numbers and paths as strings."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalars
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, report: Any) -> None:
    """Write ``report`` as indented strict JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(finite_or_none(report), indent=2, allow_nan=False,
                                  default=str) + "\n")

"""Files shipped with the package: the demo model(s) and the example image."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
DEMO_CHECKPOINT = ASSETS / "demo_atbsn.pt"
EXAMPLE_IMAGE = ASSETS / "example_noisy.png"


def default_checkpoint() -> Path | None:
    """The bundled demo checkpoint, or None where this install has none."""
    return DEMO_CHECKPOINT if DEMO_CHECKPOINT.is_file() else None

"""Files shipped with the package: the demo models and the example image (see MODEL_CARD.md)."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
DEMO_STUDENT_C = ASSETS / "demo_student_c.pt"
# the same student fine-tuned for int8 (python -m atbsn_edge.qat): learned ranges, every layer
# int8; what the int8 targets export when no --checkpoint is given (MODEL_CARD.md)
DEMO_STUDENT_C_INT8 = ASSETS / "demo_student_c_int8.pt"
DEMO_ATBSN = ASSETS / "demo_atbsn.pt"
EXAMPLE_IMAGE = ASSETS / "example_noisy.png"
# Three 512 x 512 real noisy crops (Darmstadt Noise Dataset): default int8 calibration and
# bundle reference data, so that the default 512 tile fits.
CALIBRATION_IMAGES = ASSETS / "calibration"


def default_checkpoint() -> Path | None:
    """The bundled demo model (student C, else AT-BSN), or None where none is installed."""
    for path in (DEMO_STUDENT_C, DEMO_ATBSN):
        if path.is_file():
            return path
    return None


def default_int8_checkpoint() -> Path | None:
    """The bundled int8-ready student (every layer int8, ranges learned by quantization-aware
    training), which int8 exports of the default model start from; None where it or the demo
    student it was fine-tuned from is not installed."""
    if default_checkpoint() == DEMO_STUDENT_C and DEMO_STUDENT_C_INT8.is_file():
        return DEMO_STUDENT_C_INT8
    return None

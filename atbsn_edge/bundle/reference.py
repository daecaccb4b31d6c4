"""A bundle's reference data: real noisy crops of the artifact's tile shape and the PyTorch
outputs for them, so that parity runs on a device with no PyTorch installed."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import AtbsnError

REFERENCE_FILE = "reference.npz"


def save_reference(folder: Path, inputs: np.ndarray, outputs: np.ndarray, names: list[str]) -> Path:
    """Write ``reference.npz`` (float32 inputs and outputs, crop names) into a bundle folder,
    atomically."""
    path = Path(folder) / REFERENCE_FILE
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:   # a file object: no ".npz" appended
        np.savez_compressed(fh, inputs=inputs, outputs=outputs, names=np.array(names))
    return path


def load_reference(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs, PyTorch outputs and names from a bundle's ``reference.npz``; a missing or
    damaged file is one line that says how to get it back."""
    path = Path(folder) / REFERENCE_FILE
    fix = "re-export the bundle (python -m atbsn_edge.export) or copy it again"
    try:
        with np.load(path, allow_pickle=False) as data:
            inputs, outputs = data["inputs"], data["outputs"]
            names = [str(n) for n in data["names"]]
    except FileNotFoundError:
        raise AtbsnError(f"{folder}: the bundle has no {REFERENCE_FILE}; {fix}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise AtbsnError(f"{path} is damaged ({type(exc).__name__}: {str(exc)[:120]}); {fix}") from None
    if (inputs.ndim != 4 or inputs.shape != outputs.shape or len(names) != len(inputs)
            or inputs.dtype != np.float32 or outputs.dtype != np.float32):
        raise AtbsnError(f"{path}: inputs {inputs.shape} {inputs.dtype}, outputs {outputs.shape} "
                         f"{outputs.dtype} and {len(names)} names do not match; {fix}")
    # PyTorch's outputs of real crops are finite: a NaN or infinity there would make every
    # metric NaN (a comparison with nothing), one in the inputs a meaningless test
    for what, array in (("PyTorch outputs", outputs), ("inputs", inputs)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise AtbsnError(f"{path}: its {what} hold {bad} NaN or infinite values (reference "
                             f"data must be finite; the file was modified or damaged); {fix}")
    return inputs, outputs, names

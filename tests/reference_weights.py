"""Rebuild the reference checkpoints of ``tests/data/reference`` from their weight formula."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parent / "data" / "reference"


def reference_state_dict(layout: str) -> dict:
    """Weights of ``layout`` as documented in the reference README (sin formula, float32)."""
    import torch

    keys = json.loads((REFERENCE / "state_dict_keys.json").read_text())[layout]
    state = {}
    for k, (name, shape) in enumerate(keys):
        i = np.arange(int(np.prod(shape)), dtype=np.float64)
        scale = 0.05 if name.endswith("bias") else 1.0 / np.sqrt(np.prod(shape[1:]))
        values = (scale * np.sin(0.7 * i + 1.3 * k)).astype(np.float32).reshape(shape)
        state[name] = torch.from_numpy(values)
    return state


def golden() -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "golden_outputs.npz") as data:
        return {k: data[k] for k in data.files}

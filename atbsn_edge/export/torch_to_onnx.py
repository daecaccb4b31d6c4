"""PyTorch -> ONNX: a static (or dynamic H/W) graph of the bare network, checked, simplified,
with the toolkit's metadata in ``metadata_props``.

Opset 17: the newest opset that TensorRT 8.6 / 10.x (JetPack 6 ships 10.3), ONNX Runtime and
OpenVINO all take, and every operator these networks use (Conv, LeakyRelu, MaxPool, Pad,
Slice, Resize, Concat, Transpose, Split) exists there unchanged since opset 13.
The TorchScript-based exporter is used (``dynamo=False``): it needs no onnxscript and produces
a plain graph for these convolution-only networks.
"""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic import atomic_path
from ..bundle.metadata import write_onnx_metadata
from ..errors import AtbsnError, require
from ..metrics import relative_l2

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def simplify(model: Any) -> tuple[Any, str]:
    """Simplify with onnxslim when it is installed and works; returns (model, what was done).

    onnxslim is pure Python and installs everywhere; onnxsim needs a compiler on some
    platforms. A failed simplification keeps the original graph (logged), never fails export.
    """
    try:
        import onnxslim
    except ImportError:
        return model, "not simplified (onnxslim not installed)"
    try:
        return onnxslim.slim(model), f"onnxslim {getattr(onnxslim, '__version__', '')}".strip()
    except Exception as exc:  # keep the exported graph; simplification is an optimisation
        log.warning("onnxslim failed (%s); keeping the unsimplified graph", exc)
        return model, f"not simplified (onnxslim failed: {exc})"


def export_onnx(module: Any, path: str | Path, *, height: int, width: int, batch: int = 1,
                dynamic: bool = False, metadata: Mapping[str, Any] | None = None,
                check_sizes: tuple[tuple[int, int], ...] = ()) -> dict[str, str]:
    """Export ``module`` (one NCHW float32 input) to ``path`` atomically; returns its metadata.

    ``dynamic`` makes batch, height and width symbolic; the graph is then run at every size in
    ``check_sizes`` through ONNX Runtime (when installed) against PyTorch.
    """
    torch = require("torch", "torch")
    onnx = require("onnx", "onnx")
    module = module.eval()
    example = torch.rand(batch, 3, height, width) * 255
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation and constant-folding notices
        torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    model, simplified = simplify(model)
    meta = {"opset": OPSET, "simplifier": simplified, "dynamic": str(dynamic).lower(),
            "tile": "dynamic" if dynamic else f"{height}x{width}",
            "batch": "dynamic" if dynamic else batch, **dict(metadata or {})}
    write_onnx_metadata(model, meta)
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    for h, w in check_sizes:
        _check_against_torch(module, path, torch, batch, h, w)
    log.info("exported %s (opset %d, %s)", path.name, OPSET, simplified)
    return {k: str(v) for k, v in meta.items()}


def _check_against_torch(module: Any, path: Path, torch: Any, batch: int, h: int, w: int) -> None:
    """Run the ONNX graph at ``h`` x ``w`` in ONNX Runtime and compare with PyTorch."""
    ort = require("onnxruntime", "onnx")
    x = (np.random.default_rng(0).random((batch, 3, h, w)) * 255).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: x})[0]
    with torch.inference_mode():
        want = module(torch.from_numpy(x)).numpy()
    rel = relative_l2(got, want)
    if got.shape != want.shape or rel > 1e-4:
        raise AtbsnError(f"exported graph disagrees with PyTorch at {h}x{w}: shape {got.shape} "
                         f"vs {want.shape}, relative L2 error {rel:.2e}")

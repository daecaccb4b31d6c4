"""The no-reference report of ``adapt``: what a student does to a camera's frames, without a
clean image (the residual statistics of ``python -m atbsn_edge.evaluate`` without references,
plus a noise-level estimate of the input and of the output, :func:`noise_sigma`)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .metrics import LAGS, lag_key, residual_stats
from .models.denoiser import Denoiser

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(image: np.ndarray) -> float:
    """Immerkaer's (1996) noise standard deviation estimate, the mean over channels.

    ``sqrt(pi / 2) / 6 * mean |I * N|`` with ``N`` the 3 x 3 difference of two Laplacians:
    exact for white Gaussian noise on a smooth image; texture raises it, and spatially
    correlated (demosaiced, JPEG) noise reads lower than its true level. A relative measure:
    compare an image with its denoised version, not across cameras.
    """
    import cv2

    planes = image[:, :, None] if image.ndim == 2 else image
    h, w = planes.shape[:2]
    if min(h, w) < 3:
        raise ValueError(f"noise_sigma needs at least 3 x 3 pixels, got {h} x {w}")
    sigmas = []
    for c in range(planes.shape[2]):
        plane = np.ascontiguousarray(planes[:, :, c], dtype=np.float32)
        response = cv2.filter2D(plane, cv2.CV_32F, _IMMERKAER)[1:-1, 1:-1]
        sigmas.append(math.sqrt(math.pi / 2) * float(np.abs(response).mean(dtype=np.float64)) / 6)
    return float(np.mean(sigmas))


def report_crops(pictures: Sequence[tuple[str, np.ndarray]], count: int,
                 crop: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``count`` evenly spaced pictures, each its centre crop of at most ``crop`` x ``crop``."""
    if count <= 0 or not pictures:
        return []
    picks = np.unique(np.linspace(0, len(pictures) - 1, num=min(count, len(pictures))).astype(int))
    crops = []
    for index in picks:
        name, rgb = pictures[index]
        h, w = rgb.shape[:2]
        ch, cw = min(crop, h), min(crop, w)
        y, x = (h - ch) // 2, (w - cw) // 2
        crops.append((name, np.ascontiguousarray(rgb[y:y + ch, x:x + cw])))
    return crops


@torch.no_grad()
def run_denoiser(model: Denoiser, rgb: np.ndarray, device: torch.device) -> np.ndarray:
    """One whole H x W x 3 float32 image through ``model`` in float32, as H x W x 3 float32."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
    return model(x)[0].float().cpu().numpy().transpose(1, 2, 0)


def no_reference_report(model: Denoiser, crops: Sequence[tuple[str, np.ndarray]],
                        device: torch.device) -> dict:
    """Means over ``crops`` of: the input's and the output's :func:`noise_sigma`, the
    residual's standard deviation and its autocorrelation at the lags of
    :data:`~atbsn_edge.metrics.LAGS` (:func:`~atbsn_edge.metrics.residual_stats`)."""
    if not crops:
        return {}
    model = model.eval()
    rows = []
    for _, noisy in crops:
        denoised = run_denoiser(model, noisy, device)
        stats = residual_stats(noisy, denoised)
        rows.append({"input_sigma": noise_sigma(noisy),
                     "output_sigma": noise_sigma(np.clip(denoised, 0, 255)),
                     "residual_std": float(np.mean(stats.std)), "autocorr": stats.autocorr})
    keys = [lag_key(lag) for lag in LAGS]
    return {"frames": len(rows),
            "input_sigma": float(np.mean([r["input_sigma"] for r in rows])),
            "output_sigma": float(np.mean([r["output_sigma"] for r in rows])),
            "residual_std": float(np.mean([r["residual_std"] for r in rows])),
            "autocorr": {k: float(np.mean([r["autocorr"][k] for r in rows])) for k in keys}}


def report_table(rows: Sequence[tuple[str, dict]]) -> str:
    """Markdown table of :func:`no_reference_report` results, one row per ``(label, report)``."""
    keys = [lag_key(lag) for lag in LAGS]
    lines = ["| student | frames | noise σ̂ input | noise σ̂ output | residual std | "
             + " | ".join(f"residual ρ({k})" for k in keys) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(keys)]
    for label, rep in rows:
        if not rep:
            continue
        lines.append(f"| {label} | {rep['frames']} | {rep['input_sigma']:.3f} | "
                     f"{rep['output_sigma']:.3f} | {rep['residual_std']:.3f} | "
                     + " | ".join(f"{rep['autocorr'][k]:.3f}" for k in keys) + " |")
    return "\n".join(lines)

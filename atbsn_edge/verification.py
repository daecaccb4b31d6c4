"""Parity numbers between an artifact's output and PyTorch's, with per-precision thresholds.

Thresholds (outputs on the 0..255 scale):
- fp32: relative L2 <= 1e-5 and max abs <= 0.05. Two float32 implementations of the same
  graph differ by summation order only (~1e-6 relative); anything larger is a wrong graph.
- fp16: relative L2 <= 5e-3. fp16 (or bf16 on CPUs without fp16) carries 8-11 significant bits;
  measured about 1e-3 here. A wrong graph gives errors of order 1.
- bf16: where the backend computes a float artifact's layers in bf16 (OpenVINO's choice for
  `openvino-fp16` on CPUs with native bf16, or `--inference-precision bf16`): relative L2
  <= 2e-2 and the mean PSNR drop of int8 below. bf16 keeps 8 significant bits against fp16's
  11, so its rounding is 8x coarser: the bundled AT-BSN's openvino-fp16 bundle, run in bf16
  on an AMD EPYC, measured 5.3e-3 on two reference crops, over fp16's 5e-3. A wrong graph
  still gives errors of order 1.
- int8: relative L2 <= 3e-2 per image, and where clean references exist the artifact may lose
  at most 0.15 dB of mean PSNR against clean compared with PyTorch, over the images checked
  (the quality budget of quantization, stated like every PSNR here: as a mean over a set; one
  image's drop depends on its content and is reported, not judged).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from math import nan

import numpy as np

from .jsonsafe import finite_or_none
from .metrics import l2_norm, psnr


@dataclass(frozen=True)
class Thresholds:
    """What one precision is held to: relative L2 and max abs per image, and the mean PSNR
    drop against clean over the set, in dB (None: not checked)."""

    rel_l2: float
    max_abs: float | None = None
    max_psnr_drop_db: float | None = None


THRESHOLDS = {
    "fp32": Thresholds(rel_l2=1e-5, max_abs=0.05),
    "fp16": Thresholds(rel_l2=5e-3),
    "bf16": Thresholds(rel_l2=2e-2, max_psnr_drop_db=0.15),
    "int8": Thresholds(rel_l2=3e-2, max_psnr_drop_db=0.15),
}

# what a float artifact is held to when its backend computes it in another precision
_COMPUTED_AS = {("fp32", "bf16"): "bf16", ("fp32", "f16"): "fp16", ("fp16", "bf16"): "bf16"}


def thresholds_key(precision: str, inference_precision: str | None) -> str:
    """The :data:`THRESHOLDS` key for an artifact of ``precision`` whose backend computes its
    float layers in ``inference_precision`` (``f32``, ``bf16``, ``f16`` or None where the
    backend does not say): the artifact's own precision, or the coarser one it ran in."""
    return _COMPUTED_AS.get((precision, inference_precision or ""), precision)


@dataclass
class Comparison:
    """Artifact vs PyTorch on one input (and both vs clean where it exists)."""

    name: str
    max_abs: float
    mean_abs: float
    rel_l2: float
    psnr_vs_torch: float
    psnr_clean_torch: float | None = None
    psnr_clean_artifact: float | None = None
    non_finite: int = 0          # NaN or infinite values in the artifact's output
    reference_non_finite: int = 0  # NaN or infinite values in PyTorch's (the reference) output

    @property
    def psnr_drop(self) -> float | None:
        """PSNR against clean lost by the artifact (PyTorch's minus the artifact's); None
        without a clean image."""
        if self.psnr_clean_torch is None or self.psnr_clean_artifact is None:
            return None
        return self.psnr_clean_torch - self.psnr_clean_artifact

    def failures(self, limits: Thresholds) -> list[str]:
        """Which thresholds this comparison breaks (empty: it passes)."""
        bad = []
        if self.non_finite:
            bad.append(f"{self.non_finite} NaN or infinite values in the artifact's output")
        if self.reference_non_finite:
            bad.append(f"{self.reference_non_finite} NaN or infinite values in the PyTorch "
                       "reference output (nothing to compare with)")
        if bad:
            return bad
        # a NaN metric compares False with every bound: judged as "not within", never a pass
        if not self.rel_l2 <= limits.rel_l2:
            bad.append(f"relative L2 {self.rel_l2:.2e} > {limits.rel_l2:.0e}"
                       if np.isfinite(self.rel_l2) else
                       f"relative L2 is {self.rel_l2} (not a number)")
        if limits.max_abs is not None and not self.max_abs <= limits.max_abs:
            bad.append(f"max abs {self.max_abs:.3g} > {limits.max_abs}"
                       if np.isfinite(self.max_abs) else f"max abs is {self.max_abs}")
        if not bad and (np.isnan(self.mean_abs) or np.isnan(self.psnr_vs_torch)):
            bad.append("a metric is NaN (not a number)")
        return bad

    def as_dict(self) -> dict:
        """The numbers as JSON-safe values: NaN and infinity become None."""
        return finite_or_none({**asdict(self), "psnr_drop": self.psnr_drop})


def mean_psnr_drop(results: list[Comparison]) -> float | None:
    """Mean PSNR-against-clean lost by the artifact over the results that have clean images."""
    drops = [r.psnr_drop for r in results if r.psnr_drop is not None]
    return float(np.mean(drops)) if drops else None  # NaN when an output was not finite


def set_failures(results: list[Comparison], limits: Thresholds) -> list[str]:
    """Thresholds the whole set breaks: the mean PSNR drop against clean."""
    drop = mean_psnr_drop(results)
    if drop is not None and not np.isfinite(drop):
        return ["mean PSNR vs clean is not finite (an output had NaN or infinite values)"]
    # (a NaN drop never reaches the bound below: NaN > x is False, so it is caught above)
    if limits.max_psnr_drop_db is not None and drop is not None and drop > limits.max_psnr_drop_db:
        return [f"mean PSNR vs clean drops {drop:.3f} dB > {limits.max_psnr_drop_db} dB"]
    return []


def compare(name: str, artifact: np.ndarray, torch_out: np.ndarray,
            clean: np.ndarray | None = None) -> Comparison:
    """Numbers for one CHW output pair (and the clean CHW image when given)."""
    if artifact.shape != torch_out.shape:
        raise ValueError(f"{name}: artifact output {artifact.shape} vs reference {torch_out.shape}")
    non_finite = int(artifact.size - np.count_nonzero(np.isfinite(artifact)))
    reference_non_finite = int(torch_out.size - np.count_nonzero(np.isfinite(torch_out)))
    finite = not non_finite and not reference_non_finite
    reference = torch_out.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(artifact.astype(np.float64) - reference)
        rel = l2_norm(diff) / max(l2_norm(reference), 1e-12)   # relative_l2, on the diff at hand
        result = Comparison(name, float(diff.max()), float(diff.mean()), rel,
                            psnr(artifact, torch_out, clip=False) if finite else nan,
                            non_finite=non_finite, reference_non_finite=reference_non_finite)
        if clean is not None:
            result.psnr_clean_torch = psnr(torch_out, clean) if not reference_non_finite else nan
            result.psnr_clean_artifact = psnr(artifact, clean) if not non_finite else nan
    return result


def error_heatmap(artifact: np.ndarray, torch_out: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 BGR heatmap of |artifact - torch| (max over channels), scaled to its max
    (outputs that agree exactly: the map of zero error, black)."""
    import cv2

    err = np.nan_to_num(np.abs(artifact - torch_out), nan=np.inf).max(axis=0)
    err = np.where(np.isfinite(err), err, np.nan)
    scale = float(np.nanmax(err)) if np.isfinite(err).any() else 1.0
    scale = scale if scale > 0 else 1.0  # identical outputs: 0 / 0 made NaN, cast to uint8
    err = np.nan_to_num(err, nan=scale)  # non-finite pixels show at full scale
    return cv2.applyColorMap((err / scale * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)

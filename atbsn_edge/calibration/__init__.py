"""Calibration for int8: representative noisy crops, methods, and a cache keyed by model and data."""
from .data import CalibrationSet, collect_crops

__all__ = ["CalibrationSet", "collect_crops"]

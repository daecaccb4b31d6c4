"""Runtimes: one interface (:class:`Runtime`) over every inference backend."""
from .base import InputSpec, Runtime, RuntimeInfo

__all__ = ["InputSpec", "Runtime", "RuntimeInfo"]

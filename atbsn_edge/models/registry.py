"""Explicit registry of the architectures, each detected from its exact state_dict keys.

Each entry says how to build the network and what the tiler needs to know about it (its
stride and whether its blind spot is tunable), in the spirit of spandrel's architecture specs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from .atbsn import ATBSN
from .students import StudentA, StudentB, StudentC


@dataclass(frozen=True)
class Architecture:
    """One network family: its name, constructor and the facts tiling and export need.

    ``default_overlap`` is the tile overlap (a multiple of 32) that keeps tiled output within
    0.5 of whole-image output; it comes from ``benchmarks/receptive_field.py`` (docs/tiling.md).
    ``int8_keep_float`` names the layers (regular expressions searched in ONNX node names) an
    int8 export keeps in float by default, chosen by ``benchmarks/int8_quality.py`` (docs/export.md).
    """

    name: str
    build: Callable[[], nn.Module]
    stride: int
    tunable_hole: bool
    default_overlap: int
    description: str
    int8_keep_float: tuple[str, ...] = ()

    def expected_keys(self) -> dict[str, tuple[int, ...]]:
        """State_dict keys and shapes of a freshly built network."""
        return {k: tuple(v.shape) for k, v in self.build().state_dict().items()}

    def mismatch(self, state: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
        """Keys missing from ``state``, unexpected in it, and present with the wrong shape."""
        expected = _expected_keys_cached(self.name)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(expected) & set(state)
                       if tuple(state[k].shape) != expected[k])
        return missing, unexpected, wrong

    def matches(self, state: Mapping[str, torch.Tensor]) -> bool:
        """Whether ``state`` has exactly this network's keys, each with its shape."""
        return not any(self.mismatch(state))


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch for arch in (
        Architecture("atbsn", ATBSN, ATBSN.stride, True, 128,
                     "AT-BSN meta-teacher, blind spot tunable per call (~1.27 M parameters)",
                     # the image path: the unet's last stage and everything after the unet
                     # (shifts, rotations, the 1x1 head); all int8: -2.1 to -5.8 dB
                     int8_keep_float=("/dec1/", "/network/(?!unet/)")),
        Architecture("student_a", StudentA, StudentA.stride, False, 64,
                     "student A, 2-pooling UNet (~0.13 M parameters)"),
        Architecture("student_b", StudentB, StudentB.stride, False, 128,
                     "student B, 2-pooling UNet (~0.86 M parameters)"),
        Architecture("student_c", StudentC, StudentC.stride, False, 128,
                     "student C, the AT-BSN unet without blind spots (~1.00 M parameters)",
                     # the last full-resolution stage carries the input image to the output
                     # (all int8: -5 dB on the Nam pairs; benchmarks/int8_quality.py): all of
                     # dec1 but the transposed convolution of the fused graph stays float
                     int8_keep_float=(r"/dec1/(?!conv1/low/)",)),
    )
}

_EXPECTED: dict[str, dict[str, tuple[int, ...]]] = {}


def _expected_keys_cached(name: str) -> dict[str, tuple[int, ...]]:
    if name not in _EXPECTED:
        _EXPECTED[name] = ARCHITECTURES[name].expected_keys()
    return _EXPECTED[name]


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name, with an error listing the valid names."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; valid: {', '.join(ARCHITECTURES)}") from None


def detect_architecture(state: Mapping[str, torch.Tensor]) -> Architecture | None:
    """The architecture whose keys and shapes ``state`` matches exactly, or None."""
    for arch in ARCHITECTURES.values():
        if arch.matches(state):
            return arch
    return None


def architecture_of(model: nn.Module) -> Architecture:
    """The registry entry whose class built ``model``."""
    for arch in ARCHITECTURES.values():
        if type(model) is arch.build:
            return arch
    raise ValueError(f"{type(model).__name__} is not a registered architecture")

"""How a quantization-aware decoder adds its two terms; no PyTorch needed (the CLI's choices,
a checkpoint's ranges read by the export)."""
from __future__ import annotations

from typing import Mapping

#: how each decoder adds its two terms (the transposed convolution of the low map and the
#: convolution of the skip): ``float`` both terms float (as every runtime computes it);
#: ``low`` the transposed convolution's output quantized, the skip term float (what OpenVINO
#: computes fast: an int8 output of the transposed convolution, the sum fused into the skip
#: convolution); ``both`` both terms quantized (NNCF's graph of an addition; OpenVINO drops
#: the skip term's quantization, so it does not compute this as trained)
SUMS = ("float", "low", "both")


def check_sums(sums: str, what: str = "sums") -> str:
    """``sums`` when it is one of :data:`SUMS`, else a ValueError naming ``what`` was given
    and the valid ones."""
    if sums not in SUMS:
        raise ValueError(f"{what} {sums!r}: valid are {', '.join(SUMS)}")
    return sums


def sums_of(ranges: Mapping) -> str:
    """The sums a checkpoint's ranges were trained with (``sums``; ranges of the first
    version wrote ``quantized_sums: true`` for ``both``; older ones: float)."""
    return check_sums(ranges.get("sums") or ("both" if ranges.get("quantized_sums") else "float"),
                      "int8 ranges with sums")

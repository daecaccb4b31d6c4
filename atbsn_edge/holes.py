"""Which blind-spot hole sizes AT-BSN takes (no PyTorch needed: the CLIs check before loading).

A hole of ``b`` hides the ``(b + 1) // 2`` rows above each pixel from the network, in each of
its four rotations. The paper uses 0 to 11 (3 at inference by default); details fade beyond
that, and once the shift passes a tile's height the output stops depending on the image at all
(``denoise --hole 1000`` wrote a flat image). ``MAX_HOLE`` (63: 32 rows hidden) is far past any
useful value, and refuses what cannot be meant.
"""
from __future__ import annotations

MAX_HOLE = 63


def check_hole(hole_size: object) -> int:
    """``hole_size`` if it is an integer from 0 to :data:`MAX_HOLE`, else a ``ValueError``
    that says what is valid."""
    if isinstance(hole_size, bool) or not isinstance(hole_size, int) or hole_size < 0:
        raise ValueError(f"hole size must be a non-negative integer, got {hole_size!r}")
    if hole_size > MAX_HOLE:
        raise ValueError(f"hole size {hole_size} is over {MAX_HOLE}, the largest taken: it would "
                         f"hide the {(hole_size + 1) // 2} rows above each pixel from the network, "
                         "whose output fades to a flat image as holes grow; the paper uses 0 to 11 "
                         "(3 by default)")
    return hole_size

"""When quantization-aware training gives the output convolution's input its offset; no
PyTorch needed (the CLI's choices)."""
from __future__ import annotations

#: ``--output-offset``: the offset (the middle of the map's range, ``fake_quant.
#: ActivationQuantizer.offset``) calibrated ``after`` training on the trained network (measured
#: best on student C, docs/export.md), ``during`` it (from the start), or ``none``
OFFSET_MODES = ("after", "during", "none")

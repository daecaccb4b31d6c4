"""Which graph nodes an int8 export leaves in float: ``--int8-keep-float`` patterns.

A pattern is a regular expression searched in each node's name (module paths as the exporter
writes them, e.g. ``/unet/dec1/conv2/conv/Conv``); a plain name such as ``/dec1/`` matches
every node whose name contains it. Both quantizers (``onnx_fp32_to_int8``, NNCF in
``openvino_fp32_to_int8``) select their float nodes here, so a pattern means the same to both.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from ..errors import AtbsnError


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The compiled patterns, or an error naming the one that is not a regular expression."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise AtbsnError(f"--int8-keep-float pattern {pattern!r} is not a regular "
                             f"expression ({exc}); escape special characters, e.g. '\\('") from None
    return compiled


def float_node_names(names: Iterable[str], patterns: Sequence[str], artifact: str) -> list[str]:
    """The ``names`` some pattern matches; an error when patterns are given and none matches."""
    compiled = compile_patterns(patterns)
    names = list(names)
    chosen = [name for name in names if any(p.search(name) for p in compiled)]
    if compiled and not chosen:
        example = names[1] if len(names) > 1 else names[0] if names else ""
        raise AtbsnError(f"no node of {artifact} matches --int8-keep-float "
                         f"{' '.join(patterns)}; node names look like {example!r}")
    return chosen

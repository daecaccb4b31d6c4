"""Progress bars that draw only on a terminal.

Every progress bar of the toolkit (and of ``benchmarks/``) comes from :func:`progress_bar`:
tqdm with ``disable=None``, which turns the bar off when its stream (stderr) is not a TTY, so
that a redirected log (``2> run.log``, a pipe, a CI job) holds the log lines, not hundreds of
``\\r`` redraws. ``tqdm.write`` still prints there, bar or no bar.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger(__name__)


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, shown only when stderr is a terminal (``disable=None``).
    An explicit ``disable=True`` (another rank of a distributed run) still turns it off."""
    from tqdm import tqdm

    if kwargs.get("disable") is False:
        kwargs["disable"] = None  # "not disabled" still means: only on a terminal
    kwargs.setdefault("disable", None)
    return tqdm(iterable, **kwargs)

"""OpenVINO's model cache for the runtime: compiled IRs kept on disk between processes.

OpenVINO's ``CACHE_DIR`` stores each compiled model (per IR, input shape, configuration and
device) and imports it at the next ``compile_model`` instead of compiling again: the student C
int8 IR compiled in 0.17-0.30 s and imported in 0.07-0.09 s on the AMD EPYC of
docs/export.md, which every ``denoise``, ``profile`` or camera-demo start pays once or twice
(the IR's own tile shape, then the image's). The cache is exact (the same compiled network),
and OpenVINO does not import a blob compiled for other CPU features: with oneDNN capped at AVX2
(``ONEDNN_MAX_CPU_ISA``) a blob written uncapped was compiled afresh, and the outputs of the
two were equal (measured 2026-12-06).

OpenVINO 2026.4 leaves some compile properties out of the cache's key: a blob compiled with the
CPU plugin's snippets on was imported for a compile with ``SNIPPETS_MODE: DISABLE`` (17 snippet
nodes and 48.6 ms a call instead of none and 40.6 ms, AMX Xeon, 2026-12-08). The runtime names
those properties (``unkeyed``) and each setting gets a subfolder of its own.

The folder is ``cache_dir() / "openvino"`` (``$ATBSN_EDGE_CACHE``, default
``~/.cache/atbsn-edge``), or its subfolder for ``unkeyed`` properties, each pruned to
:data:`CACHE_LIMIT_BYTES`, oldest files first, whenever a runtime opens it; ``ATBSN_EDGE_OPENVINO_CACHE=0`` turns it off, and a folder that cannot be
written turns it off for that run.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

CACHE_LIMIT_BYTES = 256 * 1024 * 1024  # a student C blob is 1-2 MB, one per IR and tile shape
DISABLE_VARIABLE = "ATBSN_EDGE_OPENVINO_CACHE"
_OFF = ("0", "off", "no", "false")


def compile_cache_dir(limit_bytes: int = CACHE_LIMIT_BYTES,
                      unkeyed: Mapping[str, str] | None = None) -> Path | None:
    """The folder to give OpenVINO as ``CACHE_DIR`` (created, and pruned to ``limit_bytes``),
    or None where the cache is turned off or the folder cannot be written. ``unkeyed``:
    compile properties OpenVINO's cache does not key on (module doc), which name a subfolder."""
    if os.environ.get(DISABLE_VARIABLE, "").strip().lower() in _OFF:
        return None
    from ..calibration.cache import cache_dir

    folder = cache_dir() / "openvino"
    if unkeyed:
        folder = folder / re.sub(r"[^A-Za-z0-9_.=-]+", "-", "-".join(
            f"{key}={value}" for key, value in sorted(unkeyed.items())))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("OpenVINO model cache off: cannot create %s (%s)", folder, exc)
        return None
    if not os.access(folder, os.W_OK):
        log.debug("OpenVINO model cache off: %s is not writable", folder)
        return None
    prune(folder, limit_bytes)
    return folder


def prune(folder: Path, limit_bytes: int) -> int:
    """Delete the oldest files of ``folder`` (by modification time) until the rest take at
    most ``limit_bytes``; returns how many were deleted. Files that vanish meanwhile (another
    process pruning) are skipped."""
    entries = []
    for path in folder.iterdir():
        try:
            if path.is_file():
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        except OSError:
            continue
    total = sum(size for _, size, _ in entries)
    deleted = 0
    for _, size, path in sorted(entries):
        if total <= limit_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        deleted += 1
    if deleted:
        log.debug("OpenVINO model cache: %d old file(s) deleted from %s", deleted, folder)
    return deleted

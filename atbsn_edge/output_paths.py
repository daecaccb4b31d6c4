"""Output-path checks of the command-line entry points, made before any work: an output that
cannot be written (below a file, on a read-only file system, without permission, or in a
folder that takes no new file: a probe file is created and removed), or one that would
replace an input of the run, a file of a bundle or a file of another kind, is refused in one
line that says what to give instead. ``same_file`` tells whether two paths name one file."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterable

from .errors import AtbsnError


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path once resolved (links, ``..``), or,
    where both exist, the same file on disk (hard links, case-insensitive file systems)."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _read_only_file_system(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only (False where unknown)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def check_output_path(path: str | os.PathLike, flag: str, *, folder: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written: one below a regular file,
    a folder where a file is wanted (or the reverse), or a parent without write permission.
    Missing parent folders are fine (they are created). Returns ``path`` as a Path."""
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise AtbsnError(f"{flag} {path} is a file; give a folder")
        if not folder and path.is_dir():
            raise AtbsnError(f"{flag} {path} is a folder; give a file name")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise AtbsnError(f"{flag} {path}: {ancestor} is a file, not a folder; choose an output "
                         "path whose parents are folders")
    writable = path if folder and path.is_dir() else ancestor
    if not os.access(writable, os.W_OK | os.X_OK):
        if _read_only_file_system(writable):
            raise AtbsnError(f"{flag} {path}: {writable} is on a read-only file system; "
                             "write somewhere else")
        raise AtbsnError(f"{flag} {path}: no permission to write in {writable}; choose a "
                         "folder you may write in")
    problem = _creation_problem(writable)
    if problem:
        raise AtbsnError(f"{flag} {path}: cannot create a file in {writable} ({problem}); "
                         "choose an output path on a writable file system")
    return path


def _creation_problem(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (None if it can): permission bits do not
    tell for a pseudo file system such as /proc, or for root, so a probe file is created and
    removed, as the atomic writes will stage theirs there."""
    import tempfile

    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".atbsn-edge-probe-")
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def _is_json_file(path: Path, limit: int = 64 << 20) -> bool:
    """Whether ``path`` holds a JSON document (a report an earlier run wrote)."""
    import json

    try:
        if path.stat().st_size > limit:
            return False
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def _is_text_file(path: Path, probe: int = 1 << 16) -> bool:
    """Whether ``path`` starts as UTF-8 text without NUL bytes (a log an earlier run wrote),
    not a checkpoint, an image or weights."""
    import codecs

    try:
        with open(path, "rb") as fh:
            head = fh.read(probe)
        # a probe that stops inside a multi-byte character is not final: its tail may wait
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < probe)
    except (OSError, UnicodeDecodeError):
        return False
    return b"\0" not in head


def _is_png_file(path: Path) -> bool:
    """Whether ``path`` starts with the PNG signature (a plot an earlier run wrote)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


REPORT_KINDS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "json": ("a JSON report", _is_json_file),
    "text": ("a text log", _is_text_file),
    "png": ("a PNG plot", _is_png_file),
}


def check_report_path(path: str | os.PathLike, flag: str, *,
                      inputs: Iterable[str | os.PathLike | None] = (), kind: str = "json",
                      instead: str = "choose another path for the report") -> Path:
    """:func:`check_output_path` for a report (``--json``; ``kind`` ``text`` for a log,
    ``png`` for a plot: :data:`REPORT_KINDS`), and what a report must never replace: one of
    ``inputs`` (the run's input files), a file of any bundle (its manifest or one of the files
    it lists), or any existing non-empty file that is not of its kind (an image, a checkpoint,
    weights). An earlier report of its kind is replaced (or appended to), as a rerun
    expects. ``instead``: what the messages advise."""
    what, is_kind = REPORT_KINDS[kind]
    from .bundle.manifest import bundle_holding

    path = check_output_path(path, flag)
    target = path.resolve()
    if any(item is not None and Path(item).exists() and Path(item).resolve() == target
           for item in inputs):
        raise AtbsnError(f"{flag} {path} would replace an input of this run; {instead}")
    # a bundle's file, whether or not the bundle is an input: the folders above the report
    # (also those above a file inside an artifact folder such as an .mlpackage)
    folder = bundle_holding(target)
    if folder is not None:
        raise AtbsnError(f"{flag} {path} would replace a file of the bundle {folder}; {instead}")
    if path.is_file() and path.stat().st_size > 0 and not is_kind(path):
        raise AtbsnError(f"{flag} {path} exists and is not {what} (it would be replaced); "
                         f"{instead}, or delete the file first")
    return path

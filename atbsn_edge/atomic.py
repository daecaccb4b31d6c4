"""Atomic file and folder writes: a reader sees the old content or the new, never half."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``.

    Works for files and folders. On an exception the temporary is removed and ``target`` is
    untouched; an ``OSError`` that names no file (a full disk) is raised again naming
    ``target``, and one that names the temporary is raised naming ``target`` instead. With
    ``overwrite=False`` an existing target raises ``FileExistsError``.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = backup = None
    try:
        # a unique name, reserved then freed: the caller writes a file or a folder there
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        tmp.unlink()
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to the temporary {tmp}")
        if tmp.is_dir() and target.exists():
            # Folders cannot be renamed over a non-empty folder: swap through a backup.
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, backup)
            os.replace(tmp, target)
            old, backup = backup, None
            _remove(old)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        if backup is not None and backup.exists() and not target.exists():
            os.replace(backup, target)  # interrupted between the two renames: the old one back
        if tmp is not None:
            _remove(tmp)
        named = _named_after_target(exc, tmp, target)
        if named is not None:
            raise type(exc)(exc.errno, exc.strerror, named) from exc
        raise


#: OSError classes re-raised naming the target: those built from (errno, strerror, filename)
_NAMED_AGAIN = {OSError, FileNotFoundError, PermissionError, IsADirectoryError,
                NotADirectoryError, FileExistsError}
#: errors of a write that may name no file at all (a full disk): they are the target's
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def _named_after_target(exc: BaseException, tmp: Path | None, target: Path) -> str | None:
    """The file name an OSError of ``atomic_path`` should carry instead of its own (None: keep
    it): the target's path in place of the temporary's (the user knows the target; a file
    inside a staged folder keeps its own part), or the target for a write error that names
    no file."""
    if type(exc) not in _NAMED_AGAIN or exc.errno is None:
        return None
    named = exc.filename
    if named is None:
        return str(target) if exc.errno in _WRITE_ERRNOS else None
    if tmp is not None and str(named).startswith(str(tmp)):
        return str(target) + str(named)[len(str(tmp)):]
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()

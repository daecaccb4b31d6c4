"""Atomic file and folder writes: a reader sees the old content or the new, never half."""
from __future__ import annotations

import contextlib
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
        if type(exc) in _NAMED_AGAIN and exc.errno is not None:
            named = exc.filename  # the user knows the target, not our temporary
            if named is None or (tmp is not None and str(named).startswith(str(tmp))):
                raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
        raise


#: OSError classes re-raised naming the target: those built from (errno, strerror, filename)
_NAMED_AGAIN = {OSError, FileNotFoundError, PermissionError, IsADirectoryError,
                NotADirectoryError, FileExistsError}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()

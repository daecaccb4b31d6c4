"""Turn command-line inputs (files, folders, globs) into a sorted list of image files."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterable

from .errors import AtbsnError
from .imageio import READ_SUFFIXES


def expand_inputs(items: Iterable[str], suffixes: tuple[str, ...] = READ_SUFFIXES, *,
                  unique: bool = True) -> list[Path]:
    """Files as given, image files inside folders (not recursive), and glob matches; a file
    named twice is kept once, unless ``unique`` is False (clean references: several noisy
    frames may share one, each named in its place).

    Raises :class:`AtbsnError` naming every item that matched nothing.
    """
    found: list[Path] = []
    unmatched: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            matches = _folder_images(path, suffixes)
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        else:
            matches = []
        if not matches:
            unmatched.append(item)
        found.extend(matches)
    if unmatched:
        raise AtbsnError(f"no image files found for: {', '.join(unmatched)} (give image files "
                         f"{'/'.join(READ_SUFFIXES)}, folders holding them, or glob patterns)")
    if not unique:
        return found
    once: dict[Path, None] = {}
    for p in found:
        once.setdefault(p, None)
    return list(once)


def paired_in_order(noisy_items: Iterable[str], clean_items: Iterable[str], *,
                    noisy_flag: str, clean_flag: str) -> list[tuple[Path, Path]]:
    """Noisy files with their clean references, paired in the order given (folders and globs
    expanded in place). A reference may serve several noisy files (frames of one scene); a
    pair named twice is kept once; a noisy file named with two different references, or
    unequal counts, is an :class:`AtbsnError`."""
    noisy = expand_inputs(noisy_items, unique=False)
    clean = expand_inputs(clean_items, unique=False)
    if len(noisy) != len(clean):
        raise AtbsnError(f"{len(noisy)} noisy image(s) ({noisy_flag}) but {len(clean)} clean "
                         f"reference(s) ({clean_flag}); give one clean reference per noisy "
                         "image, in the same order (a reference may be named again for "
                         "another image)")
    pairs: dict[Path, Path] = {}
    for n, c in zip(noisy, clean):
        if pairs.setdefault(n, c) != c:
            raise AtbsnError(f"{n} is given twice, with the clean references {pairs[n]} and "
                             f"{c}; give each noisy image once")
    return list(pairs.items())


def _folder_images(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of ``folder`` (not recursive) with one of ``suffixes``, sorted."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    except OSError as exc:
        raise AtbsnError(f"cannot list the folder {folder} ({exc.strerror or exc})") from None

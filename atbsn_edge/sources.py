"""Noisy pictures from image files, folders, globs and video files (evenly spaced frames).

Training and calibration both take "representative noisy data" in these forms; this module
turns the command-line items into named HxWx3 float32 RGB arrays (0..255), skipping unreadable
files with a warning that names them.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import ImageError
from .imageio import READ_SUFFIXES, read_image
from .inputs import expand_inputs

log = logging.getLogger(__name__)

# FFmpeg (inside OpenCV) writes its own lines to the terminal for a damaged video ("moov atom
# not found") before the warning that names the file: quiet, unless the user set a level.
# Read when OpenCV first starts FFmpeg in this process, so set on import.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
SOURCE_SUFFIXES = READ_SUFFIXES + VIDEO_SUFFIXES


def is_video(path: Path) -> bool:
    """Whether ``path`` is read as a video (by its suffix)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def read_video_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` evenly spaced frames of a video as RGB float32; :class:`ImageError` if unreadable."""
    import cv2

    from .imageio import quiet_opencv

    with quiet_opencv():  # OpenCV's and FFmpeg's complaints: said here, in one line
        return _read_frames(cv2, path, count)


def _read_frames(cv2, path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
        if not capture.isOpened() or total <= 0:
            raise ImageError(f"{path}: cannot read video frames (corrupt file or unsupported codec)")
        frames = []
        for index in np.linspace(0, total - 1, num=min(count, total)).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                frames.append(frame[:, :, ::-1].astype(np.float32))
    finally:
        capture.release()
    if not frames:
        raise ImageError(f"{path}: no frame could be decoded")
    return frames


def expand_sources(items: Iterable[str | Path]) -> list[Path]:
    """Image and video files from files, folders (not recursive) and globs, in order."""
    return expand_inputs([str(item) for item in items], suffixes=SOURCE_SUFFIXES)


def load_pictures(paths: Iterable[Path], frames_per_video: int) -> list[tuple[str, np.ndarray]]:
    """``(name, rgb)`` for every readable image and ``frames_per_video`` frames of each video
    (named ``path#index``); unreadable files are skipped with a warning naming them."""
    pictures: list[tuple[str, np.ndarray]] = []
    for path in paths:
        try:
            if is_video(path):
                frames = read_video_frames(path, frames_per_video)
                pictures += [(f"{path}#{i}", frame) for i, frame in enumerate(frames)]
            else:
                pictures.append((str(path), read_image(path).rgb))
        except ImageError as exc:
            log.warning("skipping %s", exc)
    return pictures

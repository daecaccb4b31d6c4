#!/usr/bin/env python3
"""Live denoising demo: a camera, a CSI sensor, an RTSP stream or a video file, side by side.

    python examples/camera_demo.py --artifact BUNDLE --source SRC
    python examples/camera_demo.py --artifact BUNDLE --source clip.mp4 --headless --output out.mp4

SRC is a camera index (``0``) or ``/dev/videoN`` (V4L2), ``csi://N`` (a Jetson CSI camera
through GStreamer's ``nvarguscamerasrc``; OpenCV must be built with GStreamer), an
``rtsp://`` / ``http://`` URL, or a video file. The artifact runs through the same runtime
and tiler as ``python -m atbsn_edge.denoise --artifact`` (``open_artifact_tiled`` and
``TiledRuntime.denoise``).

Capture, inference and display are a pipeline of three threads joined by bounded queues
(one frame between capture and inference, two between inference and display), so a slow
frame never stalls capture: a **live** source whose frame finds the queue full replaces the
waiting frame, and the replaced frame is counted as dropped. A **file** source is read no
faster than it is processed, so every frame of it is denoised and written (no drops; the
fps then says how fast the denoiser really is). ``--output`` writes what is shown (side by
side, or the current view) to a video written atomically (a temporary file renamed when
complete, and only once it reads back with every frame written: OpenCV reports no write error,
so a video cut short by a full disk is removed, the previous file kept, and the run ends with
an error). ``--process-size WxH`` denoises a resized copy of each frame, for devices too
slow for the full frame.

Keys (with a display): ``v`` cycles the view (side by side / denoised / noisy), ``+`` and
``-`` change the blind-spot hole of an AT-BSN artifact -- an exported artifact has its hole
fixed at export, so this works only between several ``--artifact`` bundles of the same
network exported at different holes (``--hole``); otherwise it says so -- and ``q`` (or
Esc) quits. ``--max-frames N`` stops after N frames; the summary (frames, drops, fps,
latency) is printed at the end and, with ``--json``, written as JSON. Ctrl-C (the way to stop
a headless live source) stops the threads, finishes ``--output`` with the frames written so
far, prints the summary and exits with 130.

``--output`` is checked before anything starts: a video name (.mp4, .avi, .mkv, .mov, .m4v)
that this OpenCV can encode, never an input of the run (the source, an artifact, a bundle's
file), and an existing file only with ``--overwrite``. OpenCV's and FFmpeg's own log lines are
quiet (the demo reports problems in one line); set ``OPENCV_LOG_LEVEL`` (e.g. ``DEBUG``) or
``OPENCV_FFMPEG_LOGLEVEL`` (e.g. ``32``) to see them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import re
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atbsn_edge.errors import AtbsnError
from atbsn_edge.output_paths import same_file

log = logging.getLogger("camera_demo")

VIEWS = ("side-by-side", "denoised", "noisy")

# OpenCV and FFmpeg write their own lines to the terminal ("moov atom not found" for a damaged
# video, "[ WARN:0@0.7] global cap_v4l.cpp ..." for a missing camera) before the demo's one-line
# error: quiet, unless the user set a level. Both are read when OpenCV first starts (FFmpeg's
# when it first opens a video), so they are set on import, before the demo imports cv2.
_USER_OPENCV_LOG_LEVEL = "OPENCV_LOG_LEVEL" in os.environ
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


_opencv_quieted = False


def _cv2():
    """OpenCV, with its log silenced unless the user set ``OPENCV_LOG_LEVEL`` (also where
    cv2 was imported before this module set the variable)."""
    global _opencv_quieted
    import cv2

    if not _USER_OPENCV_LOG_LEVEL and not _opencv_quieted:
        _opencv_quieted = True
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:  # older OpenCV builds without the logging module
            pass
    return cv2


class DemoError(AtbsnError):
    """A one-line problem with the source, the artifact or the output."""


# --- sources ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    kind: str          # "index", "device", "csi", "url", "file"
    value: Any
    live: bool

    def describe(self) -> str:
        return f"{self.kind} {self.value}"


def parse_source(text: str) -> Source:
    """What ``--source`` names (see the module doc)."""
    if re.fullmatch(r"\d+", text):
        return Source("index", int(text), True)
    if text.startswith("/dev/video"):
        return Source("device", text, True)
    m = re.fullmatch(r"csi://(\d+)", text)
    if m:
        return Source("csi", int(m.group(1)), True)
    if re.match(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", text):
        return Source("url", text, True)
    return Source("file", text, False)


def gstreamer_available() -> bool:
    """Whether this OpenCV was built with GStreamer (``cv2.getBuildInformation()``)."""
    cv2 = _cv2()

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def window_problem(build_information: str | None = None,
                   environ: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why this process cannot open a window (None if it can): an OpenCV built without a GUI
    backend (``opencv-python-headless``, what atbsn-edge installs: ``GUI: NONE`` in
    ``cv2.getBuildInformation()``), or, on Linux, no display to draw on."""
    if build_information is None:
        build_information = _cv2().getBuildInformation()
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    for line in build_information.splitlines():
        if line.strip().startswith("GUI:") and line.split(":", 1)[1].strip().upper() == "NONE":
            return ("this OpenCV has no window support (opencv-python-headless, which "
                    "atbsn-edge installs); give --headless --output out.mp4, or install "
                    "opencv-python in place of opencv-python-headless for a window")
    if platform.startswith("linux") and not (environ.get("DISPLAY") or
                                             environ.get("WAYLAND_DISPLAY")):
        return ("no display to show the window on (DISPLAY is not set); give --headless "
                "--output out.mp4, or run it on a desktop session")
    return None


def csi_pipeline(sensor: int, width: int = 1920, height: int = 1080, fps: int = 30) -> str:
    """The GStreamer pipeline of a Jetson CSI camera into OpenCV (BGR frames)."""
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, "
            f"height={height}, framerate={fps}/1, format=NV12 ! nvvidconv ! "
            "video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            "appsink drop=true max-buffers=1")


# How OpenCV opens each kind of source: the capture API (None: OpenCV's own choice), and
# whether --width / --height are asked of it as capture properties.
CAPTURE_APIS: dict[str, tuple[str | None, bool]] = {
    "index": (None, True), "device": ("CAP_V4L2", True), "csi": ("CAP_GSTREAMER", False),
    "url": ("CAP_FFMPEG", False), "file": (None, False)}


def open_capture(source: Source, width: int | None = None, height: int | None = None):
    """An opened ``cv2.VideoCapture`` of ``source`` (:data:`CAPTURE_APIS`); a DemoError that
    says why where it cannot open."""
    cv2 = _cv2()

    api, sets_size = CAPTURE_APIS[source.kind]
    opened = source.value
    if source.kind == "csi":  # a GStreamer pipeline around the sensor
        if not gstreamer_available():
            raise DemoError("csi:// needs OpenCV built with GStreamer, and this one has none "
                            "(cv2.getBuildInformation(): GStreamer NO); on a Jetson use JetPack's "
                            "python3-opencv (apt), not the pip opencv-python wheel")
        opened = csi_pipeline(source.value, width or 1920, height or 1080)
    if source.kind == "file" and not Path(source.value).is_file():
        raise DemoError(f"{source.value}: no such video file (or camera index / URL)")
    cap = cv2.VideoCapture(opened, getattr(cv2, api)) if api else cv2.VideoCapture(opened)
    if sets_size and width and height:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    if not cap.isOpened():
        cap.release()
        raise DemoError(f"cannot open {source.describe()} (no such camera, an unreachable stream, "
                        "or a codec this OpenCV cannot decode; OPENCV_LOG_LEVEL=DEBUG shows "
                        "OpenCV's details)")
    return cap


# --- the pipeline ----------------------------------------------------------------------------

@dataclass
class Stats:
    captured: int = 0
    dropped: int = 0            # live frames replaced before inference took them
    processed: int = 0
    shown: int = 0
    display_dropped: int = 0    # denoised frames the display had no time for (live only)
    written: int = 0
    latencies: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    def summary(self) -> dict[str, Any]:
        wall = (self.finished or time.perf_counter()) - self.started
        lat = sorted(self.latencies)
        return {"frames_captured": self.captured, "frames_dropped": self.dropped,
                "frames_processed": self.processed, "frames_written": self.written,
                "display_dropped": self.display_dropped, "wall_s": wall,
                "fps": self.processed / wall if wall > 0 else None,
                "latency_ms_median": statistics.median(lat) * 1e3 if lat else None,
                "latency_ms_p90": float(np.percentile(lat, 90)) * 1e3 if lat else None}


def put_latest(q: queue.Queue, item: Any) -> bool:
    """Put ``item``, replacing what waits if the queue is full; True when something was dropped."""
    dropped = False
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped = True
            except queue.Empty:
                pass


class Denoisers:
    """The artifacts given, ordered by hole; ``current`` is the one in use. Each is opened
    through ``pipeline.open_artifact_tiled`` (the same runtime and tiler as ``denoise``)."""

    def __init__(self, paths: list[Path], target: str | None, threads: int,
                 tile: int | str = "auto") -> None:
        from atbsn_edge.errors import AtbsnError
        from atbsn_edge.pipeline import open_artifact_tiled

        options = {"threads": threads} if threads else {}
        self.items = []
        try:
            for path in paths:
                self.items.append(open_artifact_tiled(path, target=target, tile=tile, **options))
        except AtbsnError as exc:
            self.close()
            raise DemoError(str(exc)) from None
        models = {t.runtime.info.model for t in self.items}
        if len(models) > 1:
            self.close()
            raise DemoError(f"the --artifact bundles are different networks ({', '.join(sorted(models))}); "
                            "give one network exported at several holes")
        self.items.sort(key=lambda t: (t.runtime.info.hole_size is None, t.runtime.info.hole_size or 0))
        self.index = 0
        self.lock = threading.Lock()

    @property
    def current(self):
        return self.items[self.index]

    def hole(self) -> int | None:
        return self.current.runtime.info.hole_size

    def step(self, delta: int) -> str:
        """Switch to the next (+1) or previous (-1) hole; the message says what happened."""
        info = self.current.runtime.info
        if info.hole_size is None:
            return (f"{info.model} has no blind spot (a distilled student): there is no hole to change")
        if len(self.items) == 1:
            return (f"the hole is fixed at export ({info.hole_size}) in this artifact; to compare holes "
                    "export the checkpoint with --hole B more than once and pass each bundle with --artifact")
        with self.lock:
            new = min(max(self.index + delta, 0), len(self.items) - 1)
            if new == self.index:
                return f"hole {info.hole_size} is the {'largest' if delta > 0 else 'smallest'} exported"
            self.index = new
        return f"hole {self.hole()}"

    def describe(self) -> str:
        return self.current.describe()

    def close(self) -> None:
        for t in self.items:
            t.close()


def side_by_side(noisy: np.ndarray, denoised: np.ndarray, view: str) -> np.ndarray:
    if view == "denoised":
        return denoised
    if view == "noisy":
        return noisy
    return np.concatenate([noisy, denoised], axis=1)


def overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    cv2 = _cv2()

    out = frame.copy()
    for i, text in enumerate(lines):
        y = 28 + 26 * i
        cv2.putText(out, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(out, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class AtomicVideo:
    """A ``cv2.VideoWriter`` into a temporary file beside ``path`` (same suffix, so the
    container is chosen from it), renamed onto ``path`` when closed after success -- and only
    once the temporary reads back whole (:meth:`verify`): ``cv2.VideoWriter`` reports no write
    error, so a full disk would otherwise replace a good video with one that does not play."""

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}

    def __init__(self, path: Path, fps: float, size: tuple[int, int], overwrite: bool) -> None:
        cv2 = _cv2()

        if path.exists() and not overwrite:
            raise DemoError(f"{path} exists; pass --overwrite to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
        fourcc = cv2.VideoWriter_fourcc(*self.FOURCC.get(path.suffix.lower(), "mp4v"))
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
        if not self.writer.isOpened():
            self.writer.release()
            self.tmp.unlink(missing_ok=True)
            raise DemoError(f"cannot write {path}: OpenCV could not start the video in "
                            f"{path.parent} (the disk may be full or the folder not writable, or "
                            f"this OpenCV has no encoder for {path.suffix}); free space there or "
                            "give another --output (.mp4 or .avi)")
        self.size = size
        self.frames = 0  # frames handed to the writer, which the temporary must hold

    def write(self, frame: np.ndarray) -> None:
        cv2 = _cv2()

        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def verify(self) -> str | None:
        """Why the temporary is not the whole video (None when it is): empty, not opened by
        ``cv2.VideoCapture`` (an MP4 whose index was never written: "moov atom not found"), its
        first or last frame not decoded, or another number of frames than were written.

        The frames are counted by reading them, as packets without decoding them where the
        backend can (FFmpeg's raw mode, ``CAP_PROP_FORMAT`` -1: about the cost of reading the
        file), else by grabbing them: the container's ``CAP_PROP_FRAME_COUNT`` is not enough,
        as an AVI cut short by a full disk still reports every frame (its header is rewritten
        in place at the end)."""
        cv2 = _cv2()

        try:
            size = self.tmp.stat().st_size
        except OSError as exc:
            return f"the temporary {self.tmp.name} is gone ({exc.strerror or exc})"
        if size == 0:
            return "the video is empty"
        cap = cv2.VideoCapture(str(self.tmp))
        try:
            if not cap.isOpened():
                return "the video does not open"
            if not cap.read()[0]:
                return "its first frame does not decode"
            # the last frame: a frame cut short decodes to nothing (where seeking works)
            if (self.frames > 1 and cap.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)
                    and not cap.read()[0]):
                return "its last frame does not decode"
        finally:
            cap.release()
        cap = cv2.VideoCapture(str(self.tmp))
        try:
            if not cap.isOpened():
                return "the video does not open"
            cap.set(cv2.CAP_PROP_FORMAT, -1)  # packets, not decoded; ignored where unsupported
            counted = 0
            while counted <= self.frames and cap.grab():
                counted += 1
        finally:
            cap.release()
        if counted != self.frames:
            return f"it holds {counted} of the {self.frames} frames written"
        return None

    def close(self, ok: bool) -> None:
        """Finish the video: with ``ok`` verify the temporary and rename it onto ``path``;
        otherwise (or where the check fails) remove it, leaving ``path`` as it was. A failed
        check or rename is a DemoError naming ``path``."""
        self.writer.release()
        if not ok:
            self.tmp.unlink(missing_ok=True)
            return
        kept = (f"{self.path} was left as it was" if self.path.exists()
                else f"nothing was written to {self.path}")
        try:
            problem = self.verify()
            if problem is None:
                os.replace(self.tmp, self.path)
                return
        except OSError as exc:
            problem = exc.strerror or str(exc)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        self.tmp.unlink(missing_ok=True)
        raise DemoError(f"cannot write {self.path}: the video could not be written completely "
                        f"({problem}; is the disk full?); {kept}; free space on the disk of "
                        f"{self.path.parent}, or give another --output")


VIDEO_SUFFIXES = tuple(AtomicVideo.FOURCC)


def _can_encode(suffix: str) -> bool:
    """Whether this OpenCV opens a writer for ``suffix`` (a probe in a temporary folder)."""
    import tempfile

    cv2 = _cv2()
    with tempfile.TemporaryDirectory(prefix="atbsn-camera-demo-") as folder:
        writer = cv2.VideoWriter(str(Path(folder) / f"probe{suffix}"),
                                 cv2.VideoWriter_fourcc(*AtomicVideo.FOURCC[suffix]), 30.0, (64, 64))
        try:
            return writer.isOpened()
        finally:
            writer.release()


def check_video_output(path: str | os.PathLike, *, overwrite: bool = False,
                       inputs: list[str | os.PathLike | None] = ()) -> Path:
    """Refuse, before anything starts, an ``--output`` the demo cannot or must not write: not a
    writable file path (``output_paths.check_output_path``), no video suffix this OpenCV can encode, one
    of ``inputs`` (the source file, the artifacts; even with ``overwrite``), a file of a bundle,
    or an existing file without ``overwrite``. Returns ``path`` as a Path."""
    from atbsn_edge.bundle.manifest import bundle_holding
    from atbsn_edge.output_paths import check_output_path

    path = check_output_path(path, "--output")
    suffix = path.suffix.lower()
    valid = ", ".join(VIDEO_SUFFIXES)
    if suffix not in AtomicVideo.FOURCC:
        what = "has no extension" if not suffix else f"has the extension {path.suffix}"
        raise DemoError(f"--output {path} {what}, and the demo writes videos ({valid}); "
                        f"give a name such as {path.with_suffix('.mp4').name}")
    for item in inputs:
        if item is not None and same_file(Path(item), path):
            raise DemoError(f"--output {path} is an input of this run ({item}), which is never "
                            "replaced, even with --overwrite; choose another --output")
    folder = bundle_holding(path)
    if folder is not None:
        raise DemoError(f"--output {path} would replace a file of the bundle {folder}; "
                        "choose another --output")
    if path.exists() and not overwrite:
        raise DemoError(f"--output {path} exists; pass --overwrite to replace it, or choose "
                        "another path")
    if not _can_encode(suffix):
        raise DemoError(f"--output {path}: this OpenCV has no encoder for {path.suffix} "
                        f"({AtomicVideo.FOURCC[suffix]}); try .avi (MJPG) or .mp4")
    return path


@contextlib.contextmanager
def _signals_deferred() -> Any:
    """While inside, Ctrl-C and SIGTERM are recorded (in the yielded list), not raised: the
    clean-up (joining the threads, finishing the video, releasing OpenCV and the runtime)
    runs to its end, since a C++ object released while a thread is still inside it aborts the
    interpreter. Does nothing outside the main thread."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return

    def record(signum: int, frame: Any) -> None:
        if not pending:
            print("stopping: finishing the output and releasing the source ...", file=sys.stderr)
        pending.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pending
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: how long the clean-up waits for a thread still inside a frame (a read, a denoise)
JOIN_TIMEOUT_S = 60.0


def run_demo(artifacts: list[Path], source_text: str, *, target: str | None = None,
             threads: int = 0, headless: bool = False, output: Path | None = None,
             max_frames: int | None = None, view: str = "side-by-side",
             capture_size: tuple[int, int] | None = None, overwrite: bool = False,
             overlay_text: bool = True,
             process_size: tuple[int, int] | None = None,
             tile: int | str = "auto") -> dict[str, Any]:
    """Run the demo; returns the summary (see :class:`Stats`). ``tile``: as ``denoise
    --tile`` (``auto``: the frame's own tile shape where the artifact can take it).

    ``output`` is checked (:func:`check_video_output`) before anything starts. Ctrl-C (a
    ``KeyboardInterrupt``) stops the run like ``q``: the threads are joined, the output is
    finished with the frames written so far, and the ``KeyboardInterrupt`` is raised again
    with the summary as its ``summary`` attribute."""
    cv2 = _cv2()

    source = parse_source(source_text)
    if output is not None:
        output = check_video_output(
            output, overwrite=overwrite,
            inputs=[source.value if source.kind == "file" else None, *artifacts])
    denoisers = Denoisers(artifacts, target, threads, tile)
    cap = None
    writer: AtomicVideo | None = None
    stats = Stats()
    stop = threading.Event()
    errors: list[BaseException] = []
    frames_q: queue.Queue = queue.Queue(maxsize=1)
    shown_q: queue.Queue = queue.Queue(maxsize=2)
    view_state = {"view": view}
    DONE = object()
    threads_: list[threading.Thread] = []
    interrupted: KeyboardInterrupt | None = None
    completed = False
    close_error: BaseException | None = None
    try:
        cap = open_capture(source, *(capture_size or (None, None)))
        fps_in = cap.get(cv2.CAP_PROP_FPS) or 0.0
        fps_out = fps_in if 1 <= fps_in <= 240 else 30.0

        def capture() -> None:
            try:
                while not stop.is_set():
                    if max_frames is not None and stats.captured >= max_frames:
                        break
                    good, frame = cap.read()
                    if not good:
                        break
                    stats.captured += 1
                    if source.live:
                        if put_latest(frames_q, frame):
                            stats.dropped += 1
                    else:  # a file: wait for inference, never drop
                        while not stop.is_set():
                            try:
                                frames_q.put(frame, timeout=0.1)
                                break
                            except queue.Full:
                                continue
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
            finally:
                while not stop.is_set():
                    try:
                        frames_q.put(DONE, timeout=0.1)
                        break
                    except queue.Full:
                        continue

        def infer() -> None:
            try:
                while not stop.is_set():
                    try:
                        frame = frames_q.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if frame is DONE:
                        break
                    t0 = time.perf_counter()
                    if process_size is not None and (frame.shape[1], frame.shape[0]) != process_size:
                        frame = cv2.resize(frame, process_size, interpolation=cv2.INTER_AREA)
                    rgb = frame[:, :, ::-1].astype(np.float32)
                    with denoisers.lock:
                        tiled = denoisers.current
                    out = tiled.denoise(rgb)
                    bgr = np.clip(out[:, :, ::-1] + 0.5, 0, 255).astype(np.uint8)
                    dt = time.perf_counter() - t0
                    stats.latencies.append(dt)
                    stats.processed += 1
                    item = (frame, bgr, dt)
                    if source.live and not output:
                        if put_latest(shown_q, item):
                            stats.display_dropped += 1
                    else:  # every processed frame reaches the writer
                        while not stop.is_set():
                            try:
                                shown_q.put(item, timeout=0.1)
                                break
                            except queue.Full:
                                continue
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                while not stop.is_set():
                    try:
                        shown_q.put(DONE, timeout=0.1)
                        break
                    except queue.Full:
                        continue

        window = "atbsn-edge denoise"

        def show_frames() -> None:
            """Show (and write) the denoised frames until the source ends, ``q`` or an error."""
            nonlocal writer
            recent: list[float] = []
            message, message_until = "", 0.0
            while True:
                try:
                    item = shown_q.get(timeout=0.1)
                except queue.Empty:
                    if errors or not any(t.is_alive() for t in threads_):
                        if shown_q.empty():
                            return
                    continue
                if item is DONE:
                    return
                noisy, denoised, dt = item
                now = time.perf_counter()
                recent = [t for t in recent if now - t < 2.0] + [now]
                live_fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                frame = side_by_side(noisy, denoised, view_state["view"])
                if overlay_text:
                    hole = denoisers.hole()
                    info = denoisers.current.runtime.info
                    lines = [f"{live_fps:5.1f} fps  {dt * 1e3:6.1f} ms/frame  dropped {stats.dropped}",
                             f"{view_state['view']}  hole {hole if hole is not None else '-'}  "
                             f"{info.precision} {info.backend}"]
                    if message and now < message_until:
                        lines.append(message)
                    frame = overlay(frame, lines)
                if output is not None:
                    if writer is None:
                        writer = AtomicVideo(output, fps_out, (frame.shape[1], frame.shape[0]), overwrite)
                    # a Ctrl-C between the write and the count would leave a frame in the
                    # video that the summary does not count: the two happen together
                    with _signals_deferred() as pending:
                        writer.write(frame)
                        stats.written += 1
                    for signum in pending:
                        signal.raise_signal(signum)
                stats.shown += 1
                if not headless:
                    cv2.imshow(window, frame)
                    key = cv2.waitKey(1) & 0xFF
                    if key in (ord("q"), 27):
                        return
                    if key == ord("v"):
                        view_state["view"] = VIEWS[(VIEWS.index(view_state["view"]) + 1) % len(VIEWS)]
                    if key in (ord("+"), ord("="), ord("-"), ord("_")):
                        message = denoisers.step(+1 if key in (ord("+"), ord("=")) else -1)
                        message_until = now + 3.0
                        print(message, file=sys.stderr)

        for name, job in (("capture", capture), ("inference", infer)):
            threads_.append(threading.Thread(target=job, name=name, daemon=True))
            threads_[-1].start()
        try:
            show_frames()
        except KeyboardInterrupt as exc:  # Ctrl-C (or SIGTERM through run_cli): stop like q
            interrupted = exc
        completed = True
    finally:
        # Stop and join the threads before releasing what they use (the capture, the runtime):
        # a C++ object destroyed while a thread is inside it aborts the interpreter.
        stop.set()
        with _signals_deferred() as pending:
            stuck = []
            for t in threads_:
                t.join(timeout=JOIN_TIMEOUT_S)
                if t.is_alive():
                    stuck.append(t.name)
            stats.finished = time.perf_counter()
            if writer is not None:
                # a video that does not read back whole is an error, raised once the source
                # and the runtime are released (below), never a success line
                try:
                    writer.close(completed and not errors)
                except (AtbsnError, OSError) as exc:
                    close_error = exc
            if stuck:  # leave the objects it may be inside to the process's end
                log.warning("the %s thread did not stop within %.0f s; exiting without "
                            "releasing the source and the runtime", " and ".join(stuck),
                            JOIN_TIMEOUT_S)
            else:
                if cap is not None:
                    cap.release()
                denoisers.close()
            if not headless:
                try:
                    cv2.destroyAllWindows()
                except Exception:  # noqa: BLE001 - headless OpenCV builds
                    pass
    if errors:
        raise errors[0]
    if close_error is not None:
        raise close_error
    if pending and interrupted is None:
        interrupted = KeyboardInterrupt()
    summary = stats.summary()
    summary.update({"source": source.describe(), "live": source.live,
                    "output": str(output) if output is not None and stats.written else None,
                    "interrupted": interrupted is not None})
    if interrupted is not None:
        interrupted.summary = summary  # type: ignore[attr-defined] - for main's summary
        raise interrupted
    return summary


def build_parser() -> argparse.ArgumentParser:
    from atbsn_edge.arguments import non_negative_int, path_arg, positive_int
    from atbsn_edge.cli import new_parser
    from atbsn_edge.pipeline import tile_arg

    p = new_parser("examples/camera_demo.py", __doc__)
    p.add_argument("--artifact", type=path_arg, action="append", required=True,
                   help="bundle folder or artifact file; repeat with the same network exported at "
                        "other holes to switch with +/-")
    p.add_argument("--source", required=True, help="camera index, /dev/videoN, csi://N, rtsp://... or a video file")
    p.add_argument("--target", help="which artifact of the bundle(s)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads of the backend")
    p.add_argument("--tile", type=tile_arg, default="auto",
                   help="tiles: auto (default: the tile shape that computes each frame in the "
                        "fewest pixels, where the artifact can take any shape: OpenVINO, dynamic "
                        "artifacts; recompiled at the first frame) or N, square tiles of side N")
    p.add_argument("--headless", action="store_true", help="no window (for machines without a display)")
    p.add_argument("--output", type=path_arg, help="write the shown frames to this video (.mp4, .avi)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N captured frames")
    p.add_argument("--view", choices=VIEWS, default="side-by-side", help="initial view")
    p.add_argument("--capture-size", metavar="WxH", help="ask a camera for this frame size")
    p.add_argument("--process-size", metavar="WxH",
                   help="denoise a copy of each frame resized to WxH (for slow devices: the network "
                        "then sees downscaled noise, weaker than the sensor's, so this shows speed "
                        "and the pipeline more than full-resolution quality)")
    p.add_argument("--no-overlay", action="store_true", help="no fps/latency text on the frames")
    p.add_argument("--json", type=path_arg, help="write the summary as JSON")
    return p


def print_summary(summary: dict[str, Any], json_path: Path | None) -> None:
    """With ``--json``, the summary as JSON (atomically), then the summary line on stdout: a
    JSON that cannot be written (a full disk) is one error line naming it, not a success line
    followed by a bare "No space left on device"."""
    if json_path is not None:
        from atbsn_edge.atomic import atomic_path

        try:
            with atomic_path(json_path) as tmp:
                tmp.write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise DemoError(f"cannot write --json {json_path}: {reason} (the previous file, if "
                            f"any, was left as it was); free space on the disk of "
                            f"{json_path.parent}, or give another --json path") from None
    print(f"{summary['source']}: {summary['frames_processed']} frames denoised, "
          f"{summary['frames_dropped']} dropped, {summary['frames_written']} written; "
          f"{summary['fps'] or 0:.2f} fps; latency median {summary['latency_ms_median'] or 0:.1f} ms, "
          f"p90 {summary['latency_ms_p90'] or 0:.1f} ms", flush=True)


def _job(args: argparse.Namespace) -> int:
    from atbsn_edge.output_paths import check_report_path

    logging.getLogger("atbsn_edge").setLevel(logging.WARNING)
    sizes = {}
    for name in ("capture_size", "process_size"):
        text = getattr(args, name)
        if text:
            try:
                w, h = (int(v) for v in text.lower().split("x"))
                assert w > 0 and h > 0
            except (ValueError, AssertionError):
                raise DemoError(f"--{name.replace('_', '-')} {text} is not WxH (two positive "
                                "integers, such as 640x360)") from None
            sizes[name] = (w, h)
    # every output is checked before any work (and before any thread starts)
    source = parse_source(args.source)
    inputs = [source.value if source.kind == "file" else None, *args.artifact]
    if args.output is not None:
        args.output = check_video_output(args.output, overwrite=args.overwrite, inputs=inputs)
    if args.json is not None:
        if args.output is not None and same_file(args.json, args.output):
            raise DemoError(f"--json {args.json} is also the --output video; give the summary "
                            "another path")
        check_report_path(args.json, "--json", inputs=inputs,
                          instead="choose another path for the summary")
    if not args.headless:
        problem = window_problem()
        if problem:
            raise DemoError(problem)
    if args.headless and args.output is None:
        print("note: --headless without --output shows nothing; only the summary is printed",
              file=sys.stderr)
    try:
        summary = run_demo(args.artifact, args.source, target=args.target, threads=args.threads,
                           headless=args.headless, output=args.output, max_frames=args.max_frames,
                           view=args.view, capture_size=sizes.get("capture_size"),
                           overwrite=args.overwrite, overlay_text=not args.no_overlay,
                           tile=args.tile,
                           process_size=sizes.get("process_size"))
    except KeyboardInterrupt as exc:  # stopped cleanly: the summary, then run_cli's exit code
        summary = getattr(exc, "summary", None)
        if summary is not None:
            print_summary(summary, args.json)
        raise
    print_summary(summary, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: one-line errors with exit code 2, Ctrl-C 130 and SIGTERM 143 after
    the clean-up (``atbsn_edge.cli.run_cli``)."""
    from atbsn_edge.cli import run_cli

    args = build_parser().parse_args(argv)
    return run_cli(lambda: _job(args))


if __name__ == "__main__":
    sys.exit(main())

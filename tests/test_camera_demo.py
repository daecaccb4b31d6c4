"""The headless camera demo on generated videos: every frame of a file is denoised and
written, the written video reads back with as many frames, and a live source drops frames
instead of stalling. The demo goes through pipeline.open_artifact_tiled + TiledRuntime."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")


def load_demo():
    spec = importlib.util.spec_from_file_location("camera_demo", ROOT / "examples" / "camera_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["camera_demo"] = module
    spec.loader.exec_module(module)
    return module


def make_video(path: Path, frames: int, width: int, height: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width, height))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    for i in range(frames):
        writer.write(np.roll(base, 4 * i, axis=1))
    writer.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture
def bundle(tmp_path, make_checkpoint):
    from atbsn_edge.export.__main__ import main as export

    out = tmp_path / "bundle"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--out", str(out)]) == 0
    return out


def test_source_parsing_and_gstreamer_message(monkeypatch):
    demo = load_demo()
    assert demo.parse_source("0") == demo.Source("index", 0, True)
    assert demo.parse_source("/dev/video2").kind == "device"
    assert demo.parse_source("csi://1") == demo.Source("csi", 1, True)
    assert demo.parse_source("rtsp://cam/stream").kind == "url"
    assert demo.parse_source("clip.mp4") == demo.Source("file", "clip.mp4", False)
    assert "nvarguscamerasrc sensor-id=1" in demo.csi_pipeline(1)
    monkeypatch.setattr(demo, "gstreamer_available", lambda: False)
    with pytest.raises(demo.DemoError, match="GStreamer"):
        demo.open_capture(demo.parse_source("csi://0"))


@pytest.mark.slow
def test_headless_720p_300_frames_writes_every_frame(tmp_path, bundle):
    """The bar: a generated 300-frame 720p video; every frame denoised (at --process-size
    128x72 to fit two CPU cores) and written; the output reads back with 300 frames."""
    demo = load_demo()
    video = make_video(tmp_path / "in.mp4", 300, 1280, 720)
    out = tmp_path / "out" / "denoised.mp4"
    summary_file = tmp_path / "summary.json"
    code = demo.main(["--artifact", str(bundle), "--source", str(video), "--headless",
                      "--output", str(out), "--process-size", "128x72", "--threads", "2",
                      "--json", str(summary_file)])
    assert code == 0
    s = json.loads(summary_file.read_text())
    assert s["frames_captured"] == s["frames_processed"] == s["frames_written"] == 300
    assert s["frames_dropped"] == 0 and not s["live"]
    assert s["fps"] > 0 and s["latency_ms_median"] > 0 and s["latency_ms_p90"] >= s["latency_ms_median"]
    assert count_frames(out) == 300
    assert not list(out.parent.glob(".*partial*"))            # the temporary is gone
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 2 * 128  # side by side
    cap.release()


def test_full_resolution_few_frames_and_max_frames(tmp_path, bundle):
    demo = load_demo()
    video = make_video(tmp_path / "in.mp4", 12, 192, 128)
    out = tmp_path / "o.mp4"
    s = demo.run_demo([bundle], str(video), headless=True, output=out, max_frames=5,
                      view="denoised", threads=1)
    assert s["frames_processed"] == s["frames_written"] == 5 and count_frames(out) == 5
    with pytest.raises(demo.DemoError, match="exists"):
        demo.run_demo([bundle], str(video), headless=True, output=out, max_frames=1)


def test_live_source_drops_frames_instead_of_stalling(tmp_path, bundle, monkeypatch):
    """A source marked live is read as fast as it comes; frames that find inference busy are
    dropped and counted, and captured = processed + dropped."""
    demo = load_demo()
    video = make_video(tmp_path / "in.mp4", 60, 640, 360)
    parse = demo.parse_source
    monkeypatch.setattr(demo, "parse_source", lambda text: demo.Source("file-as-live", parse(text).value, True))
    real_open = demo.open_capture
    monkeypatch.setattr(demo, "open_capture",
                        lambda source, *a: real_open(demo.Source("file", source.value, False), *a))
    s = demo.run_demo([bundle], str(video), headless=True, threads=1)
    assert s["live"] and s["frames_captured"] == 60
    assert s["frames_dropped"] > 0
    assert s["frames_processed"] + s["frames_dropped"] == s["frames_captured"]


def test_hole_keys_are_honest(bundle, make_checkpoint, tmp_path):
    demo = load_demo()
    d = demo.Denoisers([bundle], None, 1)
    try:
        msg = d.step(+1)
        assert "fixed at export" in msg or "no blind spot" in msg
    finally:
        d.close()


# --- user mistakes: one line, exit 2, nothing replaced, nothing started ---------------------

def demo_env() -> dict[str, str]:
    """The environment of a demo subprocess: this checkout importable, OpenCV's and FFmpeg's
    log levels as a user who set none."""
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_demo_cli(*args: str, cwd: Path, timeout: float = 180):
    import subprocess

    return subprocess.run([sys.executable, str(ROOT / "examples" / "camera_demo.py"), *args],
                          capture_output=True, text=True, env=demo_env(), cwd=cwd, timeout=timeout)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """The demo module with its denoisers unopenable: a refusal must come before any work."""
    demo = load_demo()

    def opened(*a, **k):
        raise AssertionError("the artifact was opened before the arguments were checked")

    monkeypatch.setattr(demo, "Denoisers", opened)
    return demo


def snapshot(*paths: Path) -> dict[Path, bytes]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {f: f.read_bytes() for f in files}


def test_json_never_replaces_an_input_or_a_bundle_file(tmp_path, bundle, no_work, capsys):
    video = make_video(tmp_path / "in.mp4", 3, 64, 64)
    before = snapshot(video, bundle)
    model = next(bundle.glob("*.onnx"))
    for target, says in ((video, "would replace an input of this run"),
                         (model, "would replace a file of the bundle"),
                         (bundle / "manifest.json", "would replace a file of the bundle")):
        code = no_work.main(["--artifact", str(bundle), "--source", str(video), "--headless",
                             "--max-frames", "2", "--json", str(target)])
        assert code == 2
        line = error_line(capsys)
        assert line.startswith(f"error: --json {target} ") and says in line
    assert snapshot(video, bundle) == before


def test_output_is_never_an_input_even_with_overwrite(tmp_path, bundle, no_work, capsys,
                                                      monkeypatch):
    video = make_video(tmp_path / "in.mp4", 3, 64, 64)
    before = snapshot(video, bundle)
    monkeypatch.chdir(tmp_path)
    for source, output in ((video, video), ("in.mp4", "./sub/../in.mp4")):
        code = no_work.main(["--artifact", str(bundle), "--source", str(source), "--headless",
                             "--output", str(output), "--overwrite"])
        assert code == 2
        assert "is an input of this run" in error_line(capsys)
    code = no_work.main(["--artifact", str(bundle), "--source", str(video), "--headless",
                         "--output", str(tmp_path / "o.mp4"), "--json", str(tmp_path / "o.mp4")])
    assert code == 2 and "is also the --output video" in error_line(capsys)
    assert snapshot(video, bundle) == before


def test_output_problems_are_refused_before_anything_starts(tmp_path, bundle, no_work, capsys):
    video = make_video(tmp_path / "in.mp4", 3, 64, 64)
    existing = make_video(tmp_path / "old.mp4", 2, 64, 64)
    before = snapshot(video, existing, bundle)
    listing = sorted(p.name for p in tmp_path.iterdir())
    model = next(bundle.glob("*.onnx"))
    cases = [(["--output", str(existing)], "exists; pass --overwrite"),
             (["--output", str(tmp_path / "o")], "has no extension"),
             (["--output", str(tmp_path / "o.gif")], "has the extension .gif"),
             (["--output", str(model), "--overwrite"], "the demo writes videos"),
             (["--output", str(tmp_path)], "is a folder")]
    for extra, says in cases:
        code = no_work.main(["--artifact", str(bundle), "--source", str(video), "--headless",
                             *extra])
        assert code == 2, extra
        line = error_line(capsys)
        assert says in line, line
    assert snapshot(video, existing, bundle) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing   # no output, no temporary
    # a bundle's file under a video name is refused too, with or without --overwrite
    fake = bundle / "clip.mp4"
    manifest = json.loads((bundle / "manifest.json").read_text())
    next(iter(manifest["artifacts"].values()))["files"]["clip.mp4"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    fake.write_bytes(b"x")
    with pytest.raises(no_work.DemoError, match="would replace a file of the bundle"):
        no_work.check_video_output(fake, overwrite=True)


def test_an_output_error_inside_the_run_stops_the_threads(tmp_path, bundle, monkeypatch):
    """An error once the threads run (here the writer) joins them before releasing the
    capture and the runtime (a C++ object released under a running thread aborts Python)."""
    import threading

    demo = load_demo()
    video = make_video(tmp_path / "in.mp4", 40, 64, 64)
    listing = sorted(p.name for p in tmp_path.iterdir())

    def refuse(self, *a, **k):
        raise demo.DemoError("the disk is full")

    monkeypatch.setattr(demo.AtomicVideo, "__init__", refuse)
    with pytest.raises(demo.DemoError, match="disk is full"):
        demo.run_demo([bundle], str(video), headless=True, output=tmp_path / "o.mp4", threads=1)
    assert not [t for t in threading.enumerate() if t.name in ("capture", "inference")]
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_opencv_and_ffmpeg_lines_are_quiet(tmp_path, bundle):
    """A damaged video and a missing camera: the demo's one line, not FFmpeg's "moov atom not
    found" nor OpenCV's "[ WARN:0@0.7] global cap_v4l.cpp ..." before it."""
    (tmp_path / "fake.mp4").write_bytes(b"abc")
    sources = ["fake.mp4"]
    if not Path("/dev/video7").exists():
        sources.append("7")
    for source in sources:
        done = run_demo_cli("--artifact", str(bundle), "--source", source, "--headless",
                            "--max-frames", "2", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines()
                 if line.strip() and not line.startswith(("note: ", "WARNING atbsn_edge"))]
        assert len(lines) == 1 and lines[0].startswith("error: cannot open "), done.stderr
        assert "moov" not in done.stderr and "WARN:" not in done.stderr


def test_ctrl_c_stops_cleanly_with_the_output_and_summary(tmp_path, bundle):
    """SIGINT while frames flow: the threads are joined, the video written so far is finished
    (atomically), the summary printed, exit 130; no "terminate called ..." abort (134)."""
    import signal
    import subprocess
    import time

    video = make_video(tmp_path / "in.mp4", 600, 96, 64)
    out = tmp_path / "o.mp4"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "camera_demo.py"), "--artifact", str(bundle),
         "--source", str(video), "--headless", "--output", str(out), "--threads", "1",
         "--json", str(tmp_path / "s.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=demo_env(), cwd=tmp_path,
        # Ctrl-C's default disposition in the demo, as in a terminal: a test run started in
        # the background (nohup, `&` in a script) ignores SIGINT, and a child inherits that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while (time.time() < deadline and process.poll() is None
               and not list(tmp_path.glob(".o.partial-*.mp4"))):
            time.sleep(0.02)
        assert process.poll() is None, "the demo ended before it was interrupted"
        # frames flowing: the partial video has grown past its header, so the signal does not
        # land while the writer is still being set up
        partial = next(iter(tmp_path.glob(".o.partial-*.mp4")), None)
        while (time.time() < deadline and process.poll() is None and partial is not None
               and partial.exists() and partial.stat().st_size < 8192):
            time.sleep(0.02)
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, (stdout[-500:], stderr[-2000:])
    assert "terminate called" not in stderr and "Traceback" not in stderr
    assert stderr.splitlines()[-1] == "interrupted"
    assert "frames denoised" in stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["interrupted"] and 0 < summary["frames_written"] < 600
    assert count_frames(out) == summary["frames_written"]
    assert not list(tmp_path.glob(".o*"))        # no temporary left


def test_a_window_without_a_gui_or_a_display_is_one_line_before_anything(tmp_path, capsys):
    """Without --headless the demo ended in cv2.imshow's traceback on opencv-python-headless
    (what atbsn-edge installs) or without a display (found 2026-12-07)."""
    demo = load_demo()
    gui = "  GUI:                           GTK3\n"
    assert demo.window_problem(gui, {"DISPLAY": ":0"}, "linux") is None
    assert demo.window_problem(gui, {"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert "DISPLAY is not set" in demo.window_problem(gui, {}, "linux")
    assert demo.window_problem(gui, {}, "darwin") is None
    assert "no window support" in demo.window_problem("  GUI:   NONE\n", {"DISPLAY": ":0"},
                                                      "linux")
    problem = demo.window_problem()
    if problem is None:
        pytest.skip("this machine can open a window")
    source = make_video(tmp_path / "clip.mp4", 2, 64, 64)
    assert demo.main(["--artifact", str(tmp_path / "missing"), "--source", str(source)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {problem}"]


# --- a video cut short (a full disk) never replaces the previous output ---------------------

def demo_error_line(capsys) -> tuple[str, str]:
    """The one error line of a run that opened the artifact (its tile WARNING aside), and
    the run's standard output."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines()
             if line.strip() and not line.startswith(("note: ", "WARNING atbsn_edge"))]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "Traceback" not in captured.err
    return lines[0], captured.out


def disk_filling_writer(monkeypatch, mode: str, keep: int = 5):
    """Replace ``cv2.VideoWriter`` by one that behaves as on a disk that fills up, without
    saying so (OpenCV's writer reports no write error): ``"truncate"`` cuts the demo's
    temporary to half its size once released (an MP4 then lacks its index, "moov atom not
    found"; an AVI keeps a header that counts every frame), ``"drop"`` loses every frame
    after the first ``keep``."""
    real = cv2.VideoWriter

    class FillingDisk:
        def __init__(self, filename, *args):
            self.filename = str(filename)
            self.inner = real(filename, *args)
            self.frames = 0

        def isOpened(self):
            return self.inner.isOpened()

        def write(self, frame):
            self.frames += 1
            if mode == "drop" and self.frames > keep:
                return
            self.inner.write(frame)

        def release(self):
            self.inner.release()
            if mode == "truncate" and ".partial-" in self.filename:
                path = Path(self.filename)
                with open(path, "r+b") as f:
                    f.truncate(path.stat().st_size // 2)

    monkeypatch.setattr(cv2, "VideoWriter", FillingDisk)


def test_a_video_cut_short_by_a_full_disk_keeps_the_previous_output(tmp_path, bundle,
                                                                    monkeypatch, capsys):
    """Found 2026-12 by an audit on a 200 KB tmpfs: `--output full/o.mp4 --overwrite` printed
    "12 frames denoised, 0 dropped, 12 written", exited 0 and replaced a good o.mp4 with a
    video that does not play. Now the temporary is read back before the rename: one error
    line naming the output, exit 2, the previous video and summary untouched, no temporary,
    no success line."""
    demo = load_demo()
    video = make_video(tmp_path / "in.mp4", 12, 192, 128)
    cases = [("truncate", ".mp4"), ("truncate", ".avi"), ("drop", ".mp4")]
    olds = {suffix: make_video(tmp_path / f"o{suffix}", 3, 64, 64) for _, suffix in cases}
    summary_file = tmp_path / "s.json"
    summary_file.write_text('{"previous": true}\n')
    before = snapshot(video, summary_file, *olds.values())
    listing = sorted(p.name for p in tmp_path.iterdir())
    for mode, suffix in cases:
        with monkeypatch.context() as patch:
            disk_filling_writer(patch, mode)
            code = demo.main(["--artifact", str(bundle), "--source", str(video), "--headless",
                              "--output", str(olds[suffix]), "--overwrite", "--threads", "1",
                              "--json", str(summary_file)])
        line, out = demo_error_line(capsys)
        assert code == 2, (mode, suffix, line)
        assert line.startswith(f"error: cannot write {olds[suffix]}: the video could not be "
                               "written completely"), line
        assert "--output" in line and "was left as it was" in line
        assert "frames denoised" not in out                      # no success line
        assert snapshot(video, summary_file, *olds.values()) == before, (mode, suffix)
        assert sorted(p.name for p in tmp_path.iterdir()) == listing   # no temporary left


def test_a_normal_run_passes_the_read_back_check_and_replaces_the_output(tmp_path, bundle,
                                                                        monkeypatch, capsys):
    """The check is not a false alarm: a whole video reads back with every frame (each
    container the demo writes), and a normal --overwrite run replaces the previous video."""
    demo = load_demo()
    rng = np.random.default_rng(1)
    for suffix in demo.VIDEO_SUFFIXES:
        for frames in (1, 2, 13):
            video = demo.AtomicVideo(tmp_path / f"v{frames}{suffix}", 30.0, (96, 64), False)
            for _ in range(frames):
                video.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
            video.writer.release()
            assert video.verify() is None, (suffix, frames)
            video.close(True)
            assert count_frames(tmp_path / f"v{frames}{suffix}") == frames
    assert not list(tmp_path.glob(".*partial*"))
    verdicts = []
    real_verify = demo.AtomicVideo.verify

    def spy(self):
        verdicts.append(real_verify(self))
        return verdicts[-1]

    monkeypatch.setattr(demo.AtomicVideo, "verify", spy)
    source = make_video(tmp_path / "in.mp4", 12, 192, 128)
    out = make_video(tmp_path / "o.mp4", 3, 64, 64)
    code = demo.main(["--artifact", str(bundle), "--source", str(source), "--headless",
                      "--output", str(out), "--overwrite", "--threads", "1"])
    assert code == 0 and verdicts == [None]
    assert "12 frames denoised, 0 dropped, 12 written" in capsys.readouterr().out
    assert count_frames(out) == 12 and not list(tmp_path.glob(".*partial*"))


def test_a_summary_that_cannot_be_written_is_one_line_naming_it(tmp_path, bundle, monkeypatch,
                                                                capsys):
    """--json on a full disk ended with a bare "error: No space left on device" after the
    success line: now one line naming the --json file, exit 2, the previous summary kept."""
    import errno

    demo = load_demo()
    video = make_video(tmp_path / "in.mp4", 4, 64, 64)
    summary_file = tmp_path / "s.json"
    summary_file.write_text('{"previous": true}\n')
    listing = sorted(p.name for p in tmp_path.iterdir())
    real_write_text = Path.write_text

    def full_disk(self, *a, **k):
        if self.name.startswith(".s.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full_disk)
    code = demo.main(["--artifact", str(bundle), "--source", str(video), "--headless",
                      "--threads", "1", "--json", str(summary_file)])
    line, out = demo_error_line(capsys)
    assert code == 2
    assert line.startswith(f"error: cannot write --json {summary_file}: No space left on device")
    assert "another --json" in line and "frames denoised" not in out
    assert summary_file.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == listing   # no temporary left

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

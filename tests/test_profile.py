"""The profiler: one timing function, MACs from the ONNX graph (Conv and ConvTranspose), the
floors, and the CLI's report and JSON on a tiny bundle."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from atbsn_edge.profiling.timing import time_calls


def test_time_calls_iters_and_duration():
    calls = []
    t = time_calls(lambda: calls.append(time.sleep(0.002)), warmup_s=0.0, iters=5)
    assert t.count == 5 and t.warmup_calls == 1 and len(calls) == 6
    assert 0.0015 < t.median < 0.05 and t.min <= t.median <= t.p90 <= t.p99
    assert t.std >= 0 and math.isfinite(t.mean)
    t = time_calls(lambda: time.sleep(0.01), warmup_s=0.0, duration_s=0.1)
    assert 3 <= t.count <= 15 and t.marks["end"] >= t.marks["start"]
    with pytest.raises(ValueError):
        time_calls(lambda: None, iters=2, duration_s=1.0)


def test_time_calls_draws_its_bar_on_a_terminal_only(monkeypatch, capsys):
    """profile's timed phases (10 s each by default) show a progress bar, in calls or in
    seconds of the budget; off a terminal nothing is drawn and the counts are the same."""
    import io

    import tqdm as tqdm_module

    t = time_calls(lambda: time.sleep(0.002), warmup_s=0.0, iters=4, desc="single calls")
    assert t.count == 4 and capsys.readouterr().err == ""          # not a terminal: no bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    real = tqdm_module.tqdm
    monkeypatch.setattr(tqdm_module, "tqdm", lambda *a, **k: real(*a, file=screen, ncols=80, **k))
    t = time_calls(lambda: time.sleep(0.01), warmup_s=0.0, duration_s=0.1, desc="frames")
    assert 3 <= t.count <= 15
    assert "frames: 100%" in screen.getvalue() and "/0.1 s" in screen.getvalue()


def small_graph(path):
    """x(1,3,32,32) -Conv 3->8 k3 p1-> (1,8,32,32) -Conv 8->16 k3 s2 p1-> (1,16,16,16)
    -ConvTranspose 16->8 k2 s2-> (1,8,32,32) -Conv 8->3 k1-> (1,3,32,32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = lambda *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    inits = []
    for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (16, 8, 3, 3)), ("wt", (16, 8, 2, 2)),
                        ("w3", (3, 8, 1, 1)), ("b3", (3,))):
        t = w(*shape)
        t.name = name
        inits.append(t)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="c1"),
             helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], strides=[2, 2], name="c2"),
             helper.make_node("ConvTranspose", ["b", "wt"], ["c"], strides=[2, 2], name="t1"),
             helper.make_node("Conv", ["c", "w3", "b3"], ["y"], name="c3")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    conv = 32 * 32 * 8 * 3 * 9 + 16 * 16 * 16 * 8 * 9 + 32 * 32 * 3 * 8
    convt = 16 * 16 * 16 * 8 * 4          # input elements x (out channels) x taps
    weights = 8 * 3 * 9 + 16 * 8 * 9 + 16 * 8 * 4 + 3 * 8 + 3
    return conv, convt, weights


def test_graph_cost_counts_conv_and_conv_transpose(tmp_path):
    from atbsn_edge.profiling.graph_cost import graph_cost

    conv, convt, weights = small_graph(tmp_path / "g.onnx")
    cost = graph_cost(tmp_path / "g.onnx")
    assert (cost.conv_macs, cost.conv_transpose_macs) == (conv, convt)
    assert cost.macs == conv + convt and cost.weights == weights
    assert cost.input_elements == cost.output_elements == 3 * 32 * 32
    assert cost.min_bytes("int8") == 2 * 3 * 32 * 32 + weights
    assert cost.min_bytes("fp32") == 4 * cost.min_bytes("int8")
    # a batch of 2 costs twice as much; per_tile divides it out
    two = graph_cost(tmp_path / "g.onnx", input_shape=(2, 3, 32, 32))
    assert two.macs == 2 * cost.macs and two.per_tile().macs == cost.macs


def test_graph_cost_matches_torch_count_on_student_c(tmp_path, make_checkpoint):
    """The exported (upsampling-fused) student C's ONNX MACs equal count_macs of the
    fused PyTorch network, and the plain graph's those of the plain network."""
    torch = pytest.importorskip("torch")
    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.models import load_checkpoint
    from atbsn_edge.models.complexity import count_macs
    from atbsn_edge.profiling.graph_cost import graph_cost

    ckpt = make_checkpoint("student_c")
    out = tmp_path / "b"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(ckpt), "--tile", "64",
                   "--no-fuse-upsampling", "--out", str(out)]) == 0
    cost = graph_cost(out / "model-fp32.onnx")
    model = load_checkpoint(ckpt)
    assert cost.macs == count_macs(model.core(), torch.zeros(1, 3, 64, 64))


def test_floor_table_and_detection():
    from atbsn_edge.profiling import floors

    nano = floors.DEVICES["orin-nano-8gb"]
    assert nano.mac_rate("int8") == 20e12 / 2 and nano.bandwidth_gbs == 68.0
    assert all(d.sources for d in floors.DEVICES.values())
    assert floors.detect_jetson("NVIDIA Jetson AGX Orin Developer Kit", 62000) == "agx-orin-64gb"
    assert floors.detect_jetson("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
                                7600) == "orin-nano-8gb"
    assert floors.detect_jetson("NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
                                15600) == "orin-nx-16gb"
    assert floors.detect_jetson("Raspberry Pi 5", 8000) is None
    f = floors.make_floor(1e12, 1e9, 1e12, 1e10, "int8", "x")
    assert f.seconds == 1.0 and f.bound == "compute"
    f = floors.make_floor(1e9, 1e9, 1e12, 1e9, "int8", "x")
    assert f.seconds == 1.0 and f.bound == "memory"
    assert floors.cpu_precision_key("fp16", "bf16", {"f32": 1, "bf16": 2}) == "bf16"
    assert floors.cpu_precision_key("fp16", None, {"f32": 1, "bf16": 2}) == "f32"  # ORT fp16
    assert floors.cpu_precision_key("fp16", None, {"f32": 1, "f16": 2}) == "f16"
    assert floors.cpu_precision_key("int8", "bf16", {"int8": 3}) == "int8"


@pytest.fixture
def timed_floor_convolutions(monkeypatch) -> list:
    """One entry per CPU floor convolution timed from now on (none where the rates come from
    the cache): the counters' whole microseconds can repeat a rate exactly, so a measurement is
    told from a cache read by whether it timed anything."""
    from atbsn_edge.profiling import floors

    timed: list = []
    best_rate = floors.best_convolution_rate
    monkeypatch.setattr(floors, "best_convolution_rate", lambda *a: timed.append(a) or best_rate(*a))
    return timed


def test_cpu_rates_are_measured_and_cached(timed_floor_convolutions):
    pytest.importorskip("openvino")
    from atbsn_edge.profiling import floors

    timed = timed_floor_convolutions
    rates = floors.measure_cpu_rates(1, channels=32, size=32, seconds=0.2)
    assert {"f32", "int8"} <= set(rates.mac_rate) and len(timed) == len(rates.mac_rate)
    assert all(v > 0 and math.isfinite(v) for v in rates.mac_rate.values()) and rates.bandwidth > 0
    assert rates.cache_file
    timed.clear()
    again = floors.measure_cpu_rates(1, channels=32, size=32, seconds=0.2)
    assert not timed and again.mac_rate == rates.mac_rate and again.measured_at == rates.measured_at
    # refresh: timed again, and the cache rewritten
    fresh = floors.measure_cpu_rates(1, channels=32, size=32, seconds=0.2, refresh=True)
    assert len(timed) == len(rates.mac_rate)
    timed.clear()
    cached = floors.measure_cpu_rates(1, channels=32, size=32, seconds=0.2)
    assert not timed and (cached.mac_rate, cached.bandwidth) == (fresh.mac_rate, fresh.bandwidth)


def no_nan(text):
    def bad(value):
        raise AssertionError(f"non-finite {value} in the JSON")
    return json.loads(text, parse_constant=bad)


def test_profile_cli_report_and_json(tmp_path, make_checkpoint, capsys, monkeypatch,
                                     timed_floor_convolutions):
    pytest.importorskip("onnxruntime")
    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.profile import main

    ckpt = make_checkpoint("student_a")
    bundle = tmp_path / "b"
    assert export(["--target", "onnx-fp32", "--checkpoint", str(ckpt), "--tile", "64",
                   "--out", str(bundle)]) == 0
    out = tmp_path / "r" / "profile.json"
    # the floor: this CPU measured with a small convolution (patched to keep the test short)
    from atbsn_edge.profiling import floors
    real = floors.measure_cpu_rates
    monkeypatch.setattr(floors, "measure_cpu_rates",
                        lambda threads=0, **kw: real(threads, channels=32, size=32, seconds=0.2,
                                                     **kw))
    assert main([str(bundle), "--resolution", "160x96", "--warmup", "0", "--iters", "3",
                 "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "median" in text and "x floor" in text and "MP/s" in text
    r = no_nan(out.read_text())
    assert r["backend"] == "onnxruntime" and r["precision"] == "fp32"
    assert r["call"]["latency_ms"]["count"] == 3
    assert set(r["call"]["latency_ms"]) >= {"median", "p90", "p99", "min", "mean", "std"}
    assert r["cost"]["macs_per_call"] > 0 and r["cost"]["min_bytes_per_call"] > 0
    assert r["floor"]["seconds"] > 0 and r["call"]["ratio_to_floor"]["median"] >= 1.0
    assert r["frame"]["tiles"] > 1 and r["frame"]["fps"] > 0 and r["frame"]["megapixels_per_s"] > 0
    assert r["memory"]["peak_host_mb"] > 10
    assert r["machine"]["cpu"]["model"] and r["machine"]["versions"]["onnxruntime"]
    assert r["power"] is None                      # no tegrastats here
    assert r["floor"]["details"]["fresh"] is False
    # --fresh-floor: the CPU's rates measured in this run, not read from the cache
    timed = timed_floor_convolutions
    timed.clear()   # the first run above measured them into the empty cache
    assert main([str(bundle), "--iters", "2", "--warmup", "0", "--no-frames", "--threads", "1",
                 "--json", str(out)]) == 0
    assert not timed and "measured in this run" not in capsys.readouterr().out
    assert main([str(bundle), "--iters", "2", "--warmup", "0", "--no-frames", "--threads", "1",
                 "--fresh-floor", "--json", str(out)]) == 0
    assert timed and "measured in this run" in capsys.readouterr().out
    r = no_nan(out.read_text())
    assert r["floor"]["details"]["fresh"] is True
    # no floor device: still a report, the ratios null (not NaN)
    assert main([str(bundle), "--iters", "2", "--warmup", "0", "--no-frames", "--floor-device",
                 "none", "--json", str(out)]) == 0
    r = no_nan(out.read_text())
    assert r["call"]["ratio_to_floor"]["median"] is None and "frame" not in r
    with pytest.raises(SystemExit) as refused:  # argparse refuses it before any work
        main([str(bundle), "--floor-device", "nonsense", "--iters", "1", "--no-frames"])
    assert refused.value.code == 2


def _openvino_bundle_small_floor(tmp_path, make_checkpoint, monkeypatch):
    """An openvino-fp32 bundle of student A at a 64 x 64 tile, and the CPU floor measured on a
    small convolution (patched, to keep the tests short)."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.profiling import floors

    bundle = tmp_path / "b"
    assert export(["--target", "openvino-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--reference-crops", "1", "--out", str(bundle)]) == 0
    real = floors.measure_cpu_rates
    monkeypatch.setattr(floors, "measure_cpu_rates",
                        lambda threads=0, **kw: real(threads, channels=32, size=32, seconds=0.2))
    return bundle


def test_profile_frames_take_auto_tiles_on_openvino(tmp_path, make_checkpoint, monkeypatch):
    """An OpenVINO IR exported at 64 x 64: calls are timed at 64 x 64, a 250 x 180 frame in the
    one tile --tile auto gives it, and the frame floor counts the pixels that tile computes."""
    from atbsn_edge.profile import profile_artifact

    bundle = _openvino_bundle_small_floor(tmp_path, make_checkpoint, monkeypatch)
    reports = {tile: profile_artifact(bundle, resolution=(250, 180), warmup_s=0, iters=2,
                                      threads=1, power=False, tile=tile)
               for tile in ("auto", None)}
    auto, fixed = reports["auto"], reports[None]
    assert auto["tile"] == fixed["tile"] == [64, 64]  # the calls: the IR's own tile
    assert auto["frame"]["tile_shape"] == [180, 252] and auto["frame"]["tiles"] == 1  # padded to 4
    assert fixed["frame"]["tile_shape"] == [64, 64] and fixed["frame"]["tiles"] > 1
    for r in (auto, fixed):
        pixels = r["frame"]["tiles"] * r["frame"]["tile_shape"][0] * r["frame"]["tile_shape"][1]
        assert r["frame"]["floor_ms"] == pytest.approx(r["floor"]["seconds"] * 1e3 * pixels
                                                       / (64 * 64), rel=1e-9)


def test_profile_times_calls_in_flight_under_the_throughput_hint(tmp_path, make_checkpoint,
                                                                 monkeypatch):
    """Under the throughput hint the runtime keeps several requests in flight, and a call
    alone runs on one stream: the report adds calls timed in streams through run_many (the
    tiler's path), per call and against the floor; under the latency hint it has none."""
    import os

    from atbsn_edge.profile import CALLS_PER_REQUEST, format_report, profile_artifact

    if (os.cpu_count() or 1) < 2:
        pytest.skip("OpenVINO keeps one request in flight on a single CPU")
    bundle = _openvino_bundle_small_floor(tmp_path, make_checkpoint, monkeypatch)
    common = dict(warmup_s=0, threads=2, power=False, frames=False)
    r = profile_artifact(bundle, iters=3, performance_hint="throughput", **common)
    flight = r["call"]["in_flight"]
    assert flight["requests"] >= 2 and flight["calls_per_stream"] == CALLS_PER_REQUEST * flight["requests"]
    assert flight["streams"] == 1  # --iters 3 calls: one whole stream
    floor_ms = r["floor"]["seconds"] * 1e3
    for key in ("median", "min", "mean"):
        assert flight["ratio_to_floor"][key] == pytest.approx(flight["per_call_ms"][key] / floor_ms)
    text = format_report(r)
    assert "(3 timed, one at a time)" in text
    assert f"with {flight['requests']} requests in flight (1 timed stream of " in text
    assert profile_artifact(bundle, iters=2, performance_hint="latency",
                            **common)["call"]["in_flight"] is None


def test_profile_sizes_are_width_by_height_and_the_target_that_ran_is_recorded(
        tmp_path, make_checkpoint, capsys):
    """A 250 x 180 frame (width x height) in one auto tile of 252 x 180: the text says so
    (it said "tiles of 180x252"), the JSON gives each tile's width and height by name, and
    the bundle's default target, which ran, is recorded (it was null)."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.profile import main

    bundle = tmp_path / "b"
    assert export(["--target", "openvino-fp32", "--checkpoint", str(make_checkpoint("student_a")),
                   "--tile", "64", "--reference-crops", "1", "--out", str(bundle)]) == 0
    out = tmp_path / "p.json"
    assert main([str(bundle), "--resolution", "250x180", "--warmup", "0", "--iters", "2",
                 "--threads", "1", "--floor-device", "none", "--no-power",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| frame 250x180, 1 tiles of 252x180 (" in text, text
    assert "network call of 1 tile(s) 64x64" in text
    r = no_nan(out.read_text())
    assert r["target"] == "openvino-fp32"
    assert (r["tile_width"], r["tile_height"]) == (64, 64)
    frame = r["frame"]
    assert frame["resolution"] == [250, 180] and frame["tile_shape"] == [180, 252]  # kept
    assert (frame["tile_width"], frame["tile_height"]) == (252, 180)
    # an artifact file inside its bundle runs as the target the manifest lists it under
    assert main([str(bundle / "model-fp32.xml"), "--warmup", "0", "--iters", "1", "--no-frames",
                 "--threads", "1", "--floor-device", "none", "--no-power",
                 "--json", str(out)]) == 0
    assert no_nan(out.read_text())["target"] == "openvino-fp32"

"""Throughput: several OpenVINO infer requests in flight (``Runtime.run_many`` with the
throughput hint) give the tiled output of the one-at-a-time latency path, outputs come back
in input order and copied out of their requests, and bad combinations are refused.

The OpenVINO bundles are tiny (He-initialised student C, 64-pixel tiles), exported once per
module. Throughput and latency compile the CPU differently (one thread per stream against
all threads on one request), so their convolutions may sum in another order: float rounding,
held to ``ATOL`` on the 0..255 scale (measured 0.002).
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from atbsn_edge.errors import AtbsnError
from atbsn_edge.runtimes.base import InputSpec, Runtime, RuntimeInfo
from atbsn_edge.tiling import TileSpec, denoise_tiled, denoise_tiled_many, plan_tiles
from conftest import checkout_env, textured_image

ATOL = 1e-2          # float rounding between CPU stream layouts, on 0..255
TILE, OVERLAP = 64, 32
IMAGE = (180, 250)   # padded 192 x 256: 5 x 7 = 35 tiles, so a batch of 2 ends padded


# --------------------------------------------------------------------------------------------
# The default, sequential run_many every backend inherits (no OpenVINO needed)
# --------------------------------------------------------------------------------------------

class AddOne(Runtime):
    """A runtime of fixed batch ``batch`` that adds one and records its calls."""

    backend = "add-one"

    def __init__(self, batch: int | None) -> None:
        super().__init__()
        self._spec = InputSpec(batch=batch, height=TILE, width=TILE, stride=32)
        self.calls: list[int] = []

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo("add-one", "none", "fp32", None, OVERLAP, "CPU")

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        return batch + 1


def test_default_run_many_pads_to_the_fixed_batch_and_keeps_order():
    runtime = AddOne(batch=2)
    rng = np.random.default_rng(0)
    batches = [rng.random((n, 3, TILE, TILE), dtype=np.float32) for n in (3, 1, 2)]
    outputs = list(runtime.run_many(iter(batches)))
    assert [len(o) for o in outputs] == [3, 1, 2] and runtime.calls == [2, 2, 2, 2]
    for batch, output in zip(batches, outputs):
        np.testing.assert_array_equal(output, batch + 1)


def test_tiled_many_equals_tiled_one_batch_at_a_time():
    image = textured_image(*IMAGE)
    spec = TileSpec(TILE, TILE, OVERLAP, batch=3)
    one = denoise_tiled(image, AddOne(None).run, spec)
    many = denoise_tiled_many(image, AddOne(None).run_many, spec)
    np.testing.assert_array_equal(one, many)
    np.testing.assert_allclose(many, image + 1, atol=1e-3)


def test_empty_batch_is_refused():
    with pytest.raises(AtbsnError, match="empty batch"):
        AddOne(2).run(np.zeros((0, 3, TILE, TILE), np.float32))


# --------------------------------------------------------------------------------------------
# OpenVINO
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[int, object]:
    """openvino-fp32 bundles of one He-initialised student C at batch 1 and batch 2."""
    pytest.importorskip("torch")
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from atbsn_edge.export.__main__ import main as export
    from conftest import write_checkpoint

    folder = tmp_path_factory.mktemp("throughput")
    checkpoint = write_checkpoint(folder, "student_c")
    out = {}
    for batch in (1, 2):
        out[batch] = folder / f"ov-b{batch}"
        assert export(["--target", "openvino-fp32", "--checkpoint", str(checkpoint), "--tile",
                       str(TILE), "--batch", str(batch), "--reference-crops", "1",
                       "--out", str(out[batch])]) == 0
    return out


def open_tiled(bundle, **options):
    from atbsn_edge.pipeline import open_artifact_tiled

    return open_artifact_tiled(bundle, overlap=OVERLAP, threads=2, **options)


@pytest.mark.parametrize("batch", [1, 2])
def test_throughput_requests_give_the_latency_output(bundles, batch):
    image = textured_image(*IMAGE)
    with open_tiled(bundles[batch]) as latency:
        assert latency.runtime.infer_requests == 1
        want = latency.denoise(image)
        assert latency.runtime.peak_in_flight == 1
    assert plan_tiles(*IMAGE, latency.spec).count % 2 == 1  # batch 2: the last one is padded
    for requests in (0, 3):  # 0: the compiled model's OPTIMAL_NUMBER_OF_INFER_REQUESTS
        with open_tiled(bundles[batch], performance_hint="THROUGHPUT",
                        infer_requests=requests) as throughput:
            runtime = throughput.runtime
            tiles = []
            got = throughput.denoise(image, tiles.append)
            assert runtime.info.metadata["performance_hint"] == "THROUGHPUT"
            if requests:
                assert runtime.infer_requests == requests and runtime.peak_in_flight >= 2
                assert f"{requests} requests in flight" in throughput.describe()
        assert sum(tiles) == plan_tiles(*IMAGE, throughput.spec).count
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    assert want.std() > 1  # a network ran, not a constant


def test_a_stream_left_early_finishes_its_requests(bundles):
    with open_tiled(bundles[1], performance_hint="THROUGHPUT", infer_requests=3) as tiled:
        runtime = tiled.runtime
        x = textured_image(TILE, TILE)[None].transpose(0, 3, 1, 2).copy()
        stream = runtime.run_many(x + k for k in range(10))
        first = next(stream)
        stream.close()  # three requests were in flight: they finish before close returns
        again = list(runtime.run_many([x, x + 1]))
        np.testing.assert_allclose(again[0], first, atol=ATOL, rtol=0)
        np.testing.assert_allclose(runtime.infer(x), first, atol=ATOL, rtol=0)


class ReusedBufferRequest:
    """Stands in for an ``openvino.InferRequest``: its output tensor is one buffer,
    overwritten in place each time the request is started again (as a reused request's
    is); ``fail`` makes ``wait`` raise as a request that failed in OpenVINO would."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.buffer: np.ndarray | None = None

    def start_async(self, inputs, share_inputs: bool = False) -> None:
        if self.buffer is None:
            self.buffer = np.empty_like(inputs[0])
        self.buffer[...] = inputs[0] * 2

    def wait(self) -> None:
        if self.fail:
            raise RuntimeError("Exception from src/plugin.cpp:12:\ndevice lost")

    def get_output_tensor(self, index: int):
        return type("Tensor", (), {"data": self.buffer})()


class FakeCompiled:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def create_infer_request(self) -> ReusedBufferRequest:
        return ReusedBufferRequest(self.fail)


def test_outputs_come_back_in_input_order_and_copied(bundles, monkeypatch):
    with open_tiled(bundles[1], performance_hint="THROUGHPUT", infer_requests=3) as tiled:
        monkeypatch.setattr(tiled.runtime, "compiled", FakeCompiled())
        batches = [np.full((1, 3, TILE, TILE), k, np.float32) for k in range(8)]
        outputs = list(tiled.runtime.run_many(iter(batches)))
        assert tiled.runtime.peak_in_flight == 3
    assert [float(o.mean()) for o in outputs] == [2.0 * k for k in range(8)]


def test_a_failed_request_is_one_clear_error(bundles, monkeypatch):
    with open_tiled(bundles[1], performance_hint="THROUGHPUT", infer_requests=2) as tiled:
        monkeypatch.setattr(tiled.runtime, "compiled", FakeCompiled(fail=True))
        with pytest.raises(AtbsnError, match="infer request failed: device lost; run with "
                                             "--performance-hint latency"):
            tiled.denoise(textured_image(*IMAGE))


def test_several_requests_need_the_throughput_hint(bundles):
    from atbsn_edge.pipeline import locate_artifact
    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime

    ir, _ = locate_artifact(bundles[1])
    with pytest.raises(AtbsnError, match="2 infer requests with the latency hint.*"
                                         "--performance-hint throughput"):
        OpenVinoRuntime(ir, infer_requests=2)
    with pytest.raises(AtbsnError, match="performance hint 'fast': valid are latency, throughput"):
        OpenVinoRuntime(ir, performance_hint="fast")
    with pytest.raises(AtbsnError, match="infer_requests -1: give 0"):
        OpenVinoRuntime(ir, performance_hint="THROUGHPUT", infer_requests=-1)


def test_cli_refuses_requests_with_the_latency_hint(bundles, tmp_path, capsys):
    from atbsn_edge.denoise import main

    src = tmp_path / "in.png"
    assert cv2.imwrite(str(src), np.rint(textured_image(40, 50)).astype(np.uint8))
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--artifact", str(bundles[1]), "--requests", "2",
                 "--performance-hint", "latency"]) == 2
    assert "--requests 2 needs the throughput hint" in capsys.readouterr().err
    assert main([str(src), "-o", str(out), "--requests", "2"]) == 2
    assert "--requests is for OpenVINO artifacts" in capsys.readouterr().err
    assert main([str(src), "-o", str(out), "--artifact", str(bundles[1]), "--performance-hint",
                 "throughput", "--requests", "2", "--overlap", "32"]) == 0
    assert (out / "in.png").is_file()


@pytest.mark.parametrize("flags, named", [
    (["--inference-precision", "bf16"], "--inference-precision is"),
    (["--performance-hint", "latency"], "--performance-hint is"),
    (["--requests", "2", "--performance-hint", "throughput"],
     "--requests and --performance-hint are"),
])
def test_openvino_flags_with_a_checkpoint_are_refused(tmp_path, capsys, flags, named):
    from atbsn_edge.denoise import main as denoise_main

    picture = tmp_path / "a.png"
    assert cv2.imwrite(str(picture), np.rint(textured_image(40, 50)).astype(np.uint8))
    assert denoise_main([str(picture), "-o", str(tmp_path / "out"), *flags]) == 2
    assert f"{named} for OpenVINO artifacts" in capsys.readouterr().err


@pytest.mark.parametrize("sizes, want", [
    ([(40, 50)], "LATENCY"),                      # one 64-pixel tile: every thread on it
    ([(64, 64), (40, 50)], "LATENCY"),            # exactly one tile each
    ([(40, 50), IMAGE], "THROUGHPUT"),            # one image of 35 tiles is enough
    ([(65, 40)], "THROUGHPUT"),                   # padded to 96 rows: two tiles
    ([], "LATENCY"),
])
def test_auto_hint_is_throughput_once_an_image_needs_several_tiles(bundles, sizes, want):
    from atbsn_edge.runtimes.openvino_runtime import auto_performance_hint

    ir = next(bundles[1].glob("*.xml"))
    assert auto_performance_hint(ir, sizes) == want
    with open_tiled(bundles[1], performance_hint="auto", image_sizes=sizes) as tiled:
        assert tiled.runtime.info.metadata["performance_hint"] == want
    with open_tiled(bundles[1], performance_hint="auto", image_sizes=sizes,
                    infer_requests=2) as tiled:  # several requests asked for: throughput
        assert tiled.runtime.info.metadata["performance_hint"] == "THROUGHPUT"


def test_cli_default_hint_follows_the_images(bundles, tmp_path, caplog):
    from atbsn_edge.denoise import main

    small, large = tmp_path / "small.png", tmp_path / "large.png"
    assert cv2.imwrite(str(small), np.rint(textured_image(40, 50)).astype(np.uint8))
    assert cv2.imwrite(str(large), np.rint(textured_image(*IMAGE)).astype(np.uint8))
    # at the IR's own 64-pixel tiles the large image needs 35; --tile auto fits it in one
    for inputs, tile, want in (([small], "64", "latency"), ([small, large], "64", "throughput"),
                               ([small, large], "auto", "latency")):
        caplog.clear()
        out = tmp_path / f"{want}-{tile}"
        with caplog.at_level("DEBUG", logger="atbsn_edge.pipeline"):
            assert main([*map(str, inputs), "-o", str(out), "--artifact", str(bundles[1]),
                         "--overlap", "32", "--tile", tile]) == 0
        assert f"performance hint auto: {want}" in caplog.text
        assert all((out / p.name).is_file() for p in inputs)


# --------------------------------------------------------------------------------------------
# --tile auto: a static IR recompiled for each image's own tile shape
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hint", ["LATENCY", "THROUGHPUT"])
def test_auto_tiles_recompile_the_ir_and_equal_pytorch_tiled_alike(bundles, hint):
    """The fp32 IR, exported at 64 x 64, runs this image in tiles of the shape chosen for it
    and gives what the PyTorch checkpoint gives with the same tiles (fp32 against fp32:
    ATOL)."""
    from atbsn_edge.pipeline import open_tiled as open_checkpoint

    image = textured_image(*IMAGE)
    with open_tiled(bundles[1], tile="auto", performance_hint=hint) as tiled:
        tiled.auto_tile_area = 96 * 160  # several tiles of this small image
        spec = tiled.spec_for(*IMAGE)
        assert (spec.tile_h, spec.tile_w) != (TILE, TILE) and spec.tile_h * spec.tile_w <= 96 * 160
        assert plan_tiles(*IMAGE, spec).count > 1
        got = tiled.denoise(image)
        runtime_shape = (tiled.runtime.input_spec.height, tiled.runtime.input_spec.width)
        assert runtime_shape == (spec.tile_h, spec.tile_w)
        assert "tiles auto" in tiled.describe()
    with open_checkpoint(bundles[1].parent / "student_c.pt", overlap=OVERLAP) as reference:
        want = denoise_tiled(image, reference.runtime.run, spec)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    assert want.std() > 1


def test_a_given_tile_reshapes_the_ir_and_auto_hint_follows_the_auto_tiles(bundles):
    from atbsn_edge.pipeline import locate_artifact
    from atbsn_edge.runtimes.openvino_runtime import auto_performance_hint

    with open_tiled(bundles[1], tile=128) as tiled:
        assert (tiled.spec.tile_h, tiled.spec.tile_w) == (128, 128)
        tiled.denoise(textured_image(*IMAGE))
        assert tiled.runtime.input_spec.height == 128
    ir, _ = locate_artifact(bundles[1])
    # at the IR's own 64 x 64 tiles this image needs 35; auto tiles fit it in one
    assert auto_performance_hint(ir, [IMAGE], None, OVERLAP) == "THROUGHPUT"
    assert auto_performance_hint(ir, [IMAGE], "auto", OVERLAP) == "LATENCY"
    assert auto_performance_hint(ir, [(1500, 1600)], "auto", OVERLAP) == "THROUGHPUT"
    assert auto_performance_hint(ir, [(1500, 1600)], 0, OVERLAP) == "LATENCY"  # whole images


def test_openvino_auto_tiles_are_larger_and_the_auto_hint_uses_the_same_bound(bundles):
    """OpenVINO's tiles take about a third of PyTorch's memory a pixel, so --tile auto gives
    them twice the area: a 900 x 1000 image is one tile there (LATENCY: every thread on it)
    and two at PyTorch's bound; the hint, decided before compiling, counts the same tiles."""
    from atbsn_edge.pipeline import locate_artifact
    from atbsn_edge.pipeline import open_tiled as open_checkpoint
    from atbsn_edge.runtimes.openvino_runtime import OPENVINO_AUTO_TILE_AREA, auto_performance_hint
    from atbsn_edge.tiling import AUTO_TILE_AREA

    size = (900, 1000)
    assert OPENVINO_AUTO_TILE_AREA == 2 * AUTO_TILE_AREA
    with open_tiled(bundles[1], tile="auto") as tiled:
        assert tiled.auto_tile_area == OPENVINO_AUTO_TILE_AREA
        assert plan_tiles(*size, tiled.spec_for(*size)).count == 1
        assert "at most 1 MP" in tiled.describe()
    with open_checkpoint(bundles[1].parent / "student_c.pt", tile="auto",
                         overlap=OVERLAP) as reference:
        assert reference.auto_tile_area == AUTO_TILE_AREA
        assert plan_tiles(*size, reference.spec_for(*size)).count == 2
    ir, _ = locate_artifact(bundles[1])
    assert auto_performance_hint(ir, [size], "auto", OVERLAP) == "LATENCY"


_OUT_OF_ORDER = """
import gc, os, signal, sys, time
from atbsn_edge.cli import run_cli
from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime
first = OpenVinoRuntime(sys.argv[1], performance_hint="THROUGHPUT")
second = OpenVinoRuntime(sys.argv[1])
del first; gc.collect()  # freed before the runtime opened after it
del second; gc.collect()
def job():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    return 0
sys.exit(run_cli(job))
"""


def test_sigterm_after_runtimes_closed_out_of_order_exits_143(bundles):
    """OpenVINO's CPU plugin swaps the thread's alternate signal stack when it is created and
    destroyed; with a Core per runtime, two freed out of order left a freed stack and SIGTERM
    crashed the process (SIGSEGV, 139; measured). One Core per process keeps it valid."""
    import subprocess
    import sys

    from atbsn_edge.pipeline import locate_artifact

    ir, _ = locate_artifact(bundles[1])
    result = subprocess.run([sys.executable, "-c", _OUT_OF_ORDER, str(ir)], capture_output=True,
                            text=True, timeout=120, env=checkout_env())
    assert result.returncode == 143, result.stderr[-2000:]
    assert "terminated" in result.stderr


def test_auto_tiles_keep_a_compiled_shape_unless_a_new_one_saves_two_calls(bundles):
    """A recompile costs about two of the artifact's calls (RESHAPE_PENALTY_CALLS): a 64 x 120
    image, 3 tiles of the IR's 64 x 64 against one 64 x 128 tile, keeps the IR's shape; the
    180 x 250 image (35 tiles of 64) gets its own, and the IR's own shape stays compiled."""
    from atbsn_edge.tiling import RESHAPE_PENALTY_CALLS

    with open_tiled(bundles[1], tile="auto") as tiled:
        runtime = tiled.runtime
        saving = (3 - 2) * TILE * TILE  # 3 tiles of 64 x 64 against 64 x 128
        assert saving <= RESHAPE_PENALTY_CALLS * TILE * TILE
        tiled.denoise(textured_image(64, 120))
        assert runtime.ready_tile_shapes() == [(TILE, TILE)]
        assert (runtime.input_spec.height, runtime.input_spec.width) == (TILE, TILE)
        tiled.denoise(textured_image(*IMAGE))
        shape = (runtime.input_spec.height, runtime.input_spec.width)
        assert shape != (TILE, TILE) and runtime.ready_tile_shapes() == [(TILE, TILE), shape]
        tiled.denoise(textured_image(64, 120))  # back on the IR's own shape: still listed first
        assert runtime.input_spec.height == TILE
        assert runtime.ready_tile_shapes() == [(TILE, TILE), shape]


def test_auto_hint_on_an_ir_whose_tile_is_the_default_overlap(tmp_path):
    """An IR exported at 128 x 128, student C's default overlap: the runtime's spec reduces the
    overlap to 96, and the auto hint must price the IR's tile with that overlap too (it
    divided by tile - overlap = 0: a ValueError traceback from denoise)."""
    pytest.importorskip("torch")
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    from atbsn_edge.export.__main__ import main as export
    from atbsn_edge.pipeline import open_artifact_tiled
    from conftest import write_checkpoint

    out = tmp_path / "ov128"
    assert export(["--target", "openvino-fp32", "--tile", "128", "--reference-crops", "1",
                   "--checkpoint", str(write_checkpoint(tmp_path, "student_c")),
                   "--out", str(out)]) == 0
    with open_artifact_tiled(out, tile="auto", performance_hint="auto", threads=2,
                             image_sizes=[(300, 420), (1200, 1500)]) as tiled:
        assert tiled.spec.overlap == 96
        assert tiled.runtime.info.metadata["performance_hint"] == "THROUGHPUT"
        assert tiled.denoise(textured_image(300, 420)).shape == (300, 420, 3)


def test_a_second_runtime_imports_the_ir_from_the_model_cache(bundles, tmp_path, monkeypatch):
    """OpenVINO's model cache (on by default): the second open of an IR imports the compiled
    model the first one wrote, and computes the same; off, nothing is written."""
    from atbsn_edge.pipeline import locate_artifact
    from atbsn_edge.runtimes.openvino_runtime import OpenVinoRuntime

    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ATBSN_EDGE_OPENVINO_CACHE")  # off in the other tests (conftest)
    ir, _ = locate_artifact(bundles[1])
    x = textured_image(TILE, TILE).transpose(2, 0, 1)[None].copy()
    with OpenVinoRuntime(ir, threads=2) as first:
        assert not first.loaded_from_cache
        want = first.infer(x)
    assert list((tmp_path / "cache" / "openvino").iterdir())
    with OpenVinoRuntime(ir, threads=2) as second:
        assert second.loaded_from_cache
        np.testing.assert_array_equal(second.infer(x), want)
    monkeypatch.setenv("ATBSN_EDGE_CACHE", str(tmp_path / "off"))
    with OpenVinoRuntime(ir, threads=2, compile_cache=False) as off:
        assert not off.loaded_from_cache
    assert not (tmp_path / "off").exists()


def test_whole_image_tile_reshapes_the_ir_to_each_image(bundles):
    """--tile 0 on a static OpenVINO IR: each image in one call of its padded size, the
    PyTorch checkpoint's whole-image output (fp32 against fp32: ATOL)."""
    from atbsn_edge.pipeline import open_tiled as open_checkpoint

    image = textured_image(*IMAGE)
    with open_tiled(bundles[1], tile=0) as tiled:
        assert "whole image" in tiled.describe()
        got = tiled.denoise(image)
        assert (tiled.runtime.input_spec.height, tiled.runtime.input_spec.width) == (192, 256)
    with open_checkpoint(bundles[1].parent / "student_c.pt", tile=0) as reference:
        want = reference.denoise(image)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)

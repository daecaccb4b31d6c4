"""``python -m atbsn_edge.benchmark``: one table over targets, with statuses that say why."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

from atbsn_edge.benchmark import main as benchmark  # noqa: E402
from conftest import textured_image  # noqa: E402


def test_benchmark_table_and_json(make_checkpoint, tmp_path, capsys, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed: trt-fp16 would be built, not 'bundle only'")
    monkeypatch.setenv("PATH", str(tmp_path / "no-trtexec"))
    clean = textured_image(64, 96, seed=5)
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 10, clean.shape), 0, 255)
    cv2.imwrite(str(tmp_path / "n.png"), noisy.astype(np.uint8)[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "c.png"), clean.astype(np.uint8)[:, :, ::-1])
    coreml = importlib.util.find_spec("coremltools") is not None
    targets = "onnx-fp32,trt-fp16" + (",coreml-fp32" if coreml else "")
    code = benchmark(["--checkpoint", str(make_checkpoint("student_a")), "--targets",
                      targets, "--tile", "64", "--bundles", str(tmp_path / "b"),
                      "--images", str(tmp_path / "n.png"), "--clean", str(tmp_path / "c.png"),
                      "--iters", "2", "--frame-iters", "1", "--resolution", "128x96",
                      "--json", str(tmp_path / "r.json"), "--log", str(tmp_path / "log.md")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Machine: " in out and "| onnx-fp32 | ok |" in out
    assert "| trt-fp16 | bundle only: engine is built on the device" in out
    rows = {r["target"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    ok = rows["onnx-fp32"]
    assert ok["parity_passed"] and ok["psnr_vs_torch"] > 80         # fp32: float rounding only
    assert abs(ok["psnr_drop"]) < 1e-3 and ok["psnr_clean"] > 0  # an untrained net: any PSNR
    assert ok["latency_median_ms"] > 0 and ok["floor_ms"] > 0 and ok["ratio_to_floor"] > 0
    assert ok["fps"] > 0 and ok["size_mb"] > 0
    assert rows["trt-fp16"]["latency_median_ms"] is None
    if coreml:  # checked by the numpy evaluator; no latency claimed for it
        assert rows["coreml-fp32"]["parity_passed"] and rows["coreml-fp32"]["latency_median_ms"] is None
        assert "numpy evaluator" in rows["coreml-fp32"]["reason"]
    assert "| onnx-fp32 | ok |" in (tmp_path / "log.md").read_text()


def test_unknown_target_is_one_line(capsys):
    assert benchmark(["--targets", "onnx-fp23"]) == 2
    assert "did you mean 'onnx-fp32'" in capsys.readouterr().err


def test_log_and_plot_never_replace_an_input_or_a_foreign_file(make_checkpoint, tmp_path, capsys):
    checkpoint = make_checkpoint("student_a")
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), textured_image(64, 64).astype(np.uint8))
    weights = tmp_path / "other.pt"        # not an input of this run, and not a log
    weights.write_bytes(checkpoint.read_bytes())
    before = {p: p.read_bytes() for p in (checkpoint, image, weights)}
    args = ["--targets", "onnx-fp32", "--checkpoint", str(checkpoint), "--images", str(image),
            "--clean", str(image)]
    for flag, path, says in (("--log", checkpoint, "would replace an input"),
                             ("--plot", image, "would replace an input"),
                             ("--log", weights, "is not a text log")):
        assert benchmark([*args, flag, str(path)]) == 2
        assert says in capsys.readouterr().err
    foreign = tmp_path / "photo.png"       # not an input of this run, but not a plot either
    foreign.write_bytes(b"\xff\xd8\xff\xe0 a JPEG named .png")
    assert benchmark([*args, "--plot", str(foreign)]) == 2
    assert "is not a PNG plot" in capsys.readouterr().err
    assert all(p.read_bytes() == data for p, data in before.items())


def test_the_log_is_appended_to_atomically(tmp_path):
    from atbsn_edge.benchmark import append_log

    log = tmp_path / "logs" / "bench.md"
    append_log(log, "first\n")
    append_log(log, "second\n")
    assert log.read_text() == "first\nsecond\n"
    assert [p.name for p in log.parent.iterdir()] == ["bench.md"]   # no temporary file left
    # bytes the log had that are not UTF-8 (past the 64 KB the --log check reads) stay
    # as they were: they were replaced by U+FFFD when the log was rewritten
    odd = b"x" * 70_000 + b"\xff\xfe latin-1: caf\xe9\n"
    log.write_bytes(odd)
    append_log(log, "third\n")
    assert log.read_bytes() == odd + b"third\n"


def test_reports_naming_one_file_are_refused_before_the_work(tmp_path, capsys):
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    (tmp_path / "link.md").symlink_to(empty)
    base = ["--targets", "onnx-fp32", "--tile", "64", "--bundles", str(tmp_path / "b")]
    for extra in (["--json", str(tmp_path / "rep.md"), "--log", str(tmp_path / "rep.md")],
                  ["--json", str(tmp_path / "r.png"), "--plot", str(tmp_path / "." / "r.png")],
                  ["--json", str(empty), "--log", str(tmp_path / "link.md")]):
        assert benchmark([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "are the same file" in err[0] and "Traceback" not in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.md", "link.md"]
    assert empty.read_bytes() == b""


@pytest.mark.parametrize("targets", ["", ",", " , "])
def test_a_target_list_naming_none_is_one_line(targets, tmp_path, capsys):
    assert benchmark(["--targets", targets, "--bundles", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names no target" in err[0] and "onnx-fp32, " in err[0], err
    assert not (tmp_path / "b").exists()


def test_a_target_named_twice_is_measured_once():
    from atbsn_edge.benchmark import chosen_targets

    assert chosen_targets(" onnx-fp32, onnx-fp16 ,onnx-fp32") == ["onnx-fp32", "onnx-fp16"]


@pytest.mark.parametrize("flag", ["--images", "--json"])
def test_an_input_or_report_inside_a_replaced_bundle_is_refused(flag, tmp_path, capsys):
    bundles = tmp_path / "b"
    (bundles / "onnx-fp32").mkdir(parents=True)
    kept = bundles / "onnx-fp32" / ("noisy.png" if flag == "--images" else "r.json")
    if flag == "--images":
        kept.write_bytes(b"not replaced")
        extra = ["--images", str(kept), "--clean", str(kept)]
    else:
        extra = ["--json", str(kept)]
    argv = ["--targets", "onnx-fp32", "--tile", "64", "--bundles", str(bundles), *extra]
    assert benchmark(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inside" in err[0] and "replaces" in err[0], err
    assert sorted(p.name for p in (bundles / "onnx-fp32").iterdir()) == (
        ["noisy.png"] if flag == "--images" else [])
    # the same file outside the target's folder is taken (here, a target not chosen)
    from atbsn_edge.benchmark import check_outside_bundles

    check_outside_bundles([(flag, kept)], bundles, ["onnx-fp16"])


def test_a_failing_target_is_named_in_its_log_line_and_in_one_error_line(tmp_path, capsys,
                                                                         caplog, monkeypatch):
    """Exit code 1 is explained: the per-target log line states the parity failure (it said
    "coreml-int8: ok verified by ..."), and after the table one stderr line names the targets
    that failed parity and those whose export failed."""
    import logging

    from atbsn_edge import benchmark as bench
    from atbsn_edge.benchmark import FAILED, OK, Row

    numpy_note = "verified by the numpy evaluator; Apple's runtime needs macOS"
    rows = {"onnx-fp32": Row("onnx-fp32", OK, parity_passed=True),
            "coreml-int8": Row("coreml-int8", OK, numpy_note, parity_passed=False,
                               parity_failure="mean PSNR vs clean drops 0.298 dB > 0.15 dB"),
            "onnx-int8": Row("onnx-int8", FAILED, "no calibration data", failed_step="export")}
    monkeypatch.setattr(bench, "measure", lambda target, args, outputs=None: rows[target])
    with caplog.at_level(logging.INFO, logger="atbsn_edge.benchmark"):
        code = benchmark(["--targets", ",".join(rows), "--bundles", str(tmp_path / "b")])
    out, err = capsys.readouterr()
    assert code == 1 and "| coreml-int8 | ok, parity FAILED |" in out
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: parity failed for coreml-int8; export failed for onnx-int8 (see the table's "
        "status column)"]
    logged = {r.getMessage(): r.levelno for r in caplog.records if r.name == "atbsn_edge.benchmark"}
    assert logged == {
        "onnx-fp32: ok": logging.INFO,
        "coreml-int8: ok, parity FAILED (mean PSNR vs clean drops 0.298 dB > 0.15 dB); "
        + numpy_note: logging.WARNING,
        "onnx-int8: export failed; no calibration data": logging.WARNING}
    # every target passing: exit 0, no error line
    monkeypatch.setattr(bench, "measure", lambda target, args, outputs=None: rows["onnx-fp32"])
    assert benchmark(["--targets", "onnx-fp32", "--bundles", str(tmp_path / "b")]) == 0
    assert "error:" not in capsys.readouterr().err


def test_the_first_parity_failure_is_the_sets_else_the_first_inputs():
    from types import SimpleNamespace

    from atbsn_edge.benchmark import first_parity_failure

    passed = SimpleNamespace(overall=[], failures={"crop0": [], "crop1": []})
    inputs = SimpleNamespace(overall=[], failures={"crop0": [], "crop1": ["relative L2 2e-01 > 3e-02"]})
    whole = SimpleNamespace(overall=["mean PSNR vs clean drops 0.3 dB > 0.15 dB"],
                            failures=inputs.failures)
    assert first_parity_failure(passed) is None
    assert first_parity_failure(inputs) == "crop1: relative L2 2e-01 > 3e-02"
    assert first_parity_failure(whole) == "mean PSNR vs clean drops 0.3 dB > 0.15 dB"

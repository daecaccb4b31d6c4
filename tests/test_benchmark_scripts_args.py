"""Benchmark scripts answer a bad argument with one line and exit 2, before any work (each
ended in a traceback or an empty table with exit 0; found 2026-12-07 by running every script)."""
from __future__ import annotations

import pytest

from benchmark_scripts import assert_one_line_error, run_script

CASES = [
    ("denoise_large.py", ["--width", "0"], "--width"),
    ("macs.py", ["--size", "0"], "--size"),
    ("profile_vs_benchmark_app.py", [], "give --openvino BUNDLE, --onnx BUNDLE or both"),
    ("thin_conv_rewrite.py", ["--pairs", "bogus", "--size", "64"], "bogus names no pair"),
    ("thin_conv_rewrite.py", ["--forms", "f8", "--size", "64"], "'f8' is no form"),
    ("coreml_int8_quality.py", ["--noisy", "a.png", "--clean", "b.png", "--variants", "int4"],
     "'int4' is no variant"),
]


@pytest.mark.parametrize("script, argv, message", CASES,
                         ids=[f"{s}{' '.join(a)}" for s, a, _ in CASES])
def test_a_bad_argument_is_one_line_and_exit_2(script, argv, message, tmp_path):
    if script == "thin_conv_rewrite.py":
        pytest.importorskip("nncf", reason="thin_conv_rewrite.py needs nncf")
    # one error: line, no usage block, nothing printed before the refusal
    assert_one_line_error(run_script(script, *argv, cwd=tmp_path), message)

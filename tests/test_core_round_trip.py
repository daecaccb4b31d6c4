"""``benchmarks/core_round_trip.py``: the cache-line round trip between two CPUs (where the host
runs them; docs/export.md), measured by two pinned C threads."""
from __future__ import annotations

import os
import re
import shutil

import pytest

from benchmark_scripts import assert_one_line_error, load_script, run_script

TWO_CPUS = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
COMPILER = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
needs_both = pytest.mark.skipif(not (TWO_CPUS and COMPILER),
                                reason="needs two usable CPUs and a C compiler")


@needs_both
def test_the_round_trip_is_a_time_a_cache_line_can_take():
    """Tens to hundreds of ns (the EPYC VM: 50-400; the bound leaves room for a busy CI
    machine); a meter that measured nothing (0) falls below, and two threads left on one CPU
    (a hand-over per scheduler time slice: milliseconds) far above."""
    meter = load_script("core_round_trip").round_trip_meter()
    assert meter is not None
    for ns in (meter(), meter()):
        assert 5 < ns < 50_000, ns


def test_one_cpu_twice_is_refused_before_anything_spins():
    with pytest.raises(ValueError, match="two different CPUs"):
        load_script("core_round_trip").round_trip_meter((0, 0))


@needs_both
def test_the_script_prints_each_sample_with_its_placement(tmp_path):
    result = run_script("core_round_trip", "--seconds", "0.3", "--every", "0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\| ([\d.]+) \| (\d+) \| (near|far) \|$", result.stdout, re.M)
    assert rows, result.stdout
    far_ns = load_script("core_round_trip").FAR_NS
    for _, ns, placement in rows:
        assert (placement == "far") == (int(ns) >= far_ns)


@pytest.mark.skipif(not TWO_CPUS, reason="needs two usable CPUs (Linux)")
@pytest.mark.parametrize("argv, message", [(["--cpus", "0", "0"], "two different CPUs"),
                                           (["--cpus", "0", "4096"], "two different CPUs")])
def test_a_bad_cpu_pair_is_one_line(argv, message, tmp_path):
    assert_one_line_error(run_script("core_round_trip", *argv, cwd=tmp_path), message)


@pytest.mark.skipif(not TWO_CPUS, reason="needs two usable CPUs (Linux)")
@pytest.mark.parametrize("compiler", ["false", "ccache-that-is-not-there cc"])
def test_a_compiler_that_fails_is_one_line(tmp_path, monkeypatch, compiler):
    monkeypatch.setenv("CC", compiler)
    assert_one_line_error(run_script("core_round_trip", "--seconds", "0.1", cwd=tmp_path),
                          "no C compiler built")

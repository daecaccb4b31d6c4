"""The tegrastats parser on real lines of several JetPack generations, the energy integral on
a synthetic trace, and the sampler against a stand-in tegrastats."""
from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from atbsn_edge.profiling.tegrastats import (TegrastatsSampler, energy_joules, parse_line,
                                             parse_lines, summarize, Sample)

FIXTURES = Path(__file__).parent / "data" / "tegrastats"
EXPECTED_INPUT_MW = {  # first line of each fixture: (input rail, instantaneous mW)
    "nano_jetpack4.txt": ("POM_5V_IN", 1750),
    "xavier_nx_jetpack4.txt": ("VDD_IN", 6140),
    "xavier_nx_jetpack5.txt": ("VDD_IN", 2763),
    "tx2_jetpack4.txt": ("VDD_IN", 5297),
    "orin_nx_jetpack5.txt": ("VDD_IN", 4915),
    "orin_jetpack6.txt": ("VDD_IN", 2957),
    "orin_jetpack7.txt": ("VDD_IN", 9761),
}


def fixture_lines(path: Path) -> list[str]:
    return [l for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]


def test_every_fixture_cites_its_source():
    files = sorted(FIXTURES.glob("*.txt"))
    assert {f.name for f in files} == set(EXPECTED_INPUT_MW)
    for f in files:
        header = [l for l in f.read_text().splitlines() if l.startswith("#")]
        assert any("Source" in l or "source" in l for l in header), f.name


@pytest.mark.parametrize("name", sorted(EXPECTED_INPUT_MW))
def test_parser_reads_every_line_of_every_fixture(name):
    lines = fixture_lines(FIXTURES / name)
    assert lines
    for line in lines:
        s = parse_line(line, t=0.0)
        assert s is not None, line
        assert s.input_mw is not None and s.input_mw > 0
        assert s.ram_used_mb and s.ram_total_mb and s.ram_used_mb <= s.ram_total_mb
        assert s.gr3d_pct is not None
        assert s.temps_c and all(-50 < v < 120 for v in s.temps_c.values())
    rail, mw = EXPECTED_INPUT_MW[name]
    first = parse_line(lines[0], t=0.0)
    assert (first.input_rail, first.input_mw) == (rail, mw)


def test_formats_details():
    nano = parse_line(fixture_lines(FIXTURES / "nano_jetpack4.txt")[0], t=0)
    assert nano.rails_mw == {"POM_5V_IN": 1750, "POM_5V_GPU": 0, "POM_5V_CPU": 366}
    assert nano.gr3d_mhz == 76 and nano.temps_c["GPU"] == 40
    jp5 = parse_line(fixture_lines(FIXTURES / "xavier_nx_jetpack5.txt")[0], t=0)
    assert jp5.gr3d_mhz == 114 and jp5.stamp == "07-09-2024 13:31:31"
    agx = parse_line(fixture_lines(FIXTURES / "orin_jetpack6.txt")[3], t=0)
    assert agx.input_rail == "sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0)" and agx.input_mw == 1995 + 0 + 2524
    r39 = parse_line(fixture_lines(FIXTURES / "orin_jetpack7.txt")[0], t=0)
    assert r39.rails_mw["VDD_SOC"] == 1825 and r39.temps_c["tj"] == 50 and r39.gr3d_pct == 33
    nx = parse_line(fixture_lines(FIXTURES / "orin_nx_jetpack5.txt")[0], t=0)
    assert "CV0" in nx.temps_c and nx.gr3d_mhz == 305
    assert parse_line("nothing here", t=0) is None
    # a malformed average (seen in the wild: "598mW/598") still gives the current value
    assert parse_line("RAM 1/2MB VDD_IN 3913mW/3922mW VDD_CPU_GPU_CV 598mW/598", t=0).rails_mw[
        "VDD_CPU_GPU_CV"] == 598


def trace(points):
    return [Sample(t=t, rails_mw={"VDD_IN": p}, input_rail="VDD_IN", input_mw=p) for t, p in points]


def test_energy_equals_the_hand_computed_integral():
    # 0-1 s: 4 W -> 6 W (trapezoid 5 J); 1-3 s: 6 W flat (12 J); 3-3.5 s: 6 W -> 2 W (2 J)
    samples = trace([(0.0, 4000), (1.0, 6000), (3.0, 6000), (3.5, 2000)])
    assert energy_joules(samples) == pytest.approx(5 + 12 + 2)
    # a window inside: 0.5 s..3.25 s: 0.5*(5+6)/2 + 12 + 0.25*(6+4)/2 = 2.75 + 12 + 1.25
    assert energy_joules(samples, 0.5, 3.25) == pytest.approx(16.0)
    s = summarize(samples, 0.5, 3.25, calls=8)
    assert s["energy_j"] == pytest.approx(16.0)
    assert s["mean_power_w"] == pytest.approx(16.0 / 2.75)
    assert s["mj_per_call"] == pytest.approx(2000.0)
    # not tegrastats' running average: a trace whose averages disagree gives the same energy
    lines = ["VDD_IN 4000mW/9999mW", "VDD_IN 6000mW/1mW", "VDD_IN 6000mW/1mW"]
    parsed = parse_lines(lines)   # t = 0, 1, 2
    assert energy_joules(parsed) == pytest.approx(5 + 6)


def test_sampler_runs_a_tegrastats_and_stops_it(tmp_path, monkeypatch):
    if sys.platform == "win32":
        pytest.skip("POSIX shell script stand-in")
    fake = tmp_path / "tegrastats"
    line = fixture_lines(FIXTURES / "orin_jetpack6.txt")[0]
    fake.write_text("#!/bin/sh\n# stand-in: prints a real Orin line every --interval ms\n"
                    f"while true; do echo '{line}'; sleep 0.05; done\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert TegrastatsSampler.available()
    with TegrastatsSampler(50) as sampler:
        time.sleep(0.6)
    n = len(sampler.samples)
    assert n >= 4
    assert all(s.input_mw == 2957 for s in sampler.samples)
    ts = [s.t for s in sampler.samples]
    assert ts == sorted(ts) and ts[-1] - ts[0] > 0.2   # stamped as they arrive, not in one burst
    time.sleep(0.2)
    assert len(sampler.samples) == n                    # stopped
    assert sampler._proc.poll() is not None


def test_a_last_line_without_newline_is_read_and_a_failed_start_keeps_no_terminal(tmp_path,
                                                                                 monkeypatch):
    if sys.platform == "win32":
        pytest.skip("POSIX shell script stand-in")
    line = fixture_lines(FIXTURES / "orin_jetpack6.txt")[0]
    fake = tmp_path / "tegrastats"
    fake.write_text(f"#!/bin/sh\nprintf '%s' '{line}'\n")   # one line, no newline, then exits
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with TegrastatsSampler(50) as sampler:
        sampler._thread.join(timeout=10)
    assert [s.input_mw for s in sampler.samples] == [2957]
    # a tegrastats that cannot start: the error, and no pseudo-terminal left open
    fake.chmod(0o644)                                        # found on PATH, not executable
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with pytest.raises(OSError):
        TegrastatsSampler(50, command=str(fake)).start()
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before

"""Jetson power from ``tegrastats``: a parser for every JetPack generation's line format, a
sampler that runs it during a timed run, and the energy integral.

Formats handled (fixtures in ``tests/data/tegrastats``, each citing where it came from):

- Nano / TX1 / TX2 on JetPack 4: ``POM_5V_IN 1750/1628`` (current/average mW, no unit);
- Xavier on JetPack 4: ``VDD_IN 6140/5510``; JetPack 5: ``VDD_IN 2763mW/2846mW``;
- Orin on JetPack 5 and 6: ``VDD_IN 4915mW/4915mW`` (Orin Nano / NX), AGX Orin without an
  input rail: ``VDD_GPU_SOC 1995mW/1995mW VDD_CPU_CV 0mW/0mW VIN_SYS_5V0 2524mW/2524mW``;
- JetPack 7 (L4T r39): ``VDD_IN 9761mW/9761mW/9761mW`` (three values) and temperatures
  ``cpu@50C/50C``.

The input power is the board-input rail: ``VDD_IN`` (Orin Nano/NX, Xavier, TX2) or
``POM_5V_IN`` (Nano). Where neither exists (AGX Orin's INA3221 has no input channel) it is
the sum of every rail shown, named ``sum(...)`` in the report: the module's rails, not
the carrier board's input. Only the first (instantaneous) value of a rail is used: the
energy is integrated here, over our own read timestamps, with the trapezoid rule -- never
from tegrastats' running average.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

log = logging.getLogger(__name__)

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_RAIL = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?(\d+))?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%")
_TEMP = re.compile(r"(?<![\w%])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_STAMP = re.compile(r"^(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s")


@dataclass
class Sample:
    """One tegrastats line, parsed; ``t`` is when it was read (time.monotonic seconds)."""

    t: float
    rails_mw: dict[str, float]
    input_rail: str | None
    input_mw: float | None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    gr3d_pct: int | None = None
    gr3d_mhz: int | None = None
    emc_pct: int | None = None
    temps_c: dict[str, float] = field(default_factory=dict)
    stamp: str | None = None


def parse_line(line: str, t: float | None = None) -> Sample | None:
    """Parse one tegrastats line; None for a line that is not one (no RAM and no rail)."""
    line = line.strip()
    rails = {m.group(1): float(m.group(2)) for m in _RAIL.finditer(line)}
    ram = _RAM.search(line)
    if not rails and not ram:
        return None
    rail = next((r for r in INPUT_RAILS if r in rails), None)
    if rail is not None:
        total: float | None = rails[rail]
    elif rails:
        rail = "sum(" + "+".join(rails) + ")"
        total = sum(rails.values())
    else:
        total = None
    gr3d = _GR3D.search(line)
    emc = _EMC.search(line)
    stamp = _STAMP.match(line)
    temps = {m.group(1): float(m.group(2)) for m in _TEMP.finditer(line)
             if float(m.group(2)) > -100}   # CV0@-256C: a sensor that is off
    return Sample(t=time.monotonic() if t is None else t, rails_mw=rails, input_rail=rail,
                  input_mw=total, ram_used_mb=int(ram.group(1)) if ram else None,
                  ram_total_mb=int(ram.group(2)) if ram else None,
                  gr3d_pct=int(gr3d.group(1)) if gr3d else None,
                  gr3d_mhz=int(gr3d.group(2)) if gr3d and gr3d.group(2) else None,
                  emc_pct=int(emc.group(1)) if emc else None, temps_c=temps,
                  stamp=stamp.group(1) if stamp else None)


def _power_at(samples: Sequence[Sample], t: float) -> float:
    """Input power (mW) at time ``t``, linear between the samples around it."""
    for a, b in zip(samples, samples[1:]):
        if a.t <= t <= b.t:
            if b.t == a.t:
                return a.input_mw
            return a.input_mw + (b.input_mw - a.input_mw) * (t - a.t) / (b.t - a.t)
    return samples[0].input_mw if t < samples[0].t else samples[-1].input_mw


def energy_joules(samples: Sequence[Sample], start: float | None = None,
                  end: float | None = None) -> float:
    """Energy of the input rail (J): the trapezoid integral of the instantaneous power over
    the samples' timestamps, clipped to ``[start, end]`` (linear interpolation at the
    edges; before the first or after the last sample the nearest value holds)."""
    points = [s for s in samples if s.input_mw is not None]
    if len(points) < 1:
        raise ValueError("no sample with an input power")
    points.sort(key=lambda s: s.t)
    start = points[0].t if start is None else start
    end = points[-1].t if end is None else end
    if end <= start:
        return 0.0
    times = [start] + [s.t for s in points if start < s.t < end] + [end]
    powers = [_power_at(points, t) for t in times]
    mj = sum((t1 - t0) * (p0 + p1) / 2 for t0, t1, p0, p1 in zip(times, times[1:], powers, powers[1:]))
    return mj / 1000.0


def summarize(samples: Sequence[Sample], start: float | None = None, end: float | None = None,
              calls: int | None = None) -> dict[str, Any] | None:
    """Mean power, energy and (with ``calls``) millijoules per call over ``[start, end]``,
    plus GR3D load, RAM and peak temperatures of the samples inside. None without samples."""
    points = [s for s in samples if s.input_mw is not None]
    if not points:
        return None
    start = points[0].t if start is None else start
    end = points[-1].t if end is None else end
    inside = [s for s in points if start <= s.t <= end] or points
    energy = energy_joules(points, start, end)
    duration = max(end - start, 0.0)
    out: dict[str, Any] = {
        "input_rail": points[-1].input_rail, "samples": len(inside), "duration_s": duration,
        "energy_j": energy, "mean_power_w": energy / duration if duration > 0 else None,
        "peak_power_w": max(s.input_mw for s in inside) / 1000.0,
        "mj_per_call": energy * 1000.0 / calls if calls else None,
    }
    loads = [s.gr3d_pct for s in inside if s.gr3d_pct is not None]
    out["gr3d_mean_pct"] = sum(loads) / len(loads) if loads else None
    ram = [s.ram_used_mb for s in inside if s.ram_used_mb is not None]
    out["ram_used_max_mb"] = max(ram) if ram else None
    temps: dict[str, float] = {}
    for s in inside:
        for k, v in s.temps_c.items():
            temps[k] = max(v, temps.get(k, v))
    out["temps_max_c"] = temps
    return out


class TegrastatsSampler:
    """Runs ``tegrastats --interval MS`` while inside the ``with`` block, reading its lines
    in a thread and stamping each with :func:`time.monotonic` as it arrives. tegrastats'
    output is read through a pseudo-terminal so that it is line-buffered (through a pipe its
    C library would hold lines back in 4 kB blocks and the timestamps would bunch)."""

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats") -> None:
        self.interval_ms = interval_ms
        self.command = command
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    @staticmethod
    def available(command: str = "tegrastats") -> bool:
        """Whether ``command`` is found on the PATH."""
        return shutil.which(command) is not None

    def start(self) -> "TegrastatsSampler":
        """Start tegrastats (on a pseudo-terminal where there is one, else a pipe) and the
        thread that reads its lines; returns the sampler."""
        argv = [self.command, "--interval", str(self.interval_ms)]
        try:
            import pty

            master, slave = pty.openpty()
        except (ImportError, OSError):  # no pseudo-terminal here: a pipe
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          stdin=subprocess.DEVNULL, text=True, bufsize=1)
            reader = self._read_pipe
        else:
            try:
                self._proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.DEVNULL,
                                              stdin=subprocess.DEVNULL, close_fds=True)
            except OSError:  # tegrastats cannot start: neither end of the terminal is kept
                os.close(master)
                raise
            finally:
                os.close(slave)
            self._fd = master
            reader = self._read_pty
        self._thread = threading.Thread(target=reader, name="tegrastats", daemon=True)
        self._thread.start()
        return self

    def _take(self, line: str) -> None:
        sample = parse_line(line)
        if sample is not None:
            self.samples.append(sample)
        elif line.strip():
            self.errors.append(line.strip()[:200])

    def _read_pty(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                self._take(raw.decode(errors="replace"))
        if buffer:  # a last line without its newline
            self._take(buffer.decode(errors="replace"))

    def _read_pipe(self) -> None:
        for line in self._proc.stdout:
            self._take(line)

    def stop(self) -> None:
        """Stop tegrastats (killed if it has not exited 5 s after being asked), wait up to 5 s
        for the reading thread and close the terminal."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def __enter__(self) -> "TegrastatsSampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def parse_lines(lines: Iterable[str]) -> list[Sample]:
    """Parse many lines (comment lines starting with '#' and blank lines are skipped);
    timestamps are the line index (seconds), for tests and logs."""
    out = []
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            sample = parse_line(line, t=float(i))
            if sample is not None:
                out.append(sample)
    return out

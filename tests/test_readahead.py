"""ReadAhead: the first input starts reading at once, the next while the current one is
worked on, results in order, each error raised for its own input."""
from __future__ import annotations

import threading

import pytest

from atbsn_edge.errors import ImageError
from atbsn_edge.readahead import ReadAhead
from conftest import checkout_env


class Reader:
    """Records which inputs were read; ``bad`` ones raise ImageError; a read of ``held``
    waits for ``gate``."""

    def __init__(self, bad=(), held=None):
        self.read = []
        self.started = threading.Event()
        self.held_started = threading.Event()
        self.gate = threading.Event()
        self.bad, self.held = set(bad), held

    def __call__(self, name):
        self.started.set()
        if name == self.held:
            self.held_started.set()
            assert self.gate.wait(10)
        self.read.append(name)
        if name in self.bad:
            raise ImageError(f"{name}: corrupt")
        return name.upper()


def test_results_in_order_and_the_first_read_starts_at_once():
    reader = Reader(held="a")
    with ReadAhead(reader, ["a", "b", "c"]) as ahead:
        assert reader.started.wait(10)      # reading "a" began before anyone asked
        reader.gate.set()
        assert [ahead.get(i) for i in range(3)] == ["A", "B", "C"]
    assert reader.read == ["a", "b", "c"]


def test_reads_stay_one_input_ahead():
    reader = Reader()
    with ReadAhead(reader, list("abcde")) as ahead:
        assert ahead.get(0) == "A"
        assert ahead.get(1) == "B"
        # by now "c" may be read (one ahead of "b"), never "d"
        assert "d" not in reader.read and "e" not in reader.read


def test_an_error_belongs_to_its_own_input():
    with ReadAhead(Reader(bad={"b"}), ["a", "b", "c"]) as ahead:
        assert ahead.get(0) == "A"
        with pytest.raises(ImageError, match="b: corrupt"):
            ahead.get(1)
        assert ahead.get(2) == "C"


def test_an_input_not_taken_is_dropped_and_order_is_enforced():
    with ReadAhead(Reader(), ["a", "b", "c"]) as ahead:
        assert ahead.get(1) == "B"          # "a" was skipped (its job refused)
        with pytest.raises(ValueError, match="in order"):
            ahead.get(0)
        with pytest.raises(IndexError):
            ahead.get(3)
        assert ahead.get(2) == "C"


def test_close_cancels_reads_not_started():
    reader = Reader(held="b")
    ahead = ReadAhead(reader, ["a", "b", "c"], depth=2)
    assert ahead.get(0) == "A"              # queues "b" and "c"
    assert reader.held_started.wait(10)     # "b" is being read
    ahead.close()
    reader.gate.set()
    ahead.close(wait=True)                  # returns once "b" has finished
    assert reader.read == ["a", "b"]         # "c" never started


def test_an_input_the_filter_declines_is_read_when_taken_not_ahead():
    reader = Reader()
    with ReadAhead(reader, ["a", "huge", "c"], ahead=lambda name: name != "huge") as ahead:
        assert ahead.get(0) == "A"
        assert ahead.get(1) == "HUGE"        # declined ahead, read when its turn came
        assert ahead.get(2) == "C"
    assert reader.read.count("huge") == 1


def test_exit_does_not_wait_for_a_read_in_progress(tmp_path):
    """The reading thread is a daemon: a run that stops (an error, Ctrl-C) exits at once."""
    import subprocess
    import sys
    import time

    script = ("import time\n"
              "from atbsn_edge.readahead import ReadAhead\n"
              "ahead = ReadAhead(lambda s: time.sleep(60), ['slow'])\n"
              "time.sleep(0.2)\n"
              "raise SystemExit(3)\n")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], timeout=50, env=checkout_env())
    assert done.returncode == 3
    assert time.perf_counter() - started < 20

"""Progress bars draw only on a terminal: a redirected log holds log lines, not ``\\r`` redraws."""
from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from atbsn_edge.progress import progress_bar
from conftest import textured_image

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_a_bar_draws_on_a_terminal_and_not_elsewhere(capsys):
    terminal = Terminal()
    list(progress_bar(range(3), desc="steps", file=terminal))
    assert "3/3" in terminal.getvalue()
    bar = progress_bar(range(3), desc="steps")   # stderr captured: not a terminal
    list(bar)
    assert bar.disable and capsys.readouterr().err == ""
    # disable=False (the main rank of a distributed run) still means "only on a terminal";
    # disable=True (another rank) stays off even there
    assert progress_bar(range(3), disable=False).disable
    assert progress_bar(range(3), disable=True, file=Terminal()).disable


def test_every_progress_bar_comes_from_the_helper():
    """No module calls tqdm directly (``tqdm.write`` is fine): each would draw into logs."""
    direct = re.compile(r"(?<![\w.])tqdm\(")
    sources = [*ROOT.glob("atbsn_edge/**/*.py"), *ROOT.glob("benchmarks/*.py")]
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for path in sources if path.name != "progress.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if direct.search(line)]
    assert sources and offenders == []


def test_denoise_writes_no_carriage_returns_into_a_captured_stderr(make_checkpoint, tmp_path,
                                                                   capsys):
    pytest.importorskip("torch")
    from atbsn_edge.denoise import main as denoise

    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.rint(textured_image(40, 50)).astype(np.uint8))
    assert denoise([str(image), "-o", str(tmp_path / "out"), "--checkpoint",
                    str(make_checkpoint("student_a")), "--tile", "64", "--overlap", "32"]) == 0
    err = capsys.readouterr().err
    assert (tmp_path / "out" / "in.png").is_file() and "\r" not in err

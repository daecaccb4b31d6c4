"""Running ``benchmarks/*.py`` from the tests as a user runs them, and checking a refusal.

Shared by ``test_benchmark_scripts_args.py``, ``test_benchmark_scripts_int8.py`` and
``test_benchmark_scripts_quality.py``.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def run_script(name: str, *args: object, timeout: float = 120,
               cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``benchmarks/NAME.py ARGS`` (``NAME`` with or without ``.py``) in a fresh interpreter
    (caches in the test's folders, set by conftest's autouse fixture and inherited through
    the environment; the repository on ``PYTHONPATH``, as an editable install has it)."""
    script = BENCHMARKS / (name if name.endswith(".py") else f"{name}.py")
    return subprocess.run([sys.executable, str(script), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, nothing on stdout, and stderr one ``error:`` line (no traceback, no usage
    block) holding every fragment; returns that line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "", result.stdout
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def load_script(name: str):
    """Import ``benchmarks/NAME.py`` as a module (its main is not run)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

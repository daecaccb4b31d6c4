"""Shared pieces of the command-line entry points: logging set-up and one-line errors."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from .errors import AtbsnError

log = logging.getLogger("atbsn_edge")


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr; only CLI entry points call this. Our loggers (and the running CLI's
    ``__main__``) at INFO, third-party libraries (ONNX Runtime's quantizer logs to the root
    logger) at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for name in ("atbsn_edge", "__main__"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def run_cli(job: Callable[[], int], verbose: bool = False) -> int:
    """Run ``job`` with logging configured; user errors become one line and exit code 2."""
    configure_logging(verbose)
    try:
        return job()
    except AtbsnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def hole_size_arg(text: str) -> int:
    """argparse type: a non-negative integer hole size."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"hole size must be a non-negative integer, got {text!r}")
    return value

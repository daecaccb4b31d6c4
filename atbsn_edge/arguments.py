"""The command-line entry points' arguments: argparse value types (whole numbers and floats in
range, comma-separated lists and choices, paths, thread and request counts, hole sizes,
multiples of 32, PyTorch devices), each refusing a bad value in one argparse line that says
what is valid; ``set_argument_types`` / ``set_missing_help`` for arguments added elsewhere;
``DEVICE_HELP``; and ``check_one_clean_each``, the one-reference-per-image check
(an :class:`~atbsn_edge.errors.AtbsnError`)."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence, Sized

from .errors import AtbsnError


def _integer(text: str, what: str, least: int | None = None) -> int:
    """``text`` as an integer of at least ``least``; an argparse error naming ``what``."""
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or (least is not None and value < least):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, "a non-negative integer", least=0)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, "a positive integer (>= 1)", least=1)


def comma_list(item: Callable[[str], Any], what: str, example: str) -> Callable[[str], list]:
    """argparse type: a comma-separated list, each value parsed by ``item`` (another argparse
    type); one message for any bad value, naming ``what`` and an ``example``."""
    def parse(text: str) -> list:
        try:
            return [item(value) for value in text.split(",")]
        except (argparse.ArgumentTypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, e.g. {example}, "
                                             f"got {text!r}") from None
    return parse


def pick_choices(text: str, valid: Sequence[str], noun: str) -> list[str]:
    """The names of the comma-separated ``text`` (blanks stripped, empty entries and repeats
    dropped, order kept); a ``ValueError`` naming the ``valid`` ones when none is given or one
    is not in ``valid`` (``noun``: what a name is, e.g. ``"variant"``)."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in valid]
    if len(unknown) == 1:
        problem = f"{unknown[0]!r} is no {noun}"
    elif unknown:
        problem = f"{', '.join(repr(name) for name in unknown)} are no {noun}s"
    elif not names:
        problem = f"no {noun} given"
    else:
        return names
    raise ValueError(f"{problem}; give comma-separated names out of: {', '.join(valid)}")


def comma_choices(valid: Sequence[str], noun: str) -> Callable[[str], list[str]]:
    """argparse type: comma-separated names out of ``valid`` (see :func:`pick_choices`)."""
    def parse(text: str) -> list[str]:
        try:
            return pick_choices(text, valid, noun)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def check_one_clean_each(noisy: Sized, clean: Sized) -> None:
    """``--noisy`` and ``--clean`` pair up one to one, in order: a one-line error naming both
    counts otherwise (check the paths, before any image is read)."""
    if len(noisy) != len(clean):
        raise AtbsnError(f"{len(noisy)} --noisy images but {len(clean)} --clean ones; give one "
                         "clean reference per noisy image, in the same order")


def finite_float(text: str) -> float:
    """argparse type: a finite number."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def path_arg(text: str) -> Path:
    """argparse type: a file or folder path, not empty (``-o ""`` would be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def thread_count(text: str) -> int:
    """argparse type: ``--threads``, 0 (the backend's default) up to 4x this machine's CPUs
    (more only oversubscribes the cores; each thread also takes memory: 100,000 took 16 GB)."""
    value = non_negative_int(text)
    cpus = os.cpu_count() or 1
    if value > 4 * cpus:
        raise argparse.ArgumentTypeError(
            f"{value} is more than 4x the {cpus} CPUs of this machine; give at most "
            f"{4 * cpus} (about {cpus} is fastest), or 0 for the backend's default")
    return value


def request_count(text: str) -> int:
    """argparse type: ``--requests``, 1 to ``runtimes.base.MAX_REQUESTS`` (one or two per
    stream is what keeps the CPU busy; more only hold memory: 100,000 compiled 1.7 GB)."""
    from .runtimes.base import MAX_REQUESTS

    value = positive_int(text)
    if value > MAX_REQUESTS:
        raise argparse.ArgumentTypeError(
            f"{value} requests in flight is more than {MAX_REQUESTS}; give at most "
            f"{MAX_REQUESTS} (the default, one per stream, keeps the CPU busy)")
    return value


def torch_device(text: str) -> str:
    """argparse type: a PyTorch device this toolkit trains on: ``cpu``, ``cuda`` or ``cuda:N``
    (checked by its form here; whether CUDA is there is checked when the run starts)."""
    from .runtimes.torch_runtime import DEVICE_PATTERN, DEVICES_TEXT

    value = text.strip()
    if not DEVICE_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected {DEVICES_TEXT}, got {text!r}")
    return value


def multiple_of_32(text: str) -> int:
    """argparse type: 0 or a positive multiple of 32 (tile sides, overlaps)."""
    value = _integer(text, "0 or a positive multiple of 32")
    if value < 0 or value % 32:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive multiple of 32, got {text!r}")
    return value


def positive_multiple_of_32(text: str) -> int:
    """argparse type: a positive multiple of 32 (an exported tile side)."""
    value = _integer(text, "a positive multiple of 32")
    if value < 32 or value % 32:
        raise argparse.ArgumentTypeError(f"expected a positive multiple of 32 (an exported "
                                         f"tile's side), got {text!r}")
    return value


def _number(text: str, what: str, above: float | None = None,
            least: float | None = None) -> float:
    """``text`` as a finite number, greater than ``above`` and at least ``least`` where
    given; an argparse error naming ``what``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if (not math.isfinite(value) or (above is not None and value <= above)
            or (least is not None and value < least)):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, "a positive number", above=0)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, "a non-negative number", least=0)


def hole_size_arg(text: str) -> int:
    """argparse type: a non-negative integer hole size."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"hole size must be a non-negative integer, got {text!r}")
    from .holes import check_hole

    try:
        return check_hole(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def set_argument_types(parser: argparse.ArgumentParser, **types: Callable[[str], object]) -> None:
    """Give already-added arguments (by ``dest``) a stricter type, e.g. the shared tiling
    flags: ``set_argument_types(p, tile=multiple_of_32, batch=positive_int)``."""
    actions = {action.dest: action for action in parser._actions}
    for dest, kind in types.items():
        actions[dest].type = kind


def set_missing_help(parser: argparse.ArgumentParser, **helps: str) -> None:
    """Give already-added arguments (by ``dest``) a help text where they have none."""
    for action in parser._actions:
        if action.dest in helps and not action.help:
            action.help = helps[action.dest]


DEVICE_HELP = "where PyTorch runs: cpu, cuda or cuda:N"

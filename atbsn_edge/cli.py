"""Shared pieces of the command-line entry points: logging set-up, one-line errors, argparse
value types, help formatting, output-path checks and SIGTERM handling."""
from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NoReturn, Sequence, Sized

from .errors import AtbsnError, first_line, is_out_of_memory

log = logging.getLogger("atbsn_edge")

#: exit code of a run stopped by SIGTERM (128 + 15, what a shell reports for it)
SIGTERM_EXIT = 143


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler of :func:`run_cli`: it unwinds like Ctrl-C (every
    ``finally`` and ``except KeyboardInterrupt`` runs, so temporaries are removed and
    training saves its checkpoint) and the CLI exits with :data:`SIGTERM_EXIT`."""


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr; only CLI entry points call this. Our loggers (and the running CLI's
    ``__main__``) at INFO, third-party libraries (ONNX Runtime's quantizer logs to the root
    logger) at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for name in ("atbsn_edge", "__main__"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


class _SigtermAsTerminated:
    """SIGTERM as :class:`Terminated` for one :func:`sigterm_as_interrupt` context: the signal
    handler, and the ``sys.unraisablehook`` for where the handler raised inside a callback that
    Python can only ignore (a weakref callback such as importlib's module locks, a
    ``__del__``): an export then went on to write its bundle and exit 0. The hook marks it
    pending and sends the signal again from a timer 50 ms later, so that the handler runs once
    the callback has returned (and again should it land in one); the handler clears it. Still
    pending when the job ends (it ended within the 50 ms), the context raises it itself; the
    timer never outlives the context. Other unraisable exceptions go to ``previous_hook``."""

    def __init__(self, previous_hook: Callable[[Any], None]) -> None:
        self.pending = False
        self._timer: threading.Timer | None = None
        self._previous_hook = previous_hook

    def handler(self, signum: int, frame: Any) -> None:
        self.pending = False  # delivered
        raise Terminated(f"signal {signum}")

    def unraisable_hook(self, unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Terminated):
            self._previous_hook(unraisable)
            return
        log.debug("SIGTERM arrived inside %r, which ignores exceptions: sending it again",
                  unraisable.object)
        self.pending = True
        self._timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM))
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` (also where the first one landed in a
    callback that ignores exceptions: :class:`_SigtermAsTerminated`); the previous handler and
    unraisable hook are restored after. Does nothing outside the main thread (Python delivers
    signals only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_hook = sys.unraisablehook
    terminated = _SigtermAsTerminated(previous_hook)
    previous = signal.signal(signal.SIGTERM, terminated.handler)
    sys.unraisablehook = terminated.unraisable_hook
    try:
        yield
        if terminated.pending:  # the job ended before the signal came again
            raise Terminated(f"signal {signal.SIGTERM.value}")
    finally:
        try:
            terminated.cancel()
        finally:
            signal.signal(signal.SIGTERM, previous)
            sys.unraisablehook = previous_hook


#: optional dependencies imported deep inside a job (PyTorch by the models), by module name:
#: the extra that installs them, for the one-line error of :func:`run_cli`
OPTIONAL_MODULES = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnx",
                    "openvino": "openvino", "nncf": "openvino", "coremltools": "coreml"}


def _missing_module_line(exc: ModuleNotFoundError) -> str | None:
    """The one-line error for an optional dependency that is not installed, else None."""
    top = (exc.name or "").split(".")[0]
    if top not in OPTIONAL_MODULES:
        return None
    return (f"'{top}' is not installed, and this command needs it; install it with "
            f"pip install 'atbsn-edge[{OPTIONAL_MODULES[top]}]'")


#: what to do about an operating-system error, by errno, where "check the file" is no help
OS_ERROR_FIXES = {errno.ENOSPC: "the disk is full: free space on it, or write somewhere else",
                  errno.EDQUOT: "the disk quota is used up: free space, or write somewhere else",
                  errno.EROFS: "that file system is read-only: write somewhere else"}


def _os_error_line(exc: OSError) -> str:
    """An operating-system error (a file that cannot be read or written) as one line."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        source, _, why = exc.args[0][0]  # copytree's list of (source, destination, reason)
        return f"cannot copy {source}: {why}"
    reason = exc.strerror or str(exc)
    fix = OS_ERROR_FIXES.get(exc.errno, "check that it exists and that you may read (or write) it")
    if exc.filename is None:
        return f"{reason}; {fix}" if exc.errno in OS_ERROR_FIXES else reason
    return f"{exc.filename}: {reason}; {fix}"


#: the exception types that may be a user's error; :func:`user_error_line` says which are
USER_ERRORS = (AtbsnError, ModuleNotFoundError, OSError)


def user_error_line(exc: BaseException) -> str | None:
    """The one-line message of an error that is the user's to fix (an :class:`AtbsnError`,
    an optional dependency that is not installed, a file the operating system refuses to read
    or write), or None for anything else (a defect, whose traceback is kept)."""
    if isinstance(exc, AtbsnError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError):
        return _missing_module_line(exc)
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        return _os_error_line(exc)
    return None


#: exit code when the reader of standard output went away (``... | head``): 128 + SIGPIPE
BROKEN_PIPE_EXIT = 141


def _quiet_after_broken_pipe() -> None:
    """Point standard output at /dev/null, so that the interpreter's final flush does not
    raise (and print) a second BrokenPipeError (the recipe of Python's ``signal`` docs)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def run_cli(job: Callable[[], int], verbose: bool = False) -> int:
    """Run ``job`` with logging configured; user errors (:func:`user_error_line`) become one
    line and exit code 2, Ctrl-C exit code 130 and SIGTERM 143 (both after the job's clean-up
    has run); a closed standard output (``| head``) ends the run quietly with 141."""
    configure_logging(verbose)
    try:
        with sigterm_as_interrupt():
            code = job()
            sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
            return code
    except BrokenPipeError:
        _quiet_after_broken_pipe()
        return BROKEN_PIPE_EXIT
    except USER_ERRORS as exc:
        line = user_error_line(exc)
        if line is None:
            raise  # not an optional dependency: a defect, keep its traceback
        print(f"error: {line}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return SIGTERM_EXIT
    except Exception as exc:  # noqa: BLE001 - only running out of memory is the user's
        if not is_out_of_memory(exc):
            raise
        print(f"error: out of memory ({first_line(exc)}); give smaller sizes (--tile, --batch, "
              "--resolution, ...) or close other programs", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------------------------
# argparse value types
# --------------------------------------------------------------------------------------------

def _integer(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _integer(text, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _integer(text, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (>= 1), got {text!r}")
    return value


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
    value = text.strip()
    if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N (N a GPU index), "
                                         f"got {text!r}")
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


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _number(text, "a non-negative number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


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

# --------------------------------------------------------------------------------------------
# help texts
# --------------------------------------------------------------------------------------------

_RST_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


def plain_description(doc: str | None) -> str:
    """A module docstring as a plain ``--help`` description: reStructuredText roles
    (:func:`~a.b.c` -> c) and literals (``x`` -> x) without their markup."""
    if not doc:
        return ""
    text = _RST_ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], doc)
    return text.replace("``", "").strip()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends "(default: X)" to every option whose
    help does not already state a default (none for flags that default to off or None)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("(default" in text.lower() or not action.option_strings or default is None
                or default is False or default is True or default == argparse.SUPPRESS):
            return text
        if isinstance(default, (list, tuple)):
            shown = ",".join(str(v) for v in default) if default else "none"
        else:
            shown = str(default) if default != "" else "empty"
        return f"{text} (default: {shown.replace('%', '%%')})"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: ...; see PROG --help``, exit code 2) instead
    of the usage block followed by the error."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        """Print ``error: message (see PROG --help)`` and exit with code 2."""
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def new_parser(prog: str, doc: str | None, **kwargs: Any) -> ArgumentParser:
    """The toolkit's :class:`ArgumentParser` with :class:`HelpFormatter` and ``doc`` as a
    plain description (see :func:`plain_description`)."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    return ArgumentParser(prog=prog, description=plain_description(doc), **kwargs)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose``: debug logging."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug details (default: info)")


# --------------------------------------------------------------------------------------------
# output paths
# --------------------------------------------------------------------------------------------

def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path once resolved (links, ``..``), or,
    where both exist, the same file on disk (hard links, case-insensitive file systems)."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _read_only_file_system(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only (False where unknown)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def check_output_path(path: str | os.PathLike, flag: str, *, folder: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written: one below a regular file,
    a folder where a file is wanted (or the reverse), or a parent without write permission.
    Missing parent folders are fine (they are created). Returns ``path`` as a Path."""
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise AtbsnError(f"{flag} {path} is a file; give a folder")
        if not folder and path.is_dir():
            raise AtbsnError(f"{flag} {path} is a folder; give a file name")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise AtbsnError(f"{flag} {path}: {ancestor} is a file, not a folder; choose an output "
                         "path whose parents are folders")
    writable = path if folder and path.is_dir() else ancestor
    if not os.access(writable, os.W_OK | os.X_OK):
        if _read_only_file_system(writable):
            raise AtbsnError(f"{flag} {path}: {writable} is on a read-only file system; "
                             "write somewhere else")
        raise AtbsnError(f"{flag} {path}: no permission to write in {writable}; choose a "
                         "folder you may write in")
    problem = _creation_problem(writable)
    if problem:
        raise AtbsnError(f"{flag} {path}: cannot create a file in {writable} ({problem}); "
                         "choose an output path on a writable file system")
    return path


def _creation_problem(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (None if it can): permission bits do not
    tell for a pseudo file system such as /proc, or for root, so a probe file is created and
    removed, as the atomic writes will stage theirs there."""
    import tempfile

    try:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".atbsn-edge-probe-")
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def _is_json_file(path: Path, limit: int = 64 << 20) -> bool:
    """Whether ``path`` holds a JSON document (a report an earlier run wrote)."""
    import json

    try:
        if path.stat().st_size > limit:
            return False
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def _is_text_file(path: Path, probe: int = 1 << 16) -> bool:
    """Whether ``path`` starts as UTF-8 text without NUL bytes (a log an earlier run wrote),
    not a checkpoint, an image or weights."""
    import codecs

    try:
        with open(path, "rb") as fh:
            head = fh.read(probe)
        # a probe that stops inside a multi-byte character is not final: its tail may wait
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < probe)
    except (OSError, UnicodeDecodeError):
        return False
    return b"\0" not in head


def _is_png_file(path: Path) -> bool:
    """Whether ``path`` starts with the PNG signature (a plot an earlier run wrote)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


REPORT_KINDS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "json": ("a JSON report", _is_json_file),
    "text": ("a text log", _is_text_file),
    "png": ("a PNG plot", _is_png_file),
}


def check_report_path(path: str | os.PathLike, flag: str, *,
                      inputs: Iterable[str | os.PathLike | None] = (), kind: str = "json",
                      instead: str = "choose another path for the report") -> Path:
    """:func:`check_output_path` for a report (``--json``; ``kind`` ``text`` for a log,
    ``png`` for a plot: :data:`REPORT_KINDS`), and what a report must never replace: one of
    ``inputs`` (the run's input files), a file of any bundle (its manifest or one of the files
    it lists), or any existing non-empty file that is not of its kind (an image, a checkpoint,
    weights). An earlier report of its kind is replaced (or appended to), as a rerun
    expects. ``instead``: what the messages advise."""
    what, is_kind = REPORT_KINDS[kind]
    from .bundle.manifest import bundle_holding

    path = check_output_path(path, flag)
    target = path.resolve()
    if any(item is not None and Path(item).exists() and Path(item).resolve() == target
           for item in inputs):
        raise AtbsnError(f"{flag} {path} would replace an input of this run; {instead}")
    # a bundle's file, whether or not the bundle is an input: the folders above the report
    # (also those above a file inside an artifact folder such as an .mlpackage)
    folder = bundle_holding(target)
    if folder is not None:
        raise AtbsnError(f"{flag} {path} would replace a file of the bundle {folder}; {instead}")
    if path.is_file() and path.stat().st_size > 0 and not is_kind(path):
        raise AtbsnError(f"{flag} {path} exists and is not {what} (it would be replaced); "
                         f"{instead}, or delete the file first")
    return path

"""Shared pieces of the command-line entry points: logging set-up, one-line errors, SIGTERM
handling, the toolkit's parser and help formatting (argparse value types and help for
arguments added elsewhere: :mod:`atbsn_edge.arguments`; output-path checks:
:mod:`atbsn_edge.output_paths`)."""
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
from typing import Any, Callable, Iterator, NoReturn

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

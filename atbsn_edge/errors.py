"""Exceptions that mean "the user gave something unusable": CLIs print them as one line."""
from __future__ import annotations

from types import ModuleType


class AtbsnError(Exception):
    """Base class: a problem with what the user gave, reported without a traceback."""


class CheckpointError(AtbsnError):
    """A checkpoint file that is missing, damaged or of an unknown layout."""


class MissingPartError(CheckpointError):
    """A checkpoint of one network asked for the part it does not hold (the teacher of a
    student, the student of an AT-BSN); ``architecture`` names the network it holds."""

    def __init__(self, message: str, architecture: str) -> None:
        super().__init__(message)
        self.architecture = architecture


class ImageError(AtbsnError):
    """An image that cannot be read, written or denoised as given."""


class MissingDependencyError(AtbsnError, ImportError):
    """An optional library is not installed; the message names the extra to install."""


#: how the libraries say that an allocation failed, where they raise no MemoryError: PyTorch's
#: CPU allocator and CUDA (RuntimeError), OpenCV (cv2.error)
OUT_OF_MEMORY_SIGNS = ("can't allocate memory", "DefaultCPUAllocator", "CUDA out of memory",
                       "CUDA error: out of memory", "Insufficient memory", "Failed to allocate",
                       "std::bad_alloc")


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters (its class name where
    it has none): a library's multi-line error inside a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation that failed: a MemoryError, or a library's own error
    saying so (:data:`OUT_OF_MEMORY_SIGNS`)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, Exception) and any(sign in str(exc) for sign in OUT_OF_MEMORY_SIGNS)


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an error that says which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"'{module}' is not installed ({exc}); install it with "
            f"pip install 'atbsn-edge[{extra}]'") from exc

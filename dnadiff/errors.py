"""One exception type for every user-facing problem, and the one place that turns any failure
into the one-line message the command line prints.

The CLI prints ``DnadiffError`` as a single line ``dnadiff: error: <message>`` and exits with
status 2. File-system failures (read-only or full disks, a file where a folder is expected, a
folder where a file is expected) are user-facing too and get the same treatment through
:func:`user_message`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os


class DnadiffError(Exception):
    """A problem with the user's input (file, config, checkpoint) described in one line."""


class _PathError(DnadiffError):
    """A problem with one file or folder: the message starts with its path."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InputFileError(_PathError):
    """A problem with an input file; the message always starts with the file's path."""


class OutputError(_PathError):
    """An output that cannot be written; the message starts with the output's path."""


#: errno values that describe the file system rather than a bug in dnadiff
_HINTS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
          errno.EROFS: "the file system is read-only", errno.EFBIG: "the file is too large "
          "(a file-size limit or a full disk)"}


def describe_os_error(exc: OSError) -> str:
    """``strerror`` in words, with a hint for a full or read-only disk."""
    text = exc.strerror or str(exc) or type(exc).__name__
    hint = _HINTS.get(exc.errno)
    return f"{text}: {hint}" if hint and hint.lower() not in text.lower() else text


SHORT_WRITE = "a short write: the disk is full or read-only?"


def write_failure(exc: BaseException) -> str | None:
    """Why a write failed, in one line, when ``exc`` is a file-system failure (an ``OSError``,
    or numpy's or torch's serializer reporting a short write); ``None`` for anything else."""
    text = str(exc)
    if isinstance(exc, OSError):
        if exc.errno is None and "requested and" in text and "written" in text:
            return f"{text}: {SHORT_WRITE}"  # numpy's tofile/np.save on a full disk
        return describe_os_error(exc)
    if isinstance(exc, RuntimeError) and ("PytorchStreamWriter" in text
                                          or "unexpected pos" in text
                                          or "file write failed" in text):
        return SHORT_WRITE  # torch.save on a full disk
    return None


def user_message(exc: BaseException) -> str | None:
    """The one-line message for a failure the user can act on, or ``None`` for a bug (which
    keeps its traceback)."""
    if isinstance(exc, DnadiffError):
        return " ".join(str(exc).split("\n"))
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else None
        where = f"{os.fspath(name)}: " if name is not None else ""
        return f"{where}{describe_os_error(exc)}"
    return None

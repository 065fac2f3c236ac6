"""Atomic file output (a killed job never leaves a half-written file that looks finished), and
reading JSON Lines with errors that name the file and line."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def _tmp_sibling(path: Path, is_dir: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-"
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path, is_dir: bool = False):
    """Yield a temporary path next to ``path``; rename it to ``path`` only on success.

    On any exception the temporary file (or directory) is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = _tmp_sibling(path, is_dir)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)  # mkstemp/mkdtemp make 0600/0700
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """``open`` for writing that publishes the file only when the block finishes cleanly."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh


def write_json(path, obj) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


def write_tsv(path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Write a list of dicts as a tab-separated table with a header line."""
    if columns is None:
        columns = list(rows[0].keys()) if rows else []
    with atomic_open(path) as fh:
        fh.write("\t".join(columns) + "\n")
        for row in rows:
            fh.write("\t".join(_fmt(row.get(c, "")) for c in columns) + "\n")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def remove_quietly(paths) -> None:
    """Remove outputs of a verb that failed part-way (each was written atomically)."""
    for p in paths:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            Path(p).unlink()


def read_jsonl(path):
    """Yield ``(line number, object)`` for each non-blank line of a UTF-8 JSON Lines file;
    unreadable files and lines that are not JSON objects raise ``InputFileError``."""
    from dnadiff.errors import InputFileError

    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, f"line {n}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InputFileError(path, f"line {n}: expected a JSON object")
        yield n, obj

"""Outputs that appear whole or not at all, and reading JSON Lines (and files that exist, of
bounded size) with errors that name the file and line.

Every output goes through :func:`atomic_path`: it is written under a temporary name next to
its final path and renamed into place only when complete. Inside :func:`all_or_nothing` (the
command line runs every verb inside one) the renames wait until the whole verb has finished, so
a verb publishes all of its outputs or none. On failure the temporaries, and any folder made
for them, are removed; a temporary left behind by a killed process is removed by the next
writer of the same path on the same host. Nothing that dnadiff did not create is deleted: an
existing folder is only replaced when its marker (:data:`MARKER`) says it is a dnadiff output
of the same kind and it holds nothing but what that output wrote. :func:`check_paths` refuses a
verb whose output would equal, contain or sit inside one of its inputs or another output.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from dnadiff.errors import InputFileError, OutputError, write_failure
from dnadiff.ownership import mark, not_ours

_HOST = socket.gethostname().replace("/", "_") or "host"
_TX: contextvars.ContextVar = contextvars.ContextVar("dnadiff_transaction", default=None)


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(path) -> list[Path]:
    """Remove temporaries of ``path`` left by a dnadiff process of this host that no longer
    runs (killed mid-write); return what was removed. Temporaries of running processes and of
    other hosts (a shared file system) are left alone."""
    path = Path(path)
    removed = []
    prefix = _tmp_prefix(path)
    try:
        siblings = list(path.parent.glob(prefix + "*"))
    except OSError:
        return removed
    for tmp in siblings:
        tag = tmp.name[len(prefix):]
        pid_text, at, rest = tag.partition("@")
        host = rest.rsplit("-", 1)[0] if at else ""
        if not (at and pid_text.isdigit() and host == _HOST) or _alive(int(pid_text)):
            continue
        if _remove(tmp):
            removed.append(tmp)
    return removed


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parent folders of ``path``; return them, deepest first."""
    made = []
    parent = path.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    for folder in reversed(made):
        try:
            folder.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            _remove_empty(made)
            raise OutputError(path, f"its folder {folder} cannot be created "
                                    f"({write_failure(exc)})") from None
    if not path.parent.is_dir():
        raise OutputError(path, f"{path.parent} is a file, not a folder")
    return made


def _remove_empty(folders) -> None:
    for folder in folders:  # deepest first
        with contextlib.suppress(OSError):
            folder.rmdir()


def _check_target(path: Path, is_dir: bool, kind: str | None) -> None:
    if is_dir:
        if path.is_symlink():
            raise OutputError(path, "is a symbolic link; give the folder itself (an output "
                                    "folder is replaced whole, and dnadiff never removes a link "
                                    "it did not create)")
        if path.exists() and not path.is_dir():
            raise OutputError(path, "exists and is a file; expected a folder (or a new path)")
        if path.is_dir():
            problem = not_ours(path, kind)
            if problem:
                raise OutputError(path, f"{problem} (dnadiff never deletes what it did not "
                                        "create)")
    elif path.is_dir():
        raise OutputError(path, "is a folder; expected a file path")


def _remove(p: Path) -> bool:
    """Remove a file, or a folder with what it holds (a link itself, not what it points to);
    False where that failed."""
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    except OSError:
        return False
    return True


def _publish(tmp: Path, path: Path, is_dir: bool, kind=None) -> None:
    """Rename ``tmp`` to ``path``; an existing folder (ours) is moved aside first and removed
    after, so two writers of the same folder never see a half-replaced one."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)  # mkstemp/mkdtemp make 0600/0700
    if not is_dir:
        os.replace(tmp, path)
        return
    for _ in range(20):
        old = None
        if path.exists():
            _check_target(path, True, kind)
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-{os.getpid()}@{_HOST}-",
                                        dir=path.parent))
            os.rmdir(old)
            try:
                os.replace(path, old)
            except FileNotFoundError:  # another writer moved it first
                old = None
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):  # another writer published
                if old is not None:
                    _remove(old)
                continue
            raise
        if old is not None:
            _remove(old)
        return
    raise OutputError(path, "another process keeps replacing this folder")


class Transaction:
    """Outputs written inside one verb, published together at its end (or none of them)."""

    def __init__(self):
        self.pending: list[tuple[Path, Path, bool, str | None]] = []
        self.made: list[Path] = []
        self.after: list = []

    def commit(self) -> None:
        """Publish every pending output, or (on any failure) none, removing the temporaries."""
        done = []
        try:
            for tmp, path, is_dir, kind in self.pending:
                _publish(tmp, path, is_dir, kind)
                done.append(path)
        except BaseException as exc:
            for path in done:  # all or none: take back what this verb had published
                _remove(path)
            self.rollback()
            reason = write_failure(exc) if not isinstance(exc, OutputError) else None
            if reason:
                raise OutputError(path, f"cannot be published ({reason})") from None
            raise
        self.pending = []
        for fn in self.after:
            fn()
        self.after = []

    def rollback(self) -> None:
        """Publish nothing: remove the temporaries and the folders this verb made."""
        for tmp, _, _, _ in self.pending:
            _remove(tmp)
        self.pending = []
        _remove_empty(self.made)


def written(path) -> Path:
    """Where to read an output this verb has written but not yet published (its temporary),
    or ``path`` itself."""
    tx = _TX.get()
    for tmp, final, _, _ in (tx.pending if tx is not None else []):
        if final == Path(path):
            return tmp
    return Path(path)


def after_publish(fn) -> None:
    """Call ``fn`` once the current verb's outputs are published (now, outside a verb): e.g.
    clearing a training state only when the model it led to is safely in place."""
    tx = _TX.get()
    if tx is None:
        fn()
    else:
        tx.after.append(fn)


@contextlib.contextmanager
def all_or_nothing():
    """Every :func:`atomic_path` inside publishes only when the block finishes cleanly."""
    if _TX.get() is not None:  # nested: the outer one decides
        yield _TX.get()
        return
    tx = Transaction()
    token = _TX.set(tx)
    try:
        yield tx
    except BaseException:
        tx.rollback()
        raise
    finally:
        _TX.reset(token)
    tx.commit()


@contextlib.contextmanager
def atomic_path(path, is_dir: bool = False, now: bool = False, kind=None):
    """Yield a temporary path next to ``path``; it becomes ``path`` only on success.

    ``now``: rename as soon as the block ends even inside :func:`all_or_nothing` (training
    state, download caches). ``kind`` (folders): what the folder is ("prepared data", "model
    export"); it is recorded in the marker with every file written, and an existing folder is
    replaced only by an output of the same kind, and only while it holds nothing else.
    On failure the temporary (and folders made for it) are removed and ``path`` is untouched;
    a failed write (full or read-only disk) becomes a one-line :class:`OutputError`.
    """
    path = Path(path)
    _check_target(path, is_dir, kind)
    made = _make_parents(path)
    clean_stale_temps(path)
    prefix = f"{_tmp_prefix(path)}{os.getpid()}@{_HOST}-"
    try:
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
            mark(tmp, kind)
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        _remove_empty(made)
        raise OutputError(path, f"cannot be written ({write_failure(exc)})") from None
    tx = None if now else _TX.get()
    if tx is not None:
        tx.made.extend(made)
    try:
        yield tmp
        if is_dir:
            mark(tmp, kind)
        if tx is not None:
            tx.pending.append((tmp, path, is_dir, kind))
        else:
            _publish(tmp, path, is_dir, kind)
    except BaseException as exc:
        _remove(tmp)
        if tx is None:
            _remove_empty(made)
        reason = write_failure(exc)
        if reason and _about(exc, tmp, path):
            raise OutputError(path, f"cannot be written ({reason})") from None
        raise


def preflight(*paths) -> None:
    """Fail now rather than after hours of work when an output file cannot be written: each
    path must not be a folder and its folder must take a new file. Folders made for them are
    removed again if the verb fails (outside a verb's transaction: at once, since each output
    makes its own folders when it is written)."""
    for p in [Path(p) for p in paths if p]:
        _check_target(p, False, None)
        made = _make_parents(p)
        tx = _TX.get()
        if tx is not None:
            tx.made.extend(made)
        try:
            fd, name = tempfile.mkstemp(prefix=f"{_tmp_prefix(p)}{os.getpid()}@{_HOST}-",
                                        dir=p.parent)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            _remove_empty(made)
            raise OutputError(p, f"cannot be written ({write_failure(exc)})") from None
        if tx is None:
            _remove_empty(made)


def _about(exc: BaseException, tmp: Path, path: Path) -> bool:
    """Whether a failure is the write of this output (not, say, a missing input file read
    while the output was being produced)."""
    name = getattr(exc, "filename", None)
    if name is None:
        return True
    name = os.fspath(name)
    return name.startswith(str(tmp)) or name == str(path)


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", now: bool = False, **kwargs):
    """``open`` for writing that publishes the file only when the block finishes cleanly."""
    with atomic_path(path, now=now) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
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


def existing_file(path, expected: str, missing: str = "file not found") -> Path:
    """``path`` as a file that exists, or one :class:`InputFileError`: ``missing``, or (a
    folder) "is a directory, expected ``expected``"."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, missing)
    if path.is_dir():
        raise InputFileError(path, f"is a directory, expected {expected}")
    return path


def read_bounded(path, limit: int, what: str) -> bytes:
    """The bytes of the file ``path``, or one :class:`InputFileError` when it holds more than
    ``limit`` bytes (then it is "not a ``what``"), read no further than that."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputFileError(path, f"larger than {limit >> 20} MiB: not a {what}")
    return data


def decode_text(path, data: bytes, encoding: str, problem: str) -> str:
    """``data`` (read from ``path``) decoded, or one :class:`InputFileError` naming the line of
    the first byte that is not ``encoding``: ``problem``, formatted with ``byte`` and ``offset``."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        # exc.start counts in exc.object: after a byte-order mark that utf-8-sig dropped
        body, skipped = exc.object, len(data) - len(exc.object)
        line = body[:exc.start].count(b"\n") + 1
        why = problem.format(byte=body[exc.start], offset=exc.start + skipped)
        raise InputFileError(path, f"line {line}: {why}") from None


def read_utf8(path, expected: str, what: str = "") -> str:
    """The UTF-8 text of the file ``path``, or one :class:`InputFileError`: not found, a folder
    (``expected`` names what should be there), not UTF-8 (``what`` names the file) or
    unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except IsADirectoryError:
        raise InputFileError(path, f"is a folder; expected {expected}") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"{what + ' is ' if what else ''}not UTF-8 text "
                                   f"({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror})") from None


def read_jsonl(path):
    """Yield ``(line number, object)`` for each non-blank line of a UTF-8 JSON Lines file;
    unreadable files and lines that are not JSON objects raise ``InputFileError``."""
    lines = read_utf8(path, "a JSON Lines file").splitlines()
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

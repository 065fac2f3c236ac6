"""Outputs that appear whole or not at all, and reading JSON Lines with errors that name the
file and line.

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
import shlex
import shutil
import socket
import tempfile
from pathlib import Path

from dnadiff.errors import InputFileError, OutputError, write_failure

#: written into every folder dnadiff publishes: JSON naming the kind of output and every file
#: it wrote; an existing folder is replaced only if it is empty, or its marker names the same
#: kind and it holds no file the marker does not list (ownership by marker only, never by the
#: shape of a folder's contents)
MARKER = ".dnadiff-output"
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
        with contextlib.suppress(OSError):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
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
            problem = _not_ours(path, kind)
            if problem:
                raise OutputError(path, f"{problem} (dnadiff never deletes what it did not "
                                        "create)")
    elif path.is_dir():
        raise OutputError(path, "is a folder; expected a file path")


def _files_under(folder: Path) -> set[str]:
    """Every file, folder (with a trailing '/') and link under ``folder``, relative and
    '/'-separated, the marker excepted."""
    found = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        found |= {(rel / f).as_posix() for f in files}
        found |= {(rel / d).as_posix() + ("" if (Path(root) / d).is_symlink() else "/")
                  for d in dirs}
    found.discard(MARKER)
    return found


def _not_ours(folder: Path, kind: str | None) -> str | None:
    """Why ``folder`` may not be replaced by an output of ``kind``, or None if it may: it is
    empty, or its marker names ``kind`` and it holds only files the marker lists."""
    try:
        if not any(folder.iterdir()):
            return None
        text = (folder / MARKER).read_text(encoding="utf-8")
    except FileNotFoundError:
        return (f"is a folder that dnadiff did not create and is not empty (it has no {MARKER} "
                "marker); give a new or empty folder, or, if it is an output of an earlier "
                f"dnadiff version, move it aside first: {_move_aside(folder)}")
    except (OSError, UnicodeDecodeError):
        return "is a folder whose contents cannot be checked; give a new or empty folder"
    try:
        mark = json.loads(text)
        listed, theirs = set(mark["files"]), mark["kind"]
    except (ValueError, KeyError, TypeError):
        return (f"was written by an earlier dnadiff version (its {MARKER} lists no files); move "
                f"it aside first ({_move_aside(folder)}) or give a new folder")
    if theirs != kind:
        return f"holds a dnadiff {theirs}, not {kind or 'a folder output'}; give another folder"
    extra = sorted(_files_under(folder) - listed)
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        return (f"holds files that dnadiff did not write ({shown}); move them out or give "
                "another folder")
    return None


def _move_aside(folder: Path) -> str:
    return f"mv {shlex.quote(str(folder))} {shlex.quote(str(folder) + '.old')}"


def _mark(tmp: Path, kind: str | None) -> None:
    """Write the marker of a finished folder output: its kind and every file in it."""
    mark = {"written_by": "dnadiff", "kind": kind,
            "note": "this folder may be replaced by a later run of the same command; files "
                    "added to it are never deleted (the run refuses instead)",
            "files": sorted(_files_under(tmp))}
    (tmp / MARKER).write_text(json.dumps(mark, indent=1) + "\n", encoding="utf-8")


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


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
            _mark(tmp, kind)
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
            _mark(tmp, kind)
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
    removed again if the verb fails."""
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


def _where(path) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _inside(inner: str, outer: str) -> bool:
    return inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_paths(inputs: dict, outputs: dict) -> None:
    """Refuse, before any work, an output that would equal, contain or sit inside one of the
    verb's inputs, or equal, contain or sit inside another of its outputs. ``inputs`` and
    ``outputs`` map an option (``--fasta``) to a path or a list of paths (None: not given);
    symbolic links are followed, so two names of one file are one path."""
    def flat(named: dict) -> list[tuple[str, str, str]]:
        out = []
        for option, value in named.items():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if v not in (None, ""):
                    out.append((option, os.fspath(v), _where(v)))
        return out

    outs, ins = flat(outputs), flat(inputs)
    for k, (o_opt, o_given, o) in enumerate(outs):
        for i_opt, i_given, i in ins:
            if _same(o, i):
                raise OutputError(o_given, f"{o_opt} is also the input {i_opt}; an output may "
                                           "not overwrite an input: give another path")
            if _inside(i, o):
                raise OutputError(o_given, f"{o_opt} contains the input {i_opt} ({i_given}); "
                                           "give an output folder that holds no input")
            if _inside(o, i):
                raise OutputError(o_given, f"{o_opt} lies inside the input {i_opt} "
                                           f"({i_given}); write outputs outside the inputs")
        for o2_opt, _, o2 in outs[k + 1:]:
            if _same(o, o2):
                raise OutputError(o_given, f"given as both {o_opt} and {o2_opt}; each output "
                                           "needs a path of its own")
            if _inside(o2, o) or _inside(o, o2):
                outer, inner = (o_opt, o2_opt) if _inside(o2, o) else (o2_opt, o_opt)
                raise OutputError(o_given, f"the output {inner} lies inside the output "
                                           f"{outer}; give them separate paths")


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


def read_jsonl(path):
    """Yield ``(line number, object)`` for each non-blank line of a UTF-8 JSON Lines file;
    unreadable files and lines that are not JSON objects raise ``InputFileError``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder; expected a JSON Lines file") from None
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

"""Which folders are dnadiff's, and which paths a verb may write: ownership by marker only,
never by the shape of a folder's contents, and no output onto an input or another output.

Every folder dnadiff publishes holds :data:`MARKER`, JSON naming the kind of output and every
file written; :func:`not_ours` says why an existing folder may not be replaced by an output of
a kind (None if it may). :func:`check_paths` is the check every verb runs before any work.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from dnadiff.errors import OutputError

#: written into every folder dnadiff publishes: JSON naming the kind of output and every file
#: it wrote; an existing folder is replaced only if it is empty, or its marker names the same
#: kind and it holds no file the marker does not list (ownership by marker only, never by the
#: shape of a folder's contents)
MARKER = ".dnadiff-output"


def files_under(folder: Path) -> set[str]:
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


def not_ours(folder: Path, kind: str | None) -> str | None:
    """Why ``folder`` may not be replaced by an output of ``kind``, or None if it may: it is
    empty, or its marker names ``kind`` and it holds only files the marker lists."""
    try:
        if not any(folder.iterdir()):
            return None
        text = (folder / MARKER).read_text(encoding="utf-8")
    except FileNotFoundError:
        return (f"is a folder that dnadiff did not create and is not empty (it has no {MARKER} "
                "marker); give a new or empty folder, or, if it is an output of an earlier "
                f"dnadiff version, move it aside first: {move_aside(folder)}")
    except (OSError, UnicodeDecodeError):
        return "is a folder whose contents cannot be checked; give a new or empty folder"
    try:
        mark = json.loads(text)
        listed, theirs = set(mark["files"]), mark["kind"]
    except (ValueError, KeyError, TypeError):
        return (f"was written by an earlier dnadiff version (its {MARKER} lists no files); move "
                f"it aside first ({move_aside(folder)}) or give a new folder")
    if theirs != kind:
        return f"holds a dnadiff {theirs}, not {kind or 'a folder output'}; give another folder"
    extra = sorted(files_under(folder) - listed)
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        return (f"holds files that dnadiff did not write ({shown}); move them out or give "
                "another folder")
    return None


def move_aside(folder: Path) -> str:
    """The shell command that moves ``folder`` aside to ``<folder>.old`` (for error messages)."""
    return f"mv {shlex.quote(str(folder))} {shlex.quote(str(folder) + '.old')}"


def mark(tmp: Path, kind: str | None) -> None:
    """Write the marker of a finished folder output: its kind and every file in it."""
    mark = {"written_by": "dnadiff", "kind": kind,
            "note": "this folder may be replaced by a later run of the same command; files "
                    "added to it are never deleted (the run refuses instead)",
            "files": sorted(files_under(tmp))}
    (tmp / MARKER).write_text(json.dumps(mark, indent=1) + "\n", encoding="utf-8")


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

"""CSV/TSV tables of labeled tasks (gzip ok): header checked, errors name file and line."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

from dnadiff.data.fasta import open_binary
from dnadiff.errors import InputFileError
from dnadiff.tasks.base import Rows, encode


def _header_problem(got: list[str], header: tuple[str, ...]) -> str:
    """What is wrong with a first line ``got`` that should be ``header``, in words that never
    quote the line (the file may be anything: a link to a private file, say)."""
    missing = [h for h in header if h not in got]
    if missing:
        what = f"has no column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    elif len(got) != len(header):
        what = f"has {len(got)} fields"
    else:
        what = "has the columns in another order"
    return (f"not the header line of a {len(header)}-column table: it {what}; expected "
            f"exactly the columns {', '.join(header)} (in that order)")


def iter_table(path, delimiter: str, header: tuple[str, ...]):
    """Yield ``(line_number, fields)`` for each data row of a CSV/TSV (gzip ok) after checking
    the header. Blank lines are skipped."""
    path = Path(path)
    expected = delimiter.join(header)
    fh = open_binary(path)
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    seen_header = False
    n_rows = 0
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if not seen_header:
                got = [c.strip() for c in row]
                if got != list(header):
                    raise InputFileError(path, f"line {line}: {_header_problem(got, header)}")
                seen_header = True
                continue
            if len(row) != len(header):
                raise InputFileError(
                    path, f"line {line}: expected {len(header)} fields "
                          f"({', '.join(header)}), found {len(row)}")
            n_rows += 1
            yield line, [c.strip() for c in row]
    except UnicodeDecodeError:
        raise InputFileError(path, f"line {reader.line_num + 1}: not UTF-8 text") from None
    except csv.Error as exc:
        raise InputFileError(path, f"line {reader.line_num}: malformed table ({exc})") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
    finally:
        text.close()
    if not seen_header:
        raise InputFileError(path, f"is empty (expected a header line {expected!r})"
                             .replace("\t", "<TAB>"))
    if not n_rows:
        raise InputFileError(path, "has no data rows after the header")


def read_labeled_table(path, delimiter: str, header: tuple[str, str]) -> Rows:
    """A ``sequence<delim>label`` table -> rows named ``file:line``."""
    path = Path(path)
    rows = Rows(path)
    for line, (seq, label) in iter_table(path, delimiter, header):
        where = f"line {line}"
        if not label:
            raise InputFileError(path, f"{where}: empty label")
        ids = encode(seq.encode("utf-8", errors="replace"), path, where)
        rows.add(ids, label, f"{path.name}:{line}", path, where)
    return rows

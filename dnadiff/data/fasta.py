"""Reading genome sequence files (FASTA or GenBank, plain or gzip) with strict validation.

Every problem is reported as ``InputFileError`` naming the file and, where it applies, the record
and position: empty files, protein or other non-nucleotide text, duplicate record names,
unreadable or truncated gzip files.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dnadiff.errors import InputFileError
from dnadiff.tokenizers import INVALID, DNATokenizer

INVALID_BYTE = bytes([INVALID])

GZIP_MAGIC = b"\x1f\x8b"
# Amino-acid letters that are not IUPAC nucleotide codes: seeing them means "protein".
PROTEIN_ONLY = set("EFILPQZJXO")


def open_binary(path) -> io.BufferedIOBase:
    """Open a file for reading, transparently decompressing gzip (detected by magic bytes)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a directory, expected a sequence file")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror})") from None
    magic = fh.read(2)
    fh.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")
    return fh


def sniff_format(path) -> str:
    """'fasta' or 'genbank' from the first non-blank line; errors on empty or unknown files."""
    with open_binary(path) as fh:
        try:
            for raw in fh:
                line = raw.strip()
                if not line:
                    continue
                if line.startswith(b">"):
                    return "fasta"
                if line.startswith(b"LOCUS"):
                    return "genbank"
                snippet = line[:40].decode("utf-8", errors="replace")
                raise InputFileError(
                    path, f"not a FASTA or GenBank file (first line starts {snippet!r})")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
    raise InputFileError(path, "is empty: no sequence records")


#: bytes read at a time; headers are found with ``bytes.find`` and line breaks removed with
#: ``bytes.replace`` on whole blocks, so no Python code runs per line
BLOCK_BYTES = 1 << 22
WHITESPACE = b" \t\r\n"


def iter_fasta_raw(path, allow_unnamed: bool = False) -> Iterator[tuple[str, bytes, int]]:
    """Yield (name, sequence bytes without whitespace, header line number) per record.

    A header without a name is an error unless ``allow_unnamed`` (the name is then "").
    The file is read in blocks of ``BLOCK_BYTES``; a header is a '>' at the start of a line.
    """
    name = None
    header_line = 0
    chunks: list[bytes] = []
    line_no = 1  # line number of the byte at ``pos``
    at_line_start = True
    pending = b""  # an unfinished header line carried over to the next block
    with open_binary(path) as fh:
        try:
            while True:
                block = fh.read(BLOCK_BYTES)
                data = pending + block if pending else block
                pending = b""
                if not data:
                    break
                pos, n = 0, len(data)
                while pos < n:
                    if at_line_start and data[pos] == 0x3E:  # '>'
                        end = data.find(b"\n", pos)
                        if end < 0 and block:  # the header goes on in the next block
                            pending = data[pos:]
                            break
                        end = n if end < 0 else end
                        if name is not None:
                            yield name, b"".join(chunks), header_line
                        fields = data[pos + 1:end].split()
                        if not fields and not allow_unnamed:
                            raise InputFileError(path, f"line {line_no}: record header has no "
                                                       "name")
                        name = fields[0].decode("utf-8", errors="replace") if fields else ""
                        header_line, chunks = line_no, []
                        line_no += 1
                        pos = end + 1
                        continue
                    stop = _next_header(data, pos)
                    piece = data[pos:stop]
                    if name is None:
                        _no_header_yet(path, piece, line_no)
                        line_no += piece.count(b"\n")
                    else:
                        seq = piece.replace(b"\n", b"")  # the fastest pass; then any other space
                        line_no += len(piece) - len(seq)
                        if b"\r" in seq or b" " in seq or b"\t" in seq:
                            seq = seq.translate(None, WHITESPACE)
                        chunks.append(seq)
                    at_line_start = piece.endswith(b"\n")
                    pos = stop
                if not block:
                    break
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
    if name is not None:
        yield name, b"".join(chunks), header_line


def _next_header(data: bytes, pos: int) -> int:
    """Offset of the first '>' after ``pos`` that starts a line (``len(data)`` if none)."""
    while True:
        gt = data.find(b">", pos + 1)
        if gt < 0:
            return len(data)
        if data[gt - 1] == 0x0A:  # '\n'
            return gt
        pos = gt  # a '>' inside a line: not a header (the encoder rejects it)


def _no_header_yet(path, piece: bytes, line_no: int) -> None:
    """Text before the first header must be blank."""
    for offset, raw in enumerate(piece.split(b"\n")):
        if raw.strip():
            snippet = raw.strip()[:40].decode("utf-8", errors="replace")
            raise InputFileError(
                path, f"line {line_no + offset}: sequence before the first '>' header "
                      f"({snippet!r}); not a FASTA file?")


def _iter_genbank_raw(path) -> Iterator[tuple[str, bytes, int]]:
    from Bio import BiopythonParserWarning, SeqIO  # GenBank only: Biopython takes 0.3 s to load

    with open_binary(path) as fh, warnings.catch_warnings():
        # Biopython only warns about a truncated record (no '//', length != LOCUS): refuse it
        warnings.simplefilter("error", BiopythonParserWarning)
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace")
        try:
            for rec in SeqIO.parse(text, "genbank"):
                yield rec.name, bytes(rec.seq), 0
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
        except (ValueError, BiopythonParserWarning) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputFileError(path, f"malformed or truncated GenBank file ({first})") from None


def read_sequences(path, tokenizer: DNATokenizer | None = None
                   ) -> Iterator[tuple[str, bytes, np.ndarray]]:
    """Yield ``(name, raw_bytes, token_ids)`` for each record of a FASTA or GenBank file.

    Raises ``InputFileError`` for empty files, records without sequence, duplicate names and
    characters that are not nucleotides (IUPAC codes are accepted and become N).
    """
    tokenizer = tokenizer or DNATokenizer()
    fmt = sniff_format(path)
    reader = iter_fasta_raw if fmt == "fasta" else _iter_genbank_raw
    seen: set[str] = set()
    for name, seq, line in reader(path):
        where = f"record {name!r}" + (f" (line {line})" if line else "")
        if name in seen:
            raise InputFileError(path, f"duplicate record name {name!r}" +
                                 (f" (line {line})" if line else ""))
        seen.add(name)
        if not seq:
            raise InputFileError(path, f"{where} has no sequence")
        encoded = tokenizer.translate(seq)
        ids = np.frombuffer(encoded, dtype=np.uint8)
        if INVALID_BYTE in encoded:  # a fast byte search; the positions only on error
            bad = np.flatnonzero(ids == INVALID)
            pos = int(bad[0])
            ch = chr(seq[pos])
            letters = set(bytes(np.frombuffer(seq, np.uint8)[bad]).decode("latin-1").upper())
            hint = " (looks like a protein sequence)" if letters & PROTEIN_ONLY else ""
            raise InputFileError(
                path, f"{where}: character {ch!r} at position {pos + 1} is not a nucleotide "
                      f"code{hint}; {bad.size} invalid character(s) in this record")
        yield name, seq, ids
    if not seen:
        raise InputFileError(path, "is empty: no sequence records")

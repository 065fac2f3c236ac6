"""Reading genome sequence files (FASTA or GenBank, plain or gzip) with strict validation.

Every problem is reported as ``InputFileError`` naming the file and, where it applies, the record
and position: empty files, protein or other non-nucleotide text, duplicate record names,
unreadable or truncated gzip files, and compressed or archived files of another format (bzip2,
xz, zstd, zip, ...), named by what their first bytes say, whatever the file's name says. No message
quotes binary bytes. Line breaks may be LF, CRLF or a lone CR.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dnadiff.errors import InputFileError
from dnadiff.io import existing_file
from dnadiff.tokenizers import INVALID, DNATokenizer

INVALID_BYTE = bytes([INVALID])

GZIP_MAGIC = b"\x1f\x8b"
# Amino-acid letters that are not IUPAC nucleotide codes: seeing them means "protein".
PROTEIN_ONLY = set("EFILPQZJXO")


#: compressed or archived files that are not read, by what to do first: their magic bytes,
#: what to call them and the command that does it
FOREIGN_MAGIC = {
    "decompress it first": (
        (b"\xfd7zXZ\x00", "xz-compressed", "unxz -k"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd"),
        (b"\x04\x22\x4d\x18", "lz4-compressed", "unlz4"),
        (b"\x1f\x9d", "compress(1)-compressed (.Z)", "uncompress"),
        (b"\x5d\x00\x00", "lzma-compressed", "unlzma")),
    "extract the file from it first": (
        (b"PK\x03\x04", "a zip archive", "unzip"),
        (b"PK\x05\x06", "an empty zip archive", "unzip"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x")),
}
#: a bzip2 stream: "BZh", the block size 1-9, then a block's or the end of stream's magic
BZIP2 = re.compile(rb"BZh[1-9](?:\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)")
#: bytes looked at to recognise a format (a tar header's "ustar" sits at offset 257)
MAGIC_BYTES = 512


def foreign_format(head: bytes) -> tuple[str, str] | None:
    """``(what the file is, what to do)`` when ``head`` (a file's first bytes) starts a compressed
    or archived format that is not read (bzip2, xz, zstd, zip, 7-Zip, lz4, lzma, .Z, tar);
    ``None`` otherwise (plain data, or gzip, which is read)."""
    if BZIP2.match(head):
        return "bzip2-compressed", "decompress it first (bunzip2 -k)"
    for todo, formats in FOREIGN_MAGIC.items():
        for magic, what, command in formats:
            if head.startswith(magic):
                return what, f"{todo} ({command})"
    if head[257:262] == b"ustar":
        return "a tar archive", "extract the file from it first (tar -xf)"
    return None


def refuse_foreign(path: Path, head: bytes, inside_gzip: bool = False) -> None:
    found = foreign_format(head)
    if found is None:
        return
    what, todo = found
    if inside_gzip:
        raise InputFileError(path, f"is gzip-compressed, and the data inside is {what}, which "
                                   f"is not supported: {todo}")
    named = "".join(path.suffixes[-1:])
    named = f" (although named {named})" if named.lower() in (".gz", ".gzip", ".bgz") else ""
    raise InputFileError(path, f"is {what}{named}, which is not supported (only plain or "
                               f"gzip-compressed files are read): {todo}")


def open_binary(path) -> io.BufferedIOBase:
    """Open a file for reading, transparently decompressing gzip (detected by magic bytes).

    Other compressed or archived formats (bzip2, xz, zstd, zip, ...; also inside gzip) are
    refused with ``InputFileError`` naming the format, whatever the file's name says.
    """
    path = existing_file(path, "a sequence file")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        head = fh.read(MAGIC_BYTES)
        fh.seek(0)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror})") from None
    try:
        refuse_foreign(path, head)
        if not head.startswith(GZIP_MAGIC):
            return fh
        gz = gzip.GzipFile(fileobj=fh, mode="rb")
        try:
            inner = gz.read(MAGIC_BYTES)
            gz.seek(0)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            # damaged gzip: the caller's reader reports it, in its own words, as it reads
            fh.seek(0)
            return gzip.GzipFile(fileobj=fh, mode="rb")
        refuse_foreign(path, inner, inside_gzip=True)
        return gz
    except BaseException:
        fh.close()
        raise


#: bytes read at a time to find the first non-blank line
SNIFF_BYTES = 1 << 16
#: byte-order marks: the FASTA and GenBank readers take plain ASCII (or UTF-8 without a BOM)
BOMS = ((b"\xef\xbb\xbf", "UTF-8"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
#: control characters that never occur in a text file (tab, line breaks, form feed do)
BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def sniff_format(path) -> str:
    """'fasta' or 'genbank' from the first non-blank line; errors on empty or unknown files.

    Only the first non-blank bytes are read (a file without line breaks is not read whole);
    the message for an unknown file quotes its first line only when that line is text.
    """
    with open_binary(path) as fh:
        try:
            head = b""
            while len(head) < 256:
                chunk = fh.read(SNIFF_BYTES)
                if not chunk:
                    break
                head = (head + chunk).lstrip()
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
    if not head:
        raise InputFileError(path, "is empty: no sequence records")
    line = re.split(rb"[\r\n]", head[:256], maxsplit=1)[0]
    if line.startswith(b">"):
        return "fasta"
    if line.startswith(b"LOCUS"):
        return "genbank"
    for bom, encoding in BOMS:
        if line.startswith(bom):
            raise InputFileError(path, f"starts with a {encoding} byte-order mark: not a FASTA or "
                                       "GenBank file as read here (save it as plain ASCII text, "
                                       "without the byte-order mark)")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(line[:40])  # an unfinished character at the end is no error
    except UnicodeDecodeError:
        text = None
    if BINARY_BYTES.search(line):
        raise InputFileError(path, "holds binary data, not text: not a FASTA or GenBank file "
                                   "(nor a gzip-compressed one)")
    if text is None:
        raise InputFileError(path, "is neither ASCII nor UTF-8 text: not a FASTA or GenBank file")
    raise InputFileError(path, f"not a FASTA or GenBank file (first line starts {text!r})")


#: bytes read at a time; headers are found with ``bytes.find`` and line breaks removed with
#: ``bytes.replace`` on whole blocks, so no Python code runs per line
BLOCK_BYTES = 1 << 22
WHITESPACE = b" \t\r\n"


def iter_fasta_raw(path, allow_unnamed: bool = False) -> Iterator[tuple[str, bytes, int]]:
    """Yield (name, sequence bytes without whitespace, header line number) per record.

    A header without a name is an error unless ``allow_unnamed`` (the name is then "").
    The file is read in blocks of ``BLOCK_BYTES``; a header is a '>' at the start of a line.
    Line breaks may be LF, CRLF or a lone CR (classic Mac OS), mixed too.
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
                if b"\r" in block:  # CRLF (Windows) or a lone CR (classic Mac OS): a line break
                    if block.endswith(b"\r"):  # keep a CRLF split between blocks one break
                        block += fh.read(1)
                    block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
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

"""Reliability suite: sequence files in a format other than their name says (bzip2, xz, zstd,
zip, tar named .gz, binary data), and line breaks of other systems (CR-only, CRLF, mixed).

A compressed or archived file that is not gzip is named by its real format, whatever its name;
no message quotes binary bytes. Lone CRs (classic Mac OS) are line breaks, like LF and CRLF.
Each case goes through ``dnadiff prepare`` and through the library reader.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile_kit import assert_ok, assert_rejected, cfg, hostile, listing

from dnadiff.data import fasta as fasta_module
from dnadiff.data.fasta import read_sequences
from dnadiff.data.reference import fetch_reference
from dnadiff.errors import InputFileError

from conftest import random_dna, run_cli

RECORDS = [("a", random_dna(300, 1)), ("b", random_dna(300, 2)), ("v", random_dna(200, 3)),
           ("t", random_dna(200, 4))]


def fasta_bytes(records=RECORDS, width: int = 60, newline: bytes = b"\n") -> bytes:
    """``records`` as FASTA (headers with a description, wrapped lines), with ``newline``."""
    lines = []
    for name, seq in records:
        lines.append(f">{name} some description")
        lines += [seq[i:i + width] for i in range(0, len(seq), width)]
    return b"".join(line.encode() + newline for line in lines)


def _tar(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("g.fa")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("g.fa", data)
    return buf.getvalue()


# name -> (file name, its bytes, words the message must hold)
FOREIGN = {
    "bzip2_named_gz": ("g.fa.gz", lambda d: bz2.compress(d), ["bzip2-compressed", "named .gz",
                                                              "not supported", "decompress"]),
    "xz_named_gz": ("g.fa.gz", lambda d: lzma.compress(d), ["xz-compressed", "named .gz",
                                                            "not supported", "decompress"]),
    "lzma_named_gz": ("g.fa.gz", lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
                      ["lzma-compressed", "decompress"]),
    # a zstd frame's magic and header (no zstd compressor in the standard library)
    "zstd_named_gz": ("g.fa.gz", lambda d: b"\x28\xb5\x2f\xfd\x24\x04\x21\x00\x00" + d[:40],
                      ["zstd-compressed", "named .gz", "not supported", "decompress"]),
    "bzip2_named_fa": ("g.fa", lambda d: bz2.compress(d), ["bzip2-compressed", "decompress"]),
    "zip_archive": ("g.fa.gz", _zip, ["zip archive", "not supported", "extract"]),
    "tar_archive": ("g.fa", _tar, ["tar archive", "extract"]),
    "tar_gz": ("g.tar.gz", lambda d: gzip.compress(_tar(d)), ["gzip-compressed", "tar archive"]),
    "gzip_of_bzip2": ("g.fa.gz", lambda d: gzip.compress(bz2.compress(d)),
                      ["gzip-compressed", "bzip2-compressed"]),
    "random_binary": ("g.fa", lambda d: bytes(np.random.default_rng(0).integers(
        0, 256, 4000, dtype=np.uint8)), ["binary data", "not a fasta"]),
    "latin1_text": ("g.fa", lambda d: "caf\u00e9 au lait\n".encode("latin-1"),
                    ["neither ascii nor utf-8", "not a fasta"]),
    "utf16_text": ("g.fa", lambda d: d.decode().encode("utf-16"), ["utf-16 byte-order mark"]),
}


def _plain_line(line: str) -> None:
    """The message holds no binary byte nor replacement character: printable ASCII only."""
    assert line.isascii() and line.isprintable(), repr(line)


@hostile("rejected")
@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_prepare_names_the_real_format(tmp_path, case):
    name, make, needles = FOREIGN[case]
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_bytes(make(fasta_bytes()))
    before = listing(tmp_path)
    proc = run_cli("prepare", "--config-json", cfg(), "--fasta", src, "--outdir",
                   tmp_path / "data")
    line = assert_rejected(proc, before, [tmp_path], str(src), *needles)
    _plain_line(line)


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_reader_names_the_real_format(tmp_path, case):
    name, make, needles = FOREIGN[case]
    src = tmp_path / name
    src.write_bytes(make(fasta_bytes()))
    with pytest.raises(InputFileError) as ei:
        list(read_sequences(src))
    message = str(ei.value)
    assert message.startswith(f"{src}: ")
    for needle in needles:
        assert needle.lower() in message.lower(), (needle, message)
    _plain_line(message)


@hostile("rejected")
def test_unknown_text_is_quoted_but_binary_never_is(tmp_path):
    src = tmp_path / "notes.fa"
    src.write_bytes(b"\n\n  hello world, no header here\n")
    before = listing(tmp_path)
    proc = run_cli("prepare", "--config-json", cfg(), "--fasta", src, "--outdir",
                   tmp_path / "data")
    assert_rejected(proc, before, [tmp_path], str(src), "not a FASTA", "hello world")


class _CountingReads:
    """A file object that records the size of every read."""

    def __init__(self, fh, sizes: list):
        self.fh, self.sizes = fh, sizes

    def read(self, n=-1):
        self.sizes.append(n)
        return self.fh.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_a_long_line_without_breaks_is_not_read_whole(tmp_path, monkeypatch):
    """Only the first bytes decide the format, even in a file with no line break."""
    src = tmp_path / "one_line.fa"
    src.write_bytes(b"x" * (3 << 20))
    sizes: list = []
    real = fasta_module.open_binary
    monkeypatch.setattr(fasta_module, "open_binary", lambda p: _CountingReads(real(p), sizes))
    with pytest.raises(InputFileError, match="first line starts 'xxxx"):
        fasta_module.sniff_format(src)
    assert sizes and all(0 < n <= fasta_module.SNIFF_BYTES for n in sizes)
    assert len(sizes) == 1


# -- line breaks -----------------------------------------------------------------------------
NEWLINES = {"cr_only": b"\r", "crlf": b"\r\n"}


def _mixed() -> bytes:
    """LF, CRLF and lone CR in one file."""
    lines = fasta_bytes().split(b"\n")
    ends = [b"\n", b"\r\n", b"\r"]
    return b"".join(line + ends[i % 3] for i, line in enumerate(lines[:-1]))


def _line_break_bytes(case: str) -> bytes:
    return _mixed() if case == "mixed" else fasta_bytes(newline=NEWLINES[case])


def _prepared(data: Path) -> tuple[list, dict[str, bytes]]:
    index = json.loads((data / "index.json").read_text())
    contigs = [(c["name"], c["length"]) for c in index["contigs"]]
    tokens = {p.name: p.read_bytes() for p in sorted((data / "tokens").glob("*.npy"))}
    return contigs, tokens


@hostile("accepted")
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("case", ["cr_only", "crlf", "mixed"])
def test_prepare_reads_other_line_breaks(tmp_path, case, gz):
    lf = tmp_path / "lf.fa"
    lf.write_bytes(fasta_bytes())
    odd = tmp_path / ("odd.fa.gz" if gz else "odd.fa")
    raw = _line_break_bytes(case)
    odd.write_bytes(gzip.compress(raw) if gz else raw)
    for src, out in ((lf, "data_lf"), (odd, "data_odd")):
        assert_ok(run_cli("prepare", "--config-json", cfg(), "--fasta", src, "--outdir",
                          tmp_path / out))
    contigs, tokens = _prepared(tmp_path / "data_odd")
    assert contigs == [(n, len(s)) for n, s in RECORDS]
    assert (contigs, tokens) == _prepared(tmp_path / "data_lf")


@pytest.mark.parametrize("case", ["cr_only", "crlf", "mixed"])
@pytest.mark.parametrize("block", [fasta_module.BLOCK_BYTES, 7, 61, 62])
def test_reader_reads_other_line_breaks(tmp_path, monkeypatch, case, block):
    """Also with blocks that split a CRLF or a header between two reads."""
    monkeypatch.setattr(fasta_module, "BLOCK_BYTES", block)
    src = tmp_path / "g.fa"
    src.write_bytes(_line_break_bytes(case))
    got = [(name, raw.decode()) for name, raw, _ in read_sequences(src)]
    assert got == RECORDS


@pytest.mark.parametrize("case", ["cr_only", "crlf"])
@pytest.mark.parametrize("block", [fasta_module.BLOCK_BYTES, 5])
def test_line_numbers_count_every_kind_of_line_break(tmp_path, monkeypatch, case, block):
    monkeypatch.setattr(fasta_module, "BLOCK_BYTES", block)
    src = tmp_path / "dup.fa"
    src.write_bytes(b">a\nACGT\nAC\n\n>b\nGG\n>a\nTT\n".replace(b"\n", NEWLINES[case]))
    with pytest.raises(InputFileError, match=r"duplicate record name 'a' \(line 7\)"):
        list(read_sequences(src))


@hostile("rejected")
def test_cr_only_file_with_protein_is_still_refused(tmp_path):
    src = tmp_path / "p.fa"
    src.write_bytes(b">p\rMKTAYIAKQRQ\r")
    before = listing(tmp_path)
    proc = run_cli("prepare", "--config-json", cfg(), "--fasta", src, "--outdir",
                   tmp_path / "data")
    assert_rejected(proc, before, [tmp_path], str(src), "not a nucleotide", "protein")


def _genbank(newline: bytes) -> bytes:
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    buf = io.StringIO()
    SeqIO.write([SeqRecord(Seq(seq), id=name, name=name, description=f"contig {name}",
                           annotations={"molecule_type": "DNA"}) for name, seq in RECORDS],
                buf, "genbank")
    return buf.getvalue().encode().replace(b"\n", newline)


@hostile("accepted")
@pytest.mark.parametrize("case", ["cr_only", "crlf"])
def test_prepare_reads_genbank_with_other_line_breaks(tmp_path, case):
    src = tmp_path / "g.gb"
    src.write_bytes(_genbank(NEWLINES[case]))
    lf = tmp_path / "lf.gb"
    lf.write_bytes(_genbank(b"\n"))
    for path, out in ((lf, "data_lf"), (src, "data_odd")):
        assert_ok(run_cli("prepare", "--config-json", cfg(), "--fasta", path, "--outdir",
                          tmp_path / out))
    assert _prepared(tmp_path / "data_odd") == _prepared(tmp_path / "data_lf")


@pytest.mark.parametrize("case", ["cr_only", "crlf"])
def test_reader_and_reference_read_genbank_with_other_line_breaks(tmp_path, case):
    src = tmp_path / "g.gb"
    src.write_bytes(_genbank(NEWLINES[case]))
    assert [(n, raw.decode()) for n, raw, _ in read_sequences(src)] == RECORDS
    fetch_reference(str(src), tmp_path / "ref", tmp_path / "cache")
    got = [(n, s) for n, s, _ in read_sequences(tmp_path / "ref" / "genome.fa")]
    assert [(n, raw.decode()) for n, raw in got] == RECORDS


@pytest.mark.parametrize("case", ["bzip2_named_gz", "xz_named_gz", "zip_archive"])
def test_reference_names_the_real_format(tmp_path, case):
    name, make, needles = FOREIGN[case]
    src = tmp_path / name
    src.write_bytes(make(fasta_bytes()))
    with pytest.raises(InputFileError) as ei:
        fetch_reference(str(src), tmp_path / "ref", tmp_path / "cache")
    assert needles[0] in str(ei.value)
    _plain_line(str(ei.value))
    assert not (tmp_path / "ref").exists() or not any((tmp_path / "ref").iterdir())

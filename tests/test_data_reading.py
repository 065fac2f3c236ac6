"""Reading sequence files (FASTA, gzip, CRLF, GenBank), their errors, and ``n_runs``."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from data_kit import CHR_A, CHR_B, CHR_C, hand_ids

from dnadiff.data.fasta import read_sequences, sniff_format
from dnadiff.data.prepare import n_runs
from dnadiff.errors import InputFileError

# -- reading ----------------------------------------------------------------------------------

def test_read_sequences_names_and_ids(genome_fa, tok):
    recs = list(read_sequences(genome_fa, tok))
    assert [r[0] for r in recs] == ["chrA", "chrB", "chrC"]
    assert recs[0][1] == CHR_A.encode()  # raw bytes, whitespace removed, case kept
    for (_, _, ids), seq in zip(recs, (CHR_A, CHR_B, CHR_C)):
        assert ids.tolist() == hand_ids(seq)


def test_read_gzip_crlf_and_blank_lines(tmp_path, tok):
    text = ">x some description\r\nACGT\r\n\r\nacgu\r\n>y\r\nNNRY\r\n"
    plain = tmp_path / "crlf.fa"
    plain.write_bytes(text.encode())
    gz = tmp_path / "crlf.fa.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    for path in (plain, gz):
        recs = [(n, ids.tolist()) for n, _, ids in read_sequences(path, tok)]
        assert recs == [("x", [0, 1, 2, 3, 0, 1, 2, 3]), ("y", [4, 4, 4, 4])]


def test_read_genbank(tmp_path, tok):
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    recs = [SeqRecord(Seq("ACGTNNacgt"), id="LOC1", name="LOC1", description="one",
                      annotations={"molecule_type": "DNA"}),
            SeqRecord(Seq("GGGCCC"), id="LOC2", name="LOC2", description="two",
                      annotations={"molecule_type": "DNA"})]
    gb = tmp_path / "g.gb"
    SeqIO.write(recs, gb, "genbank")
    assert sniff_format(gb) == "genbank"
    got = [(n, ids.tolist()) for n, _, ids in read_sequences(gb, tok)]
    assert got == [("LOC1", [0, 1, 2, 3, 4, 4, 0, 1, 2, 3]), ("LOC2", [2, 2, 2, 1, 1, 1])]


def test_read_errors_are_input_file_errors(tmp_path):
    cases = {
        "empty.fa": (b"", "empty"),
        "dup.fa": (b">a\nAC\n>a\nGT\n", "duplicate record name 'a'"),
        "noseq.fa": (b">a\n>b\nAC\n", "record 'a' (line 1) has no sequence"),
        "pre.fa": (b"ACGT\n>a\nAC\n", "not a FASTA or GenBank file"),
    }
    for name, (data, needle) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputFileError) as ei:
            list(read_sequences(path))
        assert ei.value.path == str(path)
        assert str(ei.value).startswith(f"{path}: ")
        assert needle in str(ei.value), str(ei.value)


def test_read_invalid_character_is_input_file_error(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_bytes(b">a\nACGT\n>b\nACGTAC7T\n")
    with pytest.raises(InputFileError) as ei:
        list(read_sequences(path))
    msg = str(ei.value)
    assert "record 'b' (line 3)" in msg and "'7'" in msg and "position 7" in msg


# -- n_runs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seq, runs", [
    ("ACGT", []),
    ("NNNN", [[0, 4]]),
    ("NACGTN", [[0, 1], [5, 6]]),
    ("ACNNNGTNNA", [[2, 5], [7, 9]]),
    ("", []),
])
def test_n_runs(seq, runs):
    ids = np.array(hand_ids(seq), dtype=np.uint8)
    assert n_runs(ids, 4) == runs

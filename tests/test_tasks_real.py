"""The task readers on the real benchmark files (``../shared/data``): GUE, Genomic Benchmarks
TSV, the E. coli FASTA pair, yeast promoters, and coordinates on a bgzip reference in a
read-only folder."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from tasks_kit import counts, dec, rc, write

from dnadiff.tasks import load_task


def test_real_gue_prom_core_notata(shared_data):
    task = load_task({"name": "prom_core_notata", "type": "gue",
                      "path": shared_data / "benchmarks/gue/prom_core_notata"})
    assert task.classes == ["0", "1"] and task.length == 70
    assert [len(task.train), len(task.validation), len(task.test)] == [42452, 5307, 5307]
    assert counts(task)["train"] == {"0": 21284, "1": 21168}


@pytest.mark.parametrize("task_name,length,n_rows", [("human_nontata_promoters", 251, 9034),
                                                     ("human_enhancers_cohn", 500, 6948)])
def test_real_genomic_benchmarks_tsv(shared_data, task_name, length, n_rows):
    path = shared_data / "benchmarks/genomic_benchmarks" / task_name / "test.tsv"
    task = load_task({"name": task_name, "type": "genomic_benchmarks", "path": path})
    assert task.length == length and task.classes == ["0", "1"]
    assert len(task.train) + len(task.validation) + len(task.test) == n_rows
    assert "non-standard split" in task.source
    if task_name == "human_nontata_promoters":   # a few rows hold N (kept as id 4)
        assert any((s == 4).any() for ls in task.splits().values() for s in ls.seqs)


def test_real_ecoli_fasta_pair(shared_data):
    d = shared_data / "benchmarks/umarov_solovyev_promoters"
    task = load_task({"name": "ecoli", "type": "fasta_pair", "positive": d / "Ecoli_prom.fa.gz",
                      "negative": d / "Ecoli_non_prom.fa.gz"})
    total = {c: sum(counts(task)[s][c] for s in counts(task)) for c in task.classes}
    assert total == {"negative": 3000, "positive": 839} and task.length == 81


def test_real_yeast_promoters(shared_data):
    g = shared_data / "genomes"
    task = load_task({"name": "yeast_prom", "type": "annotation", "fasta": g / "yeast_s288c.fa.gz",
                      "annotation": g / "yeast_s288c_genes.tsv", "kind": "promoter",
                      "validation_contigs": ["chr15"], "test_contigs": ["chr16"],
                      "max_per_split": 500})
    assert task.length == 200 and task.classes == ["other", "promoter"]
    c = counts(task)
    assert c == {s: {"other": 250, "promoter": 250} for s in ("train", "validation", "test")}
    assert {n.split(":")[0] for n in task.test.names} == {"chr16"}
    assert {n.split(":")[0] for n in task.validation.names} == {"chr15"}
    assert not {n.split(":")[0] for n in task.train.names} & {"chr15", "chr16"}


@pytest.fixture
def read_only_copy(tmp_path):
    """``copy(src)``: ``src`` copied into a folder of its own that is then made read-only (mode
    r-x), so that a test never writes beside the original (``../shared`` may be writable). The
    reader honours the mode bits even for root, who could still write there."""
    folders = []

    def copy(src: Path) -> Path:
        folder = tmp_path / f"read_only{len(folders)}"
        folder.mkdir()
        dst = folder / src.name
        shutil.copyfile(src, dst)
        folder.chmod(0o555)
        folders.append(folder)
        return dst

    yield copy
    for folder in folders:
        folder.chmod(0o755)  # let pytest remove it


def test_real_coordinates_on_bgzip_reference_in_read_only_folder(shared_data, tmp_path,
                                                                  read_only_copy):
    """The hg38 chr2 piece is bgzip-compressed; in a read-only folder pyfaidx indexes it in a
    temporary folder and nothing is written next to it. The test makes its own read-only copy:
    ``../shared`` may be writable, and nothing may be written there."""
    shared = shared_data / "genomes/human_hg38_chr2_1-2333275.fa.gz"
    shared_before = sorted(p.name for p in shared.parent.iterdir())
    ref = read_only_copy(shared)
    assert not ref.parent.stat().st_mode & 0o222  # read-only by its mode bits
    before = sorted(p.name for p in ref.parent.iterdir())
    assert before == [ref.name]
    header = "id,region,start,end,strand\n"
    write(tmp_path / "c/train/a.csv", header + "0,2,10000,10010,+\n1,chr2,10005,10015,-\n")
    write(tmp_path / "c/train/b.csv", header + "0,chr2,1000000,1000010,+\n")
    write(tmp_path / "c/test/a.csv", header + "0,chr2,2000000,2000010,+\n")
    write(tmp_path / "c/test/b.csv", header + "0,chr2,0,10,+\n")
    task = load_task({"name": "c", "type": "coordinates", "path": tmp_path / "c",
                      "reference": ref})
    with gzip.open(ref, "rt") as fh:
        seq = "".join(line.strip() for line in fh if not line.startswith(">"))
    assert dec(task.train.seqs[0]) == seq[10000:10010].upper()
    assert dec(task.train.seqs[1]) == rc(seq[10005:10015]).upper()
    assert dec(task.test.seqs[1]) == "N" * 10
    assert sorted(p.name for p in ref.parent.iterdir()) == before
    assert sorted(p.name for p in shared.parent.iterdir()) == shared_before

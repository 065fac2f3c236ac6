"""Task readers for the sequence formats: GUE CSV folders, Genomic Benchmarks sequence folders
and TSV, and FASTA pairs; their layouts, subsampling and every input error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tasks_kit import counts, csv_rows, dec, write

from dnadiff.errors import InputFileError
from dnadiff.tasks import LabeledSet, load_task, task_summary

from conftest import random_dna, write_fasta


def make_gue(folder: Path, with_dev: bool = True, **override) -> Path:
    files = {
        "train": [("ACGTAC", "10"), ("acgtnn", "2"), ("TTTTTT", "0"), ("GGGGGG", "2"),
                  ("CCCCCC", "10"), ("AAAAAA", "0")],
        "dev": [("ACGTAA", "0"), ("ACGTCC", "2"), ("ACGTGG", "10")],
        "test": [("TTGTAA", "0"), ("TTGTCC", "2"), ("TTGTGG", "10"), ("TTGTTT", "10")],
    }
    for split, rows in files.items():
        if split == "dev" and not with_dev:
            continue
        text = override.get(split, csv_rows(rows))
        write(folder / f"{split}.csv", text)
    return folder


def test_gue_reads_splits_classes_and_names(tmp_path):
    task = load_task({"name": "g", "type": "gue", "path": str(make_gue(tmp_path / "g"))})
    assert task.classes == ["0", "2", "10"]                       # numeric order
    assert task.length == 6
    assert isinstance(task.train, LabeledSet) and task.validation is not None
    assert counts(task) == {"train": {"0": 2, "2": 2, "10": 2},
                            "validation": {"0": 1, "2": 1, "10": 1},
                            "test": {"0": 1, "2": 1, "10": 2}}
    assert task.train.names[:2] == ["train.csv:2", "train.csv:3"]
    assert task.train.labels.dtype == np.int64
    assert task.train.labels.tolist() == [2, 1, 0, 1, 2, 0]
    assert task.train.seqs[1].dtype == np.uint8
    assert task.train.seqs[1].tolist() == [0, 1, 2, 3, 4, 4]     # lower case and N accepted
    assert "GUE" in task.source and "dev" in task.source and "\n" not in task.source
    summary = task_summary(task)
    assert summary["name"] == "g" and summary["classes"] == ["0", "2", "10"]
    assert summary["length"] == 6 and summary["source"] == task.source


def test_gue_without_dev_and_mixed_lengths_allowed(tmp_path):
    folder = make_gue(tmp_path / "g", with_dev=False,
                      test=csv_rows([("ACG", "0"), ("ACGTAC", "2"), ("A", "10")]))
    task = load_task({"name": "g", "type": "gue", "path": folder, "fixed_length": False})
    assert task.validation is None and task.length is None
    assert "validation" not in counts(task)
    with pytest.raises(InputFileError, match=r"test\.csv: line 2: sequence length 3 differs "
                                             r"from 6 .*train\.csv:2"):
        load_task({"name": "g", "type": "gue", "path": folder})


@pytest.mark.parametrize("split,text,message", [
    ("train", "", r"train\.csv: is empty"),
    ("train", "sequence,label\n", r"train\.csv: has no data rows"),
    ("test", "seq,label\nACGTAC,0\n",
     r"test\.csv: line 1: not the header line of a 2-column table: it has no column "
     r"sequence; expected exactly the columns sequence, label"),
    ("test", csv_rows([("ACGTAC", "0"), ("ACGRAC", "2")]),
     r"test\.csv: line 3: character 'R' at position 4 is not A, C, G, T or N"),
    ("dev", csv_rows([("ACGTAC", "0"), ("AC-TAC", "2")]),
     r"dev\.csv: line 3: character '-' at position 3"),
    ("test", csv_rows([("ACGTAC", "0"), ("", "2")]), r"test\.csv: line 3: empty sequence"),
    ("test", csv_rows([("ACGTAC", "0"), ("ACGTAC", "")]), r"test\.csv: line 3: empty label"),
    ("test", "sequence,label\nACGTAC,0,1\n", r"test\.csv: line 2: expected 2 fields"),
    ("dev", csv_rows([("ACGTAC", "0"), ("ACGTAC", "2"), ("ACGTAC", "7")]),
     r"dev\.csv: line 4: unknown label '7' \(train has: 0, 2, 10\)"),
    ("test", csv_rows([("ACGTAC", "0"), ("ACGTAC", "2")]),
     r"test\.csv: class '10' has no examples in test"),
    ("train", csv_rows([("ACGTAC", "0"), ("ACGTAC", "0")]),
     r"train\.csv: only class '0': a classification task needs at least two classes"),
    ("dev", csv_rows([("ACGTAC", "0"), ("ACGTAC", "2"), ("ACGTACG", "10")]),
     r"dev\.csv: line 4: sequence length 7 differs from 6"),
])
def test_gue_errors_name_file_and_line(tmp_path, split, text, message):
    folder = make_gue(tmp_path / "g", **{split: text})
    with pytest.raises(InputFileError, match=message) as err:
        load_task({"name": "g", "type": "gue", "path": folder})
    assert str(err.value).startswith(str(folder / f"{split}.csv"))


def test_gue_missing_files(tmp_path):
    folder = make_gue(tmp_path / "g")
    (folder / "test.csv").unlink()
    with pytest.raises(InputFileError, match=r"test\.csv: file not found"):
        load_task({"name": "g", "type": "gue", "path": folder})
    with pytest.raises(InputFileError, match="nowhere: folder not found"):
        load_task({"name": "g", "type": "gue", "path": tmp_path / "nowhere"})


def test_max_per_split_is_a_deterministic_stratified_subsample(tmp_path):
    rng = np.random.default_rng(1)
    rows = [(random_dna(8, seed=i), str(int(rng.random() < 0.3))) for i in range(200)]
    folder = tmp_path / "g"
    write(folder / "train.csv", csv_rows(rows))
    write(folder / "test.csv", csv_rows(rows[:40]))
    spec = {"name": "g", "type": "gue", "path": folder, "max_per_split": 50, "seed": 5}
    a, b = load_task(spec), load_task(spec)
    n1 = sum(lab == "1" for _, lab in rows)
    assert len(a.train) == 50 and len(a.test) == 40
    assert abs(int(a.train.labels.sum()) - 50 * n1 / 200) <= 1
    assert a.train.names == b.train.names
    assert a.train.names != load_task({**spec, "seed": 6}).train.names
    assert "subsampled to at most 50" in a.source


# ---------------------------------------------------------------------------------------------
# Genomic Benchmarks: sequence folders and TSV


def make_gb_folder(root: Path) -> Path:
    for split, per_class in (("train", 3), ("test", 2)):
        for cls in ("positive", "negative"):
            for i in range(per_class):
                seq = random_dna(10, seed=hash((split, cls, i)) % 1000)
                write(root / split / cls / f"{i * 5}.txt", seq)
    return root


def test_genomic_benchmarks_folder_layout(tmp_path):
    root = make_gb_folder(tmp_path / "gb")
    task = load_task({"name": "gb", "type": "genomic_benchmarks", "path": root})
    assert task.classes == ["negative", "positive"] and task.validation is None
    assert counts(task) == {"train": {"negative": 3, "positive": 3},
                            "test": {"negative": 2, "positive": 2}}
    assert task.train.names[:3] == ["train/negative/0.txt", "train/negative/5.txt",
                                    "train/negative/10.txt"]
    assert dec(task.train.seqs[0]) == (root / "train/negative/0.txt").read_text()
    assert task.length == 10 and "official train/test" in task.source


def test_genomic_benchmarks_folder_errors(tmp_path):
    root = make_gb_folder(tmp_path / "gb")
    spec = {"name": "gb", "type": "genomic_benchmarks", "path": root}
    bad = write(root / "test" / "positive" / "0.txt", "ACGTXACGTA")
    with pytest.raises(InputFileError, match=re.escape(str(bad)) + ": line 1: character 'X'"):
        load_task(spec)
    write(bad, "")
    with pytest.raises(InputFileError, match=re.escape(str(bad)) + ": line 1: empty sequence"):
        load_task(spec)
    write(bad, "ACGTACGTAC")
    extra = write(root / "test" / "enhancer" / "1.txt", "ACGTACGTAC")
    with pytest.raises(InputFileError, match="class 'enhancer' is not a class of train"):
        load_task(spec)
    extra.unlink()
    extra.parent.rmdir()
    for f in (root / "test" / "positive").iterdir():
        f.unlink()
    with pytest.raises(InputFileError, match=r"test/positive: class 'positive' has no "
                                             r"examples in test"):
        load_task(spec)


def test_genomic_benchmarks_tsv_gets_a_non_standard_split(tmp_path):
    rows = [(random_dna(12, seed=i), "1" if i % 3 else "0") for i in range(60)]
    tsv = write(tmp_path / "t.tsv", csv_rows(rows, header="seq\tlabel", sep="\t"))
    spec = {"name": "t", "type": "genomic_benchmarks", "path": tsv, "seed": 2}
    task = load_task(spec)
    assert counts(task) == {"train": {"0": 16, "1": 32}, "validation": {"0": 2, "1": 4},
                            "test": {"0": 2, "1": 4}}
    assert "non-standard split" in task.source
    names = task.train.names + task.validation.names + task.test.names
    assert sorted(names) == sorted(f"t.tsv:{i}" for i in range(2, 62))
    first = int(task.test.names[0].split(":")[1]) - 2
    assert dec(task.test.seqs[0]) == rows[first][0]
    assert task.test.names == load_task(spec).test.names
    assert task.test.names != load_task({**spec, "seed": 3}).test.names
    write(tsv, "sequence\tlabel\nACGT\t0\n")
    with pytest.raises(InputFileError, match=r"t\.tsv: line 1: .*has no column seq; "
                                             r"expected exactly the columns seq, label"):
        load_task(spec)


# ---------------------------------------------------------------------------------------------
# FASTA pair


def test_fasta_pair(tmp_path):
    pos = write_fasta(tmp_path / "pos.fa.gz", [(f"p{i} promoter", random_dna(9, seed=i))
                                               for i in range(20)], gz=True)
    # negatives: headers "> 12" (space after '>'), a duplicate header, wrapped lines
    neg_text = "".join(f"> {i % 30}\n{random_dna(9, seed=100 + i)[:5]}\n"
                       f"{random_dna(9, seed=100 + i)[5:]}\n" for i in range(40))
    neg = write(tmp_path / "neg.fa", neg_text + "> 0\nACGTACGTN\n")
    spec = {"name": "fp", "type": "fasta_pair", "positive": pos, "negative": neg}
    task = load_task(spec)
    assert task.classes == ["negative", "positive"]
    assert counts(task) == {"train": {"negative": 33, "positive": 16},
                            "validation": {"negative": 4, "positive": 2},
                            "test": {"negative": 4, "positive": 2}}
    assert "non-standard split" in task.source and task.length == 9
    by_name = dict(zip(task.train.names + task.validation.names + task.test.names,
                       task.train.seqs + task.validation.seqs + task.test.seqs))
    assert dec(by_name["pos.fa.gz:p3"]) == random_dna(9, seed=3)
    assert dec(by_name["neg.fa:7"]) == random_dna(9, seed=107)


def test_fasta_pair_errors(tmp_path):
    pos = write_fasta(tmp_path / "pos.fa", [("a", "ACGTA"), ("b", "ACGTC")])
    neg = write(tmp_path / "neg.fa", "")
    spec = {"name": "fp", "type": "fasta_pair", "positive": pos, "negative": neg,
            "fixed_length": False}
    with pytest.raises(InputFileError, match=r"neg\.fa: is empty"):
        load_task(spec)
    write(neg, ">x\nACGTA\n>y\nACGWA\n")
    with pytest.raises(InputFileError, match=r"neg\.fa: line 3 \(record 'y'\): character 'W' "
                                             r"at position 4"):
        load_task(spec)
    write(neg, ">x\nACGTA\n>y\n\n>z\nAAAAA\n")
    with pytest.raises(InputFileError, match=r"neg\.fa: line 3 \(record 'y'\): empty sequence"):
        load_task(spec)
    write(neg, "ACGT\n>x\nACGTA\n")
    with pytest.raises(InputFileError,
                       match=r"neg\.fa: line 1: sequence before the first .>. header"):
        load_task(spec)
    with pytest.raises(InputFileError, match=r"nope\.fa: file not found"):
        load_task({**spec, "negative": tmp_path / "nope.fa"})
    # two positives only: a 0.8/0.1/0.1 split leaves validation/test without positives
    write(neg, "".join(f">n{i}\nACGTA\n" for i in range(30)))
    with pytest.raises(InputFileError, match=r"pos\.fa: class 'positive' has no examples in "
                                             r"validation"):
        load_task(spec)

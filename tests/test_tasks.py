"""Labeled task readers (``dnadiff.tasks``): every format, every input error, the coordinate
convention, the annotation-derived tasks, the registry against the schema, and the real
benchmark files."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.schema import load_schema
from dnadiff.tasks import (
    COMMON_KEYS,
    READERS,
    LabeledSet,
    LabeledTask,
    load_task,
    split_validation,
    stratified_split,
    task_keys,
    task_spec,
    task_summary,
)
from dnadiff.tokenizers import DNATokenizer

from conftest import random_dna, write_fasta

TOK = DNATokenizer()
COMP = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def rc(s: str) -> str:
    return s.translate(COMP)[::-1]


def dec(ids) -> str:
    return TOK.decode(ids)


def write(path: Path, text: str, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def csv_rows(rows, header="sequence,label", sep=",") -> str:
    return header + "\n" + "".join(f"{s}{sep}{lab}\n" for s, lab in rows)


def counts(task: LabeledTask) -> dict:
    return task_summary(task)["counts"]


# ---------------------------------------------------------------------------------------------
# stratified_split


def test_stratified_split_properties():
    labels = np.array([0] * 53 + [1] * 31 + [2] * 7)
    np.random.default_rng(0).shuffle(labels)
    fr = [0.8, 0.1, 0.1]
    parts = stratified_split(labels, fr, seed=3)
    assert len(parts) == 3
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(len(labels)))       # disjoint and covering
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)
    for c in (0, 1, 2):
        n_c = int((labels == c).sum())
        for p, f in zip(parts, fr):
            assert abs(int((labels[p] == c).sum()) - n_c * f) < 1
    again = stratified_split(labels, fr, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = stratified_split(labels, fr, seed=4)
    assert not np.array_equal(parts[1], other[1])
    # strings work too, and two parts
    tr, te = stratified_split(["a"] * 10 + ["b"] * 10, [0.5, 0.5], seed=0)
    assert len(tr) == len(te) == 10
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(labels, [0.5, -0.5, 1.0], seed=0)


def test_split_validation_is_a_stratified_seeded_fraction_of_train():
    labels = np.array([0] * 30 + [1] * 10)
    labeled = LabeledSet([np.full(3, i % 4, np.uint8) for i in range(40)], labels,
                         [f"s{i}" for i in range(40)])
    tr, va = split_validation(labeled, 0.1, seed=2)
    assert (len(tr), len(va)) == (36, 4)
    assert np.bincount(va.labels).tolist() == [3, 1]  # stratified
    assert sorted(tr.names + va.names) == sorted(labeled.names)  # disjoint and covering
    assert all(np.array_equal(labeled.seqs[labeled.names.index(n)], s)
               for n, s in zip(va.names, va.seqs))  # sequences travel with their names
    assert split_validation(labeled, 0.1, seed=2)[1].names == va.names
    assert split_validation(labeled, 0.1, seed=3)[1].names != va.names


# ---------------------------------------------------------------------------------------------
# GUE


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
# spec checks


@pytest.mark.parametrize("spec,message", [
    ({"type": "gue", "path": "x"}, "needs a non-empty string 'name'"),
    ({"name": "t", "type": "nope"}, "unknown type 'nope'"),
    ({"name": "t", "type": "gue"}, "needs key\\(s\\) path"),
    ({"name": "t", "type": "gue", "path": "x", "pth": 1}, "unknown key\\(s\\) pth"),
    ({"name": "t", "type": "gue", "path": "x", "seed": "1"}, "seed must be an integer"),
    ({"name": "t", "type": "gue", "path": "x", "max_per_split": 0}, "max_per_split"),
    ({"name": "t", "type": "gue", "path": "x", "split_fractions": [0.5, 0.5]}, "split_fractions"),
    ({"name": "t", "type": "annotation", "fasta": "f", "annotation": "a", "kind": "x",
      "test_contigs": ["c"]}, "kind must be 'promoter' or 'coding'"),
    ({"name": "t", "type": "annotation", "fasta": "f", "annotation": "a", "kind": "coding",
      "test_contigs": "chr1"}, "test_contigs must be a list"),
])
def test_bad_specs(spec, message):
    with pytest.raises(DnadiffError, match=message):
        load_task(spec)


ANNOTATION = {"name": "t", "type": "annotation", "fasta": "f", "annotation": "a",
              "kind": "promoter", "test_contigs": ["c"]}


@pytest.mark.parametrize("spec,message", [
    ({**ANNOTATION, "length": 7}, r"length must be an integer >= 8, got 7"),
    ({"name": "t", "type": "gue", "path": "x", "max_per_split": 1},
     r"max_per_split must be an integer >= 2 or null, got 1"),
    ({"name": "t", "type": "gue", "path": "x", "split_fractions": [0.9, 0, 0.1]},
     r"split_fractions must be 3 numbers > 0 \(train, validation, test\) summing to 1"),
    ({"name": "t", "type": "gue", "path": "x", "split_fractions": [0.5, 0.3, 0.3]},
     r"split_fractions .* summing to 1"),
])
def test_spec_ranges_are_the_schemas(spec, message):
    with pytest.raises(DnadiffError, match=message):
        load_task(spec)


def test_registry_and_schema_name_the_same_types_and_keys():
    task = load_schema()["properties"]["downstream"]["properties"]["tasks"]["items"]
    props = task["properties"]
    assert props["type"]["enum"] == list(READERS)
    assert set(props) == set().union(*map(task_keys, READERS))
    assert set(task["required"]) <= set(COMMON_KEYS)
    for _, required, optional in READERS.values():
        assert not set(required) & set(optional)
        assert all("default" in props[k] for k in optional)  # defaults live in the schema


def test_task_spec_fills_the_runs_genome_and_splits():
    cfg = validate_config({"run": "t", "downstream": {"tasks": [
        {"name": "p", "type": "annotation"},
        {"name": "g", "type": "gue", "path": "x"}]}})
    spec = task_spec(cfg, "p", "genome.fa", "genes.gff3")
    assert spec["fasta"] == "genome.fa" and spec["annotation"] == "genes.gff3"
    assert spec["validation_contigs"] == ["chr15"] and spec["test_contigs"] == ["chr16"]
    assert "path" not in spec and "reference" not in spec
    g = task_spec(cfg, "g")
    assert set(g) == {"name", "type", "path", "seed", "max_per_split", "fixed_length",
                      "split_fractions"}
    with pytest.raises(DnadiffError, match="no downstream task 'q'"):
        task_spec(cfg, "q")


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


# ---------------------------------------------------------------------------------------------
# coordinates (Genomic Benchmarks interval layout)

CHR1 = random_dna(120, seed=21)
CHR2 = random_dna(80, seed=22).lower()
CHRM = random_dna(50, seed=23)


def make_coords(root: Path, gz_class: bool = False, **override) -> Path:
    header = "id,region,start,end,strand\n"
    files = {
        ("train", "positive"): ["0,1,0,10,+", "1,chr2,5,15,-", "2,MT,40,50,+"],
        ("train", "negative"): ["0,chr1,100,110,-", "1,2,70,80,+", "2,chrM,0,10,+"],
        ("test", "positive"): ["0,1,50,60,+"],
        ("test", "negative"): ["0,chrX,0,10,+"] if override.get("unknown") else
                              ["0,1,60,70,+"],
    }
    if override.get("past_end"):
        files[("test", "positive")].append("1,2,75,85,+")
    for (split, cls), lines in files.items():
        gz = gz_class and cls == "positive"
        write(root / split / (cls + (".csv.gz" if gz else ".csv")), header + "\n".join(lines)
              + "\n", gz=gz)
    return root


def write_reference(path: Path, how: str) -> Path:
    records = [("chr1 first", CHR1), ("2", CHR2), ("chrM", CHRM)]
    if how == "bgzip":
        from Bio import bgzf

        plain = write_fasta(path.with_suffix(".tmp"), records, width=25)
        with bgzf.BgzfWriter(str(path), "wb") as out:
            out.write(plain.read_bytes())
        return path
    return write_fasta(path, records, width=25, gz=how == "gzip")


@pytest.mark.parametrize("how", ["plain", "gzip", "bgzip"])
def test_coordinates_are_0_based_half_open_with_rc_and_chr_mapping(tmp_path, how):
    root = make_coords(tmp_path / "coords", gz_class=True)
    ref = write_reference(tmp_path / ("ref.fa" + ("" if how == "plain" else ".gz")), how)
    task = load_task({"name": "c", "type": "coordinates", "path": root, "reference": ref})
    assert task.classes == ["negative", "positive"] and task.validation is None
    got = dict(zip(task.train.names, (dec(s) for s in task.train.seqs)))
    assert got == {
        "1:0-10(+)": CHR1[0:10],
        "chr2:5-15(-)": rc(CHR2[5:15]).upper(),
        "MT:40-50(+)": CHRM[40:50],
        "chr1:100-110(-)": rc(CHR1[100:110]),
        "2:70-80(+)": CHR2[70:80].upper(),
        "chrM:0-10(+)": CHRM[0:10],
    }
    assert [dec(s) for s in task.test.seqs] == [CHR1[60:70], CHR1[50:60]]
    assert task.test.labels.tolist() == [0, 1] and task.length == 10
    assert "0-based" in task.source


def test_coordinates_errors(tmp_path):
    ref = write_reference(tmp_path / "ref.fa", "plain")
    root = make_coords(tmp_path / "c1", unknown=True)
    with pytest.raises(InputFileError, match=r"test/negative\.csv: line 2: region 'chrX' is "
                                             r"not a contig of .*ref\.fa \(contigs: chr1, 2, "
                                             r"chrM\)"):
        load_task({"name": "c", "type": "coordinates", "path": root, "reference": ref})
    root = make_coords(tmp_path / "c2", past_end=True)
    with pytest.raises(InputFileError, match=r"test/positive\.csv: line 3: interval 2:75-85 "
                                             r"runs past the end of contig '2'.*length 80"):
        load_task({"name": "c", "type": "coordinates", "path": root, "reference": ref})
    root = make_coords(tmp_path / "c3")
    csv_path = root / "train" / "negative.csv"
    write(csv_path, "id,chrom,start,end,strand\n0,1,0,10,+\n")
    with pytest.raises(InputFileError, match=re.escape(str(csv_path))
                       + ": line 1: not the header line of a 5-column table"):
        load_task({"name": "c", "type": "coordinates", "path": root, "reference": ref})
    write(csv_path, "id,region,start,end,strand\n0,1,10,x,+\n")
    with pytest.raises(InputFileError, match=r"negative\.csv: line 2: end 'x' is not an int"):
        load_task({"name": "c", "type": "coordinates", "path": root, "reference": ref})
    write(csv_path, "id,region,start,end,strand\n0,1,10,5,+\n")
    with pytest.raises(InputFileError, match=r"negative\.csv: line 2: bad interval"):
        load_task({"name": "c", "type": "coordinates", "path": root, "reference": ref})
    write(csv_path, "id,region,start,end,strand\n")
    with pytest.raises(InputFileError, match=r"negative\.csv: has no data rows"):
        load_task({"name": "c", "type": "coordinates", "path": root, "reference": ref})
    write(csv_path, "id,region,start,end,strand\n0,1,0,10,+\n")
    write(tmp_path / "bad.fa", ">chr1\nACGTRACGTA" + "A" * 110 + "\n>2\n" + CHR2 + "\n")
    with pytest.raises(InputFileError, match=r"negative\.csv: line 2 \(1:0-10\+\): character "
                                             r"'R' at position 5"):
        load_task({"name": "c", "type": "coordinates", "path": root,
                   "reference": tmp_path / "bad.fa"})
    with pytest.raises(InputFileError, match=r"missing\.fa: file not found"):
        load_task({"name": "c", "type": "coordinates", "path": root,
                   "reference": tmp_path / "missing.fa"})


# ---------------------------------------------------------------------------------------------
# annotation-derived tasks

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


# ---------------------------------------------------------------------------------------------
# real data (../shared/data)


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

"""``prepare_genome``: the index, permissions, gzip input, overwriting, split errors, BED splits
(also on top of contig lists), and a real genome with a BED file."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from data_kit import BED, CHR_A, CHR_B, CHR_C, hand_composition, hand_ids

from dnadiff.data.prepare import prepare_genome, read_bed_splits
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows
from dnadiff.errors import DnadiffError, InputFileError

# -- prepare_genome ---------------------------------------------------------------------------

def test_prepared_data_has_its_tokenizer_object(prepared, tok, tmp_path):
    """``PreparedData.tokenizer``: the object rebuilt from index.json (the form the library
    passes around), not kept in a data-loader worker's copy; a tokenizer entry that no longer
    describes its tokenizer is one error naming index.json."""
    import pickle
    import shutil

    out, index = prepared
    data = PreparedData(out)
    assert type(data.tokenizer) is type(tok) and data.tokenizer.to_dict() == index["tokenizer"]
    assert data.tokenizer is data.tokenizer  # rebuilt once
    assert "tokenizer" not in pickle.loads(pickle.dumps(data)).__dict__
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    edited = json.loads((damaged / "index.json").read_text())
    edited["tokenizer"]["complement"] = list(range(7))  # ids that are not the DNA tokenizer's
    (damaged / "index.json").write_text(json.dumps(edited))
    with pytest.raises(InputFileError, match="index.json: tokenizer cannot be rebuilt"):
        assert PreparedData(damaged).tokenizer is None  # never reached: the access raises


def test_prepare_index_contents(prepared, genome_fa, tok):
    out, index = prepared
    on_disk = json.loads((out / "index.json").read_text())
    assert on_disk == index
    assert index["format"] == 1
    assert index["source"] == str(genome_fa)
    assert index["tokenizer"] == tok.to_dict()
    contigs = index["contigs"]
    assert [c["name"] for c in contigs] == ["chrA", "chrB", "chrC"]
    assert [c["length"] for c in contigs] == [200, 100, 80]
    assert contigs[0]["n_runs"] == [[50, 60], [120, 125], [130, 131]]
    assert contigs[1]["n_runs"] == []
    assert contigs[2]["n_runs"] == [[0, 5], [75, 80]]
    assert [c["n_count"] for c in contigs] == [16, 0, 10]
    assert [c["segments"] for c in contigs] == [
        [{"split": "train", "start": 0, "end": 200}],
        [{"split": "validation", "start": 0, "end": 100}],
        [{"split": "test", "start": 0, "end": 80}]]
    assert index["split_sizes"] == {"train": 200, "validation": 100, "test": 80}
    assert index["composition"]["train"] == hand_composition(CHR_A)
    assert index["composition"]["validation"] == hand_composition(CHR_B)
    assert index["composition"]["test"] == hand_composition(CHR_C)
    assert index["composition"]["train"]["N"] == 16
    assert sum(index["composition"]["test"].values()) == 80
    for c, seq in zip(contigs, (CHR_A, CHR_B, CHR_C)):
        arr = np.load(out / c["file"])
        assert arr.dtype == np.uint8
        assert arr.tolist() == hand_ids(seq)
    # no temporary directories left behind
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_prepare_output_permissions(prepared):
    """The atomic temp dir is made 0700; the published output gets normal umask permissions."""
    import os

    out, _ = prepared
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / "index.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_prepare_gzip_equals_plain(tmp_path, genome_fa):
    gz = tmp_path / "genome.fa.gz"
    gz.write_bytes(gzip.compress(genome_fa.read_bytes()))
    a = prepare_genome(genome_fa, tmp_path / "a", ["chrB"], ["chrC"])
    b = prepare_genome(gz, tmp_path / "b", ["chrB"], ["chrC"])
    a.pop("source"), b.pop("source")
    assert a == b


def test_prepare_overwrites_existing_output(tmp_path, genome_fa):
    out = tmp_path / "prep"
    prepare_genome(genome_fa, out, ["chrB"], ["chrC"])
    prepare_genome(genome_fa, out, [], ["chrC"])  # its own output: replaced
    assert json.loads((out / "index.json").read_text())["split_sizes"]["train"] == 300
    (out / "stale.txt").write_text("old")  # a file dnadiff did not write: refused, kept
    with pytest.raises(DnadiffError, match=r"did not write \(stale\.txt\)"):
        prepare_genome(genome_fa, out, ["chrB"], ["chrC"])
    assert (out / "stale.txt").read_text() == "old"
    assert json.loads((out / "index.json").read_text())["split_sizes"]["train"] == 300


def test_prepare_split_errors(tmp_path, genome_fa):
    out = tmp_path / "prep"
    with pytest.raises(DnadiffError, match=r"data\.splits\.test.*'chrZ'"):
        prepare_genome(genome_fa, out, [], ["chrZ"])
    with pytest.raises(DnadiffError, match=r"data\.splits\.validation.*'chrQ'"):
        prepare_genome(genome_fa, out, ["chrQ"], [])
    with pytest.raises(DnadiffError, match="both validation and test"):
        prepare_genome(genome_fa, out, ["chrB"], ["chrB"])
    with pytest.raises(DnadiffError, match="train split is empty"):
        prepare_genome(genome_fa, out, ["chrA", "chrB"], ["chrC"])
    assert not out.exists()
    assert list(tmp_path.glob(".prep.tmp-*")) == []


# -- BED splits -------------------------------------------------------------------------------


def segs(index, name):
    c = next(c for c in index["contigs"] if c["name"] == name)
    return [(s["split"], s["start"], s["end"]) for s in c["segments"]]


def test_bed_splits(tmp_path, genome_fa):
    bed = tmp_path / "splits.bed"
    bed.write_text(BED)
    index = prepare_genome(genome_fa, tmp_path / "prep", split_bed=bed)
    assert segs(index, "chrA") == [("train", 0, 20), ("validation", 20, 40), ("train", 40, 100),
                                   ("test", 100, 150), ("train", 150, 200)]
    assert segs(index, "chrB") == [("test", 0, 10), ("train", 10, 100)]
    assert segs(index, "chrC") == [("train", 0, 80)]
    assert index["split_sizes"] == {"train": 200 - 70 + 90 + 80, "validation": 20, "test": 60}
    comp = index["composition"]
    assert comp["validation"] == hand_composition(CHR_A[20:40])
    assert comp["test"] == hand_composition(CHR_A[100:150], CHR_B[:10])
    assert comp["train"] == hand_composition(CHR_A[:20], CHR_A[40:100], CHR_A[150:],
                                             CHR_B[10:], CHR_C)


def test_bed_applied_on_top_of_contig_lists(tmp_path, genome_fa):
    """Schema (data.splits.bed): 'when given it is applied on top of the contig lists' -- a contig
    listed in data.splits.validation stays validation outside the BED intervals."""
    bed = tmp_path / "splits.bed"
    bed.write_text("chrB\t0\t10\ttest\n")
    index = prepare_genome(genome_fa, tmp_path / "prep", validation=["chrB"], test=["chrC"],
                           split_bed=bed)
    assert segs(index, "chrA") == [("train", 0, 200)]
    assert segs(index, "chrB") == [("test", 0, 10), ("validation", 10, 100)]
    assert segs(index, "chrC") == [("test", 0, 80)]


def test_read_bed_splits_parses_and_skips_headers(tmp_path):
    bed = tmp_path / "s.bed"
    bed.write_text(BED + "chrA\t0\t5\ttrain\textra\tcols\n")
    got = read_bed_splits(bed, {"chrA": 200, "chrB": 100})
    assert got == {"chrA": [(20, 40, "validation"), (100, 150, "test"), (0, 5, "train")],
                   "chrB": [(0, 10, "test")]}


@pytest.mark.parametrize("line, needle", [
    ("chrA\t150\t201\ttest", "outside chrA (length 200)"),
    ("chrA\t-1\t10\ttest", "outside"),
    ("chrA\t40\t40\ttest", "outside"),
    ("chrA\t10\t20\ttesting", "split 'testing' is not one of"),
    ("chrZ\t10\t20\ttest", "contig 'chrZ' is not in the genome"),
    ("chrA\tten\t20\ttest", "not integers"),
    ("chrA\t10\t20", "expected 4 columns"),
])
def test_bad_bed_lines(tmp_path, genome_fa, line, needle):
    bed = tmp_path / "bad.bed"
    bed.write_text("chrA\t0\t10\tvalidation\n" + line + "\n")
    with pytest.raises(InputFileError) as ei:
        read_bed_splits(bed, {"chrA": 200, "chrB": 100})
    msg = str(ei.value)
    assert msg.startswith(f"{bed}: line 2: "), msg
    assert needle in msg, msg
    # through prepare_genome: same error, no output
    with pytest.raises(InputFileError, match="line 2"):
        prepare_genome(genome_fa, tmp_path / "prep", split_bed=bed)
    assert not (tmp_path / "prep").exists()
    assert list(tmp_path.glob(".prep.tmp-*")) == []


# -- real data --------------------------------------------------------------------------------

def test_prepare_lambda_phage_with_bed(shared_data, tmp_path):
    fa = shared_data / "genomes" / "lambda_phage.fa.gz"
    if not fa.exists():
        pytest.skip(f"{fa} not present")
    text = gzip.decompress(fa.read_bytes()).decode()
    header, *lines = text.splitlines()
    seq = "".join(lines)
    name = header[1:].split()[0]
    bed = tmp_path / "lambda.bed"
    bed.write_text(f"{name}\t0\t5000\ttest\n{name}\t5000\t10000\tvalidation\n")
    index = prepare_genome(fa, tmp_path / "prep", split_bed=bed)
    (c,) = index["contigs"]
    assert c["name"] == name and c["length"] == len(seq) == 48502
    assert index["split_sizes"] == {"train": 38502, "validation": 5000, "test": 5000}
    assert index["composition"]["test"] == hand_composition(seq[:5000])
    total = {b: sum(index["composition"][s][b] for s in index["composition"]) for b in "ACGTN"}
    assert total == {"A": 12334, "C": 11362, "G": 12820, "T": 11986, "N": 0}
    g = PreparedData(tmp_path / "prep")
    ds = RandomWindows(g, "train", 1024, 8, seed=0)
    for i in range(8):
        _, start, _ = ds.locate(i)
        assert 10000 <= start <= 48502 - 1024
        assert ds[i]["tokens"].tolist() == hand_ids(seq[start:start + 1024])

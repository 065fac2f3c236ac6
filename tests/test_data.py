"""Data preparation (``prepare_genome``) and the window datasets."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from dnadiff.data.fasta import read_sequences, sniff_format
from dnadiff.data.prepare import n_runs, prepare_genome, read_bed_splits
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import RandomWindows, TiledWindows
from dnadiff.errors import DnadiffError, InputFileError

from conftest import random_dna, write_fasta

IUPAC = set("RYKMSWBDHVN")


def build_chrA() -> str:
    """200 bp: lower case at 0..30, N run 50..60, soft-masked n run 120..125, IUPAC R at 130."""
    s = list(random_dna(200, seed=10))
    for i in range(0, 30):
        s[i] = s[i].lower()
    for i in range(50, 60):
        s[i] = "N"
    for i in range(120, 125):
        s[i] = "n"
    s[130] = "R"
    return "".join(s)


CHR_A = build_chrA()
CHR_B = random_dna(100, seed=11)
CHR_C = "NNNNN" + random_dna(70, seed=12).lower() + "YKMSW"  # IUPAC codes at the end


def hand_ids(seq: str) -> list[int]:
    """Independent reference tokenization: upper case, IUPAC -> N, U -> T."""
    table = {"A": 0, "C": 1, "G": 2, "T": 3, "U": 3}
    return [table.get(ch, 4) if ch in table or ch in IUPAC else -1 for ch in seq.upper()]


def hand_composition(*seqs) -> dict:
    ids = [i for s in seqs for i in hand_ids(s)]
    return {b: ids.count(i) for i, b in enumerate("ACGTN")}


@pytest.fixture
def genome_fa(tmp_path):
    return write_fasta(tmp_path / "genome.fa",
                       [("chrA desc text", CHR_A), ("chrB", CHR_B), ("chrC", CHR_C)], width=37)


@pytest.fixture
def prepared(tmp_path, genome_fa):
    out = tmp_path / "prep"
    index = prepare_genome(genome_fa, out, validation=["chrB"], test=["chrC"])
    return out, index


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


# -- prepare_genome ---------------------------------------------------------------------------

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

BED = ("# comment\ntrack name=splits\n\n"
       "chrA\t20\t40\tvalidation\n"
       "chrA\t100\t150\ttest\n"
       "chrB\t0\t10\ttest\n")


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


# -- PreparedData ---------------------------------------------------------------------------

def test_prepared_genome_not_a_directory(tmp_path):
    with pytest.raises(InputFileError, match="no index.json"):
        PreparedData(tmp_path)
    (tmp_path / "index.json").write_text("{broken")
    with pytest.raises(InputFileError, match="corrupt JSON"):
        PreparedData(tmp_path)


def test_valid_starts(prepared):
    out, _ = prepared
    g = PreparedData(out)
    assert g.segments("train") == [(0, 0, 200)]
    assert g.valid_starts("train", 16).tolist() == [[0, 0, 35], [0, 60, 105], [0, 131, 185]]
    # window 60: [60, 120) gives exactly one start, [131, 200) (69 bases) gives ten
    assert g.valid_starts("train", 60).tolist() == [[0, 60, 61], [0, 131, 141]]
    assert g.valid_starts("train", 69).tolist() == [[0, 131, 132]]
    assert g.valid_starts("train", 70).shape == (0, 3)
    assert g.valid_starts("test", 16).tolist() == [[2, 5, 60]]


def test_valid_starts_with_bed_segments(tmp_path, genome_fa):
    bed = tmp_path / "s.bed"
    bed.write_text(BED)
    prepare_genome(genome_fa, tmp_path / "prep", split_bed=bed)
    g = PreparedData(tmp_path / "prep")
    # train segments of chrA: [0,20) [40,100) [150,200); N runs at 50..60, 120..125, 130..131
    assert g.valid_starts("train", 16).tolist() == [
        [0, 0, 5], [0, 60, 85], [0, 150, 185], [1, 10, 85], [2, 5, 60]]
    # test: chrA [100,150) has N at 120..125 and 130..131; chrB [0,10) is too short
    assert g.valid_starts("test", 16).tolist() == [[0, 100, 105], [0, 131, 135]]
    assert g.valid_starts("test", 19).tolist() == [[0, 100, 102], [0, 131, 132]]
    assert g.valid_starts("test", 21).shape == (0, 3)
    assert g.valid_starts("validation", 20).tolist() == [[0, 20, 21]]


def window_starts(ds):
    return [ds.locate(i)[:2] for i in range(len(ds))]


def test_random_windows_never_contain_n_and_cover_all_starts(prepared, tok):
    out, _ = prepared
    g = PreparedData(out)
    ds = RandomWindows(g, "train", 16, 4000, seed=3)
    assert len(ds) == 4000 and ds.n_positions == 35 + 45 + 54
    valid = set(range(0, 35)) | set(range(60, 105)) | set(range(131, 185))
    seen = set()
    full = np.array(hand_ids(CHR_A))
    for i in range(len(ds)):
        item = ds[i]
        ci, start, rc = ds.locate(i)
        assert ci == 0 and not rc
        assert start in valid
        seen.add(start)
        x = item["tokens"]
        assert x.dtype == torch.long and x.shape == (16,)
        assert not (x == tok.n_id).any()
        assert x.tolist() == full[start:start + 16].tolist()
        assert item["loss_mask"].dtype == torch.bool and item["loss_mask"].all()
    assert seen == valid  # uniform over every N-free window start


def test_random_windows_deterministic(prepared):
    out, _ = prepared
    g = PreparedData(out)
    a = RandomWindows(g, "train", 16, 50, seed=1)
    b = RandomWindows(PreparedData(out), "train", 16, 50, seed=1)
    c = RandomWindows(g, "train", 16, 50, seed=2)
    assert window_starts(a) == window_starts(b)
    assert window_starts(a) != window_starts(c)
    for i in (0, 7, 49):
        assert torch.equal(a[i]["tokens"], b[i]["tokens"])
    # an item does not depend on the order of access
    assert torch.equal(a[7]["tokens"], RandomWindows(g, "train", 16, 50, seed=1)[7]["tokens"])


def test_random_windows_reverse_complement(prepared, tok):
    out, _ = prepared
    g = PreparedData(out)
    fwd = RandomWindows(g, "train", 16, 200, seed=4)
    rc = RandomWindows(g, "train", 16, 200, seed=4, complement=tok.complement, rc_prob=1.0)
    never = RandomWindows(g, "train", 16, 200, seed=4, complement=tok.complement, rc_prob=0.0)
    for i in range(200):
        assert fwd.locate(i)[:2] == rc.locate(i)[:2] == never.locate(i)[:2]
        assert rc.locate(i)[2] and not never.locate(i)[2]
        f = fwd[i]["tokens"].numpy()
        assert rc[i]["tokens"].tolist() == tok.reverse_complement(f).tolist()
        assert torch.equal(never[i]["tokens"], fwd[i]["tokens"])
    half = RandomWindows(g, "train", 16, 2000, seed=4, complement=tok.complement, rc_prob=0.5)
    frac = np.mean([half.locate(i)[2] for i in range(2000)])
    assert 0.45 < frac < 0.55


def test_random_windows_no_valid_window(prepared):
    out, _ = prepared
    with pytest.raises(DnadiffError, match="no window of 100 bases without N"):
        RandomWindows(PreparedData(out), "train", 100, 10)


@pytest.mark.parametrize("window", [16, 24, 80, 100])
def test_tiled_windows_cover_split_once(prepared, tok, window):
    out, _ = prepared
    g = PreparedData(out)
    ds = TiledWindows(g, "test", window)
    n_tiles = -(-80 // window)
    assert len(ds) == n_tiles
    pieces = []
    for i in range(len(ds)):
        item = ds[i]
        x, lm = item["tokens"], item["loss_mask"]
        assert x.shape == (window,) and lm.dtype == torch.bool
        assert torch.equal(lm, (x != tok.pad_id) & (x != tok.n_id))
        real = x[x != tok.pad_id]
        if i < len(ds) - 1:
            assert len(real) == window
        pieces.append(real)
    assert torch.cat(pieces).tolist() == hand_ids(CHR_C)
    last = ds[len(ds) - 1]["tokens"]
    tail = 80 - (n_tiles - 1) * window
    assert (last[tail:] == tok.pad_id).all() and (last[:tail] != tok.pad_id).all()
    # loss mask excludes exactly the N (10 of them) and the padding
    total_scored = sum(int(ds[i]["loss_mask"].sum()) for i in range(len(ds)))
    assert total_scored == 80 - 10


def test_tiled_windows_multi_segment_and_max_windows(tmp_path, genome_fa):
    bed = tmp_path / "s.bed"
    bed.write_text(BED)
    prepare_genome(genome_fa, tmp_path / "prep", split_bed=bed)
    g = PreparedData(tmp_path / "prep")
    ds = TiledWindows(g, "test", 16)
    # chrA [100,150) -> 100,116,132,148(2 bases); chrB [0,10) -> one padded tile
    assert ds.tiles == [(0, 100, 116), (0, 116, 132), (0, 132, 148), (0, 148, 150), (1, 0, 10)]
    sub = TiledWindows(g, "test", 16, max_windows=3)
    assert sub.tiles == [ds.tiles[0], ds.tiles[2], ds.tiles[4]]
    assert len(TiledWindows(g, "test", 16, max_windows=100)) == 5


def test_tiled_windows_empty_split(prepared, tmp_path, genome_fa):
    prepare_genome(genome_fa, tmp_path / "p2", [], [])
    with pytest.raises(DnadiffError, match="split is empty"):
        TiledWindows(PreparedData(tmp_path / "p2"), "test", 16)


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

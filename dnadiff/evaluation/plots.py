"""Plots for the report (PNG, matplotlib with the non-interactive Agg backend)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dnadiff.errors import OutputError  # noqa: E402
from dnadiff.io import atomic_path  # noqa: E402


def _save(fig, out):
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_training(metrics_csv, out, reference_bits: float | None = None) -> None:
    """Training curve: train and validation bits per token against step (from the metrics CSV),
    with an optional reference line (the validation split's order-0 entropy)."""
    steps_t, train, steps_v, val = [], [], [], []
    with open(metrics_csv) as fh:
        for row in csv.DictReader(fh):
            if row.get("train/bits_per_token"):
                steps_t.append(int(row["step"]))
                train.append(float(row["train/bits_per_token"]))
            if row.get("val/bits_per_token"):
                steps_v.append(int(row["step"]))
                val.append(float(row["val/bits_per_token"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps_t, train, label="train (NELBO, batch)", alpha=0.6)
    ax.plot(steps_v, val, "o-", label="validation (NELBO)")
    if reference_bits is not None:
        ax.axhline(reference_bits, color="grey", ls="--", label="order-0 entropy (validation)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("bits per token")
    ax.legend()
    ax.set_title("Training curve")
    _save(fig, out)


def plot_kmer_js(rows: list[dict], out) -> None:
    """k-mer JS against k of the samples, the real floor and the i.i.d. baseline (log scale)."""
    ks = [r["k"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("js_generated", "generated"), ("js_real_floor", "real held-out (floor)"),
                       ("js_iid_baseline", "i.i.d. composition")):
        ax.plot(ks, [r[key] for r in rows], "o-", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("Jensen-Shannon divergence to test split (bits)")
    ax.legend()
    ax.set_title("k-mer spectrum distance")
    _save(fig, out)


def plot_gc(gc_generated, gc_real, out) -> None:
    """Histograms of per-sequence GC content, generated against real held-out windows."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = [i / 50 for i in range(51)]
    ax.hist(gc_real, bins=bins, alpha=0.5, label="real held-out windows", density=True)
    ax.hist(gc_generated, bins=bins, alpha=0.5, label="generated", density=True)
    ax.set_xlabel("GC content")
    ax.set_ylabel("density")
    ax.legend()
    ax.set_title("GC content per sequence")
    _save(fig, out)


def plot_downstream(summary: list[dict], runs: list[dict], out) -> None:
    """Test accuracy and MCC per task and method: bars = mean over seeds, dots = each run."""
    tasks = list(dict.fromkeys(r["task"] for r in summary))
    methods = list(dict.fromkeys(r["method"] for r in summary))
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 2.2 * len(tasks)) * 1.6, 4))
    width = 0.8 / max(len(methods), 1)
    for ax, metric in zip(axes, ("accuracy", "mcc")):
        for j, m in enumerate(methods):
            xs = np.arange(len(tasks)) + (j - (len(methods) - 1) / 2) * width
            means = [next((r[metric] for r in summary if r["task"] == t and r["method"] == m),
                          np.nan) for t in tasks]
            ax.bar(xs, means, width, label=m)
            for x, t in zip(xs, tasks):
                vals = [r[metric] for r in runs if r["task"] == t and r["method"] == m]
                ax.plot([x] * len(vals), vals, "k.", ms=3)
        ax.set_xticks(np.arange(len(tasks)), tasks, rotation=20, ha="right")
        ax.set_ylabel(f"test {metric}")
        ax.set_ylim(0 if metric == "accuracy" else min(0, ax.get_ylim()[0]), 1)
    axes[0].legend(fontsize=8)
    fig.suptitle("Downstream classification (bars: mean over seeds; dots: runs)")
    _save(fig, out)


def plot_oracle_agreement(rows: list[dict], classes: list[str], out) -> None:
    """Fraction of samples the oracle assigns to the requested class, per class and guidance,
    next to unconditional samples and real held-out sequences."""
    fig, ax = plt.subplots(figsize=(7, 4))
    labels, vals, colors = [], [], []
    for c in classes:
        for r in rows:
            if r["requested"] == c and r["source"] == "mdlm_conditional":
                labels.append(f"{c}\nw={r['guidance']:g}")
                vals.append(r["agreement"])
                colors.append("tab:blue")
        unc = next((r for r in rows if r["source"] == "mdlm_unconditional"), None)
        if unc is not None:
            labels.append(f"{c}\nuncond.")
            vals.append(unc[f"frac_{c}"])
            colors.append("tab:grey")
        real = next((r for r in rows if r["source"] == "real_test" and r["requested"] == c),
                    None)
        if real is not None:
            labels.append(f"{c}\nreal")
            vals.append(real["agreement"])
            colors.append("tab:green")
    ax.bar(np.arange(len(vals)), vals, color=colors)
    ax.set_xticks(np.arange(len(vals)), labels, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction assigned to the class by the oracle")
    ax.set_title("Class-conditional generation: oracle agreement")
    _save(fig, out)


def plot_sample_scores(sets: dict, out) -> None:
    """Left: k-mer JS per k for each scored set (samples, baselines, real floor), log scale.
    Right: the gene-level figures of each set (gene-finder coding fraction, share with an open
    frame >= 600 bp, x 100 the codon periodicity in bits) with standard errors."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, res in sets.items():
        ks = sorted(res["kmer_js"])
        ax.plot(ks, [res["kmer_js"][k] for k in ks], "o-", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("JS divergence to held-out k-mer spectrum (bits)")
    ax.legend(fontsize=8)
    ax.set_title("Generated sequences vs baselines")
    measures = (("coding_fraction", "coding fraction", 1.0),
                ("orf_open_ge600", "open frame >= 600 bp", 1.0),
                ("period3_excess", "period-3 MI x 100 (bits)", 100.0))
    names = list(sets)
    width = 0.8 / len(measures)
    for j, (key, label, scale) in enumerate(measures):
        vals = [scale * sets[n][key] for n in names]
        errs = [scale * sets[n][f"{key}_se"] for n in names]
        bx.bar(np.arange(len(names)) + (j - 1) * width, vals, width, yerr=errs, capsize=2,
               label=label)
    bx.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
    bx.set_title("Genes: coding fraction, long open frames, codon periodicity")
    bx.legend(fontsize=8)
    _save(fig, out)


def plot_collapse(curves: list[dict], summary: dict, out) -> None:
    """Positional collapse: entropy, top-1 probability and the mass on frequent tokens / [EOS]
    (text) or the KL divergence from the base composition (DNA) against distance."""
    d = [r["distance"] for r in curves]
    dna = summary["modality"] == "dna"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ent = [r["entropy_bits_mean"] for r in curves]
    sd = [r["entropy_bits_sd"] for r in curves]
    ax.plot(d, ent, label="prediction entropy (mean over prompts)")
    ax.fill_between(d, [a - b for a, b in zip(ent, sd)], [a + b for a, b in zip(ent, sd)],
                    alpha=0.2)
    ax.axhline(summary["train_unigram_entropy_bits"], color="grey", ls="--",
               label="training unigram entropy")
    ax.set_ylabel("bits")
    ax.set_title("Entropy of the prediction")
    ax = axes[1]
    ax.plot(d, [r["p1_mean"] for r in curves], label="top-1 probability")
    ax.plot(d, [r["top1_is_most_frequent_mean"] for r in curves],
            label="top-1 = most frequent training token")
    ax.set_ylim(0, 1.02)
    ax.set_title("Top-1 prediction")
    ax = axes[2]
    if dna:
        ax.plot(d, [r["kl_composition_bits_mean"] for r in curves], color="C3")
        ax.set_ylabel("bits")
        ax.set_title("KL(prediction || training base composition)")
    else:
        ax.plot(d, [r["top10_mass_mean"] for r in curves], label="mass on 10 most frequent tokens")
        if "eos_mass_mean" in curves[0]:
            ax.plot(d, [r["eos_mass_mean"] for r in curves], label="mass on [EOS]")
        ax.set_ylim(0, 1.02)
        ax.set_title("Probability mass on frequent tokens")
    for ax in axes:
        ax.set_xlabel("distance from the prompt (masked position)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"Masked-position probe: {summary['prompts']} prompts + {summary['masks']} "
                 "masks, one forward pass")
    fig.subplots_adjust(wspace=0.3)
    _save(fig, out)


def plot_marginal_trap(rows: list[dict], modality: str, out) -> None:
    """Sample quality against forward passes per sequence, one line per sampler (a Pareto
    plot of the sampler menu), with the real held-out reference."""
    model_rows = [r for r in rows if r["steps"] > 0]
    real = next((r for r in rows if r["steps"] == 0), None)
    metrics = (["gen_perplexity", "unigram_entropy_bits"] if modality == "text" else
               ["js_mean", "discriminator_auroc", "coding_fraction", "ar_bits_per_base"])
    metrics = [m for m in metrics if m in model_rows[0]]
    labels = {"gen_perplexity": "generative perplexity (run's AR model)",
              "unigram_entropy_bits": "unigram entropy per sample (bits)",
              "js_mean": "k-mer JS to held-out, mean over k (bits)",
              "discriminator_auroc": "real-vs-generated AUROC",
              "coding_fraction": "gene-finder coding fraction",
              "ar_bits_per_base": "bits/base under the run's AR model"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics), 3.8), squeeze=False)
    samplers = list(dict.fromkeys(r.get("sampler", "ancestral") for r in model_rows))
    for ax, m in zip(axes[0], metrics):
        for name in samplers:
            mine = sorted((r for r in model_rows if r.get("sampler", "ancestral") == name),
                          key=lambda r: r["passes_per_sequence"])
            ax.plot([r["passes_per_sequence"] for r in mine], [r[m] for r in mine], "o-",
                    label=name)
        if real is not None and m in real:
            ax.axhline(real[m], color="grey", ls="--", label="real held-out")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("forward passes per sequence")
        ax.set_title(labels[m], fontsize=9)
        if m == "gen_perplexity":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle("Samplers against the marginal trap: quality for forward passes")
    _save(fig, out)


#: the formats a plot is written in, by the extension of its name
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(out) -> str:
    """The format the extension of ``out`` names (png, svg or pdf), or a one-line error: the
    file written is always what its name says."""
    fmt = PLOT_FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        suffix = Path(out).suffix
        raise OutputError(out, f"{'no extension' if not suffix else repr(suffix)}: the "
                          "extension names the plot's format, one of "
                          f"{', '.join(PLOT_FORMATS)}")
    return fmt

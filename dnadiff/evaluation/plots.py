"""Plots for the report (PNG, matplotlib with the non-interactive Agg backend)."""

from __future__ import annotations

import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dnadiff.io import atomic_path  # noqa: E402


def _save(fig, out):
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_training(metrics_csv, out, reference_bits: float | None = None) -> None:
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
    import numpy as np

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
    import numpy as np

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
    """k-mer JS per k for each scored set (MDLM, baselines, real floor), log scale."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in sets.items():
        ks = sorted(res["kmer_js"])
        ax.plot(ks, [res["kmer_js"][k] for k in ks], "o-", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("JS divergence to held-out k-mer spectrum (bits)")
    ax.legend(fontsize=8)
    ax.set_title("Generated sequences vs baselines")
    _save(fig, out)

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

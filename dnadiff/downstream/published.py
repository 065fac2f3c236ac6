"""Published figures on the benchmark tasks we run, and the comparison table that puts our
methods beside them.

Only figures read in the paper or its authors' repository are here, each with its source. A
row of ours sits beside the published ones of the task with the same name (name the tasks of
a config as the benchmark does: ``tf0``, ``human_nontata_promoters``, ...). The metric of a
benchmark is the one its papers report: MCC for GUE, test accuracy for Genomic Benchmarks.
"""

from __future__ import annotations

_DNABERT2 = ("DNABERT-2 paper (Zhou et al. 2023), Table 4, as the image "
             "figures/Performance.png of the MAGICS-LAB/DNABERT_2 repository "
             "(commit d87d29f)")
_GUE_PROTOCOL = ("official splits; DNABERT-2's fine-tuning script (lr 2e-5 or 3e-5 by script "
                 "version, 3-10 epochs by task, best on dev)")
_GB_REPO = ("ML-Bioinfo-CEITEC/genomic_benchmarks, experiments/README.md (commit 605d853): "
            "its PyTorch CNN notebooks")
_MDLM = "MDLM paper (Sahoo et al. 2024, arXiv 2406.07524), Table 7"
_GB_PROTOCOL = ("5 seeds, each a 90/10 train/validation split of train; 10 epochs; early "
                "stopping on validation accuracy; mean over seeds")

#: the models of each benchmark's table, its columns: (model, parameters, pretraining, source,
#: protocol); GUE's sizes as the models' names give them (DNABERT-2-117M, NT-2500M), none where
#: they do not
_GUE_MODELS = [(model, size, "see the source", _DNABERT2, _GUE_PROTOCOL) for model, size in
               (("DNABERT (6-mer)", "-"), ("NT-2500M-multi", "2.5B"), ("DNABERT-2", "117M"))]
_GB_MODELS = [("CNN (PyTorch)", "-", "none", _GB_REPO, "10 epochs, batch 64, one run"),
              ("Mamba AR", "465K", "hg38", _MDLM, _GB_PROTOCOL),
              ("Caduceus MLM", "467K", "hg38", _MDLM, _GB_PROTOCOL),
              ("Caduceus MDLM", "467K", "hg38", _MDLM, _GB_PROTOCOL)]


def _table(models: list[tuple], values: dict[str, tuple], percent: bool = False) -> dict:
    """{task: [(model, parameters, pretraining, value, source, protocol)]} of a benchmark's
    table: each task's values, one per model in the order of ``models`` (``percent``: as
    published, x 100)."""
    return {task: [(model, size, pretraining, value / 100 if percent else value, source, protocol)
                   for (model, size, pretraining, source, protocol), value
                   in zip(models, row, strict=True)]
            for task, row in values.items()}


#: benchmark -> (metric, {task: [(model, parameters, pretraining, value, source, protocol)]})
PUBLISHED = {
    "gue": ("mcc", _table(_GUE_MODELS, {
        "prom_core_notata": (70.47, 71.58, 68.04),
        "prom_300_tata": (61.56, 79.43, 71.59),
        "tf0": (66.84, 66.64, 71.99),
        "tf1": (70.14, 70.28, 76.06),
        "mouse0": (44.42, 63.31, 56.76),
    }, percent=True)),
    "genomic-benchmarks": ("accuracy", _table(_GB_MODELS, {
        "human_enhancers_cohn": (0.695, 0.734, 0.737, 0.743),
        "human_nontata_promoters": (0.846, 0.926, 0.935, 0.940),
    })),
}

COMPARISON_COLUMNS = ["task", "benchmark", "metric", "model", "method", "value", "value_min",
                      "value_max", "runs", "parameters", "pretraining", "protocol", "source"]


def published_for(task: str) -> tuple[str, str, list] | None:
    """(benchmark, metric, rows) of the published figures on ``task``, or None."""
    for bench, (metric, tasks) in PUBLISHED.items():
        if task in tasks:
            return bench, metric, tasks[task]
    return None


def comparison_rows(results: list[dict]) -> list[dict]:
    """For each task of ``results`` (``run_task`` outputs, as in the result JSON files) that
    has published figures: our methods (mean and range over seeds, in the benchmark's metric,
    with our model's size and pretraining and our protocol), then the published rows."""
    rows = []
    for res in results:
        summary = res["summary"]
        if not summary:
            continue
        task = summary[0]["task"]
        found = published_for(task)
        if found is None:
            continue
        bench, metric, published = found
        model = res.get("model", {})
        protocol = res.get("protocol", "quick")
        if protocol != bench:
            protocol += " (not the benchmark's protocol)"
        for s in summary:
            pretrained = s["method"] in ("finetune", "probe")
            network = pretrained or s["method"] == "scratch"  # our backbone, pretrained or not
            rows.append({
                "task": task, "benchmark": bench, "metric": metric,
                "model": f"ours ({model.get('backbone', '?')})" if network else "ours",
                "method": s["method"], "value": s[metric], "value_min": s[f"{metric}_min"],
                "value_max": s[f"{metric}_max"], "runs": s["runs"],
                "parameters": model.get("parameters", "") if network else "",
                "pretraining": model.get("pretraining", "") if pretrained else "none",
                "protocol": protocol, "source": "this run"})
        for name, params, pre, value, source, proto in published:
            rows.append({"task": task, "benchmark": bench, "metric": metric, "model": name,
                         "method": "published", "value": value, "value_min": "",
                         "value_max": "", "runs": "", "parameters": params,
                         "pretraining": pre, "protocol": proto, "source": source})
    return rows


def comparison_markdown(results: list[dict]) -> str:
    """The comparison as a Markdown table (the report's and the README's form)."""
    rows = comparison_rows(results)
    lines = ["| task | metric | model | method | value | parameters | pretraining | protocol |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        value = f"{r['value']:.3f}"
        if r["runs"] and r["runs"] > 1:
            value += f" ({r['value_min']:.3f}-{r['value_max']:.3f})"
        lines.append(f"| {r['task']} | {r['metric']} | {r['model']} | {r['method']} | {value} "
                     f"| {r['parameters']} | {r['pretraining']} | {r['protocol']} |")
    if not rows:
        lines.append("| (no task here has published figures) | | | | | | | |")
    sources = sorted({r["source"] for r in rows if r["method"] == "published"})
    lines += ["", "Published figures: " + "; ".join(sources) if sources else ""]
    return "\n".join(lines).rstrip() + "\n"

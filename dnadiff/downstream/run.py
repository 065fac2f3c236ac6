"""One task, every method (:func:`run_task`); its result files read back, checked
(:func:`read_result`) and gathered into the rows of the table over tasks
(:func:`collect_results`)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time

import numpy as np
import torch

from dnadiff import runtime
from dnadiff.checkpoint import model_from_checkpoint, save_classifier
from dnadiff.config import validate_config
from dnadiff.downstream.baselines import fit_kmer, fit_logistic, kmer_matrix
from dnadiff.downstream.fit import classification_metrics, classifier_on, fit_classifier, recipe
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import read_bounded
from dnadiff.models import build_backbone
from dnadiff.models.classifier import embed, predict_proba
from dnadiff.models.cnn import GenomicBenchmarksCNN
from dnadiff.tasks import split_validation, task_summary

log = logging.getLogger(__name__)

METHODS = ("finetune", "probe", "kmer", "kmer_one_k", "scratch", "cnn")


# -- one task -------------------------------------------------------------------------------------
def _summarize(rows: list[dict]) -> list[dict]:
    out = []
    for method in METHODS:
        rs = [r for r in rows if r["method"] == method]
        if not rs:
            continue
        s = {"task": rs[0]["task"], "method": method, "runs": len(rs)}
        for m in ("accuracy", "mcc", "auroc"):
            v = np.array([r[m] for r in rs], dtype=np.float64)
            s[m] = float(v.mean())
            s[f"{m}_min"], s[f"{m}_max"] = float(v.min()), float(v.max())
        out.append(s)
    return out


def run_task(task, ckpt: dict, ds_cfg: dict, device: str = "auto", oracle_out=None) -> dict:
    """All methods on one task; returns {"task", "protocol", "recipes" (what each trained
    method ran), "rows" (one per run, with what was selected on validation), "summary"}."""
    dev = runtime.device(device)
    tok = ckpt["tokenizer"]
    cfg = validate_config(ckpt["config"], "checkpoint config")  # fills keys added since
    complement = tok.complement
    num_classes = len(task.classes)
    methods = ds_cfg["methods"]
    ft = ds_cfg["finetune"]
    rows, oracle = [], None

    def score(method, seed, probs, extra):
        row = {"task": task.name, "method": method, "seed": seed,
               **classification_metrics(task.test.labels, probs), **extra}
        rows.append(row)
        log.info("%s %s seed %s: accuracy %.4f MCC %.4f AUROC %.4f", task.name, method, seed,
                 row["accuracy"], row["mcc"], row["auroc"])

    def splits(seed, rule):
        if rule == "task" and task.validation is not None:
            return task.train, task.validation
        return split_validation(task.train, ds_cfg["validation_fraction"], seed)

    input_len = max(len(s) for part in (task.train, task.validation, task.test)
                    if part is not None for s in part.seqs)

    def classifier(method, seed):
        torch.manual_seed(seed)
        if method == "cnn":
            return GenomicBenchmarksCNN(tok.vocab_size, input_len, num_classes)
        if method == "finetune":
            backbone, _, _ = model_from_checkpoint(ckpt, rc_conjoin=False)
        else:
            backbone = build_backbone(dict(cfg["model"], rc_conjoin=False, num_classes=None),
                                      tok.vocab_size, complement=complement)
        return classifier_on(backbone, num_classes, ft, complement)

    recipes = {}
    for method in ("finetune", "scratch", "cnn"):
        if method not in methods:
            continue
        r = recipe(ds_cfg, method, 1)  # its validation rule decides the size of train
        r = recipe(ds_cfg, method, len(splits(r["seeds"][0], r["validation"])[0].seqs))
        recipes[method] = r
        for seed in r["seeds"]:
            tr, va = splits(seed, r["validation"])
            best, by_lr = None, {}
            for lr in r["lr_grid"]:
                label = f"{task.name} {method} seed {seed} lr {lr:g}"
                model, rec = fit_classifier(classifier(method, seed), tr, va, {**r, "lr": lr},
                                            seed, complement, dev, label)
                rec["lr"] = lr
                by_lr[f"{lr:g}"] = rec["val_accuracy"]
                if best is None or rec["val_accuracy"] > best[1]["val_accuracy"]:
                    best = (model, rec)
            model, rec = best
            if len(by_lr) > 1:
                rec["lr_grid_val_accuracy"] = by_lr
            score(method, seed, predict_proba(model.to(dev), task.test.seqs), rec)
            model.cpu()
            if method == "finetune" and (oracle is None or
                                         rec["val_accuracy"] > oracle[1]["val_accuracy"]):
                oracle = (model, rec, seed)
    selection = recipe(ds_cfg, "finetune", 1)
    tr, va = splits(selection["seeds"][0], selection["validation"])
    if "probe" in methods:
        backbone, _, _ = model_from_checkpoint(ckpt, rc_conjoin=False)
        backbone = backbone.to(dev)
        t0 = time.time()
        feats = [embed(backbone, s.seqs, device=dev) for s in (tr, va, task.test)]
        clf, rec = fit_logistic(feats[0], tr.labels, feats[1], va.labels)
        rec["seconds"] = round(time.time() - t0, 1)
        score("probe", None, clf.predict_proba(feats[2]), rec)
    if "kmer" in methods:
        t0 = time.time()
        clf, rec, one_k = fit_kmer(tr, va, ds_cfg["kmer_max_k"], seed=selection["seeds"][0])
        test = kmer_matrix(task.test.seqs, ds_cfg["kmer_max_k"]).tocsc()
        rec["seconds"] = round(time.time() - t0, 1)
        a, b = rec["columns"]
        score("kmer", None, clf.predict_proba(test[:, a:b]), rec)
        if one_k is not None:
            a, b = one_k[1]["columns"]
            score("kmer_one_k", None, one_k[0].predict_proba(test[:, a:b]), one_k[1])
    if oracle_out is not None:
        if oracle is None:
            raise DnadiffError("an oracle classifier needs the finetune method "
                               "(downstream.methods)")
        save_classifier(oracle_out, oracle[0], ckpt, task, {**oracle[1], "seed": oracle[2]})
    return {"task": task_summary(task), "model": pretrained_summary(ckpt),
            "protocol": ds_cfg["protocol"], "recipes": recipes, "rows": rows,
            "summary": _summarize(rows)}


def pretrained_summary(ckpt: dict) -> dict:
    """The pretrained model of the finetune and probe rows: backbone, size, pretraining."""
    cfg = ckpt["config"]
    params = sum(int(t.numel()) for t in ckpt["state_dict"].values())
    tokens = int(ckpt.get("step", 0)) * cfg["train"]["batch_size"] * cfg["data"]["window"]
    return {"backbone": cfg["model"]["backbone"], "parameters": f"{params / 1e6:.2f}M",
            "pretraining": f"{ckpt.get('step', 0)} steps, {tokens / 1e6:.1f}M tokens"}


# -- result files ---------------------------------------------------------------------------
#: the columns of a result's summary rows (the TSV of ``downstream run``; ``downstream table``
#: adds ``selected``)
SUMMARY_COLUMNS = ["task", "method", "runs", "accuracy", "accuracy_min", "accuracy_max", "mcc",
                   "mcc_min", "mcc_max", "auroc", "auroc_min", "auroc_max"]

#: the largest result file ``downstream table`` reads (one task's rows are a few kB)
RESULT_MAX_BYTES = 64 << 20
#: the task names the config allows (the schema's pattern)
_TASK_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: (key, lowest, highest) of each metric in a summary row and a run row; AUROC may be NaN (a
#: test split with one class), accuracy and MCC never
_METRICS = (("accuracy", 0.0, 1.0), ("mcc", -1.0, 1.0), ("auroc", 0.0, 1.0))


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _number(value) -> float | None:
    """``value`` as a float, or None when it is not a JSON number (booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _check_metrics(f, where: str, row: dict, keys) -> None:
    for key, low, high in _METRICS:
        for k in keys(key):
            if k not in row:
                raise InputFileError(f, f"{where}: no {k!r}")
            v = _number(row[k])
            if v is None:
                raise InputFileError(f, f"{where}: {k} is {json.dumps(row[k])[:40]}, not a "
                                     "number")
            if math.isnan(v) and key == "auroc":
                continue  # undefined where the test split holds one class
            if not math.isfinite(v):
                raise InputFileError(f, f"{where}: {k} is {row[k]}, not a finite number")
            if not low <= v <= high:
                raise InputFileError(f, f"{where}: {k} is {v:g}, outside {low:g}..{high:g}")


def _result_task(f, where: str, row) -> tuple[str, str]:
    """(task, method) of a summary or run row, checked."""
    if not isinstance(row, dict):
        raise InputFileError(f, f"{where} is {type(row).__name__}, not an object")
    task, method = row.get("task"), row.get("method")
    if not isinstance(task, str) or not _TASK_NAME.fullmatch(task):
        raise InputFileError(f, f"{where}: task is {json.dumps(task)[:40]}, not a task name "
                             "(letters, digits, _ and -)")
    if method not in METHODS:
        raise InputFileError(f, f"{where}: method is {json.dumps(method)[:40]}, not one of "
                             f"{', '.join(METHODS)}")
    return task, method


def read_result(f) -> dict:
    """One result file of ``downstream run`` (one task), its structure checked: a JSON object
    whose ``summary`` holds one row per method of one task (runs, mean, min and max of each
    metric) and whose ``rows`` hold that task's runs, as many per method as its summary
    says; metrics are finite and in range (AUROC may be NaN: one class in test)."""
    data = read_bounded(f, RESULT_MAX_BYTES, "downstream result file")
    try:
        res = json.loads(data, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise InputFileError(f, "not a downstream result file (JSON nested too deeply)") \
            from None
    except ValueError as exc:  # JSON syntax, text that is not UTF-8, a key given twice
        raise InputFileError(f, f"not a downstream result file ({exc})") from None
    if not isinstance(res, dict):
        raise InputFileError(f, f"not a downstream result file (a JSON "
                             f"{type(res).__name__}, not an object with summary and rows)")
    for key in ("summary", "rows"):
        if not isinstance(res.get(key), list):
            got = "missing" if key not in res else f"{type(res[key]).__name__}, not a list"
            raise InputFileError(f, f"not a downstream result file ({key}: {got})")
    if not res["summary"]:
        raise InputFileError(f, "an empty summary: no method was run")
    for key in ("model", "task"):
        if key in res and not isinstance(res[key], dict):
            raise InputFileError(f, f"{key} is {type(res[key]).__name__}, not an object")
    texts = [("protocol", res.get("protocol", ""))]
    texts += [(f"model.{k}", v) for k, v in res.get("model", {}).items()]
    for key, value in texts:  # they go into the comparison's Markdown table as they are
        if not isinstance(value, str) or any(ord(ch) < 32 for ch in value):
            raise InputFileError(f, f"{key} is {json.dumps(value)[:40]}, not a line of text")
    runs = {}
    for i, row in enumerate(res["rows"]):
        key = _result_task(f, f"rows[{i}]", row)
        _check_metrics(f, f"rows[{i}] ({key[0]} {key[1]})", row, lambda k: (k,))
        runs[key] = runs.get(key, 0) + 1
    tasks, methods = set(), set()
    for i, row in enumerate(res["summary"]):
        task, method = _result_task(f, f"summary[{i}]", row)
        where = f"summary[{i}] ({task} {method})"
        if tasks and task not in tasks:
            raise InputFileError(f, f"the summary holds the tasks {', '.join(sorted(tasks))}, "
                                 f"{task}; a result file is one task's")
        if method in methods:
            raise InputFileError(f, f"{where}: the method appears twice in the summary")
        tasks.add(task)
        methods.add(method)
        n = row.get("runs")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputFileError(f, f"{where}: runs is {json.dumps(n)[:40]}, not a positive "
                                 "count")
        if runs.get((task, method), 0) != n:
            raise InputFileError(f, f"{where}: runs is {n}, but rows holds "
                                 f"{runs.get((task, method), 0)} such run(s)")
        _check_metrics(f, where, row, lambda k: (k, f"{k}_min", f"{k}_max"))
        for key, _, _ in _METRICS:
            low, mean, high = (_number(row[k]) for k in (f"{key}_min", key, f"{key}_max"))
            if not (low <= mean + 1e-9 and mean <= high + 1e-9) and not math.isnan(mean):
                raise InputFileError(f, f"{where}: {key} {mean:g} is not within its range "
                                     f"{low:g}..{high:g}")
    extra = sorted({f"{t} {m}" for t, m in runs} - {f"{t} {m}" for t in tasks
                                                     for m in methods})
    if extra:
        raise InputFileError(f, f"rows holds runs the summary does not: {', '.join(extra)}")
    name = res.get("task", {}).get("name", next(iter(tasks)))
    if name != next(iter(tasks)):
        raise InputFileError(f, f"task.name is {json.dumps(name)[:40]}, the summary's task "
                             f"{next(iter(tasks))}")
    return res


def _selected(summary: dict, runs: list[dict]) -> str:
    """What a method's runs chose on validation, in words (the k-mer regressions: features,
    scaling and C), or empty."""
    mine = [r for r in runs if (r["task"], r["method"]) == (summary["task"], summary["method"])]
    picks = []
    for r in mine:
        if not isinstance(r.get("features"), str):
            continue  # not a k-mer regression's row
        parts = [" ".join(r[k].split()) for k in ("features", "scaling")
                 if isinstance(r.get(k), str)]
        if _number(r.get("C")) is not None:
            parts.append(f"C={r['C']:g}")
        picks.append(" ".join(parts))
    return "; ".join(dict.fromkeys(picks))


def collect_results(json_files) -> tuple[list[dict], list[dict], list[dict]]:
    """The rows of one table over the tasks' result files (each summary row with what its
    runs ``selected``), every run row, and the results themselves. Each file is one task's
    (:func:`read_result`); a file given twice, or two files of the same task, are refused
    (their rows would be counted twice)."""
    rows, runs, results, seen, tasks = [], [], [], {}, {}

    def once(index: dict, key, f, why) -> None:
        """Record ``f`` under ``key``, refusing a second file there (``why(first)``: the
        message, given the first file)."""
        if key in index:
            raise InputFileError(f, why(index[key]))
        index[key] = f

    for f in json_files:
        once(seen, os.path.realpath(f), f,
             lambda first: f"given twice (also as {first}): its rows would be counted twice")
        res = read_result(f)
        task = res["summary"][0]["task"]
        once(tasks, task, f,
             lambda first, task=task: f"task {task} is also in {first}: one result file per task")
        rows += [dict(s, selected=_selected(s, res["rows"])) for s in res["summary"]]
        runs += res["rows"]
        results.append(res)
    return rows, runs, results

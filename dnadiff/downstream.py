"""Downstream classification: is the pretrained model useful?

For one labeled task (``dnadiff.tasks``) four methods, scored on the task's test
split with accuracy, Matthews correlation (MCC) and AUROC:

- ``finetune``: the pretrained backbone plus a mean-pooled linear head, all weights trained;
  early stopping on validation accuracy; several seeds (mean and range reported).
- ``probe``: logistic regression (scikit-learn) on the frozen, mean-pooled pretrained features.
- ``kmer``: logistic regression on k-mer frequencies (k = 1..K), no neural network at all.
- ``scratch``: the same architecture and recipe as ``finetune`` from random weights.

The validation split is the task's own when it has one (GUE's dev split), else a stratified
10% of train drawn by the run's seed. The best fine-tuned model is kept as the *oracle*
classifier (a ``dnadiff-classifier`` checkpoint) that scores class-conditional samples.

The classifier itself (``SequenceClassifier``, ``predict_proba``, ``embed``, ``pad_batch``) is
in ``dnadiff.models.classifier``, its checkpoint format in ``dnadiff.checkpoint``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, matthews_corrcoef, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dnadiff import io, runtime
from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_classifier
from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.evaluation.kmers import kmer_frequencies
from dnadiff.evaluation.plots import plot_downstream
from dnadiff.models import build_backbone
from dnadiff.models.classifier import SequenceClassifier, embed, pad_batch, predict_proba
from dnadiff.tasks import LabeledSet, load_task, stratified_split, task_keys, task_summary

log = logging.getLogger(__name__)
METHODS = ("finetune", "probe", "kmer", "scratch")


# -- metrics ----------------------------------------------------------------------------------
def classification_metrics(labels, probs) -> dict:
    """Accuracy, MCC and AUROC (binary: of class 1; more classes: one-vs-rest macro)."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    pred = probs.argmax(1)
    out = {"accuracy": float(accuracy_score(labels, pred)),
           "mcc": float(matthews_corrcoef(labels, pred))}
    try:
        if probs.shape[1] == 2:
            out["auroc"] = float(roc_auc_score(labels, probs[:, 1]))
        else:
            out["auroc"] = float(roc_auc_score(labels, probs, multi_class="ovr",
                                               labels=list(range(probs.shape[1]))))
    except ValueError:  # one class only in labels
        out["auroc"] = float("nan")
    return out


# -- splits -------------------------------------------------------------------------------------
def split_validation(labeled, fraction: float, seed: int):
    """A stratified ``fraction`` of ``labeled`` as validation, the rest as train."""
    tr, va = stratified_split(labeled.labels, [1.0 - fraction, fraction], seed)

    def take(idx):
        return LabeledSet([labeled.seqs[i] for i in idx], labeled.labels[idx],
                          [labeled.names[i] for i in idx])
    return take(tr), take(va)


# -- fine-tuning --------------------------------------------------------------------------------
def train_classifier(backbone, train, val, num_classes: int, ft_cfg: dict, seed: int,
                     complement=None, device=None, label: str = "") -> tuple[nn.Module, dict]:
    """Fine-tune ``backbone`` + head on ``train`` with early stopping on ``val`` accuracy.

    Evaluates every ``eval_every`` steps; stops after ``patience`` evaluations without a new
    best, or at ``steps``; returns the best model (on CPU) and its training record.
    """
    device = device or runtime.device()
    torch.manual_seed(seed)
    model = SequenceClassifier(backbone, num_classes, ft_cfg["dropout"]).to(device)
    if ft_cfg["rc_conjoin"]:
        if complement is None:
            raise DnadiffError("downstream.finetune.rc_conjoin needs a tokenizer with a "
                               "complement map")
        model.backbone.set_rc_conjoin(complement, model.backbone.vocab_size)
        model.backbone.rc_conjoin = model.backbone.rc_conjoin.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=ft_cfg["lr"],
                            weight_decay=ft_cfg["weight_decay"])
    steps, warm = ft_cfg["steps"], max(1, ft_cfg["steps"] // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.5 * (1 + math.cos(math.pi * min(1.0, s /
                                                                                    steps)))))
    rng = np.random.default_rng(seed)
    comp = None if complement is None else np.asarray(complement)
    if ft_cfg["rc_augment"] and comp is None:
        raise DnadiffError("downstream.finetune.rc_augment needs a tokenizer with a complement "
                           "map")
    n, bs = len(train.seqs), min(ft_cfg["batch_size"], len(train.seqs))
    order, pos = rng.permutation(n), 0
    best = {"val_accuracy": -1.0, "step": 0}
    best_state, bad, t0 = None, 0, time.time()
    model.train()
    for step in range(1, steps + 1):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + bs]
        pos += bs
        seqs = [train.seqs[i] for i in idx]
        if ft_cfg["rc_augment"]:
            flip = rng.random(len(seqs)) < 0.5
            seqs = [comp[s][::-1] if f else s for s, f in zip(seqs, flip)]
        tokens, mask = pad_batch(seqs)
        y = torch.as_tensor(train.labels[idx], dtype=torch.long, device=device)
        loss = F.cross_entropy(model(tokens.to(device), mask.to(device)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % ft_cfg["eval_every"] == 0 or step == steps:
            acc = float((predict_proba(model, val.seqs, device=device).argmax(1)
                         == val.labels).mean())
            log.info("%s step %d/%d loss %.4f val accuracy %.4f (%.1f s)", label, step, steps,
                     float(loss.detach()), acc, time.time() - t0)
            if acc > best["val_accuracy"]:
                best = {"val_accuracy": acc, "step": step}
                best_state = copy.deepcopy(model.state_dict())
                bad = 0
            else:
                bad += 1
                if bad >= ft_cfg["patience"]:
                    break
    model.load_state_dict(best_state)
    best["steps_run"] = step
    best["seconds"] = round(time.time() - t0, 1)
    return model.cpu().eval(), best


# -- scikit-learn methods ------------------------------------------------------------------------
def kmer_matrix(seqs, max_k: int):
    """Sparse k-mer frequencies (k = 1..max_k concatenated; each k sums to 1 per sequence)."""
    return kmer_frequencies(seqs, max_k, sparse_matrix=True)


def fit_logistic(xtr, ytr, xva, yva, cs=(0.01, 0.1, 1.0, 10.0), seed: int = 0):
    """Standardized logistic regression; C picked by validation accuracy."""
    sparse_in = hasattr(xtr, "tocsr")
    best = None
    for c in cs:
        clf = make_pipeline(StandardScaler(with_mean=not sparse_in),
                            LogisticRegression(C=c, max_iter=3000, random_state=seed))
        clf.fit(xtr, ytr)
        acc = float((clf.predict(xva) == yva).mean())
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    return best[2], {"val_accuracy": best[0], "C": best[1]}


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
    """All methods on one task; returns {"task", "rows", "summary"} (rows: one per run)."""
    dev = runtime.device(device)
    tok = ckpt["tokenizer"]
    cfg = validate_config(ckpt["config"], "checkpoint config")  # fills keys added since
    complement = tok.get("complement")
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

    def splits(seed):
        if task.validation is not None:
            return task.train, task.validation
        return split_validation(task.train, ds_cfg["validation_fraction"], seed)

    for method in ("finetune", "scratch"):
        if method not in methods:
            continue
        for seed in ft["seeds"]:
            tr, va = splits(seed)
            if method == "finetune":
                backbone, _, _ = model_from_checkpoint(ckpt, rc_conjoin=False)
            else:
                torch.manual_seed(seed)
                model_cfg = dict(cfg["model"], rc_conjoin=False, num_classes=None)
                backbone = build_backbone(model_cfg, len(tok["tokens"]),
                                          complement=complement)
            model, rec = train_classifier(backbone, tr, va, num_classes, ft, seed, complement,
                                          dev, label=f"{task.name} {method} seed {seed}")
            score(method, seed, predict_proba(model.to(dev), task.test.seqs), rec)
            model.cpu()
            if method == "finetune" and (oracle is None or
                                         rec["val_accuracy"] > oracle[1]["val_accuracy"]):
                oracle = (model, rec, seed)
    tr, va = splits(ft["seeds"][0])
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
        k = ds_cfg["kmer_max_k"]
        mats = [kmer_matrix(s.seqs, k) for s in (tr, va, task.test)]
        clf, rec = fit_logistic(mats[0], tr.labels, mats[1], va.labels)
        rec["seconds"] = round(time.time() - t0, 1)
        rec["max_k"] = k
        score("kmer", None, clf.predict_proba(mats[2]), rec)
    if oracle_out is not None:
        if oracle is None:
            raise DnadiffError("an oracle classifier needs the finetune method "
                               "(downstream.methods)")
        save_classifier(oracle_out, oracle[0], ckpt, task, {**oracle[1], "seed": oracle[2]})
    return {"task": task_summary(task), "rows": rows, "summary": _summarize(rows)}


# -- files in, files out (the CLI verbs) ------------------------------------------------------
SUMMARY_COLUMNS = ["task", "method", "runs", "accuracy", "accuracy_min", "accuracy_max", "mcc",
                   "mcc_min", "mcc_max", "auroc", "auroc_min", "auroc_max"]


def task_spec(cfg: dict, name: str, genome_fasta=None, annotation=None) -> dict:
    """The config's task ``name`` with the run's genome, annotation and splits filled in."""
    specs = {t["name"]: t for t in cfg["downstream"]["tasks"]}
    if name not in specs:
        raise DnadiffError(f"no downstream task {name!r} in the config (tasks: "
                           f"{', '.join(specs) or 'none'})")
    spec = copy.deepcopy(specs[name])
    if spec["type"] == "annotation":
        spec["fasta"] = spec["fasta"] or genome_fasta
        spec["annotation"] = spec["annotation"] or annotation
        if not spec["fasta"] or not spec["annotation"]:
            raise DnadiffError(f"task {name!r}: an annotation task needs a genome and an "
                               "annotation (task keys 'fasta' and 'annotation', or the run's)")
        splits = cfg["data"]["splits"]
        if spec["validation_contigs"] is None:
            spec["validation_contigs"] = list(splits["validation"])
        if spec["test_contigs"] is None:
            spec["test_contigs"] = list(splits["test"])
    elif spec["type"] == "coordinates":
        spec["reference"] = spec["reference"] or genome_fasta
    # the schema fills every task key; a reader sees only those of its type
    keep = task_keys(spec["type"])
    return {k: v for k, v in spec.items() if k in keep}


def run_downstream(cfg: dict, task_name: str, checkpoint, out_json, out_tsv, oracle_out=None,
                   genome_fasta=None, annotation=None) -> dict:
    """The ``downstream run`` verb: every method on one task, written as JSON and a summary TSV
    (with the oracle classifier, when asked, all or nothing)."""
    ckpt = load_checkpoint(checkpoint)
    if ckpt["config"].get("objective") == "ar":
        raise InputFileError(checkpoint, "downstream tasks need an MDLM checkpoint (this is AR)")
    task = load_task(task_spec(cfg, task_name, genome_fasta, annotation))
    log.info("task %s: %s", task.name, task.source)
    with io.all_or_nothing():  # the oracle, the JSON and the TSV together or none
        res = run_task(task, ckpt, cfg["downstream"], cfg["downstream"]["device"], oracle_out)
        res["checkpoint"] = str(checkpoint)
        io.write_json(out_json, res)
        io.write_tsv(out_tsv, res["summary"], SUMMARY_COLUMNS)
    return res


def downstream_table(json_files, out_tsv, plot=None) -> list[dict]:
    """One table (and a bar plot of test accuracy and MCC) over the tasks' result files."""
    rows, runs = [], []
    for f in json_files:
        try:
            with open(f) as fh:
                res = json.load(fh)
            rows += res["summary"]
            runs += res["rows"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputFileError(f, f"not a downstream result file ({exc})") from None
    io.write_tsv(out_tsv, rows, SUMMARY_COLUMNS)
    if plot:
        plot_downstream(rows, runs, plot)
    return rows

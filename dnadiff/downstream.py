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
"""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dnadiff import runtime
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import atomic_path
from dnadiff.tasks import LabeledSet, load_task, stratified_split, task_keys, task_summary

log = logging.getLogger(__name__)
METHODS = ("finetune", "probe", "kmer", "scratch")
CLASSIFIER_FORMAT = "dnadiff-classifier"
PAD_ID = 6  # DNATokenizer [PAD]


# -- metrics ----------------------------------------------------------------------------------
def classification_metrics(labels, probs) -> dict:
    """Accuracy, MCC and AUROC (binary: of class 1; more classes: one-vs-rest macro)."""
    from sklearn.metrics import accuracy_score, matthews_corrcoef, roc_auc_score

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


# -- batching -----------------------------------------------------------------------------------
def pad_batch(seqs, pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, Lmax] (padded with ``pad_id``) and the mask of real positions."""
    n = max(len(s) for s in seqs)
    out = np.full((len(seqs), n), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    tokens = torch.from_numpy(out)
    return tokens, tokens != pad_id


def split_validation(labeled, fraction: float, seed: int):
    """A stratified ``fraction`` of ``labeled`` as validation, the rest as train."""
    tr, va = stratified_split(labeled.labels, [1.0 - fraction, fraction], seed)

    def take(idx):
        return LabeledSet([labeled.seqs[i] for i in idx], labeled.labels[idx],
                          [labeled.names[i] for i in idx])
    return take(tr), take(va)


# -- model --------------------------------------------------------------------------------------
class SequenceClassifier(nn.Module):
    """A backbone's final-norm features, mean-pooled over the real positions, then linear."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.dropout = dropout
        self.head = nn.Linear(feature_width(backbone), num_classes)

    def pooled(self, tokens, mask):
        """Mean of the features over each sequence's real positions.

        Padding never reaches the backbone (attention, convolutions and scans would mix it into
        the real positions): a batch of mixed lengths (right-padded, see ``pad_batch``) runs as
        one sub-batch per length. A time-conditioned backbone sees clean input (sigma = 0).
        """
        sigma = (torch.zeros(tokens.shape[0], device=tokens.device)
                 if self.backbone.time_conditioning else None)
        if bool(mask.all()):
            return self.backbone.features(tokens, sigma).mean(1)
        lengths = mask.sum(1)
        out = None
        for n in torch.unique(lengths).tolist():
            rows = torch.nonzero(lengths == n).squeeze(1)
            f = self.backbone.features(tokens[rows, :n],
                                       None if sigma is None else sigma[rows]).mean(1)
            if out is None:
                out = f.new_zeros(tokens.shape[0], f.shape[1])
            out = out.index_copy(0, rows, f)
        return out

    def forward(self, tokens, mask):
        return self.head(F.dropout(self.pooled(tokens, mask), self.dropout, self.training))


def feature_width(backbone) -> int:
    width = backbone.final_norm.normalized_shape[0]
    return 2 * width if getattr(backbone, "rc_equivariant", False) else width


@torch.no_grad()
def _batched(clf: SequenceClassifier, seqs, fn, batch_size: int, device) -> np.ndarray:
    """``fn(tokens, mask)`` over ``seqs`` in eval mode, batch by batch, concatenated."""
    device = device or next(clf.parameters()).device
    was = clf.training
    clf.eval()
    out = []
    for i in range(0, len(seqs), batch_size):
        tokens, mask = pad_batch(seqs[i:i + batch_size])
        out.append(fn(tokens.to(device), mask.to(device)).float().cpu())
    clf.train(was)
    return torch.cat(out).numpy()


def predict_proba(model: SequenceClassifier, seqs, batch_size: int = 128,
                  device=None) -> np.ndarray:
    """Class probabilities [N, classes]."""
    return _batched(model, seqs, lambda t, m: torch.softmax(model(t, m).float(), -1),
                    batch_size, device)


def embed(model, seqs, batch_size: int = 128, device=None) -> np.ndarray:
    """Mean-pooled features [N, width] of a ``SequenceClassifier`` (or of a bare backbone)."""
    clf = model if isinstance(model, SequenceClassifier) else SequenceClassifier(model, 2)
    return _batched(clf, seqs, clf.pooled, batch_size, device)


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
    from scipy import sparse

    blocks = []
    for k in range(1, max_k + 1):
        rows, cols, vals = [], [], []
        for i, s in enumerate(seqs):
            s = np.asarray(s, dtype=np.int64)
            m = len(s) - k + 1
            if m <= 0:
                continue
            code = np.zeros(m, dtype=np.int64)
            ok = np.ones(m, dtype=bool)
            for j in range(k):
                part = s[j:j + m]
                ok &= part < 4
                code = code * 4 + np.where(part < 4, part, 0)
            code = code[ok]
            if code.size:
                u, c = np.unique(code, return_counts=True)
                rows.append(np.full(u.size, i))
                cols.append(u)
                vals.append(c / code.size)
        blocks.append(sparse.csr_matrix(
            (np.concatenate(vals) if vals else [], (np.concatenate(rows) if rows else [],
                                                    np.concatenate(cols) if cols else [])),
            shape=(len(seqs), 4 ** k)))
    return sparse.hstack(blocks).tocsr()


def fit_logistic(xtr, ytr, xva, yva, cs=(0.01, 0.1, 1.0, 10.0), seed: int = 0):
    """Standardized logistic regression; C picked by validation accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
    from dnadiff.checkpoint import model_from_checkpoint
    from dnadiff.models import build_backbone

    dev = runtime.device(device)
    from dnadiff.config import validate_config

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


# -- classifier checkpoints ---------------------------------------------------------------------
def save_classifier(path, model: SequenceClassifier, ckpt: dict, task, record: dict) -> None:
    cfg = copy.deepcopy(ckpt["config"])
    cfg["model"]["rc_conjoin"] = False
    cfg["model"]["num_classes"] = None
    payload = {"format": CLASSIFIER_FORMAT, "version": 1, "config": cfg,
               "tokenizer": ckpt["tokenizer"], "classes": list(task.classes),
               "length": task.length, "task": task.name, "record": record,
               "dropout": model.dropout,
               "rc_conjoin": model.backbone.rc_conjoin is not None,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_classifier(path) -> tuple[SequenceClassifier, dict]:
    """A saved classifier (eval mode) and its metadata (classes, length, task, record)."""
    from pathlib import Path

    from dnadiff.config import validate_config
    from dnadiff.models import build_backbone

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "classifier checkpoint not found")
    try:
        c = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read an untrusted file
        raise InputFileError(path, f"corrupt or unsafe classifier checkpoint ({exc})"[:300]
                             ) from None
    if not isinstance(c, dict) or c.get("format") != CLASSIFIER_FORMAT:
        raise InputFileError(path, "not a dnadiff classifier checkpoint")
    cfg = validate_config(c["config"], f"{path} config")
    tok = c["tokenizer"]
    backbone = build_backbone(cfg["model"], len(tok["tokens"]),
                              complement=tok.get("complement"))
    try:
        model = SequenceClassifier(backbone, len(c["classes"]), c["dropout"])
        model.load_state_dict(c["state_dict"])
        if c.get("rc_conjoin"):  # scored as it was selected: strand-averaged features
            model.backbone.set_rc_conjoin(tok["complement"], len(tok["tokens"]))
        meta = {k: c[k] for k in ("classes", "length", "task", "record", "tokenizer")}
    except (KeyError, RuntimeError, TypeError) as exc:
        raise InputFileError(path, f"malformed classifier checkpoint ({exc})"[:300]) from None
    return model.eval(), meta


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
    from dnadiff import io
    from dnadiff.checkpoint import load_checkpoint

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
    import json

    from dnadiff import io

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
        from dnadiff.evaluation.plots import plot_downstream

        plot_downstream(rows, runs, plot)
    return rows

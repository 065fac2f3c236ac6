"""The one classifier training loop (fine-tuning, from scratch, the CNN) and the protocols it
runs under; metrics."""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, matthews_corrcoef, roc_auc_score

from dnadiff import runtime
from dnadiff.errors import DnadiffError
from dnadiff.models.classifier import SequenceClassifier, pad_batch, predict_proba
from dnadiff.schema import downstream_protocols

log = logging.getLogger(__name__)


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


# -- protocols --------------------------------------------------------------------------------
def recipe(ds_cfg: dict, method: str, n_train: int) -> dict:
    """The training recipe of ``method`` (finetune, scratch or cnn) under the configured
    protocol, for a training split of ``n_train`` sequences: the finetune section, the keys
    the protocol sets over it (the schema's ``x-protocols``), the method's own learning rate
    (scratch: unless the protocol has an lr grid; cnn: always, with its weight decay; scratch
    never stops early), epochs turned into steps and "epoch" into the steps of one epoch."""
    protocols = downstream_protocols()
    name = ds_cfg["protocol"]
    r = {**ds_cfg["finetune"], **protocols[name], "protocol": name}
    if method == "scratch":
        # random weights sit at chance for a while before they learn (a DiT without the
        # embedding convolution for hundreds of steps): early stopping would end them there
        r["patience"] = None
        if not protocols[name].get("lr_grid"):
            r["lr"] = ds_cfg["scratch"]["lr"]
    if method == "cnn":
        r.update(lr=ds_cfg["cnn"]["lr"], weight_decay=ds_cfg["cnn"]["weight_decay"],
                 lr_grid=None)
    r["batch_size"] = min(r["batch_size"], n_train)
    per_epoch = math.ceil(n_train / r["batch_size"])
    if r["epochs"]:
        r["steps"] = r["epochs"] * per_epoch
    if r["val_every"] == "epoch":
        r["val_every"] = per_epoch
    r["val_every"] = min(r["val_every"], r["steps"])
    r["lr_grid"] = list(r["lr_grid"] or [r["lr"]])
    return r


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices and convolution kernels only, none on
    biases, normalization parameters, embeddings and other vectors."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, rest = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and id(p) not in embeddings else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0}]


def lr_factor(step: int, steps: int) -> float:
    """The learning-rate multiplier of optimizer step ``step`` (0-based) of ``steps``: linear
    warmup over the first 5% (at least one step), then cosine decay towards 0 at ``steps``."""
    warm = max(1, steps // 20)
    return min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps)))


# -- fine-tuning --------------------------------------------------------------------------------
def classifier_on(backbone, num_classes: int, ft_cfg: dict, complement=None
                  ) -> SequenceClassifier:
    """A classification head (dropout ``ft_cfg["dropout"]``) on ``backbone``, its features
    averaged over both strands when ``ft_cfg["rc_conjoin"]`` (which needs the tokenizer's
    ``complement`` map)."""
    model = SequenceClassifier(backbone, num_classes, ft_cfg["dropout"])
    if ft_cfg["rc_conjoin"]:
        if complement is None:
            raise DnadiffError("downstream.finetune.rc_conjoin needs a tokenizer with a "
                               "complement map")
        backbone.set_rc_conjoin(complement, backbone.vocab_size)
    return model


def train_classifier(backbone, train, val, num_classes: int, ft_cfg: dict, seed: int,
                     complement=None, device=None, label: str = "") -> tuple[nn.Module, dict]:
    """Fine-tune ``backbone`` + head on ``train`` with early stopping on ``val`` accuracy.

    Evaluates every ``val_every`` steps; stops after ``patience`` evaluations without a new
    best, or at ``steps``; returns the best model (on CPU) and its training record.
    """
    device = device or runtime.device()
    torch.manual_seed(seed)
    model = classifier_on(backbone, num_classes, ft_cfg, complement).to(device)
    return fit_classifier(model, train, val, ft_cfg, seed, complement, device, label)


def fit_classifier(model: nn.Module, train, val, ft_cfg: dict, seed: int, complement=None,
                   device=None, label: str = "") -> tuple[nn.Module, dict]:
    """The one classifier training loop (fine-tuning, from scratch, the CNN): AdamW at
    ``ft_cfg["lr"]`` (weight decay on weight matrices only, :func:`param_groups`) with
    warmup and cosine decay, gradient clipping at norm 1, validation accuracy every
    ``val_every`` steps, early stopping after ``patience`` evaluations without a better one
    (None: never); ``model(tokens, mask) -> logits``. Returns the best model (on CPU) and
    its record."""
    device = device or runtime.device()
    model = model.to(device)
    opt = torch.optim.AdamW(param_groups(model, ft_cfg["weight_decay"]), lr=ft_cfg["lr"])
    steps = ft_cfg["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps))
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
            flip = rng.random(len(seqs)) < ft_cfg["rc_augment"]
            seqs = [comp[s][::-1] if f else s for s, f in zip(seqs, flip)]
        tokens, mask = pad_batch(seqs)
        y = torch.as_tensor(train.labels[idx], dtype=torch.long, device=device)
        loss = F.cross_entropy(model(tokens.to(device), mask.to(device)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % ft_cfg["val_every"] == 0 or step == steps:
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
                if ft_cfg["patience"] is not None and bad >= ft_cfg["patience"]:
                    break
    model.load_state_dict(best_state)
    best["steps_run"] = step
    best["seconds"] = round(time.time() - t0, 1)
    return model.cpu().eval(), best

"""Downstream fine-tuning: it learns a motif, keeps the best step, and is deterministic for a
seed."""


import numpy as np
import torch
from downstream_kit import FT, TOK, motif_task, small_cfg

from dnadiff.downstream import train_classifier
from dnadiff.models import build_backbone
from dnadiff.models.classifier import predict_proba


def test_fine_tuning_learns_a_motif_and_keeps_the_best_step():
    task = motif_task()
    model = build_backbone(small_cfg()["model"], TOK.vocab_size)
    clf, rec = train_classifier(model, task.train, task.test, 2, FT, seed=0,
                                device=torch.device("cpu"))
    probs = predict_proba(clf, task.test.seqs)
    acc = (probs.argmax(1) == task.test.labels).mean()
    assert acc == rec["val_accuracy"]  # the returned model is the best evaluated one
    assert acc > 0.9
    assert rec["step"] % FT["val_every"] == 0 and rec["step"] <= rec["steps_run"]
    assert np.allclose(probs.sum(1), 1.0)


def test_fine_tuning_is_deterministic_for_a_seed():
    task = motif_task(n=40)
    ft = dict(FT, steps=10)
    out = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_backbone(small_cfg()["model"], TOK.vocab_size)
        clf, _ = train_classifier(model, task.train, task.test, 2, ft, seed=3,
                                  device=torch.device("cpu"))
        out.append(predict_proba(clf, task.test.seqs))
    assert np.array_equal(out[0], out[1])
